package backends_test

import (
	"context"
	"errors"
	"io"
	"sync/atomic"

	"github.com/imagodocs/imago/internal/docstore"
)

// probe wraps the origin backends (blob store, metadata store, key
// service) to count the calls that reach them and to fail a chosen one.
// It tests the Service's logic on top of real backends; the backends
// themselves are proven by their contract suites.
type probe struct {
	metaReads, blobReads, unwraps atomic.Int64
	failAt                        string // the step that fails: "generate", "create", "put", "mark"
}

var errInjected = docstore.E("probe", docstore.KindUnavailable, errors.New("injected failure"))

func (p *probe) wrap(b docstore.Backends) docstore.Backends {
	b.Blobs = &probeBlobs{BlobStore: b.Blobs, p: p}
	b.Meta = &probeMeta{MetadataStore: b.Meta, p: p}
	b.Keys = &probeKeys{KeyService: b.Keys, p: p}
	return b
}

func (p *probe) reset() { p.metaReads.Store(0); p.blobReads.Store(0); p.unwraps.Store(0) }

type probeBlobs struct {
	docstore.BlobStore
	p *probe
}

func (b *probeBlobs) Put(ctx context.Context, id docstore.ID, r io.Reader, size int64) error {
	if b.p.failAt == "put" {
		// Fail half-way through the stream, as a dropped connection would.
		failing := io.MultiReader(io.LimitReader(r, size/2), &failReader{})
		return b.BlobStore.Put(ctx, id, failing, size)
	}
	return b.BlobStore.Put(ctx, id, r, size)
}

func (b *probeBlobs) Get(ctx context.Context, id docstore.ID, off, n int64) (io.ReadCloser, error) {
	b.p.blobReads.Add(1)
	return b.BlobStore.Get(ctx, id, off, n)
}

type failReader struct{}

func (*failReader) Read([]byte) (int, error) { return 0, errInjected }

type probeMeta struct {
	docstore.MetadataStore
	p *probe
}

func (m *probeMeta) Create(ctx context.Context, rec docstore.Record) error {
	if m.p.failAt == "create" {
		return errInjected
	}
	return m.MetadataStore.Create(ctx, rec)
}

func (m *probeMeta) Get(ctx context.Context, id docstore.ID) (docstore.Record, error) {
	m.p.metaReads.Add(1)
	return m.MetadataStore.Get(ctx, id)
}

func (m *probeMeta) MarkAvailable(ctx context.Context, id docstore.ID, size int64, sha string) (docstore.Record, error) {
	if m.p.failAt == "mark" {
		return docstore.Record{}, errInjected
	}
	return m.MetadataStore.MarkAvailable(ctx, id, size, sha)
}

type probeKeys struct {
	docstore.KeyService
	p *probe
}

func (k *probeKeys) GenerateDataKey(ctx context.Context, ec docstore.EncryptionContext) (docstore.DataKey, error) {
	if k.p.failAt == "generate" {
		return docstore.DataKey{}, errInjected
	}
	return k.KeyService.GenerateDataKey(ctx, ec)
}

func (k *probeKeys) Decrypt(ctx context.Context, keyID string, wrapped []byte, ec docstore.EncryptionContext) ([]byte, error) {
	k.p.unwraps.Add(1)
	return k.KeyService.Decrypt(ctx, keyID, wrapped, ec)
}
