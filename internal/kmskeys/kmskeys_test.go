package kmskeys_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/kmskeys"
	"github.com/imagodocs/imago/internal/storetest"
	"github.com/imagodocs/imago/internal/testenv"
)

// localKMS returns a client of the local KMS server and the configured key
// id, or skips.
func localKMS(t *testing.T) (*kms.Client, string) {
	t.Helper()
	keyID := testenv.Require(t, "IMAGO_KMS_KEY_ID")["IMAGO_KMS_KEY_ID"]
	return kms.NewFromConfig(testenv.AWSConfig(t, "KMS")), keyID
}

func TestKMSKeys_Contract(t *testing.T) {
	client, keyID := localKMS(t)
	storetest.TestKeyService(t, func(t *testing.T) docstore.KeyService {
		return kmskeys.New(client, keyID)
	})
}

// TestKMSKeys_RecordedKeyOutlivesConfiguredKey: a document's key id is the
// key's ARN as KMS reported it, and unwrapping uses that, not the key the
// service is configured with now.
func TestKMSKeys_RecordedKeyOutlivesConfiguredKey(t *testing.T) {
	client, keyID := localKMS(t)
	ec := docstore.ContextFor("tenant-"+docstore.Tenant(docstore.NewID()), docstore.NewID())
	dk, err := kmskeys.New(client, keyID).GenerateDataKey(t.Context(), ec)
	if err != nil {
		t.Fatalf("GenerateDataKey: %v", err)
	}
	if !strings.HasPrefix(dk.KeyID, "arn:") || strings.Contains(dk.KeyID, ":alias/") {
		t.Errorf("KeyID = %q, want the key's ARN (configured: %q)", dk.KeyID, keyID)
	}
	later := kmskeys.New(client, "alias/imago-some-other-key")
	got, err := later.Decrypt(t.Context(), dk.KeyID, dk.Wrapped, ec)
	if err != nil {
		t.Fatalf("Decrypt with the recorded key id after a change of configured key: %v", err)
	}
	if !bytes.Equal(got, dk.Plaintext) {
		t.Fatalf("Decrypt returned another key")
	}
}

func TestKMSKeys_WrongContextIsInternal(t *testing.T) {
	client, keyID := localKMS(t)
	ks := kmskeys.New(client, keyID)
	tenant, id := docstore.Tenant("tenant-"+docstore.NewID()), docstore.NewID()
	dk, err := ks.GenerateDataKey(t.Context(), docstore.ContextFor(tenant, id))
	if err != nil {
		t.Fatalf("GenerateDataKey: %v", err)
	}
	_, err = ks.Decrypt(t.Context(), dk.KeyID, dk.Wrapped, docstore.ContextFor("someone-else", id))
	if k := docstore.KindOf(err); err == nil || k != docstore.KindInternal {
		t.Fatalf("Decrypt under another tenant's context: %v (kind %s), want an internal error", err, k)
	}
	if msg := docstore.PublicMessage(err); strings.Contains(msg, "Ciphertext") || strings.Contains(msg, "kms") {
		t.Fatalf("public message %q leaks the KMS error", msg)
	}
}

func TestKMSKeys_UnknownKeyIsInternal(t *testing.T) {
	client, _ := localKMS(t)
	ks := kmskeys.New(client, "alias/imago-no-such-key-"+string(docstore.NewID()[:8]))
	_, err := ks.GenerateDataKey(t.Context(), docstore.ContextFor("t", docstore.NewID()))
	if k := docstore.KindOf(err); err == nil || k != docstore.KindInternal {
		t.Fatalf("GenerateDataKey under a missing key: %v (kind %s), want an internal error", err, k)
	}
}
