package docstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"
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
}

// CreatedUpload is the answer to CreateUpload.
type CreatedUpload struct {
	ID        ID                `json:"id"`
	UploadURL string            `json:"upload_url,omitempty"`
	Method    string            `json:"method"`
	Headers   map[string]string `json:"headers,omitempty"`
	// PartSize and PartCount describe an upload in parts (Method
	// "multipart"), which has no UploadURL: see multipart.go.
	PartSize  int64     `json:"part_size,omitempty"`
	PartCount int       `json:"part_count,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
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
		return CreatedUpload{}, Errorf(op, KindTooLarge, "size %d is over the %d-byte limit of a presigned upload", req.Size, int64(MaxStagedBytes))
	}
	// The data key is generated now and stored wrapped; the ingest only
	// has to unwrap it.
	id := NewID()
	rec, dk, err := s.newPending(ctx, req.Tenant, id, desc, req.Size)
	if err != nil {
		return CreatedUpload{}, E(op, err)
	}
	clear(dk.Plaintext)
	if err := s.meta.Create(ctx, rec); err != nil {
		return CreatedUpload{}, E(op, fmt.Errorf("create record %s: %w", id, err))
	}
	up, err := s.staging.PresignPut(ctx, s.stagingKey(id), desc.contentType, req.Size, PresignTTL)
	if err != nil {
		s.abandon(id, "presign", err)
		return CreatedUpload{}, E(op, fmt.Errorf("presign upload of %s: %w", id, err))
	}
	return CreatedUpload{ID: id, UploadURL: up.URL, Method: up.Method, Headers: up.Headers, ExpiresAt: up.ExpiresAt}, nil
}

// Ingest encrypts a staged document into the blob store, records its size
// and SHA-256, marks it available and deletes the staged plaintext. It is
// driven by storage events, which arrive at least once and in any order:
// a key outside the staging prefix is ignored, a repeated or late event is
// harmless, and a staged object nobody is waiting for is deleted.
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
	id, err := ParseID(rest)
	if err != nil {
		s.log.WarnContext(ctx, "deleting a staged object that names no document", "key", key)
		return s.deleteStaged(ctx, op, key)
	}
	rec, err := s.meta.Get(ctx, id)
	switch {
	case IsNotFound(err):
		s.log.WarnContext(ctx, "deleting a staged object whose document is gone", "document", id)
		return s.deleteStaged(ctx, op, key)
	case err != nil:
		return E(op, fmt.Errorf("get record %s: %w", id, err))
	case rec.Status == StatusAvailable:
		s.log.InfoContext(ctx, "document already ingested; repeated event", "document", id)
		return s.deleteStaged(ctx, op, key)
	}

	src, size, err := s.staging.Open(ctx, key)
	if IsNotFound(err) {
		// Another delivery of the event ingested it meanwhile, or it expired.
		s.log.InfoContext(ctx, "staged object is gone", "document", id)
		return nil
	}
	if err != nil {
		return E(op, fmt.Errorf("open staged %s: %w", key, err))
	}
	defer src.Close()
	if size != rec.Size {
		// The presigned request signs the length, so this is not a client
		// mistake that a retry would fix: drop the upload.
		s.log.ErrorContext(ctx, "staged object has the wrong size; dropping the upload", "document", id, "declared", rec.Size, "staged", size)
		s.abandon(id, "size check", fmt.Errorf("staged %d bytes, declared %d", size, rec.Size))
		return s.deleteStaged(ctx, op, key)
	}
	key32, err := s.keys.Decrypt(ctx, rec.KeyID, rec.WrappedKey, ContextFor(rec.Tenant, rec.ID))
	if err != nil {
		return E(op, fmt.Errorf("unwrap data key of %s: %w", id, err))
	}
	defer clear(key32)
	sum := sha256.New()
	counted := &countingReader{r: io.TeeReader(src, sum)}
	if err := s.putBlob(ctx, rec, key32, counted); err != nil {
		return E(op, err)
	}
	if counted.n != rec.Size {
		s.blobs.Delete(ctx, id)
		return E(op, fmt.Errorf("staged object %s yielded %d bytes, expected %d", key, counted.n, rec.Size))
	}
	digest := hex.EncodeToString(sum.Sum(nil))
	if _, err := s.meta.MarkAvailable(ctx, id, rec.Size, digest); err != nil && KindOf(err) != KindConflict {
		return E(op, fmt.Errorf("mark %s available: %w", id, err))
	}
	s.log.InfoContext(ctx, "document ingested", "document", id, "size", rec.Size)
	return s.deleteStaged(ctx, op, key)
}

func (s *Service) deleteStaged(ctx context.Context, op, key string) error {
	if err := s.staging.Delete(ctx, key); err != nil {
		return E(op, fmt.Errorf("delete staged %s: %w", key, err))
	}
	return nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
