package storetest

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"time"

	"github.com/imagodocs/imago/internal/docstore"
)

// Probe wraps the origin backends (blob store, metadata store, key
// service) to count the calls that reach them and to fail a chosen step.
// It tests the Service's logic on top of real backends; the backends
// themselves are proven by their contract suites.
type Probe struct {
	MetaReads, BlobReads, Unwraps atomic.Int64
	// FailAt names the step that fails: "generate", "create", "put"
	// (half-way through the stream) or "mark"; "" fails nothing.
	FailAt string
}

// ErrInjected is the failure a Probe injects.
var ErrInjected = docstore.E("probe", docstore.KindUnavailable, errors.New("injected failure"))

// Wrap returns b with its origin backends wrapped by p.
func (p *Probe) Wrap(b docstore.Backends) docstore.Backends {
	b.Blobs = &probeBlobs{BlobStore: b.Blobs, p: p}
	b.Meta = &probeMeta{MetadataStore: b.Meta, p: p}
	b.Keys = &probeKeys{KeyService: b.Keys, p: p}
	return b
}

// Reset zeroes the counters.
func (p *Probe) Reset() { p.MetaReads.Store(0); p.BlobReads.Store(0); p.Unwraps.Store(0) }

// Origin is the number of origin reads (metadata, blob, key unwraps).
func (p *Probe) Origin() (meta, blob, unwrap int64) {
	return p.MetaReads.Load(), p.BlobReads.Load(), p.Unwraps.Load()
}

type probeBlobs struct {
	docstore.BlobStore
	p *Probe
}

func (b *probeBlobs) Put(ctx context.Context, id docstore.ID, r io.Reader, size int64) error {
	if b.p.FailAt == "put" {
		// Fail half-way through the stream, as a dropped connection would.
		failing := io.MultiReader(io.LimitReader(r, size/2), &failReader{})
		return b.BlobStore.Put(ctx, id, failing, size)
	}
	return b.BlobStore.Put(ctx, id, r, size)
}

func (b *probeBlobs) Get(ctx context.Context, id docstore.ID, off, n int64) (docstore.BlobReader, error) {
	b.p.BlobReads.Add(1)
	return b.BlobStore.Get(ctx, id, off, n)
}

type failReader struct{}

func (*failReader) Read([]byte) (int, error) { return 0, ErrInjected }

type probeMeta struct {
	docstore.MetadataStore
	p *Probe
}

func (m *probeMeta) Create(ctx context.Context, rec docstore.Record) error {
	if m.p.FailAt == "create" {
		return ErrInjected
	}
	return m.MetadataStore.Create(ctx, rec)
}

func (m *probeMeta) Get(ctx context.Context, id docstore.ID) (docstore.Record, error) {
	m.p.MetaReads.Add(1)
	return m.MetadataStore.Get(ctx, id)
}

func (m *probeMeta) MarkAvailable(ctx context.Context, id docstore.ID, size int64, sha string, blob docstore.ID, removeAt time.Time) (docstore.Record, error) {
	if m.p.FailAt == "mark" {
		return docstore.Record{}, ErrInjected
	}
	return m.MetadataStore.MarkAvailable(ctx, id, size, sha, blob, removeAt)
}

type probeKeys struct {
	docstore.KeyService
	p *Probe
}

func (k *probeKeys) GenerateDataKey(ctx context.Context, ec docstore.EncryptionContext) (docstore.DataKey, error) {
	if k.p.FailAt == "generate" {
		return docstore.DataKey{}, ErrInjected
	}
	return k.KeyService.GenerateDataKey(ctx, ec)
}

func (k *probeKeys) Decrypt(ctx context.Context, keyID string, wrapped []byte, ec docstore.EncryptionContext) ([]byte, error) {
	k.p.Unwraps.Add(1)
	return k.KeyService.Decrypt(ctx, keyID, wrapped, ec)
}
