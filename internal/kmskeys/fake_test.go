package kmskeys

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/testenv"
)

// recordingKMS records the requests and answers with canned outputs.
type recordingKMS struct {
	gen    *kms.GenerateDataKeyInput
	dec    *kms.DecryptInput
	genOut *kms.GenerateDataKeyOutput
	decOut *kms.DecryptOutput
	err    error
}

func (f *recordingKMS) GenerateDataKey(_ context.Context, in *kms.GenerateDataKeyInput, _ ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error) {
	f.gen = in
	return f.genOut, f.err
}

func (f *recordingKMS) Decrypt(_ context.Context, in *kms.DecryptInput, _ ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	f.dec = in
	return f.decOut, f.err
}

func TestKMSKeys_Requests(t *testing.T) {
	const arn = "arn:aws:kms:us-east-1:111122223333:key/1234"
	f := &recordingKMS{
		genOut: &kms.GenerateDataKeyOutput{Plaintext: make([]byte, 32), CiphertextBlob: []byte("wrapped"), KeyId: aws.String(arn)},
		decOut: &kms.DecryptOutput{Plaintext: make([]byte, 32), KeyId: aws.String(arn)},
	}
	s := New(f, "alias/imago")
	ec := docstore.ContextFor("tenant", "id")
	dk, err := s.GenerateDataKey(t.Context(), ec)
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(f.gen.KeyId) != "alias/imago" || f.gen.KeySpec != types.DataKeySpecAes256 || f.gen.EncryptionContext["imago:document"] != "id" {
		t.Fatalf("GenerateDataKey request: %+v", f.gen)
	}
	if dk.KeyID != arn {
		t.Fatalf("KeyID %q, want the ARN KMS reported", dk.KeyID)
	}
	if _, err := s.Decrypt(t.Context(), dk.KeyID, dk.Wrapped, ec); err != nil {
		t.Fatal(err)
	}
	if aws.ToString(f.dec.KeyId) != arn || string(f.dec.CiphertextBlob) != "wrapped" || f.dec.EncryptionContext["imago:tenant"] != "tenant" {
		t.Fatalf("Decrypt request: %+v", f.dec)
	}

	f.decOut = &kms.DecryptOutput{Plaintext: make([]byte, 16)}
	if _, err := s.Decrypt(t.Context(), arn, []byte("wrapped"), ec); docstore.KindOf(err) != docstore.KindInternal {
		t.Fatalf("a 16-byte key: %v", err)
	}
	f.genOut = &kms.GenerateDataKeyOutput{Plaintext: make([]byte, 32)}
	if _, err := s.GenerateDataKey(t.Context(), ec); docstore.KindOf(err) != docstore.KindInternal {
		t.Fatalf("no ciphertext: %v", err)
	}
}

func TestKMSKeys_ErrorKinds(t *testing.T) {
	status := testenv.ResponseError
	for _, c := range []struct {
		name string
		err  error
		want docstore.Kind
	}{
		{"invalid ciphertext", status(400, &types.InvalidCiphertextException{}), docstore.KindInternal},
		{"incorrect key", status(400, &types.IncorrectKeyException{}), docstore.KindInternal},
		{"not found", status(400, &types.NotFoundException{}), docstore.KindInternal},
		{"disabled", status(400, &types.DisabledException{}), docstore.KindInternal},
		{"throttling", status(400, &smithy.GenericAPIError{Code: "ThrottlingException"}), docstore.KindUnavailable},
		{"internal", status(500, &types.KMSInternalException{}), docstore.KindUnavailable},
		{"dependency timeout", status(503, &types.DependencyTimeoutException{}), docstore.KindUnavailable},
		{"key unavailable", status(500, &types.KeyUnavailableException{}), docstore.KindUnavailable},
		{"connection refused", &smithyhttp.RequestSendError{Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}}, docstore.KindUnavailable},
		{"deadline", context.DeadlineExceeded, docstore.KindUnavailable},
		{"plain", errors.New("boom"), docstore.KindInternal},
	} {
		if got := kindOf(c.err); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}
