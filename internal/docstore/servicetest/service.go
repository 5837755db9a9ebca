package servicetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/storetest"
)

// testWriteOrdering fails each step of an upload in turn and checks that
// nothing is left that a download or a listing would serve, and that no
// record points at a missing blob.
func testWriteOrdering(t *testing.T, h Harness) {
	set := h.Open(t)
	for _, step := range []string{"generate", "create", "put", "mark"} {
		t.Run("fail at "+step, func(t *testing.T) {
			ctx := context.Background()
			p := &storetest.Probe{FailAt: step}
			svc := docstore.NewService(p.Wrap(set.Backends), docstore.Config{SegmentSize: 4096}, nil)
			tenant := docstore.Tenant("ordering-" + string(docstore.NewID()))
			key := "upload-1"
			doc := randomDoc(300_000)
			_, err := svc.Upload(ctx, docstore.UploadRequest{Tenant: tenant, Body: doc, IdempotencyKey: key})
			if err == nil {
				t.Fatal("upload succeeded despite the failure")
			}
			if k := docstore.KindOf(err); k != docstore.KindUnavailable {
				t.Fatalf("error kind %v, want unavailable: %v", k, err)
			}
			id := docstore.IDForIdempotencyKey(tenant, key)
			if _, err := set.Meta.Get(ctx, id); !docstore.IsNotFound(err) {
				t.Errorf("record left behind: %v", err)
			}
			if _, err := set.Blobs.Get(ctx, id, 0, -1); !docstore.IsNotFound(err) {
				t.Errorf("blob left behind: %v", err)
			}
			page, err := svc.List(ctx, tenant, 0, "")
			if err != nil || len(page.Documents) != 0 {
				t.Errorf("listed after a failed upload: %v %v", page.Documents, err)
			}
			if _, err := svc.Download(ctx, docstore.DownloadRequest{Tenant: tenant, ID: id}); !docstore.IsNotFound(err) {
				t.Errorf("download after a failed upload: %v", err)
			}
			// The same upload, retried once the backend is back, succeeds.
			p.FailAt = ""
			d, err := svc.Upload(ctx, docstore.UploadRequest{Tenant: tenant, Body: doc, IdempotencyKey: key})
			if err != nil || d.ID != id {
				t.Fatalf("retry: %v (id %s, want %s)", err, d.ID, id)
			}
			evictEntry(t, set.Cache, id)
			c, err := svc.Download(ctx, docstore.DownloadRequest{Tenant: tenant, ID: id})
			if err != nil || !bytes.Equal(c.Body, doc) {
				t.Fatalf("download after retry: %v", err)
			}
		})
	}
}

// testMainPaths runs the main paths of the Service:
// upload, hit, miss, range, list, delete.
func testMainPaths(t *testing.T, h Harness) {
	ctx := context.Background()
	set := h.Open(t)
	p := &storetest.Probe{}
	svc := docstore.NewService(p.Wrap(set.Backends), docstore.Config{}, nil)
	tenant := docstore.Tenant("family-" + string(docstore.NewID()))
	doc := randomDoc(2_500_000)
	d, err := svc.Upload(ctx, docstore.UploadRequest{Tenant: tenant, Filename: "id.pdf", ContentType: "application/pdf", Body: doc})
	if err != nil {
		t.Fatal(err)
	}
	p.Reset()
	c, err := svc.Download(ctx, docstore.DownloadRequest{Tenant: tenant, ID: d.ID})
	if err != nil || !c.CacheHit || !bytes.Equal(c.Body, doc) {
		t.Fatalf("download after upload: hit=%v err=%v", c != nil && c.CacheHit, err)
	}
	if m, b, u := p.Origin(); m+b+u != 0 {
		t.Fatalf("a hit touched the origin: %d metadata reads, %d blob reads, %d unwraps", m, b, u)
	}
	evictEntry(t, set.Cache, d.ID)
	c, err = svc.Download(ctx, docstore.DownloadRequest{Tenant: tenant, ID: d.ID, Range: "bytes=1000000-1099999"})
	if err != nil || c.CacheHit || !bytes.Equal(c.Body, doc[1_000_000:1_100_000]) {
		t.Fatalf("range on a miss: %v", err)
	}
	if _, err := svc.Download(ctx, docstore.DownloadRequest{Tenant: "someone-else", ID: d.ID}); !docstore.IsNotFound(err) {
		t.Fatalf("another tenant: %v", err)
	}
	page, err := svc.List(ctx, tenant, 10, "")
	if err != nil || len(page.Documents) != 1 || page.Documents[0].ID != d.ID {
		t.Fatalf("list: %+v %v", page, err)
	}
	if err := svc.Delete(ctx, tenant, d.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Download(ctx, docstore.DownloadRequest{Tenant: tenant, ID: d.ID}); !docstore.IsNotFound(err) {
		t.Fatalf("download after delete: %v", err)
	}
	if _, err := set.Blobs.Get(ctx, d.ID, 0, -1); !docstore.IsNotFound(err) {
		t.Fatalf("blob after delete: %v", err)
	}
}

// testIdempotentRetryFinishesAPendingUpload is the retry of an upload
// whose first attempt left its record pending (its answer was lost after
// the record was created): the retry with the same Idempotency-Key stores
// the document, rather than answering "in progress" until the record
// expires.
func testIdempotentRetryFinishesAPendingUpload(t *testing.T, h Harness) {
	set := h.Open(t)
	ctx := context.Background()
	tenant := docstore.Tenant("idem-" + string(docstore.NewID()))
	key := "retry-" + string(docstore.NewID())
	doc := randomDoc(200_000)
	// The first attempt: its record created, then nothing.
	first := docstore.NewService(set.Backends, docstore.Config{}, nil)
	id := docstore.IDForIdempotencyKey(tenant, key)
	dk, err := set.Keys.GenerateDataKey(ctx, docstore.ContextFor(tenant, id))
	if err != nil {
		t.Fatal(err)
	}
	rec := docstore.Record{Document: docstore.Document{ID: id, Descriptor: docstore.Descriptor{Filename: "a.bin", ContentType: "application/octet-stream", Size: int64(len(doc))}, Status: docstore.StatusPending, Metadata: map[string]string{}},
		Tenant: tenant, WrappedKey: dk.Wrapped, KeyID: dk.KeyID, FormatVersion: 1, SegmentSize: 64 << 10}
	rec.CreatedAt = rec.CreatedAt.UTC()
	if err := set.Meta.Create(ctx, rec); err != nil {
		t.Fatal(err)
	}
	got, err := first.Upload(ctx, docstore.UploadRequest{Tenant: tenant, Filename: "a.bin",
		ContentType: "application/octet-stream", Body: doc, IdempotencyKey: key})
	if err != nil {
		t.Fatalf("retry of a pending upload: %v", err)
	}
	assertServes(t, first, tenant, got, doc)
	// A retry with another body of the same key is still a conflict.
	other := randomDoc(len(doc))
	if _, err := first.Upload(ctx, docstore.UploadRequest{Tenant: tenant, Body: other, IdempotencyKey: key,
		ContentType: "application/octet-stream"}); docstore.KindOf(err) != docstore.KindConflict {
		t.Fatalf("another body under the same key: %v, want a conflict", err)
	}
}

// testIdempotentUploadsRaceOneBodyWins races two uploads of different
// bodies under one Idempotency-Key, many rounds: whatever each answers,
// the document serves exactly the bytes its recorded SHA-256 names, and
// an upload that answered with the document answered that one.
func testIdempotentUploadsRaceOneBodyWins(t *testing.T, h Harness) {
	set := h.Open(t)
	ctx := context.Background()
	svc := docstore.NewService(set.Backends, docstore.Config{}, nil)
	tenant := docstore.Tenant("idem-" + string(docstore.NewID()))
	for round := range 10 {
		key := "race-" + string(docstore.NewID())
		bodies := [][]byte{randomDoc(150_000), randomDoc(150_000)}
		answers := make([]docstore.Document, 2)
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Go(func() {
				answers[i], errs[i] = svc.Upload(ctx, docstore.UploadRequest{Tenant: tenant, Body: bodies[i],
					IdempotencyKey: key, ContentType: "application/octet-stream"})
			})
		}
		wg.Wait()
		id := docstore.IDForIdempotencyKey(tenant, key)
		md, err := svc.Get(ctx, tenant, id)
		if err != nil {
			t.Fatalf("round %d: metadata: %v (answers %v / %v)", round, err, errs[0], errs[1])
		}
		var won []byte
		for _, b := range bodies {
			if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) == md.SHA256 {
				won = b
			}
		}
		if won == nil {
			t.Fatalf("round %d: the recorded SHA-256 is neither body's", round)
		}
		assertServes(t, svc, tenant, md, won)
		for i := range 2 {
			if errs[i] == nil && answers[i].SHA256 != md.SHA256 {
				t.Fatalf("round %d: upload %d answered sha %s, the document is %s", round, i, answers[i].SHA256, md.SHA256)
			}
			if errs[i] != nil && docstore.KindOf(errs[i]) != docstore.KindConflict {
				t.Fatalf("round %d: upload %d: %v, want success or a conflict", round, i, errs[i])
			}
		}
	}
}

func assertServes(t *testing.T, svc *docstore.Service, tenant docstore.Tenant, d docstore.Document, want []byte) {
	t.Helper()
	c, err := svc.Download(context.Background(), docstore.DownloadRequest{Tenant: tenant, ID: d.ID})
	if err != nil {
		t.Fatalf("download %s: %v", d.ID, err)
	}
	if !bytes.Equal(c.Body, want) {
		t.Fatalf("download %s: %d bytes, not the document recorded", d.ID, len(c.Body))
	}
	sum := sha256.Sum256(c.Body)
	if hex.EncodeToString(sum[:]) != d.SHA256 || c.SHA256 != d.SHA256 {
		t.Fatalf("download %s: bytes hash %x, metadata says %s", d.ID, sum, d.SHA256)
	}
}

// overlapProbe makes a download's record read wait until a read of the
// blob has begun, or until patience runs out: a miss that reads the blob
// only once the record has arrived then takes patience longer and says so
// (blobFirst stays false), one that fetches both at once does not wait.
type overlapProbe struct {
	patience time.Duration

	mu        sync.Mutex
	armed     bool
	blobBegun chan struct{}
	blobFirst bool
	blobGets  atomic.Int64 // reads asked for
	opens     atomic.Int64 // reads that returned a body
	closes    atomic.Int64 // bodies closed
}

func (p *overlapProbe) arm() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed, p.blobFirst, p.blobBegun = true, false, make(chan struct{})
	p.blobGets.Store(0)
	p.opens.Store(0)
	p.closes.Store(0)
}

func (p *overlapProbe) wrap(b docstore.Backends) docstore.Backends {
	b.Blobs = &overlapBlobs{BlobStore: b.Blobs, p: p}
	b.Meta = &overlapMeta{MetadataStore: b.Meta, p: p}
	return b
}

type overlapBlobs struct {
	docstore.BlobStore
	p *overlapProbe
}

func (b *overlapBlobs) Get(ctx context.Context, id docstore.ID, off, n int64) (docstore.BlobReader, error) {
	b.p.mu.Lock()
	if b.p.armed {
		b.p.blobGets.Add(1)
		select {
		case <-b.p.blobBegun:
		default:
			close(b.p.blobBegun)
		}
	}
	b.p.mu.Unlock()
	r, err := b.BlobStore.Get(ctx, id, off, n)
	if err != nil {
		return nil, err
	}
	b.p.opens.Add(1)
	return &closeCounting{BlobReader: r, closes: &b.p.closes}, nil
}

type closeCounting struct {
	docstore.BlobReader
	closes *atomic.Int64
	once   sync.Once
}

func (c *closeCounting) Close() error {
	c.once.Do(func() { c.closes.Add(1) })
	return c.BlobReader.Close()
}

type overlapMeta struct {
	docstore.MetadataStore
	p *overlapProbe
}

func (m *overlapMeta) Get(ctx context.Context, id docstore.ID) (docstore.Record, error) {
	m.p.mu.Lock()
	armed, begun := m.p.armed, m.p.blobBegun
	m.p.mu.Unlock()
	if armed {
		select {
		case <-begun:
			m.p.mu.Lock()
			m.p.blobFirst = true
			m.p.mu.Unlock()
		case <-time.After(m.p.patience):
		}
	}
	return m.MetadataStore.Get(ctx, id)
}

// testMissFetchesTheBlobWhileItReadsTheRecord: a miss of a whole document
// begins reading its blob before its record has arrived (the blob of an
// inline upload is kept under the document's id), asks the blob store once,
// and still serves nothing the record does not allow: another tenant's
// document is a 404, and the blob it began to read is closed.
func testMissFetchesTheBlobWhileItReadsTheRecord(t *testing.T, h Harness) {
	ctx := context.Background()
	set := h.Open(t)
	p := &overlapProbe{patience: 3 * time.Second}
	svc := docstore.NewService(p.wrap(set.Backends), docstore.Config{}, nil)
	tenant := docstore.Tenant("prefetch-" + string(docstore.NewID()))
	doc := randomDoc(1 << 20)
	d, err := svc.Upload(ctx, docstore.UploadRequest{Tenant: tenant, Filename: "p.bin", Body: doc})
	if err != nil {
		t.Fatal(err)
	}

	for round := range 3 {
		evictEntry(t, set.Cache, d.ID)
		p.arm()
		c, err := svc.Download(ctx, docstore.DownloadRequest{Tenant: tenant, ID: d.ID})
		if err != nil || c.CacheHit || !bytes.Equal(c.Body, doc) {
			t.Fatalf("round %d: miss: hit=%v err=%v", round, c != nil && c.CacheHit, err)
		}
		if !p.blobFirst {
			t.Fatalf("round %d: the blob read began only after the record read", round)
		}
		if n := p.blobGets.Load(); n != 1 {
			t.Fatalf("round %d: %d blob reads for one miss, want 1", round, n)
		}
	}

	// A revalidation or a range does not fetch what it may not need.
	evictEntry(t, set.Cache, d.ID)
	p.arm()
	p.patience = 0
	if c, err := svc.Download(ctx, docstore.DownloadRequest{Tenant: tenant, ID: d.ID, IfNoneMatch: `"` + d.SHA256 + `"`}); err != nil || !c.NotModified {
		t.Fatalf("If-None-Match: %+v %v", c, err)
	}
	if n := p.blobGets.Load(); n != 0 {
		t.Fatalf("a 304 read the blob %d times", n)
	}

	// Another tenant: the blob was fetched on the guess, never served,
	// and given back.
	evictEntry(t, set.Cache, d.ID)
	p.arm()
	if _, err := svc.Download(ctx, docstore.DownloadRequest{Tenant: "someone-else", ID: d.ID}); !docstore.IsNotFound(err) {
		t.Fatalf("another tenant's document: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for p.closes.Load() != p.opens.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if o, c := p.opens.Load(), p.closes.Load(); o != c {
		t.Fatalf("%d blob bodies opened, %d closed", o, c)
	}
}
