package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/imagodocs/imago/internal/docstore"
)

// putMultipart stores a blob larger than a part as a multipart upload, in
// the steps of aws-sdk-go-v2's feature/s3/manager uploader: create the
// upload, send its parts (read from r in turn, sent concurrently), complete
// it; any failure after the creation aborts it.
func (s *Store) putMultipart(ctx context.Context, op docstore.Op, id docstore.ID, r io.Reader, size int64) (err error) {
	u := &multipartUpload{s: s, op: op, id: id, r: r, size: size, partSize: multipartPartSize(s.partSize, size)}
	if err := u.create(ctx); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = u.abort(ctx, err)
		}
	}()

	// Parts go out under uploadCtx, which the first failure cancels.
	uploadCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := u.sendParts(uploadCtx, cancel); err != nil {
		return err
	}
	return u.complete(uploadCtx)
}

// multipartPartSize is the part size of a blob of size bytes: the store's,
// or more when that would take more than S3's maxParts parts.
func multipartPartSize(partSize, size int64) int64 {
	if size > partSize*maxParts {
		// Round up to whole MiB so that the parts stay within the limit.
		partSize = ((size+maxParts-1)/maxParts + 1<<20 - 1) &^ (1<<20 - 1)
	}
	return partSize
}

// multipartUpload is one putMultipart under way.
type multipartUpload struct {
	s        *Store
	op       docstore.Op
	id       docstore.ID
	r        io.Reader
	size     int64
	partSize int64
	uploadID *string

	// Set by sendParts. cancel ends the context the parts go out under.
	cancel   context.CancelFunc
	mu       sync.Mutex
	firstErr error
	wg       sync.WaitGroup
	parts    []types.CompletedPart
	buffers  chan []byte
}

// create starts the multipart upload.
func (u *multipartUpload) create(ctx context.Context) error {
	created, err := u.s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:            aws.String(u.s.bucket),
		Key:               u.s.key(u.id),
		ContentType:       aws.String(contentType),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
	})
	if err != nil {
		return docstore.E(u.op, kindOf(err), fmt.Errorf("create multipart upload of %s: %w", u.id, err))
	}
	u.uploadID = created.UploadId
	return nil
}

// abort aborts the upload after err, and returns err with the abort's own
// failure if any.
func (u *multipartUpload) abort(ctx context.Context, err error) error {
	// The caller's context may be what failed; the abort must still go
	// out, or the parts would linger (and be billed) until a lifecycle
	// rule removes them.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	if _, aerr := u.s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(u.s.bucket), Key: u.s.key(u.id), UploadId: u.uploadID,
	}); aerr != nil {
		err = errors.Join(err, fmt.Errorf("abort multipart upload of %s: %w", u.id, aerr))
	}
	return err
}

// sendParts reads the parts from r one after the other and uploads them
// concurrently, at most the store's concurrency at a time (one buffer
// each), until all are sent or the first failure, which cancels ctx.
func (u *multipartUpload) sendParts(ctx context.Context, cancel context.CancelFunc) error {
	u.cancel = cancel
	u.parts = make([]types.CompletedPart, int((u.size+u.partSize-1)/u.partSize))
	u.buffers = make(chan []byte, u.s.concurrency)
	for range u.s.concurrency {
		u.buffers <- nil // allocated on first use: a 6 MiB blob needs two parts, not concurrency
	}

	var read int64
	for n := int32(1); read < u.size; n++ {
		buf, err := u.readPart(ctx, read)
		if err != nil {
			u.fail(err)
			break
		}
		read += int64(len(buf))
		u.wg.Go(func() { u.sendPart(ctx, n, buf) })
	}
	u.wg.Wait()
	if u.firstErr != nil {
		if e := (*docstore.Error)(nil); !errors.As(u.firstErr, &e) {
			// The context ended (the caller's, not ours: we only cancel
			// after recording a failure).
			return docstore.E(u.op, kindOf(u.firstErr), fmt.Errorf("put %s: %w", u.id, u.firstErr))
		}
		return u.firstErr
	}
	return nil
}

// readPart takes a free buffer, once one is back, and reads into it the
// part that starts at offset read.
func (u *multipartUpload) readPart(ctx context.Context, read int64) ([]byte, error) {
	var buf []byte
	select {
	case buf = <-u.buffers:
	case <-ctx.Done():
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	partLen := min(u.partSize, u.size-read)
	if int64(cap(buf)) < partLen {
		buf = make([]byte, u.partSize)
	}
	buf = buf[:partLen]
	if _, err := io.ReadFull(u.r, buf); err != nil {
		return nil, readError(u.op, u.id, err, read, u.size)
	}
	return buf, nil
}

// sendPart uploads part n and hands its buffer back.
func (u *multipartUpload) sendPart(ctx context.Context, n int32, buf []byte) {
	defer func() { u.buffers <- buf }()
	sum := checksum(buf)
	out, err := u.s.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket:            aws.String(u.s.bucket),
		Key:               u.s.key(u.id),
		UploadId:          u.uploadID,
		PartNumber:        aws.Int32(n),
		Body:              bytes.NewReader(buf),
		ContentLength:     aws.Int64(int64(len(buf))),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		ChecksumSHA256:    sum,
	})
	if err != nil {
		u.fail(docstore.E(u.op, kindOf(err), fmt.Errorf("upload part %d of %s: %w", n, u.id, err)))
		return
	}
	u.parts[n-1] = types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(n), ChecksumSHA256: sum}
}

// fail records the upload's first failure and cancels the parts in flight.
func (u *multipartUpload) fail(err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.firstErr == nil {
		u.firstErr = err
		u.cancel()
	}
}

// complete assembles the uploaded parts into the blob.
func (u *multipartUpload) complete(ctx context.Context) error {
	_, err := u.s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(u.s.bucket),
		Key:             u.s.key(u.id),
		UploadId:        u.uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: u.parts},
		MpuObjectSize:   aws.Int64(u.size),
	})
	if err != nil {
		return docstore.E(u.op, kindOf(err), fmt.Errorf("complete multipart upload of %s: %w", u.id, err))
	}
	return nil
}
