// Package localkeys is the embedded KeyService: it wraps per-document data
// keys under a master key kept in a file (created with mode 0600 on first
// use) instead of KMS. Like KMS, it binds each wrapped key to its
// encryption context: unwrapping with any other context fails.
package localkeys

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/imagodocs/imago/internal/docstore"
)

var _ docstore.KeyService = (*Keys)(nil)

const (
	keySize    = 32
	wrapFormat = 1
	nonceSize  = 12
)

// Keys is a KeyService under one local master key.
type Keys struct {
	aead  cipher.AEAD
	keyID string
}

// Open loads the master key from path, creating it (0600, in a 0700
// folder) with a fresh random key if it does not exist.
func Open(path string) (*Keys, error) {
	master, err := KeyFile(path)
	if err != nil {
		return nil, err
	}
	return New(master)
}

// KeyFile loads a 32-byte secret key from path, creating it (0600, in a
// 0700 folder) with fresh random bytes if it does not exist.
func KeyFile(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = create(path)
	}
	if err != nil {
		return nil, fmt.Errorf("localkeys: key file %s: %w", path, err)
	}
	if len(key) != keySize {
		return nil, fmt.Errorf("localkeys: key file %s is %d bytes, want %d", path, len(key), keySize)
	}
	return key, nil
}

func create(path string) ([]byte, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	master := make([]byte, keySize)
	if _, err := rand.Read(master); err != nil {
		return nil, err
	}
	// O_EXCL: if another process created it meanwhile, use theirs.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(master); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	return master, f.Close()
}

// New returns Keys under a 32-byte master key.
func New(master []byte) (*Keys, error) {
	block, err := aes.NewCipher(master)
	if err != nil {
		return nil, fmt.Errorf("localkeys: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("localkeys: %w", err)
	}
	// The key id names the master key by fingerprint, never revealing it.
	fp := sha256.Sum256(append([]byte("imago localkeys fingerprint\x00"), master...))
	return &Keys{aead: aead, keyID: "local:" + hex.EncodeToString(fp[:8])}, nil
}

// KeyID names the master key.
func (k *Keys) KeyID() string { return k.keyID }

// contextAAD encodes an encryption context canonically (sorted keys, each
// key and value length-prefixed), so that equal contexts, and only they,
// give equal additional data.
func contextAAD(ec docstore.EncryptionContext) []byte {
	keys := make([]string, 0, len(ec))
	for k := range ec {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	aad := []byte("imago localkeys v1")
	for _, k := range keys {
		aad = binary.BigEndian.AppendUint32(aad, uint32(len(k)))
		aad = append(aad, k...)
		aad = binary.BigEndian.AppendUint32(aad, uint32(len(ec[k])))
		aad = append(aad, ec[k]...)
	}
	return aad
}

// GenerateDataKey returns a random data key and its wrapped form:
// format (1) ‖ nonce (12) ‖ AES-256-GCM(master, key, AAD = context).
func (k *Keys) GenerateDataKey(ctx context.Context, ec docstore.EncryptionContext) (docstore.DataKey, error) {
	plain := make([]byte, keySize)
	if _, err := rand.Read(plain); err != nil {
		return docstore.DataKey{}, docstore.E("localkeys.GenerateDataKey", err)
	}
	wrapped := make([]byte, 1+nonceSize, 1+nonceSize+keySize+k.aead.Overhead())
	wrapped[0] = wrapFormat
	if _, err := rand.Read(wrapped[1:]); err != nil {
		return docstore.DataKey{}, docstore.E("localkeys.GenerateDataKey", err)
	}
	wrapped = k.aead.Seal(wrapped, wrapped[1:1+nonceSize], plain, contextAAD(ec))
	return docstore.DataKey{Plaintext: plain, Wrapped: wrapped, KeyID: k.keyID}, nil
}

// Decrypt unwraps a data key wrapped by this master key under exactly ec.
func (k *Keys) Decrypt(ctx context.Context, keyID string, wrapped []byte, ec docstore.EncryptionContext) ([]byte, error) {
	const op = "localkeys.Decrypt"
	if keyID != k.keyID {
		return nil, docstore.E(op, fmt.Errorf("data key was wrapped by %q, this master key is %q", keyID, k.keyID))
	}
	if len(wrapped) != 1+nonceSize+keySize+k.aead.Overhead() || wrapped[0] != wrapFormat {
		return nil, docstore.E(op, errors.New("wrapped data key is malformed"))
	}
	plain, err := k.aead.Open(nil, wrapped[1:1+nonceSize], wrapped[1+nonceSize:], contextAAD(ec))
	if err != nil {
		return nil, docstore.E(op, errors.New("wrapped data key does not open under this master key and encryption context"))
	}
	return plain, nil
}
