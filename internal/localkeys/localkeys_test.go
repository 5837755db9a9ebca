package localkeys_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/localkeys"
	"github.com/imagodocs/imago/internal/storetest"
)

func TestLocalKeys_Contract(t *testing.T) {
	storetest.TestKeyService(t, func(t *testing.T) docstore.KeyService {
		k, err := localkeys.Open(filepath.Join(t.TempDir(), "master.key"))
		if err != nil {
			t.Fatal(err)
		}
		return k
	})
}

func TestMasterKeyFileIsPrivateAndReused(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keys", "master.key")
	k1, err := localkeys.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Fatalf("master key file mode %o, want 600", mode)
	}
	ec := docstore.ContextFor("t", docstore.NewID())
	dk, err := k1.GenerateDataKey(ctx, ec)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := localkeys.Open(path) // a restart
	if err != nil {
		t.Fatal(err)
	}
	got, err := k2.Decrypt(ctx, dk.KeyID, dk.Wrapped, ec)
	if err != nil {
		t.Fatalf("decrypt after reopening: %v", err)
	}
	if !bytes.Equal(got, dk.Plaintext) {
		t.Fatal("data key differs after reopening")
	}
	other, err := localkeys.Open(filepath.Join(t.TempDir(), "other.key"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Decrypt(ctx, dk.KeyID, dk.Wrapped, ec); err == nil {
		t.Fatal("another master key unwrapped the data key")
	}
}
