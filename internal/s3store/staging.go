package s3store

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/imagodocs/imago/internal/docstore"
)

// StagingAPI is the part of the S3 client that Staging uses.
type StagingAPI interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
}

// Presigner is the part of s3.PresignClient that Staging uses.
type Presigner interface {
	PresignPutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.PresignOptions)) (*v4.PresignedHTTPRequest, error)
}

var (
	_ StagingAPI       = (*s3.Client)(nil)
	_ Presigner        = (*s3.PresignClient)(nil)
	_ docstore.Staging = (*Staging)(nil)
)

// Staging is the bucket's staging prefix, where clients PUT large documents
// through presigned URLs. The bucket's lifecycle rule expires what the
// ingest never picked up; the ingest deletes what it did.
type Staging struct {
	client  StagingAPI
	presign Presigner
	bucket  string
	prefix  string

	// Uploads in parts (multipart.go).
	multipart   MultipartAPI
	partPresign PartPresigner
}

// NewStaging returns the staging area under prefix in bucket.
func NewStaging(client *s3.Client, bucket, prefix string) *Staging {
	presign := s3.NewPresignClient(client)
	return &Staging{client: client, presign: presign, bucket: bucket, prefix: prefix,
		multipart: client, partPresign: presign}
}

func (s *Staging) check(op docstore.Op, key string) error {
	if !strings.HasPrefix(key, s.prefix) || len(key) == len(s.prefix) {
		return docstore.E(op, docstore.KindInvalid, fmt.Sprintf("key %q is not under the staging prefix %q", key, s.prefix))
	}
	return nil
}

// PresignPut signs a PUT of exactly size bytes of contentType to key. The
// length and the content type are signed headers: S3 refuses a body of
// another size, so a client cannot stage more than it announced.
func (s *Staging) PresignPut(ctx context.Context, key, contentType string, size int64, ttl time.Duration) (docstore.PresignedUpload, error) {
	const op = "s3store.PresignPut"
	if err := s.check(op, key); err != nil {
		return docstore.PresignedUpload{}, err
	}
	req, err := s.presign.PresignPutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(s.bucket), Key: aws.String(key),
		ContentLength: aws.Int64(size), ContentType: aws.String(contentType),
	}, s3.WithPresignExpires(ttl))
	if err != nil {
		return docstore.PresignedUpload{}, docstore.E(op, kindOf(err), fmt.Errorf("presign PUT %s: %w", key, err))
	}
	return docstore.PresignedUpload{URL: req.URL, Method: req.Method, Headers: clientHeaders(req),
		ExpiresAt: time.Now().Add(ttl).UTC().Truncate(time.Second)}, nil
}

// Open streams the staged object at key.
func (s *Staging) Open(ctx context.Context, key string) (io.ReadCloser, int64, error) {
	const op = "s3store.Staging.Open"
	if err := s.check(op, key); err != nil {
		return nil, 0, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		return nil, 0, docstore.E(op, kindOf(err), fmt.Errorf("get staged %s: %w", key, err))
	}
	return out.Body, aws.ToInt64(out.ContentLength), nil
}

// Delete removes the staged object at key.
func (s *Staging) Delete(ctx context.Context, key string) error {
	const op = "s3store.Staging.Delete"
	if err := s.check(op, key); err != nil {
		return err
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil && kindOf(err) != docstore.KindNotFound {
		return docstore.E(op, kindOf(err), fmt.Errorf("delete staged %s: %w", key, err))
	}
	return nil
}
