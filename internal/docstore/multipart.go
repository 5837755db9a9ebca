package docstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/imagodocs/imago/internal/api"
)

// Documents in parts (docs/design.md, "Presigned uploads and documents in
// parts"): a document over the multipart threshold is staged as a
// multipart upload whose parts the client PUTs itself, through presigned
// requests, in parallel and resumably. Completing the upload creates the staged object, whose
// ObjectCreated event ingests it exactly as a single PUT's does.

// Limits of uploads in parts: S3's.
const (
	// MinPartSize is the smallest part but the last.
	MinPartSize = api.MinPartSize
	// MaxPartSize is the largest part.
	MaxPartSize = api.MaxPartSize
	// MaxParts is the most parts one upload may have.
	MaxParts = api.MaxParts
	// MaxMultipartBytes is the largest document uploaded in parts: the
	// largest S3 object.
	MaxMultipartBytes = 5 << 40
	// DefaultPartSize is the part size when the client asks for none,
	// before it grows to keep the count within MaxParts.
	DefaultPartSize = 16 << 20
	// MaxPartsPerRequest is how many parts one POST /documents/{id}/parts
	// may presign.
	MaxPartsPerRequest = api.MaxPartsPerRequest
	// DefaultMultipartThreshold is the size over which uploads go in parts.
	DefaultMultipartThreshold = 64 << 20
)

// MethodMultipart is CreatedUpload.Method of an upload in parts.
const MethodMultipart = api.MethodMultipart

// PresignedPart is a presigned request for one part: the API's.
type PresignedPart = api.PresignedPart

// PlanParts returns the part size and count of a document of size bytes:
// requested when it is not zero (it must be MinPartSize to MaxPartSize and
// give at most MaxParts parts), else DefaultPartSize grown, in whole MiB,
// until the count is at most MaxParts. Every part but the last is exactly
// the part size.
func PlanParts(size, requested int64) (partSize int64, count int, err error) {
	const op = "docstore.PlanParts"
	if size <= 0 {
		return 0, 0, E(op, KindInvalid, "size must be a positive number of bytes")
	}
	if size > MaxMultipartBytes {
		return 0, 0, E(op, KindTooLarge, fmt.Sprintf("size %d is over the %d-byte limit of a document", size, int64(MaxMultipartBytes)))
	}
	if requested != 0 {
		if err := checkPartSize(requested); err != nil {
			return 0, 0, err
		}
		partSize = requested
	} else {
		partSize = DefaultPartSize
		if need := ceilDiv(size, MaxParts); need > partSize {
			partSize = ceilDiv(need, 1<<20) << 20
		}
	}
	n := ceilDiv(size, partSize)
	if n > MaxParts {
		return 0, 0, E(op, KindInvalid, fmt.Sprintf("part_size %d gives %d parts; at most %d are allowed (use parts of at least %d bytes)", partSize, n, MaxParts, ceilDiv(size, MaxParts)))
	}
	return partSize, int(n), nil
}

func checkPartSize(n int64) error {
	if n < MinPartSize || n > MaxPartSize {
		return E("docstore.PlanParts", KindInvalid, fmt.Sprintf("part_size must be from %d (5 MiB) to %d (5 GiB) bytes", int64(MinPartSize), int64(MaxPartSize)))
	}
	return nil
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// partCount is how many parts a multipart record has.
func (r Record) partCount() int { return int(ceilDiv(r.Size, r.PartSize)) }

// partSizeOf is the exact size of part number (1-based) of r.
func (r Record) partSizeOf(number int) int64 {
	if number < r.partCount() {
		return r.PartSize
	}
	return r.Size - int64(r.partCount()-1)*r.PartSize
}

// createMultipart records a pending document uploaded in parts: the upload
// is started first, so that the record names it from the start.
func (s *Service) createMultipart(ctx context.Context, op Op, req CreateUploadRequest, desc description) (CreatedUpload, error) {
	if s.multipart == nil {
		return CreatedUpload{}, E(op, KindUnavailable, "this staging area takes no uploads in parts")
	}
	partSize, count, err := PlanParts(req.Size, req.PartSize)
	if err != nil {
		return CreatedUpload{}, err
	}
	id := NewID()
	key := s.stagingKey(id)
	uploadID, err := s.multipart.CreateMultipart(ctx, key, desc.contentType)
	if err != nil {
		return CreatedUpload{}, E(op, fmt.Errorf("create multipart upload of %s: %w", id, err))
	}
	rec, dk, err := s.newPending(ctx, op, req.Tenant, id, desc, req.Size, req.ExpiresIn)
	if err == nil {
		clear(dk.Plaintext)
		rec.UploadID, rec.PartSize = uploadID, partSize
		if err = s.meta.Create(ctx, rec); err != nil {
			err = fmt.Errorf("create record %s: %w", id, err)
		}
	}
	if err != nil {
		detached(ctx, s.log, "abort upload in parts", func(ctx context.Context) error {
			return s.multipart.AbortMultipart(ctx, key, uploadID)
		}, "document", id)
		return CreatedUpload{}, E(op, err)
	}
	return CreatedUpload{ID: id, Method: MethodMultipart, PartSize: partSize, PartCount: count, ExpiresAt: rec.ExpiresAt}, nil
}

// multipartRecord reads the caller's document and checks it is a pending
// upload in parts.
func (s *Service) multipartRecord(ctx context.Context, op Op, tenant Tenant, id ID) (Record, error) {
	rec, err := s.record(ctx, op, tenant, id)
	if err != nil {
		return Record{}, err
	}
	if rec.UploadID == "" {
		return Record{}, E(op, KindConflict, fmt.Sprintf("document %s is not uploaded in parts", id))
	}
	if rec.Status != StatusPending {
		return Record{}, E(op, KindConflict, fmt.Sprintf("document %s is %s: its upload is over", id, rec.Status))
	}
	if s.multipart == nil {
		return Record{}, E(op, KindUnavailable, "this staging area takes no uploads in parts")
	}
	return rec, nil
}

// uploadGone turns the staging area's "no such upload" into the caller's
// conflict: the upload was completed (and awaits its ingest) or aborted.
func uploadGone(op Op, id ID, err error) error {
	if IsNotFound(err) {
		return E(op, KindConflict, fmt.Sprintf("the upload of document %s is no longer in progress (completed or aborted)", id), err)
	}
	return E(op, err)
}

// PresignParts returns presigned requests for the given parts of a pending
// upload in parts.
func (s *Service) PresignParts(ctx context.Context, tenant Tenant, id ID, numbers []int) ([]PresignedPart, error) {
	const op = "docstore.PresignParts"
	if len(numbers) == 0 || len(numbers) > MaxPartsPerRequest {
		return nil, E(op, KindInvalid, fmt.Sprintf("numbers must name from 1 to %d parts", MaxPartsPerRequest))
	}
	rec, err := s.multipartRecord(ctx, op, tenant, id)
	if err != nil {
		return nil, err
	}
	count := rec.partCount()
	for _, n := range numbers {
		if n < 1 || n > count {
			return nil, E(op, KindInvalid, fmt.Sprintf("part number %d is not from 1 to %d", n, count))
		}
	}
	out := make([]PresignedPart, 0, len(numbers))
	for _, n := range numbers {
		up, err := s.multipart.PresignPart(ctx, s.stagingKey(id), rec.UploadID, n, rec.partSizeOf(n), PresignTTL)
		if err != nil {
			return nil, E(op, fmt.Errorf("presign part %d of %s: %w", n, id, err))
		}
		out = append(out, PresignedPart{Number: n, URL: up.URL, Method: up.Method, Headers: up.Headers, ExpiresAt: up.ExpiresAt})
	}
	return out, nil
}

// ListParts returns the parts of a pending upload received so far.
func (s *Service) ListParts(ctx context.Context, tenant Tenant, id ID) ([]Part, error) {
	const op = "docstore.ListParts"
	rec, err := s.multipartRecord(ctx, op, tenant, id)
	if err != nil {
		return nil, err
	}
	parts, err := s.multipart.ListParts(ctx, s.stagingKey(id), rec.UploadID)
	if err != nil {
		return nil, uploadGone(op, id, fmt.Errorf("list parts of %s: %w", id, err))
	}
	if parts == nil {
		parts = []Part{}
	}
	return parts, nil
}

// CompleteUpload completes a pending upload in parts from the parts the
// client names, every one in order, each with the ETag its PUT answered.
// They are checked against what the staging area received before it is
// asked to assemble them. The document stays pending until the staged
// object's ObjectCreated event ingests it.
func (s *Service) CompleteUpload(ctx context.Context, tenant Tenant, id ID, parts []Part) (Document, error) {
	const op = "docstore.CompleteUpload"
	rec, err := s.multipartRecord(ctx, op, tenant, id)
	if err != nil {
		return Document{}, err
	}
	count := rec.partCount()
	if len(parts) == 0 {
		return Document{}, E(op, KindInvalid, fmt.Sprintf("parts must list all %d parts, in order", count))
	}
	seen := make(map[int]bool, len(parts))
	for i, p := range parts {
		switch {
		case p.Number < 1 || p.Number > count:
			return Document{}, E(op, KindInvalid, fmt.Sprintf("part number %d is not from 1 to %d", p.Number, count))
		case seen[p.Number]:
			return Document{}, E(op, KindInvalid, fmt.Sprintf("part %d is listed twice", p.Number))
		case i > 0 && p.Number < parts[i-1].Number:
			return Document{}, E(op, KindInvalid, fmt.Sprintf("part %d is out of order: parts must be listed by ascending number", p.Number))
		case strings.Trim(p.ETag, `"`) == "":
			return Document{}, E(op, KindInvalid, fmt.Sprintf("part %d has no etag", p.Number))
		}
		seen[p.Number] = true
	}
	// Ascending, without repeats and within 1…count: all are there exactly
	// when there are count of them.
	for n := 1; n <= count; n++ {
		if !seen[n] {
			return Document{}, E(op, KindInvalid, fmt.Sprintf("part %d is missing: the upload has %d parts", n, count))
		}
	}

	key := s.stagingKey(id)
	received, err := s.multipart.ListParts(ctx, key, rec.UploadID)
	if err != nil {
		return Document{}, uploadGone(op, id, fmt.Errorf("list parts of %s: %w", id, err))
	}
	byNumber := make(map[int]Part, len(received))
	for _, p := range received {
		byNumber[p.Number] = p
	}
	final := make([]Part, len(parts))
	for i, p := range parts {
		got, ok := byNumber[p.Number]
		switch {
		case !ok:
			return Document{}, E(op, KindInvalid, fmt.Sprintf("part %d was not uploaded", p.Number))
		case strings.Trim(got.ETag, `"`) != strings.Trim(p.ETag, `"`):
			return Document{}, E(op, KindInvalid, fmt.Sprintf("part %d's etag does not match the part uploaded", p.Number))
		case got.Size != rec.partSizeOf(p.Number):
			return Document{}, E(op, KindInvalid, fmt.Sprintf("part %d is %d bytes, not %d", p.Number, got.Size, rec.partSizeOf(p.Number)))
		}
		final[i] = got
	}
	if err := s.multipart.CompleteMultipart(ctx, key, rec.UploadID, final); err != nil {
		return Document{}, uploadGone(op, id, fmt.Errorf("complete upload of %s: %w", id, err))
	}
	s.log.InfoContext(ctx, "upload in parts completed", "document", id, "parts", count, "size", rec.Size)
	return rec.Document, nil
}

// discardStaged removes what a document has in the staging area: its
// upload in parts, if any, and its staged object. Either may be gone
// already: that is no error.
func (s *Service) discardStaged(ctx context.Context, rec Record) error {
	key := s.stagingKey(rec.ID)
	if rec.UploadID != "" && s.multipart != nil {
		if err := s.multipart.AbortMultipart(ctx, key, rec.UploadID); err != nil && !IsNotFound(err) {
			return fmt.Errorf("abort the upload in parts of %s: %w", rec.ID, err)
		}
	}
	return s.staging.Delete(ctx, key)
}
