package servicetest

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/api"
	"github.com/imagodocs/imago/internal/docstore"
)

// policyRig is one family's backends with a Service whose clock the test
// moves, with a deletion delay of a day.
type policyRig struct {
	set    *Set
	svc    *docstore.Service
	clock  atomic.Int64 // seconds added to the real time
	tenant docstore.Tenant
}

func newPolicyRig(t *testing.T, h Harness, cfg docstore.Config) *policyRig {
	r := &policyRig{set: h.Open(t), tenant: docstore.Tenant("policy-" + string(docstore.NewID()))}
	cfg.Now = r.now
	r.svc = docstore.NewService(r.set.Backends, cfg, nil)
	return r
}

func (r *policyRig) now() time.Time {
	return time.Now().Add(time.Duration(r.clock.Load()) * time.Second)
}

func (r *policyRig) upload(t *testing.T, doc []byte, expiresIn *int64) docstore.Document {
	t.Helper()
	d, err := r.svc.Upload(context.Background(), docstore.UploadRequest{Tenant: r.tenant, Filename: "id.pdf", Body: doc, ExpiresIn: expiresIn})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// readable checks every read of d: metadata, content (a cache hit when the
// cache holds it), its place in the listing.
func (r *policyRig) readable(t *testing.T, what string, d docstore.Document, doc []byte) {
	t.Helper()
	ctx := context.Background()
	if _, err := r.svc.Get(ctx, r.tenant, d.ID); err != nil {
		t.Fatalf("%s: metadata: %v", what, err)
	}
	c, err := r.svc.Download(ctx, docstore.DownloadRequest{Tenant: r.tenant, ID: d.ID})
	if err != nil || !bytes.Equal(c.Body, doc) {
		t.Fatalf("%s: content: %v", what, err)
	}
	if !r.listed(t, d.ID) {
		t.Fatalf("%s: not listed", what)
	}
}

// gone checks that no read sees d: 404 for metadata and content, cache
// hits included, and no listing.
func (r *policyRig) gone(t *testing.T, what string, d docstore.Document) {
	t.Helper()
	ctx := context.Background()
	if _, err := r.svc.Get(ctx, r.tenant, d.ID); !docstore.IsNotFound(err) {
		t.Fatalf("%s: metadata: %v, want not found", what, err)
	}
	for _, rng := range []string{"", "bytes=0-9"} {
		if _, err := r.svc.Download(ctx, docstore.DownloadRequest{Tenant: r.tenant, ID: d.ID, Range: rng}); !docstore.IsNotFound(err) {
			t.Fatalf("%s: content (Range %q): %v, want not found", what, rng, err)
		}
	}
	if r.listed(t, d.ID) {
		t.Fatalf("%s: still listed", what)
	}
}

func (r *policyRig) listed(t *testing.T, id docstore.ID) bool {
	t.Helper()
	page, err := r.svc.List(context.Background(), r.tenant, docstore.MaxListLimit, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range page.Documents {
		if d.ID == id {
			return true
		}
	}
	return false
}

func (r *policyRig) inTrash(t *testing.T, id docstore.ID) *docstore.Document {
	t.Helper()
	page, err := r.svc.ListTrash(context.Background(), r.tenant, docstore.MaxListLimit, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range page.Documents {
		if d.ID == id {
			return &d
		}
	}
	return nil
}

// storageGone checks that d's record and blob are removed.
func (r *policyRig) storageGone(t *testing.T, what string, d docstore.Document, blob docstore.ID) {
	t.Helper()
	if _, err := r.set.Meta.Get(context.Background(), d.ID); !docstore.IsNotFound(err) {
		t.Fatalf("%s: record: %v, want removed", what, err)
	}
	if _, err := r.set.Blobs.Get(context.Background(), blob, 0, -1); !docstore.IsNotFound(err) {
		t.Fatalf("%s: blob: %v, want removed", what, err)
	}
}

// expireInStore removes d's record as the store's own expiry would: the
// embedded store by a sweep, DynamoDB by its TTL (here a DeleteItem, as
// DynamoDB Local does not run its TTL), then the stream's handling.
func (r *policyRig) expireInStore(t *testing.T, d docstore.Document) {
	t.Helper()
	ctx := context.Background()
	if _, ok := r.set.Meta.(docstore.RemovalSchedule); ok {
		if _, err := r.svc.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		return
	}
	old, err := r.set.Meta.Get(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if at := old.RemoveAt(); at.IsZero() || r.now().Before(at) {
		t.Fatalf("the record's TTL %v has not passed at %v", at, r.now())
	}
	if err := r.set.Meta.Delete(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	for range 2 { // a redelivered stream record finds nothing left to do
		if err := r.svc.Removed(ctx, old); err != nil {
			t.Fatal(err)
		}
	}
}

// testRetention: an expiry given at upload, or the configured default,
// changed by SetExpiry; exact for readers (cache hits and links included),
// eventual for storage.
func testRetention(t *testing.T, h Harness) {
	r := newPolicyRig(t, h, docstore.Config{Retention: 48 * time.Hour})
	ctx := context.Background()
	doc := randomDoc(300_000)

	d := r.upload(t, doc, ptr[int64](3600))
	if got := d.Expires.Sub(r.now()); got < 3590*time.Second || got > 3600*time.Second {
		t.Fatalf("expires_in 3600: expires in %v", got)
	}
	byDefault := r.upload(t, randomDoc(10), nil)
	if got := byDefault.Expires.Sub(r.now()); got < 47*time.Hour || got > 48*time.Hour {
		t.Fatalf("the configured retention: expires in %v", got)
	}
	for _, bad := range []int64{0, -5} {
		_, err := r.svc.Upload(ctx, docstore.UploadRequest{Tenant: r.tenant, Body: doc, ExpiresIn: ptr(bad)})
		wantKind(t, "expires_in of a bad value", err, docstore.KindInvalid)
	}

	l, err := r.svc.CreateLink(ctx, r.tenant, d.ID, docstore.LinkRequest{ExpiresIn: ptr[int64](7200)})
	if err != nil {
		t.Fatal(err)
	}
	token := r.svc.LinkToken(l)
	r.readable(t, "before its expiry", d, doc)

	// A new expiry, later; a past one is refused; none clears it.
	later := r.now().Add(2 * time.Hour).Truncate(time.Second)
	got, err := r.svc.SetExpiry(ctx, r.tenant, d.ID, later)
	if err != nil || !got.Expires.Equal(later) {
		t.Fatalf("SetExpiry: %v %v", got.Expires, err)
	}
	_, err = r.svc.SetExpiry(ctx, r.tenant, d.ID, r.now().Add(-time.Minute))
	wantKind(t, "an expiry in the past", err, docstore.KindInvalid)
	if got, err = r.svc.SetExpiry(ctx, r.tenant, d.ID, time.Time{}); err != nil || !got.Expires.IsZero() {
		t.Fatalf("clearing the expiry: %v %v", got.Expires, err)
	}
	r.clock.Store(3 * 3600)
	r.readable(t, "past its first expiry, cleared", d, doc)
	r.clock.Store(0)
	if _, err := r.svc.SetExpiry(ctx, r.tenant, d.ID, r.now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// Warm: the next reads are hits of an entry filled after the
	// change.
	r.readable(t, "with a new expiry", d, doc)

	r.clock.Store(3601)
	r.gone(t, "expired", d)
	if _, err := r.svc.ReadLink(ctx, docstore.LinkReadRequest{Token: token}); !docstore.IsNotFound(err) {
		t.Fatalf("a link of an expired document: %v", err)
	}
	_, err = r.svc.SetExpiry(ctx, r.tenant, d.ID, r.now().Add(time.Hour))
	wantKind(t, "SetExpiry of an expired document", err, docstore.KindNotFound)
	err = r.svc.Delete(ctx, r.tenant, d.ID)
	wantKind(t, "Delete of an expired document", err, docstore.KindNotFound)

	rec, err := r.set.Meta.Get(ctx, d.ID)
	if err != nil {
		t.Fatalf("the record before the store removes it: %v", err)
	}
	r.expireInStore(t, d)
	r.storageGone(t, "after the store's expiry", d, rec.Blob())
	expired, err := r.svc.AuditPage(ctx, r.tenant, docstore.AuditQuery{Document: d.ID, Action: api.ActionExpire}, 0, "")
	if err != nil || len(expired.Records) == 0 || expired.Records[0].Actor != api.ActorSystem {
		t.Fatalf("the trail's record of the expiry: %+v %v", expired.Records, err)
	}
	if _, err := r.set.Links.Link(ctx, l.ID); !docstore.IsNotFound(err) {
		t.Fatalf("a link of an expired document is kept: %v", err)
	}
	if _, err := r.set.Meta.Get(ctx, byDefault.ID); err != nil {
		t.Fatalf("a document not due was removed: %v", err)
	}
}

// testTrashAndRestore: with a deletion delay, DELETE moves a document to
// the trash, restorable whole until its purge.
func testTrashAndRestore(t *testing.T, h Harness) {
	r := newPolicyRig(t, h, docstore.Config{DeletionDelay: 24 * time.Hour})
	ctx := context.Background()
	doc := randomDoc(200_000)
	d := r.upload(t, doc, ptr[int64](10*24*3600))
	r.readable(t, "uploaded", d, doc)

	wantKind(t, "Restore of a document not in the trash", errOf(r.svc.Restore(ctx, r.tenant, d.ID)), docstore.KindConflict)
	if err := r.svc.Delete(ctx, r.tenant, d.ID); err != nil {
		t.Fatal(err)
	}
	r.gone(t, "in the trash", d)
	tr := r.inTrash(t, d.ID)
	if tr == nil || tr.DeletedAt.IsZero() || tr.PurgeAt.Sub(tr.DeletedAt) != 24*time.Hour {
		t.Fatalf("the trash's listing: %+v", tr)
	}
	err := r.svc.Delete(ctx, r.tenant, d.ID)
	wantKind(t, "Delete of a document in the trash", err, docstore.KindNotFound)
	_, err = r.svc.CreateLink(ctx, r.tenant, d.ID, docstore.LinkRequest{})
	wantKind(t, "a link of a document in the trash", err, docstore.KindNotFound)

	back, err := r.svc.Restore(ctx, r.tenant, d.ID)
	if err != nil || !back.DeletedAt.IsZero() || !back.PurgeAt.IsZero() || back.SHA256 != d.SHA256 || !back.Expires.Equal(d.Expires) {
		t.Fatalf("Restore: %+v %v", back, err)
	}
	r.readable(t, "restored", d, doc)
	if r.inTrash(t, d.ID) != nil {
		t.Fatal("a restored document is still in the trash")
	}

	// Purged at its purge_at.
	if err := r.svc.Delete(ctx, r.tenant, d.ID); err != nil {
		t.Fatal(err)
	}
	rec, _ := r.set.Meta.Get(ctx, d.ID)
	r.clock.Store(24*3600 + 1)
	wantKind(t, "Restore past the purge", errOf(r.svc.Restore(ctx, r.tenant, d.ID)), docstore.KindNotFound)
	if r.inTrash(t, d.ID) != nil {
		t.Fatal("a document past its purge is listed in the trash")
	}
	r.expireInStore(t, d)
	r.storageGone(t, "purged at purge_at", d, rec.Blob())
	purged, err := r.svc.AuditPage(ctx, r.tenant, docstore.AuditQuery{Document: d.ID, Action: api.ActionPurge}, 0, "")
	if err != nil || len(purged.Records) == 0 || purged.Records[0].Actor != api.ActorSystem {
		t.Fatalf("the trail's record of the purge at purge_at: %+v %v", purged.Records, err)
	}
	r.clock.Store(0)

	// ?purge=true: at once, from the trash or not.
	for _, trashFirst := range []bool{false, true} {
		p := r.upload(t, randomDoc(1000), nil)
		prec, _ := r.set.Meta.Get(ctx, p.ID)
		if trashFirst {
			if err := r.svc.Delete(ctx, r.tenant, p.ID); err != nil {
				t.Fatal(err)
			}
		}
		if err := r.svc.Purge(ctx, r.tenant, p.ID); err != nil {
			t.Fatalf("Purge (trash first %v): %v", trashFirst, err)
		}
		r.storageGone(t, "purged", p, prec.Blob())
		wantKind(t, "Restore of a purged document", errOf(r.svc.Restore(ctx, r.tenant, p.ID)), docstore.KindNotFound)
	}
}

// errOf is the error of a (value, error) pair.
func errOf[T any](_ T, err error) error { return err }

// testLegalHold: a held document refuses delete and purge, does not expire
// and stays readable, in the trash stays past its purge; once the hold is
// lifted its policy resumes.
func testLegalHold(t *testing.T, h Harness) {
	r := newPolicyRig(t, h, docstore.Config{DeletionDelay: time.Hour})
	ctx := context.Background()
	doc := randomDoc(100_000)
	d := r.upload(t, doc, ptr[int64](60))
	for range 2 { // idempotent
		if err := r.svc.SetLegalHold(ctx, r.tenant, d.ID, true); err != nil {
			t.Fatal(err)
		}
	}
	for name, remove := range map[string]func(context.Context, docstore.Tenant, docstore.ID) error{"Delete": r.svc.Delete, "Purge": r.svc.Purge} {
		err := remove(ctx, r.tenant, d.ID)
		wantKind(t, name+" of a held document", err, docstore.KindConflict)
	}
	r.clock.Store(120)
	r.readable(t, "held past its expiry", d, doc)
	r.readable(t, "held past its expiry, again (a hit)", d, doc)
	if _, ok := r.set.Meta.(docstore.RemovalSchedule); ok {
		if n, err := r.svc.Sweep(ctx); err != nil || n != 0 {
			t.Fatalf("a sweep removed %d documents while held: %v", n, err)
		}
	} else if rec, _ := r.set.Meta.Get(ctx, d.ID); !rec.RemoveAt().IsZero() {
		t.Fatalf("a held document's record has a TTL: %v", rec.RemoveAt())
	}
	if err := r.svc.SetLegalHold(ctx, r.tenant, d.ID, false); err != nil {
		t.Fatal(err)
	}
	r.gone(t, "released past its expiry", d)
	// Expired now: gone for every route, the hold's too.
	wantKind(t, "a release of an expired document", r.svc.SetLegalHold(ctx, r.tenant, d.ID, false), docstore.KindNotFound)

	// Held in the trash: kept past its purge until released.
	held := r.upload(t, doc, nil)
	if err := r.svc.Delete(ctx, r.tenant, held.ID); err != nil {
		t.Fatal(err)
	}
	if err := r.svc.SetLegalHold(ctx, r.tenant, held.ID, true); err != nil {
		t.Fatalf("a hold on a document in the trash: %v", err)
	}
	r.clock.Store(120 + 2*3600)
	if r.inTrash(t, held.ID) == nil {
		t.Fatal("a held document past its purge left the trash's listing")
	}
	if _, ok := r.set.Meta.(docstore.RemovalSchedule); ok {
		if _, err := r.svc.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := r.set.Meta.Get(ctx, held.ID); err != nil {
			t.Fatalf("a sweep purged a held document: %v", err)
		}
	}
	if err := r.svc.SetLegalHold(ctx, r.tenant, held.ID, false); err != nil {
		t.Fatal(err)
	}
	_, err := r.svc.Restore(ctx, r.tenant, held.ID)
	wantKind(t, "Restore once released past the purge", err, docstore.KindNotFound)
}

// testPolicyRaces runs the races of a document's policy, many bounded
// rounds each, on every family: whatever the order, the outcome is one of
// the serial ones, and never a held document deleted, nor a restored one
// purged behind the restore's back.
func testPolicyRaces(t *testing.T, h Harness) {
	rounds := 12
	if testing.Short() {
		rounds = 4
	}
	rounds = min(rounds, h.Rounds)
	r := newPolicyRig(t, h, docstore.Config{DeletionDelay: time.Hour})
	ctx := context.Background()
	race := func(a, b func() error) (errA, errB error) {
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Add(2)
		go func() { defer wg.Done(); <-start; errA = a() }()
		go func() { defer wg.Done(); <-start; errB = b() }()
		close(start)
		wg.Wait()
		return errA, errB
	}
	for round := range rounds {
		doc := randomDoc(5000)

		// Hold vs delete: the delete wins (204, in the trash, no
		// hold... then the hold is on a trashed document) or loses
		// (409); never a held document gone from readers.
		d := r.upload(t, doc, nil)
		holdErr, delErr := race(
			func() error { return r.svc.SetLegalHold(ctx, r.tenant, d.ID, true) },
			func() error { return r.svc.Purge(ctx, r.tenant, d.ID) })
		switch {
		case delErr == nil:
			if !docstore.IsNotFound(holdErr) && holdErr != nil {
				t.Fatalf("round %d: purged, and the hold answered %v", round, holdErr)
			}
			if _, err := r.set.Meta.Get(ctx, d.ID); !docstore.IsNotFound(err) {
				t.Fatalf("round %d: purged (204), but the record is there: %v", round, err)
			}
		case docstore.KindOf(delErr) == docstore.KindConflict:
			if holdErr != nil {
				t.Fatalf("round %d: the purge refused for a hold that failed: %v", round, holdErr)
			}
			r.readable(t, "held after a refused purge", d, doc)
			r.svc.SetLegalHold(ctx, r.tenant, d.ID, false)
		default:
			t.Fatalf("round %d: purge: %v", round, delErr)
		}

		// Delete vs restore: restore finds it in the trash or not.
		d = r.upload(t, doc, nil)
		delErr, restErr := race(
			func() error { return r.svc.Delete(ctx, r.tenant, d.ID) },
			func() error { return errOf(r.svc.Restore(ctx, r.tenant, d.ID)) })
		if delErr != nil {
			t.Fatalf("round %d: delete: %v", round, delErr)
		}
		switch {
		case restErr == nil:
			r.readable(t, "restored after a racing delete", d, doc)
		case docstore.KindOf(restErr) == docstore.KindConflict:
			r.gone(t, "deleted, the restore first", d)
			if r.inTrash(t, d.ID) == nil {
				t.Fatalf("round %d: deleted but not in the trash", round)
			}
		default:
			t.Fatalf("round %d: restore: %v", round, restErr)
		}

		// Purge vs restore, from the trash.
		d = r.upload(t, doc, nil)
		if err := r.svc.Delete(ctx, r.tenant, d.ID); err != nil {
			t.Fatal(err)
		}
		purgeErr, restErr := race(
			func() error { return r.svc.Purge(ctx, r.tenant, d.ID) },
			func() error { return errOf(r.svc.Restore(ctx, r.tenant, d.ID)) })
		if purgeErr != nil {
			t.Fatalf("round %d: purge: %v", round, purgeErr)
		}
		if restErr != nil && !docstore.IsNotFound(restErr) {
			t.Fatalf("round %d: restore racing a purge: %v", round, restErr)
		}
		// The purge answered 204 last or first: either way the
		// document is gone now.
		if _, err := r.set.Meta.Get(ctx, d.ID); !docstore.IsNotFound(err) {
			t.Fatalf("round %d: purged (204), the record is there: %v", round, err)
		}
		r.gone(t, "purged racing a restore", d)
	}
}

// testExpiryWinsOverADownloadInFlight: a fill that read the document just
// before its expiry and lands after it does not make it readable again.
func testExpiryWinsOverADownloadInFlight(t *testing.T, h Harness) {
	rounds := 6
	for round := range rounds {
		var rig *policyRig
		paused, proceed := make(chan struct{}), make(chan struct{})
		var armed atomic.Bool
		cfg := docstore.Config{FillHook: func(_ context.Context, _ docstore.ID) {
			if armed.CompareAndSwap(true, false) {
				close(paused)
				<-proceed
			}
		}}
		rig = newPolicyRig(t, h, cfg)
		doc := randomDoc(50_000)
		d := rig.upload(t, doc, ptr[int64](60))
		evictEntry(t, rig.set.Cache, d.ID)
		armed.Store(true)
		done := make(chan error, 1)
		go func() {
			_, err := rig.svc.Download(context.Background(), docstore.DownloadRequest{Tenant: rig.tenant, ID: d.ID})
			done <- err
		}()
		<-paused
		rig.clock.Store(61) // the document expires while the fill is paused
		close(proceed)
		<-done // served or not: it began before the expiry
		for range 3 {
			rig.gone(t, "expired after a paused fill (round "+string(rune('0'+round))+")", d)
		}
	}
}

// testHoldWinsOverAPausedPurge: a purge paused between its read of the
// record (no hold yet) and its delete of it, a hold that answers meanwhile:
// the purge must not delete the held document. Many bounded rounds, each
// paused by a hook, not a sleep.
func testHoldWinsOverAPausedPurge(t *testing.T, h Harness) {
	set := h.Open(t)
	pause := &pausePoint{}
	b := set.Backends
	b.Meta = pausingMeta{MetadataStore: set.Meta, pause: pause}
	svc := docstore.NewService(b, docstore.Config{}, nil)
	tenant := docstore.Tenant("hold-race-" + string(docstore.NewID()))
	ctx := context.Background()
	for round := range 8 {
		doc := randomDoc(3000)
		d, err := svc.Upload(ctx, docstore.UploadRequest{Tenant: tenant, Body: doc})
		if err != nil {
			t.Fatal(err)
		}
		pause.arm(d.ID)
		done := make(chan error, 1)
		go func() { done <- svc.Purge(ctx, tenant, d.ID) }()
		<-pause.reached
		if err := svc.SetLegalHold(ctx, tenant, d.ID, true); err != nil {
			t.Fatalf("round %d: hold: %v", round, err)
		}
		close(pause.proceed)
		if err := <-done; docstore.KindOf(err) != docstore.KindConflict {
			t.Fatalf("round %d: the paused purge of a document held meanwhile: %v, want a conflict", round, err)
		}
		c, err := svc.Download(ctx, docstore.DownloadRequest{Tenant: tenant, ID: d.ID})
		if err != nil || !bytes.Equal(c.Body, doc) {
			t.Fatalf("round %d: the held document after the refused purge: %v", round, err)
		}
	}
}

// failingBlobDelete is a BlobStore whose Delete fails while fail is set,
// as a sweep cut short by a crash stops before the rest of its steps.
type failingBlobDelete struct {
	docstore.BlobStore
	fail atomic.Bool
	// paused, when set, is closed on the next Delete, which then waits
	// for proceed.
	paused, proceed chan struct{}
}

func (b *failingBlobDelete) Delete(ctx context.Context, id docstore.ID) error {
	if b.paused != nil {
		close(b.paused)
		b.paused = nil
		<-b.proceed
	}
	if b.fail.Load() {
		return docstore.E("test", docstore.KindUnavailable, "the blob store stopped")
	}
	return b.BlobStore.Delete(ctx, id)
}

// testSweepSurvivesBeingCutShort: a sweep that stops after removing part
// of an expired document (here its blob delete fails, as a crash would cut
// it) leaves the record, due still, and the next sweep finishes; a PATCH
// that lands while a sweep is removing the document cannot bring it back.
func testSweepSurvivesBeingCutShort(t *testing.T, h Harness) {
	set := h.Open(t)
	if _, ok := set.Meta.(docstore.RemovalSchedule); !ok {
		t.Skip("the store removes records by itself (DynamoDB's TTL): no sweep")
	}
	blobs := &failingBlobDelete{BlobStore: set.Blobs}
	b := set.Backends
	b.Blobs = blobs
	var skew atomic.Int64
	svc := docstore.NewService(b, docstore.Config{Now: func() time.Time { return time.Now().Add(time.Duration(skew.Load()) * time.Second) }}, nil)
	tenant := docstore.Tenant("sweep-" + string(docstore.NewID()))
	ctx := context.Background()
	for round := range 3 {
		skew.Store(0)
		d, err := svc.Upload(ctx, docstore.UploadRequest{Tenant: tenant, Body: randomDoc(2000), ExpiresIn: ptr[int64](60)})
		if err != nil {
			t.Fatal(err)
		}
		rec, _ := set.Meta.Get(ctx, d.ID)
		skew.Store(61)
		blobs.fail.Store(true)
		if _, err := svc.Sweep(ctx); err == nil {
			t.Fatalf("round %d: a sweep whose blob store failed reported no error", round)
		}
		if _, err := set.Meta.Get(ctx, d.ID); err != nil {
			t.Fatalf("round %d: a sweep cut short removed the record: %v", round, err)
		}
		if _, err := svc.Get(ctx, tenant, d.ID); !docstore.IsNotFound(err) {
			t.Fatalf("round %d: an expired document half swept: %v", round, err)
		}
		blobs.fail.Store(false)
		if n, err := svc.Sweep(ctx); err != nil || n < 1 {
			t.Fatalf("round %d: the next sweep: %d %v", round, n, err)
		}
		if _, err := set.Meta.Get(ctx, d.ID); !docstore.IsNotFound(err) {
			t.Fatalf("round %d: the record after the next sweep: %v", round, err)
		}
		if _, err := set.Blobs.Get(ctx, rec.Blob(), 0, -1); !docstore.IsNotFound(err) {
			t.Fatalf("round %d: the blob after the next sweep: %v", round, err)
		}
	}

	// A PATCH that read the record before it fell due and writes while
	// the sweep removes its blob: its write fails (the sweep's fence), and
	// read again the document is gone for it; the sweep finishes.
	skew.Store(0)
	d, err := svc.Upload(ctx, docstore.UploadRequest{Tenant: tenant, Body: randomDoc(2000), ExpiresIn: ptr[int64](60)})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := set.Meta.Get(ctx, d.ID) // the PATCH's read, before the expiry
	skew.Store(61)
	blobs.paused, blobs.proceed = make(chan struct{}), make(chan struct{})
	paused := blobs.paused
	done := make(chan error, 1)
	go func() { _, err := svc.Sweep(ctx); done <- err }()
	<-paused
	later := docstore.PolicyOf(before.Document)
	later.Expires = time.Now().Add(time.Hour)
	if _, err := set.Meta.SetPolicy(ctx, d.ID, later, before.Version); docstore.KindOf(err) != docstore.KindConflict {
		t.Fatalf("a PATCH that read the record before the sweep's fence: %v, want a conflict", err)
	}
	if _, err := svc.SetExpiry(ctx, tenant, d.ID, time.Now().Add(2*time.Hour)); !docstore.IsNotFound(err) {
		t.Fatalf("a PATCH of a document being swept: %v, want not found", err)
	}
	close(blobs.proceed)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := set.Meta.Get(ctx, d.ID); !docstore.IsNotFound(err) {
		t.Fatalf("the record after the sweep: %v", err)
	}
}

// testStreamRecordOfAnEarlierDocument: a removal record delivered late,
// after its id was given again to another document (an upload with the
// same Idempotency-Key), removes nothing of the new document.
func testStreamRecordOfAnEarlierDocument(t *testing.T, h Harness) {
	set := h.Open(t)
	svc := docstore.NewService(set.Backends, docstore.Config{}, nil)
	tenant := docstore.Tenant("late-record-" + string(docstore.NewID()))
	ctx := context.Background()
	first, err := svc.Upload(ctx, docstore.UploadRequest{Tenant: tenant, Body: randomDoc(1000), IdempotencyKey: "k", ExpiresIn: ptr[int64](60)})
	if err != nil {
		t.Fatal(err)
	}
	old, err := set.Meta.Get(ctx, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	// The store removed it (its TTL), and the cache let go of it.
	if err := set.Meta.Delete(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	if err := set.Cache.Delete(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	doc := randomDoc(1000)
	second, err := svc.Upload(ctx, docstore.UploadRequest{Tenant: tenant, Body: doc, IdempotencyKey: "k"})
	if err != nil || second.ID != first.ID {
		t.Fatalf("the same key again: %v (id %s, first %s)", err, second.ID, first.ID)
	}
	for range 2 {
		if err := svc.Removed(ctx, old); err != nil {
			t.Fatal(err)
		}
	}
	c, err := svc.Download(ctx, docstore.DownloadRequest{Tenant: tenant, ID: second.ID})
	if err != nil || !bytes.Equal(c.Body, doc) {
		t.Fatalf("the new document after a late record of the old one: %v", err)
	}
}
