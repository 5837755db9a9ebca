package servicetest

import (
	"context"
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/docstore"
)

// testListingShowsEveryStatus: a caller finds every document of theirs in
// the listing, pending and failed ones included (to delete them), each
// with its status and a failed one with its failure, newest first.
func testListingShowsEveryStatus(t *testing.T, h Harness) {
	ctx := context.Background()
	set := h.Open(t)
	svc := docstore.NewService(set.Backends, docstore.Config{}, nil)
	tenant := docstore.Tenant("list-" + string(docstore.NewID()))

	available, err := svc.Upload(ctx, docstore.UploadRequest{Tenant: tenant, Filename: "a.txt", Body: []byte("available")})
	if err != nil {
		t.Fatal(err)
	}
	failed, err := svc.CreateUpload(ctx, docstore.CreateUploadRequest{Tenant: tenant, Filename: "f.bin", Size: 1000})
	if err != nil {
		t.Fatal(err)
	}
	set.Raw.Stage(t, set.StagingPrefix+string(failed.ID), randomDoc(999)) // not the announced size
	if err := svc.Ingest(ctx, set.StagingPrefix+string(failed.ID)); err != nil {
		t.Fatal(err)
	}
	pending, err := svc.CreateUpload(ctx, docstore.CreateUploadRequest{Tenant: tenant, Filename: "p.bin", Size: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []docstore.ID{available.ID, failed.ID, pending.ID} {
		t.Cleanup(func() { svc.Delete(context.Background(), tenant, id) })
	}

	page, err := svc.List(ctx, tenant, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		id      docstore.ID
		status  docstore.Status
		failure bool
	}{{pending.ID, docstore.StatusPending, false}, {failed.ID, docstore.StatusFailed, true}, {available.ID, docstore.StatusAvailable, false}}
	if len(page.Documents) != len(want) {
		t.Fatalf("listed %+v, want the pending, failed and available documents", page.Documents)
	}
	for i, w := range want {
		d := page.Documents[i]
		if d.ID != w.id || d.Status != w.status || (d.Failure != "") != w.failure {
			t.Errorf("listed #%d: %s %s failure %q; want %s %s (newest first)", i, d.ID, d.Status, d.Failure, w.id, w.status)
		}
	}
	// Found, so deletable.
	for _, w := range want {
		if err := svc.Delete(ctx, tenant, w.id); err != nil {
			t.Fatalf("DELETE of the %s document: %v", w.status, err)
		}
	}
	if page, err := svc.List(ctx, tenant, 10, ""); err != nil || len(page.Documents) != 0 {
		t.Fatalf("listing after the deletes: %+v %v", page.Documents, err)
	}
}

// testDeleteAvailableRemovesItsStagingKey: an available document may still
// have bytes at its staging key (an ingest whose delete of the staged
// object failed, a PUT to its URL after the ingest); DELETE removes them,
// whatever its status, and a missing key is no error.
func testDeleteAvailableRemovesItsStagingKey(t *testing.T, h Harness) {
	ctx := context.Background()
	set := h.Open(t)
	svc := docstore.NewService(set.Backends, docstore.Config{}, nil)
	tenant := docstore.Tenant("delstaged-" + string(docstore.NewID()))
	for _, leftover := range []bool{true, false} {
		d, err := svc.Upload(ctx, docstore.UploadRequest{Tenant: tenant, Filename: "a.txt", Body: []byte("available")})
		if err != nil {
			t.Fatal(err)
		}
		key := set.StagingPrefix + string(d.ID)
		if leftover {
			set.Raw.Stage(t, key, []byte("plaintext left at the staging key"))
		}
		if err := svc.Delete(ctx, tenant, d.ID); err != nil {
			t.Fatalf("DELETE (staged bytes left: %v): %v", leftover, err)
		}
		if set.Raw.Staged(t, key) {
			t.Fatal("DELETE of an available document left the plaintext at its staging key")
		}
		if _, err := svc.Get(ctx, tenant, d.ID); !docstore.IsNotFound(err) {
			t.Fatalf("after DELETE: %v", err)
		}
	}
}

// needStagingList skips the reconciliation behaviours on a family whose
// staging area is not the test's own to list: a pass acts on everything
// staged, other runs' objects in a shared bucket included.
func needStagingList(t *testing.T, set *Set) {
	t.Helper()
	if set.Raw.StagedObjects == nil || set.Raw.ReceivePart == nil {
		t.Skip("the family's staging area is shared: a reconciliation pass would act on other runs' objects")
	}
}

// testReconcileFinishesOrRemovesStagedBytes: a reconciliation pass ingests
// the staged bytes of a pending document that no delivery ingested, and
// removes those of documents that are available, failed or gone, and
// anything staged under a name that is no document's.
func testReconcileFinishesOrRemovesStagedBytes(t *testing.T, h Harness) {
	ctx := context.Background()
	set := h.Open(t)
	needStagingList(t, set)
	svc := docstore.NewService(set.Backends, docstore.Config{}, nil)
	tenant := docstore.Tenant("reconcile-" + string(docstore.NewID()))
	key := func(id docstore.ID) string { return set.StagingPrefix + string(id) }

	doc := randomDoc(20_000)
	pending, err := svc.CreateUpload(ctx, docstore.CreateUploadRequest{Tenant: tenant, Filename: "p.bin", Size: int64(len(doc))})
	if err != nil {
		t.Fatal(err)
	}
	set.Raw.Stage(t, key(pending.ID), doc)
	available, err := svc.Upload(ctx, docstore.UploadRequest{Tenant: tenant, Filename: "a.txt", Body: []byte("available")})
	if err != nil {
		t.Fatal(err)
	}
	set.Raw.Stage(t, key(available.ID), []byte("left after its ingest"))
	failed, err := svc.CreateUpload(ctx, docstore.CreateUploadRequest{Tenant: tenant, Filename: "f.bin", Size: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := set.Meta.MarkFailed(ctx, failed.ID, "test"); err != nil {
		t.Fatal(err)
	}
	set.Raw.Stage(t, key(failed.ID), randomDoc(10))
	set.Raw.Stage(t, key(docstore.NewID()), []byte("a document deleted meanwhile"))
	set.Raw.Stage(t, set.StagingPrefix+"not-a-document", []byte("?"))

	// Nothing is settled yet: a pass removes what belongs to documents
	// that are over, and leaves the rest to its owners (the pending
	// document's delivery, a record about to be created).
	rep, err := svc.Reconcile(ctx, time.Now(), time.Now().Add(-time.Hour))
	if want := (docstore.ReconcileReport{Removed: 2}); err != nil || rep != want {
		t.Fatalf("a pass with nothing settled: %+v %v, want %+v", rep, err, want)
	}
	if left := set.Raw.StagedObjects(t); len(left) != 3 {
		t.Fatalf("after a pass with nothing settled: %v, want the 3 unsettled objects", left)
	}
	rep, err = svc.Reconcile(ctx, time.Now(), time.Now().Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if want := (docstore.ReconcileReport{Ingested: 1, Removed: 2}); rep != want {
		t.Errorf("pass: %+v, want %+v", rep, want)
	}
	if left := set.Raw.StagedObjects(t); len(left) != 0 {
		t.Fatalf("left staged: %v", left)
	}
	d, err := svc.Get(ctx, tenant, pending.ID)
	if err != nil || d.Status != docstore.StatusAvailable || d.SHA256 != hexSHA256(doc) {
		t.Fatalf("the pending document after the pass: %+v %v, want available with its SHA-256", d, err)
	}
	if d, _ := svc.Get(ctx, tenant, failed.ID); d.Status != docstore.StatusFailed {
		t.Fatalf("the failed document after the pass: %s", d.Status)
	}
}

// testReconcileRemovesAnExpiredUploadInParts: a pending upload in parts
// whose document expired (the client never completed it) goes, parts and
// record, at the first pass after its expiry; before it, it is the
// client's.
func testReconcileRemovesAnExpiredUploadInParts(t *testing.T, h Harness) {
	ctx := context.Background()
	set := h.Open(t)
	needStagingList(t, set)
	svc := docstore.NewService(set.Backends, docstore.Config{MultipartThreshold: 6 << 20}, nil)
	tenant := docstore.Tenant("expired-" + string(docstore.NewID()))
	up, err := svc.CreateUpload(ctx, docstore.CreateUploadRequest{Tenant: tenant, Filename: "big.bin", Size: 12 << 20, PartSize: 5 << 20})
	if err != nil || up.Method != docstore.MethodMultipart {
		t.Fatalf("create: %+v %v", up, err)
	}
	parts, err := svc.PresignParts(ctx, tenant, up.ID, []int{1})
	if err != nil {
		t.Fatal(err)
	}
	set.Raw.ReceivePart(t, parts[0].URL, randomDoc(5<<20))

	now := time.Now()
	if rep, err := svc.Reconcile(ctx, now, now.Add(time.Second)); err != nil || rep != (docstore.ReconcileReport{}) {
		t.Fatalf("a pass before the expiry: %+v %v, want the upload left to its client", rep, err)
	}
	if len(set.Raw.StagedObjects(t)) != 1 {
		t.Fatal("a pass before the expiry removed the part")
	}
	later := up.ExpiresAt.Add(time.Minute)
	if rep, err := svc.Reconcile(ctx, later, later); err != nil || rep != (docstore.ReconcileReport{Expired: 1}) {
		t.Fatalf("a pass after the expiry: %+v %v, want the document expired", rep, err)
	}
	if left := set.Raw.StagedObjects(t); len(left) != 0 {
		t.Fatalf("the expired upload's parts are still staged: %v", left)
	}
	if _, err := svc.Get(ctx, tenant, up.ID); !docstore.IsNotFound(err) {
		t.Fatalf("the expired document: %v, want gone", err)
	}
}
