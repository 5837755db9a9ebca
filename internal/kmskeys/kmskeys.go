// Package kmskeys is the KeyService on AWS KMS: every document gets its own
// AES-256 data key from GenerateDataKey, bound to the document's encryption
// context ({"imago:document": id, "imago:tenant": tenant}).
//
// KMS keeps the master key; this package never sees it. The wrapped data
// key (KMS's ciphertext blob) is stored with the document's metadata, and
// unwrapping it takes a Decrypt call with exactly the same context, so a
// wrapped key copied to another document or tenant is useless, and every
// Decrypt is in CloudTrail with the document id.
//
// DataKey.KeyID is the key ARN KMS reports, not the configured id (which
// may be an alias): Decrypt passes that recorded ARN, so documents stay
// readable after the configured key changes, and a ciphertext can only be
// unwrapped by the key that is recorded for it.
//
// Errors: a wrapped key that does not open (InvalidCiphertextException,
// IncorrectKeyException — also what a wrong context gives) is
// KindInternal, never a retryable one; throttling, KMSInternalException,
// DependencyTimeoutException, timeouts and network failures are
// KindUnavailable; a disabled, missing or inaccessible key is KindInternal.
package kmskeys

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/imagodocs/imago/internal/docstore"
)

// KMSAPI is the part of the KMS client that Service uses; *kms.Client
// implements it.
type KMSAPI interface {
	GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, optFns ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error)
	Decrypt(ctx context.Context, in *kms.DecryptInput, optFns ...func(*kms.Options)) (*kms.DecryptOutput, error)
}

var (
	_ KMSAPI              = (*kms.Client)(nil)
	_ docstore.KeyService = (*Service)(nil)
)

// dataKeySize is the size of an AES-256 key.
const dataKeySize = 32

// Service is a docstore.KeyService on a KMS key.
type Service struct {
	client KMSAPI
	keyID  string
}

// New returns a Service generating data keys under keyID (a key id, ARN,
// alias name or alias ARN).
func New(client KMSAPI, keyID string) *Service {
	return &Service{client: client, keyID: keyID}
}

// GenerateDataKey returns a fresh AES-256 data key bound to ec.
func (s *Service) GenerateDataKey(ctx context.Context, ec docstore.EncryptionContext) (docstore.DataKey, error) {
	const op = "kmskeys.GenerateDataKey"
	out, err := s.client.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
		KeyId:             aws.String(s.keyID),
		KeySpec:           types.DataKeySpecAes256,
		EncryptionContext: ec,
	})
	if err != nil {
		return docstore.DataKey{}, docstore.E(op, kindOf(err), fmt.Errorf("generate data key under %s: %w", s.keyID, err))
	}
	if len(out.Plaintext) != dataKeySize || len(out.CiphertextBlob) == 0 || aws.ToString(out.KeyId) == "" {
		return docstore.DataKey{}, docstore.E(op, docstore.KindInternal, fmt.Sprintf("KMS returned a %d-byte data key, a %d-byte ciphertext and key id %q", len(out.Plaintext), len(out.CiphertextBlob), aws.ToString(out.KeyId)))
	}
	return docstore.DataKey{Plaintext: out.Plaintext, Wrapped: out.CiphertextBlob, KeyID: aws.ToString(out.KeyId)}, nil
}

// Decrypt unwraps a data key that keyID's key wrapped under exactly ec.
func (s *Service) Decrypt(ctx context.Context, keyID string, wrapped []byte, ec docstore.EncryptionContext) ([]byte, error) {
	const op = "kmskeys.Decrypt"
	if len(wrapped) == 0 {
		return nil, docstore.E(op, docstore.KindInternal, "no wrapped data key")
	}
	in := &kms.DecryptInput{CiphertextBlob: wrapped, EncryptionContext: ec}
	if keyID != "" {
		in.KeyId = aws.String(keyID)
	}
	out, err := s.client.Decrypt(ctx, in)
	if err != nil {
		return nil, docstore.E(op, kindOf(err), fmt.Errorf("decrypt data key under %s: %w", keyID, err))
	}
	if len(out.Plaintext) != dataKeySize {
		return nil, docstore.E(op, docstore.KindInternal, fmt.Sprintf("KMS returned a %d-byte data key", len(out.Plaintext)))
	}
	return out.Plaintext, nil
}
