package s3store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/imagodocs/imago/internal/docstore"
)

// MultipartAPI is the part of the S3 client that uploads in parts to the
// staging prefix use.
type MultipartAPI interface {
	CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	ListParts(ctx context.Context, in *s3.ListPartsInput, optFns ...func(*s3.Options)) (*s3.ListPartsOutput, error)
	CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
}

// PartPresigner is the part of s3.PresignClient that presigns parts.
type PartPresigner interface {
	PresignUploadPart(ctx context.Context, in *s3.UploadPartInput, optFns ...func(*s3.PresignOptions)) (*v4.PresignedHTTPRequest, error)
}

var (
	_ MultipartAPI              = (*s3.Client)(nil)
	_ PartPresigner             = (*s3.PresignClient)(nil)
	_ docstore.MultipartStaging = (*Staging)(nil)
)

// CreateMultipart starts an S3 multipart upload of the object at key.
func (s *Staging) CreateMultipart(ctx context.Context, key, contentType string) (string, error) {
	const op = "s3store.CreateMultipart"
	if err := s.check(op, key); err != nil {
		return "", err
	}
	out, err := s.multipart.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: aws.String(s.bucket), Key: aws.String(key), ContentType: aws.String(contentType),
	})
	if err != nil {
		return "", docstore.E(op, kindOf(err), fmt.Errorf("create multipart upload %s: %w", key, err))
	}
	return aws.ToString(out.UploadId), nil
}

// PresignPart signs an UploadPart of exactly size bytes: the length is a
// signed header, so S3 refuses a part of another size.
func (s *Staging) PresignPart(ctx context.Context, key, uploadID string, number int, size int64, ttl time.Duration) (docstore.PresignedUpload, error) {
	const op = "s3store.PresignPart"
	if err := s.check(op, key); err != nil {
		return docstore.PresignedUpload{}, err
	}
	req, err := s.partPresign.PresignUploadPart(ctx, &s3.UploadPartInput{
		Bucket: aws.String(s.bucket), Key: aws.String(key), UploadId: aws.String(uploadID),
		PartNumber: aws.Int32(int32(number)), ContentLength: aws.Int64(size),
	}, s3.WithPresignExpires(ttl))
	if err != nil {
		return docstore.PresignedUpload{}, docstore.E(op, kindOf(err), fmt.Errorf("presign part %d of %s: %w", number, key, err))
	}
	return docstore.PresignedUpload{URL: req.URL, Method: req.Method, Headers: clientHeaders(req),
		ExpiresAt: time.Now().Add(ttl).UTC().Truncate(time.Second)}, nil
}

// clientHeaders are the signed headers a client must send, but Host, which
// its HTTP library sets from the URL.
func clientHeaders(req *v4.PresignedHTTPRequest) map[string]string {
	headers := map[string]string{}
	for name, values := range req.SignedHeader {
		if strings.EqualFold(name, "host") {
			continue
		}
		headers[name] = strings.Join(values, ",")
	}
	return headers
}

// ListParts returns every part S3 has received, following ListParts'
// pages to the end.
func (s *Staging) ListParts(ctx context.Context, key, uploadID string) ([]docstore.Part, error) {
	const op = "s3store.ListParts"
	if err := s.check(op, key); err != nil {
		return nil, err
	}
	var parts []docstore.Part
	in := &s3.ListPartsInput{Bucket: aws.String(s.bucket), Key: aws.String(key), UploadId: aws.String(uploadID)}
	for {
		out, err := s.multipart.ListParts(ctx, in)
		if err != nil {
			return nil, docstore.E(op, kindOf(err), fmt.Errorf("list parts of %s: %w", key, err))
		}
		for _, p := range out.Parts {
			parts = append(parts, docstore.Part{Number: int(aws.ToInt32(p.PartNumber)), Size: aws.ToInt64(p.Size), ETag: aws.ToString(p.ETag)})
		}
		next := aws.ToString(out.NextPartNumberMarker)
		if !aws.ToBool(out.IsTruncated) || next == "" || next == aws.ToString(in.PartNumberMarker) {
			return parts, nil
		}
		in.PartNumberMarker = aws.String(next)
	}
}

// CompleteMultipart completes the upload from the given parts, in order.
func (s *Staging) CompleteMultipart(ctx context.Context, key, uploadID string, parts []docstore.Part) error {
	const op = "s3store.CompleteMultipart"
	if err := s.check(op, key); err != nil {
		return err
	}
	completed := make([]types.CompletedPart, len(parts))
	for i, p := range parts {
		completed[i] = types.CompletedPart{PartNumber: aws.Int32(int32(p.Number)), ETag: aws.String(p.ETag)}
	}
	_, err := s.multipart.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(s.bucket), Key: aws.String(key), UploadId: aws.String(uploadID),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: completed},
	})
	if err != nil {
		return docstore.E(op, kindOf(err), fmt.Errorf("complete multipart upload of %s: %w", key, err))
	}
	return nil
}

// AbortMultipart aborts the upload: S3 discards every part received.
func (s *Staging) AbortMultipart(ctx context.Context, key, uploadID string) error {
	const op = "s3store.AbortMultipart"
	if err := s.check(op, key); err != nil {
		return err
	}
	_, err := s.multipart.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(s.bucket), Key: aws.String(key), UploadId: aws.String(uploadID),
	})
	if err != nil && kindOf(err) != docstore.KindNotFound {
		return docstore.E(op, kindOf(err), fmt.Errorf("abort multipart upload of %s: %w", key, err))
	}
	return nil
}
