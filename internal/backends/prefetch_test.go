package backends_test

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/docstore"
)

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

// TestMissFetchesTheBlobWhileItReadsTheRecord: a miss of a whole document
// begins reading its blob before its record has arrived (the blob of an
// inline upload is kept under the document's id), asks the blob store once,
// and still serves nothing the record does not allow: another tenant's
// document is a 404, and the blob it began to read is closed.
func TestMissFetchesTheBlobWhileItReadsTheRecord(t *testing.T) {
	for _, fam := range allFamilies() {
		t.Run(fam.name, func(t *testing.T) {
			ctx := context.Background()
			set := open(t, fam.cfg(t))
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
		})
	}
}
