package servicetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/imagodocs/imago/internal/docstore"
)

// pauseFirstPut holds the first blob Put until released, so that a test
// can run a whole second ingest while the first is between reading its
// staged object and storing its blob.
type pauseFirstPut struct {
	docstore.BlobStore
	once            sync.Once
	entered, resume chan struct{}
}

func (p *pauseFirstPut) Put(ctx context.Context, id docstore.ID, r io.Reader, size int64) error {
	first := false
	p.once.Do(func() { first = true })
	if first {
		close(p.entered)
		<-p.resume
	}
	return p.BlobStore.Put(ctx, id, r, size)
}

// testIngestRacingBodiesOneWinsWhole stages body A and starts its ingest,
// holds it before its blob is stored, replaces the staged object with body
// B and ingests that completely, then lets the first ingest finish: two
// PUTs to one upload URL, or a redelivered event, in the worst order. The
// document must then serve bytes that hash to its recorded SHA-256.
func testIngestRacingBodiesOneWinsWhole(t *testing.T, h Harness) {
	ctx := context.Background()
	set := h.Open(t)
	b := set.Backends
	pause := &pauseFirstPut{BlobStore: b.Blobs, entered: make(chan struct{}), resume: make(chan struct{})}
	b.Blobs = pause
	svc := docstore.NewService(b, docstore.Config{SegmentSize: 4096}, nil)
	tenant := docstore.Tenant("race-" + string(docstore.NewID()))
	const size = 300_000
	bodyA, bodyB := randomDoc(size), randomDoc(size)

	up, err := svc.CreateUpload(ctx, docstore.CreateUploadRequest{Tenant: tenant, Filename: "a.bin", ContentType: "application/octet-stream", Size: size})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Delete(context.Background(), tenant, up.ID) })
	key := set.StagingPrefix + string(up.ID)
	set.Raw.Stage(t, key, bodyA)
	first := make(chan error, 1)
	go func() { first <- svc.Ingest(ctx, key) }()
	<-pause.entered
	set.Raw.Stage(t, key, bodyB)
	if err := svc.Ingest(ctx, key); err != nil {
		t.Fatalf("second ingest: %v", err)
	}
	close(pause.resume)
	if err := <-first; err != nil {
		t.Fatalf("first ingest: %v", err)
	}

	d, err := svc.Get(ctx, tenant, up.ID)
	if err != nil || d.Status != docstore.StatusAvailable {
		t.Fatalf("after both ingests: %+v %v", d, err)
	}
	if d.SHA256 != hexSHA256(bodyA) && d.SHA256 != hexSHA256(bodyB) {
		t.Fatalf("recorded SHA-256 %s is neither body's", d.SHA256)
	}
	set.Cache.Delete(ctx, up.ID)
	c, err := svc.Download(ctx, docstore.DownloadRequest{Tenant: tenant, ID: up.ID})
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	if got := hexSHA256(c.Body); got != d.SHA256 {
		t.Fatalf("the document serves bytes with SHA-256 %s, its metadata records %s (A %v, B %v)",
			got, d.SHA256, got == hexSHA256(bodyA), got == hexSHA256(bodyB))
	}
	tail, err := svc.Download(ctx, docstore.DownloadRequest{Tenant: tenant, ID: up.ID, Range: "bytes=-1000"})
	if err != nil || !bytes.Equal(tail.Body, c.Body[size-1000:]) {
		t.Fatalf("the last 1000 bytes differ from the whole document's: %v", err)
	}
	if set.Raw.Staged(t, key) {
		t.Fatal("the staged plaintext is still there after both ingests")
	}
	if set.Raw.Blobs != nil { // where the blob store is the test's own
		// The loser removed its blob: one blob is left, the winner's.
		blobs := set.Raw.Blobs(t)
		if len(blobs) != 1 {
			t.Fatalf("blobs left: %v, want exactly the winner's", blobs)
		}
	}
}

// testTamperedBlobIsRefused changes a stored blob behind the Service's
// back (bytes appended, removed, changed) and checks that no read that
// reaches the blob's end serves it.
func testTamperedBlobIsRefused(t *testing.T, h Harness) {
	ctx := context.Background()
	set := h.Open(t)
	svc := docstore.NewService(set.Backends, docstore.Config{SegmentSize: 4096}, nil)
	tenant := docstore.Tenant("tamper-" + string(docstore.NewID()))
	const size = 50_000 // 13 segments, the last one short
	for _, c := range []struct {
		name   string
		tamper func([]byte) []byte
		// firstServed: a range in the first segment, away from a
		// change that keeps the blob's length, is still served (it
		// reads only its segments). A blob that grew or shrank is
		// refused by every read: its length is not its record's.
		firstServed bool
	}{
		{"one byte appended", func(b []byte) []byte { return append(b, 0) }, false},
		{"a segment's worth appended", func(b []byte) []byte { return append(b, bytes.Repeat([]byte{7}, 4096+16)...) }, false},
		{"the last byte removed", func(b []byte) []byte { return b[:len(b)-1] }, false},
		{"a whole segment cut", func(b []byte) []byte { return b[:len(b)-(4096+16)] }, false},
		{"a bit flipped in the last segment", func(b []byte) []byte { b[len(b)-5] ^= 1; return b }, true},
		{"a bit flipped in the header", func(b []byte) []byte { b[20] ^= 1; return b }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			doc := randomDoc(size)
			d, err := svc.Upload(ctx, docstore.UploadRequest{Tenant: tenant, Body: doc})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { svc.Delete(context.Background(), tenant, d.ID) })
			set.Raw.WriteBlob(t, d.ID, c.tamper(set.Raw.ReadBlob(t, d.ID)))
			set.Cache.Delete(ctx, d.ID)
			for _, rng := range []string{"", "bytes=0-", "bytes=-1", "bytes=49000-49999", "bytes=100-49999"} {
				got, err := svc.Download(ctx, docstore.DownloadRequest{Tenant: tenant, ID: d.ID, Range: rng})
				if err == nil {
					t.Fatalf("Range %q of the tampered blob was served (%d bytes)", rng, len(got.Body))
				}
				if k := docstore.KindOf(err); k != docstore.KindInternal {
					t.Fatalf("Range %q of the tampered blob: a %v error (%v), want internal", rng, k, err)
				}
			}
			got, err := svc.Download(ctx, docstore.DownloadRequest{Tenant: tenant, ID: d.ID, Range: "bytes=0-99"})
			if c.firstServed && (err != nil || !bytes.Equal(got.Body, doc[:100])) {
				t.Fatalf("the untouched first segment: %v", err)
			}
			if !c.firstServed && (err == nil || docstore.KindOf(err) != docstore.KindInternal) {
				t.Fatalf("the first segment of the tampered blob: %v, want an internal error", err)
			}
		})
	}
}

// testIngestFailureMarksTheDocument stages an object of the wrong size:
// the document says "failed" with a reason, its content is a conflict,
// the staged bytes are gone, and DELETE removes it.
func testIngestFailureMarksTheDocument(t *testing.T, h Harness) {
	ctx := context.Background()
	set := h.Open(t)
	svc := docstore.NewService(set.Backends, docstore.Config{}, nil)
	tenant := docstore.Tenant("failed-" + string(docstore.NewID()))
	up, err := svc.CreateUpload(ctx, docstore.CreateUploadRequest{Tenant: tenant, Filename: "a.bin", ContentType: "application/octet-stream", Size: 10_000})
	if err != nil {
		t.Fatal(err)
	}
	key := set.StagingPrefix + string(up.ID)
	set.Raw.Stage(t, key, randomDoc(9_999))
	if err := svc.Ingest(ctx, key); err != nil {
		t.Fatalf("a permanent failure is handled, not retried: %v", err)
	}
	d, err := svc.Get(ctx, tenant, up.ID)
	if err != nil {
		t.Fatalf("metadata after the failed ingest: %v", err)
	}
	if d.Status != docstore.StatusFailed || d.Failure == "" || strings.Contains(d.Failure, "staging/") {
		t.Fatalf("after the failed ingest: status %q, failure %q; want failed with a reason and no internal detail", d.Status, d.Failure)
	}
	if _, err := svc.Download(ctx, docstore.DownloadRequest{Tenant: tenant, ID: up.ID}); docstore.KindOf(err) != docstore.KindConflict {
		t.Fatalf("content of a failed document: %v, want a conflict", err)
	}
	if set.Raw.Staged(t, key) {
		t.Fatal("the staged bytes of the failed ingest are still there")
	}
	// A redelivered event changes nothing.
	set.Raw.Stage(t, key, randomDoc(10_000))
	if err := svc.Ingest(ctx, key); err != nil {
		t.Fatal(err)
	}
	if d, _ := svc.Get(ctx, tenant, up.ID); d.Status != docstore.StatusFailed {
		t.Fatalf("a later event revived the failed document: %+v", d)
	}
	if set.Raw.Staged(t, key) {
		t.Fatal("a staged object for a failed document was kept")
	}
	if err := svc.Delete(ctx, tenant, up.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Get(ctx, tenant, up.ID); !docstore.IsNotFound(err) {
		t.Fatalf("after DELETE: %v", err)
	}
}

// testDeletePendingRemovesStagedBytes deletes a document whose bytes are
// staged but not ingested yet.
func testDeletePendingRemovesStagedBytes(t *testing.T, h Harness) {
	ctx := context.Background()
	set := h.Open(t)
	svc := docstore.NewService(set.Backends, docstore.Config{}, nil)
	tenant := docstore.Tenant("delpending-" + string(docstore.NewID()))
	up, err := svc.CreateUpload(ctx, docstore.CreateUploadRequest{Tenant: tenant, Filename: "a.bin", ContentType: "application/octet-stream", Size: 1000})
	if err != nil {
		t.Fatal(err)
	}
	key := set.StagingPrefix + string(up.ID)
	set.Raw.Stage(t, key, randomDoc(1000))
	if err := svc.Delete(ctx, tenant, up.ID); err != nil {
		t.Fatal(err)
	}
	if set.Raw.Staged(t, key) {
		t.Fatal("DELETE of a pending document left its staged plaintext")
	}
}

// testIngestStagedObjectAlreadyGone: an event whose staged object is gone
// (ingested by another delivery, deleted, expired) is done, not retried,
// and leaves the document as it was. On S3 this needs the missing object
// to read as NotFound (s3:ListBucket granted), not AccessDenied.
func testIngestStagedObjectAlreadyGone(t *testing.T, h Harness) {
	ctx := context.Background()
	set := h.Open(t)
	svc := docstore.NewService(set.Backends, docstore.Config{}, nil)
	tenant := docstore.Tenant("gone-" + string(docstore.NewID()))
	up, err := svc.CreateUpload(ctx, docstore.CreateUploadRequest{Tenant: tenant, Filename: "a.bin", ContentType: "application/octet-stream", Size: 1000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Delete(context.Background(), tenant, up.ID) })
	key := set.StagingPrefix + string(up.ID)
	_, _, err = set.Staging.Open(ctx, key)
	if !docstore.IsNotFound(err) {
		t.Fatalf("Open of a missing staged object: %v (kind %v), want not_found", err, docstore.KindOf(err))
	}
	if err := svc.Ingest(ctx, key); err != nil {
		t.Fatalf("ingest of a staged object that is gone: %v, want done", err)
	}
	if d, err := svc.Get(ctx, tenant, up.ID); err != nil || d.Status != docstore.StatusPending {
		t.Fatalf("after the event: %+v %v, want still pending", d, err)
	}
}

// testRangesEndingInsideTheLastSegment reads ranges of an untouched blob
// that end inside its last segment but before the document's end: the
// check for bytes past the blob's end must not take the rest of that
// segment's plaintext for them.
func testRangesEndingInsideTheLastSegment(t *testing.T, h Harness) {
	ctx := context.Background()
	set := h.Open(t)
	svc := docstore.NewService(set.Backends, docstore.Config{SegmentSize: 4096}, nil)
	tenant := docstore.Tenant("ranges-" + string(docstore.NewID()))
	const size = 50_000 // the last segment holds bytes 49152 to 49999
	doc := randomDoc(size)
	d, err := svc.Upload(ctx, docstore.UploadRequest{Tenant: tenant, Body: doc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Delete(context.Background(), tenant, d.ID) })
	set.Cache.Delete(ctx, d.ID)
	for _, r := range [][2]int{{49152, 49152}, {49200, 49300}, {49000, 49998}, {0, 49990}, {100, 49999}, {49999, 49999}} {
		rng := fmt.Sprintf("bytes=%d-%d", r[0], r[1])
		got, err := svc.Download(ctx, docstore.DownloadRequest{Tenant: tenant, ID: d.ID, Range: rng})
		if err != nil || !bytes.Equal(got.Body, doc[r[0]:r[1]+1]) {
			t.Fatalf("Range %s: %v", rng, err)
		}
	}
}
