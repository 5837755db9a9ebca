package docstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/imagodocs/imago/internal/envelope"
)

// origin is where documents are kept: the record's sealed blob in the
// BlobStore, opened with the data key the KeyService unwraps. It reads
// (read, prefetch) and writes (write, then commit); it knows nothing of
// caches or HTTP; the caching reader wraps its read side.
type origin struct {
	blobs BlobStore
	keys  KeyService
	meta  MetadataStore
	log   *slog.Logger
}

// write streams the sealed form of src into the blob store as blob,
// without holding more than one segment of ciphertext. The blob is bound
// to the document (rec.ID), whatever id it is stored under. A failed write
// leaves no blob (BlobStore.Put).
func (o origin) write(ctx context.Context, rec Record, blob ID, key []byte, src io.Reader) error {
	pr, pw := io.Pipe()
	go func() {
		w, err := envelope.NewWriter(pw, key, envelope.Binding{DocumentID: string(rec.ID), Tenant: string(rec.Tenant)}, rec.SegmentSize)
		if err == nil {
			_, err = io.Copy(w, src)
		}
		if err == nil {
			err = w.Close()
		}
		pw.CloseWithError(err)
	}()
	err := o.blobs.Put(ctx, blob, pr, envelope.SealedSize(rec.Size, rec.SegmentSize))
	pr.CloseWithError(errors.New("blob store stopped reading")) // unblocks the writer on failure
	if err != nil {
		return fmt.Errorf("put blob %s of %s: %w", blob, rec.ID, err)
	}
	return nil
}

// commit marks the pending document available with the blob a write
// stored, of size bytes hashing to digest: the conditional MarkAvailable
// that picks one winner among attempts that race. When it is not this
// attempt's (KindConflict: another attempt won, or the document failed;
// KindNotFound: the record is gone), the blob is nobody's and is dropped
// here; the error is MarkAvailable's, for the caller to answer.
func (o origin) commit(ctx context.Context, pending Record, size int64, digest string, blob ID) (Record, error) {
	id := pending.ID
	rec, err := o.meta.MarkAvailable(ctx, id, size, digest, blob, pending.Expires)
	if k := KindOf(err); err != nil && (k == KindConflict || k == KindNotFound) {
		o.drop(ctx, id, blob)
	}
	return rec, err
}

// drop removes document id's blob that no record names, whatever becomes
// of the request (see detached).
func (o origin) drop(ctx context.Context, id, blob ID) {
	detached(ctx, o.log, "delete a blob no record names", func(ctx context.Context) error {
		return o.blobs.Delete(ctx, blob)
	}, "document", id, "blob", blob)
}

// cleanupTimeout bounds each cleanup step run by detached.
const cleanupTimeout = 10 * time.Second

// detached runs fn, a cleanup step that must happen even when its request
// gave up: on a context with ctx's values but not its cancellation,
// bounded by cleanupTimeout. A failure is logged with what and attrs, not
// returned: what it leaves behind nothing serves, and the stores expire
// or a reconciliation removes it.
func detached(ctx context.Context, log *slog.Logger, what string, fn func(context.Context) error, attrs ...any) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := fn(ctx); err != nil {
		log.ErrorContext(ctx, "cleanup: "+what, append(attrs, "error", err.Error())...)
	}
}

// read returns the bytes r of the document rec describes, fetching and
// decrypting only the segments that hold them (envelope.ReadRange, which
// also refuses a blob with bytes changed in them, and any blob whose
// length is not the one rec implies, whichever range is read).
//
// The data key is unwrapped while the blob is fetched: neither needs the
// other, so a miss is one round trip to the key service and one to the blob
// store at once, not one after the other. When pf fetched rec's blob from
// its start, the read takes its bytes from there instead of asking again.
func (o origin) read(ctx context.Context, rec Record, r ByteRange, pf *prefetch) ([]byte, error) {
	if rec.FormatVersion != envelope.Version {
		return nil, fmt.Errorf("document %s has blob format %d, this build reads %d", rec.ID, rec.FormatVersion, envelope.Version)
	}
	if r.Length == 0 {
		return []byte{}, nil
	}
	keyc := make(chan unwrappedKey, 1)
	go func() {
		k, err := o.keys.Decrypt(ctx, rec.KeyID, rec.WrappedKey, ContextFor(rec.Tenant, rec.ID))
		keyc <- unwrappedKey{k, err}
	}()
	var unwrapped unwrappedKey
	received := false
	defer func() {
		if !received {
			unwrapped = <-keyc
		}
		clear(unwrapped.key)
	}()
	key := func() ([]byte, error) {
		unwrapped, received = <-keyc, true
		return unwrapped.key, unwrapped.err
	}

	blob := rec.Blob()
	get := func(ctx context.Context, offset, length int64) (io.ReadCloser, int64, error) {
		if rc, ok := pf.take(blob, offset, length); ok {
			return rc, rc.Size(), nil
		}
		rc, err := o.blobs.Get(ctx, blob, offset, length)
		if err != nil {
			return nil, 0, err
		}
		return rc, rc.Size(), nil
	}
	sealed := envelope.Sealed{PlainSize: rec.Size, SegmentSize: rec.SegmentSize,
		Binding: envelope.Binding{DocumentID: string(rec.ID), Tenant: string(rec.Tenant)}}
	body, err := envelope.ReadRange(ctx, get, sealed, key, r.Start, r.Length)
	switch {
	case received && unwrapped.err != nil:
		return nil, fmt.Errorf("unwrap data key of %s: %w", rec.ID, unwrapped.err)
	case err != nil:
		return nil, blobError(rec.ID, err)
	}
	return body, nil
}

// prefetch is a read of a document's blob begun before its record has
// arrived, on the guess that the blob is kept under the document's id
// (every inline upload's is; an ingested document's blob has an id of its
// own, and then the guess costs one blob request that answers not found).
// A miss that reads the record then the blob waits for the two one after
// the other; with the prefetch it waits for the slower of the two.
//
// Nothing of the prefetched bytes is used before the record has been read
// and the tenant checked: the origin's read takes them only for the blob
// the record names, and opens them with the key the record wraps. The
// prefetch runs on a context of its own, so that a singleflight load that
// outlives its first caller's request can still use it; discard ends it.
type prefetch struct {
	id     ID
	cancel context.CancelFunc
	done   chan struct{}
	body   BlobReader // once done: the whole blob, or nil with err
	err    error
	taken  bool
}

// prefetch starts reading the whole blob stored under id.
func (o origin) prefetch(ctx context.Context, id ID) *prefetch {
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	pf := &prefetch{id: id, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(pf.done)
		pf.body, pf.err = o.blobs.Get(pctx, id, 0, -1)
	}()
	return pf
}

// take hands over the prefetched bytes [0, length) of blob, as
// BlobStore.Get would return them, when the prefetch read that blob and
// has not been taken yet; false means to ask the blob store. A prefetch
// that failed is never an error of the read: the read asks again.
func (pf *prefetch) take(blob ID, offset, length int64) (BlobReader, bool) {
	if pf == nil || pf.taken || blob != pf.id || offset != 0 || length < 0 {
		return nil, false
	}
	<-pf.done
	if pf.err != nil {
		return nil, false
	}
	pf.taken = true
	return limitedBlob{Reader: io.LimitReader(pf.body, length), blob: pf.body}, true
}

// discard ends the prefetch: its request is cancelled and a body nobody
// took is closed. A nil prefetch is none.
func (pf *prefetch) discard() {
	if pf == nil {
		return
	}
	pf.cancel()
	if !pf.taken {
		go func() {
			<-pf.done
			if pf.body != nil {
				pf.body.Close()
			}
		}()
	}
}

// limitedBlob is the first bytes of a whole blob read, as a BlobReader of
// that part.
type limitedBlob struct {
	io.Reader
	blob BlobReader
}

func (l limitedBlob) Size() int64  { return l.blob.Size() }
func (l limitedBlob) Close() error { return l.blob.Close() }

// unwrappedKey is a data key unwrapped by the key service, or why not.
type unwrappedKey struct {
	key []byte
	err error
}

// blobError classifies a failure to read the blob of a document whose
// record exists. A blob store's failure to deliver bytes (KindUnavailable:
// a dropped connection) stays retryable. Anything else — a missing blob, one
// shorter than its record says, bytes that do not authenticate — is an
// internal inconsistency (KindInternal), never a 404 or a 416.
func blobError(id ID, err error) error {
	const op = "docstore.readBlob"
	switch KindOf(err) {
	case KindUnavailable:
		return fmt.Errorf("read blob of %s: %w", id, err)
	case KindNotFound:
		return E(op, KindInternal, fmt.Errorf("blob of available document %s is missing: %w", id, err))
	case KindBadRange:
		return E(op, KindInternal, fmt.Errorf("blob of %s is shorter than its record says: %w", id, err))
	}
	return E(op, KindInternal, fmt.Errorf("blob of %s: %w", id, err))
}
