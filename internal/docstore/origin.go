package docstore

import (
	"context"
	"fmt"
	"io"

	"github.com/imagodocs/imago/internal/envelope"
)

// origin reads documents from where they are kept: the record's sealed blob
// in the BlobStore, opened with the data key the KeyService unwraps. It
// knows nothing of caches or HTTP; the caching reader wraps it.
type origin struct {
	blobs BlobStore
	keys  KeyService
}

// read returns the bytes r of the document rec describes, fetching and
// decrypting only the segments that hold them (envelope.ReadRange, which
// also refuses a blob with bytes changed in them, and any blob whose
// length is not the one rec implies, whichever range is read).
//
// The data key is unwrapped while the blob is fetched: neither needs the
// other, so a miss is one round trip to the key service and one to the blob
// store at once, not one after the other.
func (o origin) read(ctx context.Context, rec Record, r ByteRange) ([]byte, error) {
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
