package storetest

import (
	"bytes"
	"maps"
	"testing"

	"github.com/imagodocs/imago/internal/docstore"
)

// TestKeyService runs the KeyService contract against the services
// newService returns.
func TestKeyService(t *testing.T, newService func(t *testing.T) docstore.KeyService) {
	t.Run("GenerateDataKey", func(t *testing.T) {
		ks := newService(t)
		dk := mustGenerate(t, ks, docstore.ContextFor(randomTenant(), docstore.NewID()))
		if len(dk.Plaintext) != 32 {
			t.Fatalf("plaintext key has %d bytes, want 32", len(dk.Plaintext))
		}
		if bytes.Equal(dk.Plaintext, make([]byte, 32)) {
			t.Fatalf("plaintext key is all zeros")
		}
		if len(dk.Wrapped) == 0 {
			t.Fatalf("no wrapped key")
		}
		if bytes.Contains(dk.Wrapped, dk.Plaintext) {
			t.Fatalf("the wrapped key contains the plaintext key")
		}
		if dk.KeyID == "" {
			t.Fatalf("no key id")
		}
	})

	t.Run("DecryptRoundTrip", func(t *testing.T) {
		ks := newService(t)
		ec := docstore.ContextFor(randomTenant(), docstore.NewID())
		dk := mustGenerate(t, ks, ec)
		// A copy of the context, as the Service rebuilds it from the record.
		got, err := ks.Decrypt(t.Context(), dk.KeyID, bytes.Clone(dk.Wrapped), maps.Clone(ec))
		if err != nil {
			t.Fatalf("Decrypt: %v", err)
		}
		if !bytes.Equal(got, dk.Plaintext) {
			t.Fatalf("Decrypt returned a different key")
		}
	})

	t.Run("DecryptUnderOtherContextFails", func(t *testing.T) {
		ks := newService(t)
		tenant, id := randomTenant(), docstore.NewID()
		ec := docstore.ContextFor(tenant, id)
		dk := mustGenerate(t, ks, ec)
		for _, c := range []struct {
			name string
			ec   docstore.EncryptionContext
		}{
			{"other document", docstore.ContextFor(tenant, docstore.NewID())},
			{"other tenant", docstore.ContextFor(randomTenant(), id)},
			{"extra pair", with(ec, "imago:extra", "x")},
			{"missing pair", without(ec, "imago:tenant")},
			{"empty context", docstore.EncryptionContext{}},
			{"nil context", nil},
			{"value moved to another key", docstore.EncryptionContext{"imago:document": string(tenant), "imago:tenant": string(id)}},
		} {
			got, err := ks.Decrypt(t.Context(), dk.KeyID, dk.Wrapped, c.ec)
			if err == nil {
				t.Errorf("Decrypt under %s succeeded (key equal: %v)", c.name, bytes.Equal(got, dk.Plaintext))
				continue
			}
			if k := docstore.KindOf(err); k == docstore.KindUnavailable || k == docstore.KindNotFound {
				t.Errorf("Decrypt under %s: a %s error (%v); a wrong context is neither retryable nor a missing document", c.name, k, err)
			}
		}
	})

	// The sealed part of a wrapped key (its trailing ciphertext and tag)
	// must be authenticated. Bytes in the middle are not flipped: local-kms
	// (the KMS of the tests) puts the key ARN in a header that it ignores
	// when Decrypt names the key, as kmskeys does, so a flip there changes
	// nothing (real KMS authenticates the whole blob).
	t.Run("DecryptTamperedFails", func(t *testing.T) {
		ks := newService(t)
		ec := docstore.ContextFor(randomTenant(), docstore.NewID())
		dk := mustGenerate(t, ks, ec)
		n := len(dk.Wrapped)
		for _, c := range []struct {
			name    string
			wrapped []byte
		}{
			{"first byte flipped", flip(dk.Wrapped, 0)},
			{"byte 40 from the end flipped", flip(dk.Wrapped, max(n-40, 0))},
			{"byte 17 from the end flipped", flip(dk.Wrapped, max(n-17, 0))},
			{"last byte flipped", flip(dk.Wrapped, n-1)},
			{"truncated", dk.Wrapped[:n-1]},
			{"extended", append(bytes.Clone(dk.Wrapped), 0)},
			{"empty", nil},
		} {
			if _, err := ks.Decrypt(t.Context(), dk.KeyID, c.wrapped, ec); err == nil {
				t.Errorf("Decrypt of a wrapped key %s succeeded", c.name)
			} else if docstore.KindOf(err) == docstore.KindUnavailable {
				t.Errorf("Decrypt of a wrapped key %s: an unavailable error (%v); tampering is not retryable", c.name, err)
			}
		}
	})

	t.Run("KeysDiffer", func(t *testing.T) {
		ks := newService(t)
		ec := docstore.ContextFor(randomTenant(), docstore.NewID())
		a, b := mustGenerate(t, ks, ec), mustGenerate(t, ks, ec)
		if bytes.Equal(a.Plaintext, b.Plaintext) {
			t.Fatalf("two GenerateDataKey calls returned the same key")
		}
		if bytes.Equal(a.Wrapped, b.Wrapped) {
			t.Fatalf("two GenerateDataKey calls returned the same wrapped key")
		}
	})
}

func mustGenerate(t *testing.T, ks docstore.KeyService, ec docstore.EncryptionContext) docstore.DataKey {
	t.Helper()
	dk, err := ks.GenerateDataKey(t.Context(), ec)
	if err != nil {
		t.Fatalf("GenerateDataKey: %v", err)
	}
	return dk
}

func with(ec docstore.EncryptionContext, k, v string) docstore.EncryptionContext {
	out := maps.Clone(ec)
	out[k] = v
	return out
}

func without(ec docstore.EncryptionContext, k string) docstore.EncryptionContext {
	out := maps.Clone(ec)
	delete(out, k)
	return out
}

func flip(b []byte, i int) []byte {
	out := bytes.Clone(b)
	out[i] ^= 0x01
	return out
}
