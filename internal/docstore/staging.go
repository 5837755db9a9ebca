package docstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/imagodocs/imago/internal/api"
)

// Limits of presigned uploads.
const (
	// MaxStagedBytes is the largest document a presigned upload takes: the
	// largest object one S3 PUT may carry.
	MaxStagedBytes = 5 << 30
	// PresignTTL is how long a presigned upload URL stays valid.
	PresignTTL = 15 * time.Minute
)

// CreateUploadRequest announces a large document.
type CreateUploadRequest struct {
	Tenant      Tenant
	Filename    string
	ContentType string
	Size        int64
	Metadata    map[string]string
	// PartSize is the part size the client wants for an upload in parts
	// (zero: the service picks one); see PlanParts.
	PartSize int64
	// ExpiresIn is the document's retention in seconds; nil: the
	// configured one.
	ExpiresIn *int64
}

// CreatedUpload is the answer to CreateUpload. Its JSON is
// api.CreatedUpload's (see wire.go).
type CreatedUpload struct {
	ID        ID
	UploadURL string
	Method    string // api.MethodPut or api.MethodMultipart
	Headers   map[string]string
	// PartSize and PartCount describe an upload in parts (Method
	// "multipart"), which has no UploadURL: see multipart.go.
	PartSize  int64
	PartCount int
	ExpiresAt time.Time
}

// stagingKey is where the document id's bytes are staged.
func (s *Service) stagingKey(id ID) string { return s.cfg.StagingPrefix + string(id) }

// CreateUpload records a pending document and returns a presigned request
// that uploads its bytes to the staging area. The data key is generated
// now and stored wrapped, so the ingest only has to unwrap it.
func (s *Service) CreateUpload(ctx context.Context, req CreateUploadRequest) (CreatedUpload, error) {
	const op = "docstore.CreateUpload"
	if req.Tenant == "" {
		return CreatedUpload{}, E(op, KindUnauthenticated, "no caller identity")
	}
	if s.staging == nil {
		return CreatedUpload{}, E(op, KindUnavailable, "presigned uploads need the S3 backend (set IMAGO_TABLE, IMAGO_BUCKET and IMAGO_KMS_KEY_ID)")
	}
	if req.Size <= 0 {
		return CreatedUpload{}, E(op, KindInvalid, "size must be a positive number of bytes")
	}
	if _, err := s.expiryOf(op, s.now(), req.ExpiresIn); err != nil {
		return CreatedUpload{}, err // before anything is made: an upload in parts too
	}
	if req.PartSize != 0 {
		if err := checkPartSize(req.PartSize); err != nil {
			return CreatedUpload{}, err
		}
	}
	desc, err := describe(req.Filename, req.ContentType, req.Metadata)
	if err != nil {
		return CreatedUpload{}, err
	}
	if req.Size > s.cfg.MultipartThreshold {
		return s.createMultipart(ctx, op, req, desc)
	}
	if req.Size > MaxStagedBytes {
		return CreatedUpload{}, E(op, KindTooLarge, fmt.Sprintf("size %d is over the %d-byte limit of a presigned upload", req.Size, int64(MaxStagedBytes)))
	}
	// The data key is generated now and stored wrapped; the ingest only
	// has to unwrap it.
	id := NewID()
	rec, dk, err := s.newPending(ctx, op, req.Tenant, id, desc, req.Size, req.ExpiresIn)
	if err != nil {
		return CreatedUpload{}, E(op, err)
	}
	clear(dk.Plaintext)
	if err := s.meta.Create(ctx, rec); err != nil {
		return CreatedUpload{}, E(op, fmt.Errorf("create record %s: %w", id, err))
	}
	up, err := s.staging.PresignPut(ctx, s.stagingKey(id), desc.contentType, req.Size, PresignTTL)
	if err != nil {
		s.abandon(ctx, id, "presign", err)
		return CreatedUpload{}, E(op, fmt.Errorf("presign upload of %s: %w", id, err))
	}
	return CreatedUpload{ID: id, UploadURL: up.URL, Method: up.Method, Headers: up.Headers, ExpiresAt: up.ExpiresAt}, nil
}

// Ingest encrypts a staged document into the blob store, records its size
// and SHA-256, marks it available and deletes the staged plaintext. It is
// driven by storage events, which arrive at least once and in any order:
// a key outside the staging prefix is ignored, a repeated or late event is
// harmless, and a staged object nobody is waiting for is deleted.
//
// Attempts may race (two PUTs to one upload URL, a redelivered event while
// the first delivery still runs): each attempt stores its blob under an id
// of its own, and the conditional MarkAvailable picks the one winner, whose
// blob the record names; a loser removes its blob. So the bytes served
// always hash to the recorded SHA-256, whatever the interleaving.
//
// A permanent failure (a staged object of the wrong size, unreadable, or a
// data key that cannot be unwrapped) marks the document failed, deletes
// the staged bytes and returns nil: retrying cannot help. A transient one
// (KindUnavailable) returns the error so that the event is delivered again.
func (s *Service) Ingest(ctx context.Context, key string) error {
	const op = "docstore.Ingest"
	if s.staging == nil {
		return E(op, KindUnavailable, "no staging area configured")
	}
	rest, ok := strings.CutPrefix(key, s.cfg.StagingPrefix)
	if !ok {
		s.log.InfoContext(ctx, "ignoring an object outside the staging prefix", "key", key)
		return nil
	}
	defer s.ingesting.begin(key)()
	id, err := ParseID(rest)
	if err != nil {
		s.log.WarnContext(ctx, "deleting a staged object that names no document", "key", key)
		return s.deleteStaged(ctx, op, key)
	}
	rec, pending, err := s.pendingRecord(ctx, op, key, id)
	if !pending {
		return err
	}
	return s.ingestPending(ctx, op, key, id, rec)
}

// pendingRecord returns the record of document id, whose staged object is
// at key, and true when the document is still pending. Otherwise it
// returns false and the event's outcome: the staged object deleted (the
// document is gone, or no longer pending: a repeated or late event), or
// the error of the read.
func (s *Service) pendingRecord(ctx context.Context, op Op, key string, id ID) (Record, bool, error) {
	rec, err := s.meta.Get(ctx, id)
	switch {
	case IsNotFound(err):
		s.log.WarnContext(ctx, "deleting a staged object whose document is gone", "document", id)
		return Record{}, false, s.deleteStaged(ctx, op, key)
	case err != nil:
		return Record{}, false, E(op, fmt.Errorf("get record %s: %w", id, err))
	case rec.Status != StatusPending:
		s.log.InfoContext(ctx, "document no longer pending; repeated or late event", "document", id, "status", rec.Status)
		return Record{}, false, s.deleteStaged(ctx, op, key)
	}
	return rec, true, nil
}

// ingestPending opens the staged object at key of pending document id,
// checks its size and unwraps the document's data key, then seals it.
func (s *Service) ingestPending(ctx context.Context, op Op, key string, id ID, rec Record) error {
	src, size, err := s.staging.Open(ctx, key)
	switch {
	case IsNotFound(err):
		// Another delivery of the event ingested it meanwhile, or it
		// expired, or the document was deleted.
		s.log.InfoContext(ctx, "staged object is gone", "document", id)
		return nil
	case KindOf(err) == KindUnavailable:
		return E(op, fmt.Errorf("open staged %s: %w", key, err))
	case err != nil:
		return s.failIngest(ctx, op, rec, key, "the uploaded object could not be read", err)
	}
	defer src.Close()
	if size != rec.Size {
		// The presigned request signs the length, so this is not a client
		// mistake that a retry would fix.
		return s.failIngest(ctx, op, rec, key, fmt.Sprintf("the uploaded object is %d bytes; %d were announced", size, rec.Size),
			fmt.Errorf("staged %d bytes, declared %d", size, rec.Size))
	}
	key32, err := s.keys.Decrypt(ctx, rec.KeyID, rec.WrappedKey, ContextFor(rec.Tenant, rec.ID))
	if KindOf(err) == KindUnavailable {
		return E(op, fmt.Errorf("unwrap data key of %s: %w", id, err))
	}
	if err != nil {
		return s.failIngest(ctx, op, rec, key, "the document's data key could not be used", err)
	}
	defer clear(key32)
	return s.sealStaged(ctx, op, key, id, rec, src, key32)
}

// sealStaged encrypts the staged bytes read from src into a blob of this
// attempt's own and marks document id available with it, unless another
// attempt won; then it deletes the staged object.
func (s *Service) sealStaged(ctx context.Context, op Op, key string, id ID, rec Record, src io.Reader, key32 []byte) error {
	blob := NewID() // this attempt's own blob
	sum := sha256.New()
	staged := &exactReader{r: io.TeeReader(src, sum), left: rec.Size}
	if err := s.origin.write(ctx, rec, blob, key32, staged); err != nil {
		// A failed Put leaves no blob.
		if staged.mismatch {
			return s.failIngest(ctx, op, rec, key, "the uploaded object did not hold the announced number of bytes", err)
		}
		return E(op, err)
	}
	digest := hex.EncodeToString(sum.Sum(nil))
	if err := s.beforeMarkAvailable(ctx, id); err != nil {
		s.origin.drop(ctx, id, blob)
		return E(op, err)
	}
	if _, err := s.origin.commit(ctx, rec, rec.Size, digest, blob); err != nil {
		switch KindOf(err) {
		case KindConflict, KindNotFound:
			// Another attempt won, the document failed, or it was deleted:
			// commit dropped this attempt's blob, which is nobody's.
			s.log.InfoContext(ctx, "another ingest attempt won, or the document is gone; dropped this attempt", "document", id)
			return s.deleteStaged(ctx, op, key)
		}
		// The write may or may not have happened: the blob stays (it is
		// sealed), and the retried event finds the record as it is.
		return E(op, fmt.Errorf("mark %s available: %w", id, err))
	}
	s.log.InfoContext(ctx, "document ingested", "document", id, "size", rec.Size)
	if err := s.auditSystem(ctx, rec, api.ActionIngest, 200); err != nil {
		return err // the event is retried: the record comes before its outcome is final
	}
	return s.deleteStaged(ctx, op, key)
}

// failIngest marks a pending document failed for a reason the caller may
// see and deletes its staged bytes. It returns nil once that is done (the
// event is handled), an error to have it delivered again otherwise.
func (s *Service) failIngest(ctx context.Context, op Op, rec Record, key, reason string, cause error) error {
	s.log.ErrorContext(ctx, "ingest failed for good; marking the document failed", "document", rec.ID, "reason", reason, "error", cause.Error())
	if _, err := s.meta.MarkFailed(ctx, rec.ID, reason); err != nil && KindOf(err) != KindConflict && !IsNotFound(err) {
		return E(op, fmt.Errorf("mark %s failed: %w", rec.ID, err))
	}
	if err := s.auditSystem(ctx, rec, api.ActionIngest, 422); err != nil {
		return err
	}
	return s.deleteStaged(ctx, op, key)
}

// beforeMarkAvailable runs the test hook between storing an attempt's blob
// and recording it.
func (s *Service) beforeMarkAvailable(ctx context.Context, id ID) error {
	if s.cfg.IngestHook == nil {
		return nil
	}
	return s.cfg.IngestHook(ctx, id)
}

func (s *Service) deleteStaged(ctx context.Context, op Op, key string) error {
	if err := s.staging.Delete(ctx, key); err != nil {
		return E(op, fmt.Errorf("delete staged %s: %w", key, err))
	}
	return nil
}

// errStagedLength is what exactReader fails with.
var errStagedLength = errors.New("the staged object does not hold the announced number of bytes")

// exactReader yields exactly left bytes of r and fails, setting mismatch,
// when r ends before them or holds more.
type exactReader struct {
	r        io.Reader
	left     int64
	mismatch bool
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left == 0 {
		var one [1]byte
		for {
			n, err := e.r.Read(one[:])
			if n > 0 {
				e.mismatch = true
				return 0, errStagedLength
			}
			if err == io.EOF {
				return 0, io.EOF
			}
			if err != nil {
				return 0, err
			}
		}
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		e.mismatch = true
		return n, errStagedLength
	}
	if err == io.EOF {
		err = nil // the next Read checks that nothing follows
	}
	return n, err
}
