package s3store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/s3store"
	"github.com/imagodocs/imago/internal/storetest"
	"github.com/imagodocs/imago/internal/testenv"
)

// localS3 returns a client of the local S3 server and its bucket, or skips.
func localS3(t *testing.T) (*s3.Client, string) {
	t.Helper()
	bucket := testenv.Require(t, "IMAGO_BUCKET")["IMAGO_BUCKET"]
	return s3store.NewClient(testenv.AWSConfig(t, "S3")), bucket
}

func TestS3Store_Contract(t *testing.T) {
	client, bucket := localS3(t)
	storetest.TestBlobStore(t, func(t *testing.T) docstore.BlobStore {
		return s3store.New(client, bucket)
	})
}

// The contract again with one part in memory at a time and larger parts:
// the sequential path and a part size that is not the minimum.
func TestS3Store_ContractSequentialLargeParts(t *testing.T) {
	client, bucket := localS3(t)
	storetest.TestBlobStore(t, func(t *testing.T) docstore.BlobStore {
		return s3store.New(client, bucket, s3store.WithConcurrency(1), s3store.WithPartSize(6<<20))
	})
}

func TestS3Store_ObjectLayoutAndChecksums(t *testing.T) {
	client, bucket := localS3(t)
	store := s3store.New(client, bucket)
	ctx := t.Context()

	for _, c := range []struct {
		name  string
		size  int
		parts int // 0: a single PutObject
	}{
		{"single PutObject", 1 << 20, 0},
		{"multipart", 11 << 20, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			id := docstore.NewID()
			data := make([]byte, c.size)
			rand.Read(data)
			if err := store.Put(ctx, id, struct{ io.Reader }{bytes.NewReader(data)}, int64(len(data))); err != nil {
				t.Fatalf("Put: %v", err)
			}
			t.Cleanup(func() { store.Delete(context.Background(), id) })
			head, err := client.HeadObject(ctx, &s3.HeadObjectInput{
				Bucket: aws.String(bucket), Key: aws.String("blobs/" + string(id)), ChecksumMode: types.ChecksumModeEnabled,
			})
			if err != nil {
				t.Fatalf("HeadObject blobs/%s: %v", id, err)
			}
			if got := aws.ToInt64(head.ContentLength); got != int64(c.size) {
				t.Errorf("object size %d, want %d", got, c.size)
			}
			sum := aws.ToString(head.ChecksumSHA256)
			t.Logf("stored SHA-256 checksum %q (type %q)", sum, head.ChecksumType)
			switch {
			case sum == "":
				t.Errorf("the object has no SHA-256 checksum")
			case c.parts == 0 && strings.Contains(sum, "-"):
				t.Errorf("single-request object has composite checksum %q", sum)
			}
		})
	}
}

func TestS3Store_FailedMultipartPutLeavesNoUpload(t *testing.T) {
	client, bucket := localS3(t)
	store := s3store.New(client, bucket)
	id := docstore.NewID()
	data := make([]byte, 12<<20)
	r := io.MultiReader(bytes.NewReader(data[:8<<20]), failingReader{})
	if err := store.Put(t.Context(), id, r, int64(len(data))); err == nil {
		t.Fatal("Put from a failing reader succeeded")
	}
	out, err := client.ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{
		Bucket: aws.String(bucket), Prefix: aws.String("blobs/" + string(id)),
	})
	if err != nil {
		t.Fatalf("ListMultipartUploads: %v", err)
	}
	if len(out.Uploads) != 0 {
		t.Fatalf("%d multipart uploads left after the failed Put", len(out.Uploads))
	}
}

func TestS3Store_ServerRejectsWrongChecksum(t *testing.T) {
	// What the checksums buy: the server refuses a body that does not
	// match, so a corrupted upload never lands.
	client, bucket := localS3(t)
	key := "blobs/" + string(docstore.NewID())
	_, err := client.PutObject(t.Context(), &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key),
		Body:              bytes.NewReader([]byte("the body")),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
		ChecksumSHA256:    aws.String("n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="), // SHA-256 of "test"
	})
	if err == nil {
		client.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		t.Fatal("the server accepted a body whose SHA-256 checksum does not match")
	}
	t.Logf("rejected as expected: %v", err)
}

func TestS3Store_MissingBucketIsInternal(t *testing.T) {
	client, _ := localS3(t)
	store := s3store.New(client, "imago-no-such-bucket-"+strings.ToLower(string(docstore.NewID()[:8])))
	_, err := store.Get(t.Context(), docstore.NewID(), 0, -1)
	if k := docstore.KindOf(err); k != docstore.KindInternal {
		t.Fatalf("Get from a missing bucket: a %s error (%v), want internal (not not_found: that would hide a misconfiguration)", k, err)
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("reader failed on purpose") }

// TestS3Store_PutMemoryBounded streams a blob many times the part size and
// checks that Put allocates a small multiple of the part size, not the
// blob: parts are buffered and reused, never the whole stream.
func TestS3Store_PutMemoryBounded(t *testing.T) {
	client, bucket := localS3(t)
	store := s3store.New(client, bucket)
	const size = 64 << 20
	id := docstore.NewID()
	t.Cleanup(func() { store.Delete(context.Background(), id) })

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	if err := store.Put(t.Context(), id, io.LimitReader(pattern{}, size), size); err != nil {
		t.Fatalf("Put: %v", err)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("Put of %d MiB allocated %.1f MiB in all", size>>20, float64(alloc)/(1<<20))
	if alloc > size/2 {
		t.Fatalf("Put of %d MiB allocated %d MiB: the stream is being buffered", size>>20, alloc>>20)
	}
	head, err := client.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("blobs/" + string(id))})
	if err != nil || aws.ToInt64(head.ContentLength) != size {
		t.Fatalf("HeadObject: %v, size %d", err, aws.ToInt64(head.ContentLength))
	}
}

// pattern is an endless, unseekable stream of bytes.
type pattern struct{}

func (pattern) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i * 31)
	}
	return len(p), nil
}
