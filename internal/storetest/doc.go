// Package storetest holds the contract suites of the docstore ports: one
// exported function per interface (TestBlobStore, TestMetadataStore,
// TestKeyService, TestCache, TestCacheClaims, TestStaging,
// TestMultipartStaging), written once and run by every implementation's own
// tests, embedded and AWS alike:
//
//	func TestS3Store_Contract(t *testing.T) {
//		storetest.TestBlobStore(t, func(t *testing.T) docstore.BlobStore { return newStore(t) })
//	}
//
// The suites check what the Service relies on, through the interface only,
// so that swapping a backend cannot change behaviour unnoticed. They import
// no backend. Every subtest uses fresh random ids and tenants, so a suite can
// run against a shared, long-lived server (a local DynamoDB table, a bucket)
// and alongside other runs; what a subtest creates it deletes where it can,
// and leftovers never disturb a later run.
package storetest

import (
	"crypto/rand"
	"testing"

	"github.com/imagodocs/imago/internal/docstore"
)

// randomBytes returns n random bytes.
func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random bytes: %v", err)
	}
	return b
}

// randomTenant returns a tenant no other test uses.
func randomTenant() docstore.Tenant {
	return docstore.Tenant("storetest-" + string(docstore.NewID()))
}

// wantKind fails the test unless err is non-nil and of kind.
func wantKind(t *testing.T, what string, err error, kind docstore.Kind) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: got no error, want a %s error", what, kind)
	}
	if got := docstore.KindOf(err); got != kind {
		t.Fatalf("%s: got a %s error (%v), want %s", what, got, err, kind)
	}
}
