// Package s3store keeps the sealed blobs of documents in an S3 bucket, one
// object per document under blobs/{id}.
//
// Put receives the blob from the envelope writer as an unseekable stream of
// a known size, and must neither hold a multi-GiB document in memory nor
// send an unchecked body. The SDK does not help with such a body over plain
// HTTP (the local test servers): it can only checksum an unseekable body as
// an aws-chunked trailer, which it does over TLS only, and fails otherwise.
// So Put buffers: a blob up to the part size (5 MiB by default, which covers
// the typical 2–3 MB document) goes in one PutObject; a larger one in a
// multipart upload of part-size parts, at most two of them in memory at once
// (one being read from the stream while the previous one is sent). Every
// request carries the SHA-256 of exactly the bytes it sends
// (x-amz-checksum-sha256), which S3 verifies before it stores anything, so
// memory stays at a few MiB and every byte is checked on the way in. Reads
// are checked by the blob format itself (AES-GCM per segment).
//
// A Put that fails, whether the stream or S3 failed or the context ended,
// leaves nothing at the key: the single PutObject is only sent once the
// whole body has been read, and a multipart upload is aborted (its parts are
// invisible until completed). Overwriting a blob is atomic in S3: a reader
// sees the old blob or the new one.
//
// Get maps (offset, length) to a `Range: bytes=a-b` request, so a ranged
// download reads only the segments it needs. Errors are classified for the
// Service: a missing object (NoSuchKey, or 404 on HEAD) is KindNotFound;
// throttling (SlowDown, 503), 5xx, timeouts and network failures are
// KindUnavailable; anything else — a missing bucket, access denied — is
// KindInternal, a configuration problem no retry fixes.
package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/imagodocs/imago/internal/docstore"
)

// S3API is the part of the S3 client that Store uses; *s3.Client
// implements it.
type S3API interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, optFns ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
	CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPart(ctx context.Context, in *s3.UploadPartInput, optFns ...func(*s3.Options)) (*s3.UploadPartOutput, error)
	CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
}

var (
	_ S3API              = (*s3.Client)(nil)
	_ docstore.BlobStore = (*Store)(nil)
)

const (
	// KeyPrefix is where blobs live in the bucket; the staging prefix of
	// presigned uploads is elsewhere.
	KeyPrefix = "blobs/"

	// MinPartSize is S3's smallest part (but the last) of a multipart upload.
	MinPartSize = 5 << 20
	// DefaultPartSize is the part size, and the largest blob sent in a
	// single PutObject.
	DefaultPartSize = MinPartSize
	// DefaultConcurrency is how many parts are in memory at once: one read
	// from the stream while one is sent.
	DefaultConcurrency = 2

	maxParts     = 10_000 // S3's limit on parts per upload
	abortTimeout = 30 * time.Second
	contentType  = "application/octet-stream"
)

// Store is a docstore.BlobStore on an S3 bucket.
type Store struct {
	client      S3API
	bucket      string
	partSize    int64
	concurrency int
}

// Option configures a Store: only the tests do (export_test.go), with
// smaller parts; a deployment keeps the defaults.
type Option func(*Store)

// New returns a Store keeping blobs in bucket through client.
func New(client S3API, bucket string, opts ...Option) *Store {
	s := &Store{client: client, bucket: bucket, partSize: DefaultPartSize, concurrency: DefaultConcurrency}
	for _, o := range opts {
		o(s)
	}
	return s
}

// NewClient builds the S3 client from cfg. With an endpoint override
// (AWS_ENDPOINT_URL_S3, or cfg.BaseEndpoint) it uses path-style addressing,
// which S3-compatible servers need (the bucket is not a DNS name there).
// optFns apply after that.
func NewClient(cfg aws.Config, optFns ...func(*s3.Options)) *s3.Client {
	fns := append([]func(*s3.Options){func(o *s3.Options) {
		if o.BaseEndpoint != nil {
			o.UsePathStyle = true
		}
		// Ranged and multipart GETs carry no whole-object checksum to
		// validate; that is expected, not worth a log line each time.
		o.DisableLogOutputChecksumValidationSkipped = true
	}}, optFns...)
	return s3.NewFromConfig(cfg, fns...)
}

func (s *Store) key(id docstore.ID) *string { return aws.String(KeyPrefix + string(id)) }

// Put stores exactly size bytes from r as the blob of id.
func (s *Store) Put(ctx context.Context, id docstore.ID, r io.Reader, size int64) error {
	const op = "s3store.Put"
	if size < 0 {
		return docstore.E(op, docstore.KindInvalid, fmt.Sprintf("negative blob size %d", size))
	}
	if size <= s.partSize {
		return s.putSingle(ctx, op, id, r, size)
	}
	return s.putMultipart(ctx, op, id, r, size)
}

func (s *Store) putSingle(ctx context.Context, op docstore.Op, id docstore.ID, r io.Reader, size int64) error {
	buf := make([]byte, size)
	if _, err := io.ReadFull(r, buf); err != nil {
		return readError(op, id, err, 0, size)
	}
	if err := ctx.Err(); err != nil {
		return docstore.E(op, kindOf(err), err)
	}
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:            aws.String(s.bucket),
		Key:               s.key(id),
		Body:              bytes.NewReader(buf),
		ContentLength:     aws.Int64(size),
		ContentType:       aws.String(contentType),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		ChecksumSHA256:    checksum(buf),
	})
	if err != nil {
		return docstore.E(op, kindOf(err), fmt.Errorf("put %s: %w", id, err))
	}
	return nil
}

// Get returns bytes [offset, offset+length) of the blob of id, or from
// offset to the end when length < 0.
func (s *Store) Get(ctx context.Context, id docstore.ID, offset, length int64) (docstore.BlobReader, error) {
	const op = "s3store.Get"
	if offset < 0 {
		return nil, docstore.E(op, docstore.KindBadRange, fmt.Sprintf("negative offset %d", offset))
	}
	if length == 0 {
		// No byte range can ask for nothing; still report a missing blob.
		head, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: s.key(id)})
		if err != nil {
			return nil, docstore.E(op, kindOf(err), fmt.Errorf("head %s: %w", id, err))
		}
		if head.ContentLength == nil {
			return nil, docstore.E(op, fmt.Errorf("head %s: no Content-Length", id))
		}
		return &body{rc: io.NopCloser(bytes.NewReader(nil)), id: id, size: *head.ContentLength}, nil
	}
	in := &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: s.key(id)}
	switch {
	case length > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", offset, offset+length-1))
	case offset > 0:
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", offset))
	}
	// (offset 0 to the end sends no Range: an empty blob has no byte 0.)
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		return nil, docstore.E(op, kindOf(err), fmt.Errorf("get %s (offset %d, length %d): %w", id, offset, length, err))
	}
	size, err := objectSize(out)
	if err != nil {
		out.Body.Close()
		return nil, docstore.E(op, fmt.Errorf("get %s: %w", id, err))
	}
	return &body{rc: out.Body, id: id, size: size}, nil
}

// objectSize is the size of the whole object a GetObject read part of:
// the total of its Content-Range ("bytes 0-99/1234"), or, when the whole
// object was asked for, its Content-Length.
func objectSize(out *s3.GetObjectOutput) (int64, error) {
	if cr := aws.ToString(out.ContentRange); cr != "" {
		_, total, ok := strings.Cut(cr, "/")
		n, err := strconv.ParseInt(total, 10, 64)
		if !ok || err != nil || n < 0 {
			return 0, fmt.Errorf("Content-Range %q names no object size", cr)
		}
		return n, nil
	}
	if out.ContentLength == nil {
		return 0, errors.New("neither Content-Range nor Content-Length")
	}
	return *out.ContentLength, nil
}

// Delete removes the blob of id; S3 answers a delete of a missing key with
// success.
func (s *Store) Delete(ctx context.Context, id docstore.ID) error {
	const op = "s3store.Delete"
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: s.key(id)})
	if err != nil && kindOf(err) != docstore.KindNotFound {
		return docstore.E(op, kindOf(err), fmt.Errorf("delete %s: %w", id, err))
	}
	return nil
}

// body classifies errors met while streaming a GetObject body: a connection
// that drops mid-body is KindUnavailable, like one that fails up front.
type body struct {
	rc   io.ReadCloser
	id   docstore.ID
	size int64 // the whole object's
}

func (b *body) Size() int64 { return b.size }

func (b *body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		kind := kindOf(err)
		if kind == docstore.KindInternal && errors.Is(err, io.ErrUnexpectedEOF) {
			kind = docstore.KindUnavailable
		}
		err = docstore.E("s3store.Get", kind, fmt.Errorf("read %s: %w", b.id, err))
	}
	return n, err
}

func (b *body) Close() error { return b.rc.Close() }

// readError wraps a failure of the caller's stream; it keeps the stream's
// own kind (the envelope writer's or the upload's).
func readError(op docstore.Op, id docstore.ID, err error, at, size int64) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		err = fmt.Errorf("blob of %s ended before its %d bytes: %w", id, size, io.ErrUnexpectedEOF)
	}
	return docstore.E(op, fmt.Errorf("read blob of %s at byte %d: %w", id, at, err))
}

// checksum is the x-amz-checksum-sha256 value of b.
func checksum(b []byte) *string {
	sum := sha256.Sum256(b)
	return aws.String(base64.StdEncoding.EncodeToString(sum[:]))
}
