package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/testenv"
)

// fakeS3 records what Store sends. It checks the logic (how a stream is cut
// into requests, what is aborted); the contract test against the local S3
// server is what shows the store works.
type fakeS3 struct {
	mu        sync.Mutex
	puts      []*s3.PutObjectInput
	parts     map[int32][]byte
	completed *types.CompletedMultipartUpload
	aborted   int
	ranges    []string
	failPart  int32 // UploadPart of this part number fails with partErr
	partErr   error

	inFlight, maxInFlight atomic.Int32
}

func (f *fakeS3) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts = append(f.puts, in)
	return &s3.PutObjectOutput{}, nil
}

func (f *fakeS3) GetObject(_ context.Context, in *s3.GetObjectInput, _ ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ranges = append(f.ranges, aws.ToString(in.Range))
	// Every object is fakeObjectSize bytes; the answer carries the headers
	// S3 would, not the bytes.
	out := &s3.GetObjectOutput{Body: io.NopCloser(bytes.NewReader(nil)), ContentLength: aws.Int64(fakeObjectSize)}
	if r, ok := strings.CutPrefix(aws.ToString(in.Range), "bytes="); ok {
		first, last, _ := strings.Cut(r, "-")
		if last == "" {
			last = strconv.Itoa(fakeObjectSize - 1)
		}
		out.ContentRange = aws.String(fmt.Sprintf("bytes %s-%s/%d", first, last, fakeObjectSize))
	}
	return out, nil
}

const fakeObjectSize = 100

func (f *fakeS3) HeadObject(context.Context, *s3.HeadObjectInput, ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	return &s3.HeadObjectOutput{ContentLength: aws.Int64(fakeObjectSize)}, nil
}

func (f *fakeS3) DeleteObject(context.Context, *s3.DeleteObjectInput, ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	return &s3.DeleteObjectOutput{}, nil
}

func (f *fakeS3) CreateMultipartUpload(_ context.Context, in *s3.CreateMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	if in.ChecksumAlgorithm != types.ChecksumAlgorithmSha256 {
		return nil, fmt.Errorf("checksum algorithm %q", in.ChecksumAlgorithm)
	}
	f.mu.Lock()
	f.parts = map[int32][]byte{}
	f.mu.Unlock()
	return &s3.CreateMultipartUploadOutput{UploadId: aws.String("upload-1")}, nil
}

func (f *fakeS3) UploadPart(_ context.Context, in *s3.UploadPartInput, _ ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		m := f.maxInFlight.Load()
		if n <= m || f.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(5 * time.Millisecond) // let the reader get ahead if it can
	body, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	if got, want := aws.ToString(in.ChecksumSHA256), sum64(body); got != want {
		return nil, fmt.Errorf("part %d: checksum %s, want %s", aws.ToInt32(in.PartNumber), got, want)
	}
	if aws.ToInt64(in.ContentLength) != int64(len(body)) {
		return nil, fmt.Errorf("part %d: content length %d, body %d", aws.ToInt32(in.PartNumber), aws.ToInt64(in.ContentLength), len(body))
	}
	if aws.ToInt32(in.PartNumber) == f.failPart {
		return nil, f.partErr
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.parts[aws.ToInt32(in.PartNumber)] = body
	return &s3.UploadPartOutput{ETag: aws.String(fmt.Sprintf(`"etag-%d"`, aws.ToInt32(in.PartNumber)))}, nil
}

func (f *fakeS3) CompleteMultipartUpload(_ context.Context, in *s3.CompleteMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.completed = in.MultipartUpload
	return &s3.CompleteMultipartUploadOutput{}, nil
}

func (f *fakeS3) AbortMultipartUpload(ctx context.Context, _ *s3.AbortMultipartUploadInput, _ ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.aborted++
	return &s3.AbortMultipartUploadOutput{}, nil
}

func sum64(b []byte) string {
	s := sha256.Sum256(b)
	return base64.StdEncoding.EncodeToString(s[:])
}

func TestS3Store_PutCutsStreamIntoCheckedParts(t *testing.T) {
	for _, c := range []struct {
		name        string
		size        int64
		concurrency int
		wantParts   int
	}{
		{"exactly one part is a single put", MinPartSize, 2, 0},
		{"one byte over", MinPartSize + 1, 2, 2},
		{"three parts", 3*MinPartSize - 10, 2, 3},
		{"sequential", 2*MinPartSize + 1, 1, 3},
		{"four at once", 6 * MinPartSize, 4, 6},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeS3{}
			s := New(f, "bucket", WithConcurrency(c.concurrency))
			data := bytes.Repeat([]byte("0123456789abcdef"), int(c.size/16)+1)[:c.size]
			if err := s.Put(t.Context(), "id", struct{ io.Reader }{bytes.NewReader(data)}, c.size); err != nil {
				t.Fatalf("Put: %v", err)
			}
			if c.wantParts == 0 {
				if len(f.puts) != 1 || f.completed != nil {
					t.Fatalf("%d PutObject calls, completed %v; want one PutObject", len(f.puts), f.completed)
				}
				in := f.puts[0]
				body, _ := io.ReadAll(in.Body)
				if !bytes.Equal(body, data) || aws.ToString(in.ChecksumSHA256) != sum64(data) || aws.ToString(in.Key) != "blobs/id" {
					t.Fatalf("PutObject of %s: %d bytes, checksum %s", aws.ToString(in.Key), len(body), aws.ToString(in.ChecksumSHA256))
				}
				return
			}
			if f.completed == nil || len(f.completed.Parts) != c.wantParts {
				t.Fatalf("completed %+v, want %d parts", f.completed, c.wantParts)
			}
			var joined []byte
			for i, p := range f.completed.Parts {
				n := int32(i + 1)
				if aws.ToInt32(p.PartNumber) != n || aws.ToString(p.ETag) != fmt.Sprintf(`"etag-%d"`, n) || aws.ToString(p.ChecksumSHA256) != sum64(f.parts[n]) {
					t.Fatalf("completed part %d: %+v", n, p)
				}
				joined = append(joined, f.parts[n]...)
			}
			if !bytes.Equal(joined, data) {
				t.Fatalf("the parts joined are %d bytes, not the %d put", len(joined), len(data))
			}
			if m := f.maxInFlight.Load(); m > int32(c.concurrency) {
				t.Fatalf("%d parts in flight at once, concurrency %d", m, c.concurrency)
			}
			if f.aborted != 0 {
				t.Fatalf("a successful upload was aborted")
			}
		})
	}
}

func TestS3Store_PutAborts(t *testing.T) {
	t.Run("on a reader error", func(t *testing.T) {
		f := &fakeS3{}
		s := New(f, "bucket")
		cause := docstore.E("upload", docstore.KindTooLarge, "body too large")
		r := io.MultiReader(bytes.NewReader(make([]byte, 2*MinPartSize+5)), errReader{cause})
		err := s.Put(t.Context(), "id", r, 4*MinPartSize)
		if !errors.Is(err, cause) || docstore.KindOf(err) != docstore.KindTooLarge {
			t.Fatalf("Put: %v (kind %s), want the reader's too_large error", err, docstore.KindOf(err))
		}
		if f.aborted != 1 || f.completed != nil {
			t.Fatalf("aborted %d times, completed %v", f.aborted, f.completed)
		}
	})
	t.Run("on a short reader", func(t *testing.T) {
		f := &fakeS3{}
		s := New(f, "bucket")
		err := s.Put(t.Context(), "id", bytes.NewReader(make([]byte, MinPartSize+7)), 3*MinPartSize)
		if err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("Put: %v, want an unexpected EOF", err)
		}
		if f.aborted != 1 || f.completed != nil {
			t.Fatalf("aborted %d times, completed %v", f.aborted, f.completed)
		}
	})
	t.Run("on a part that fails", func(t *testing.T) {
		f := &fakeS3{failPart: 2, partErr: &smithy.GenericAPIError{Code: "SlowDown", Message: "reduce your request rate"}}
		s := New(f, "bucket")
		err := s.Put(t.Context(), "id", bytes.NewReader(make([]byte, 5*MinPartSize)), 5*MinPartSize)
		if docstore.KindOf(err) != docstore.KindUnavailable {
			t.Fatalf("Put: %v (kind %s), want unavailable", err, docstore.KindOf(err))
		}
		if f.aborted != 1 || f.completed != nil {
			t.Fatalf("aborted %d times, completed %v", f.aborted, f.completed)
		}
	})
	t.Run("even when the context is canceled", func(t *testing.T) {
		f := &fakeS3{}
		s := New(f, "bucket")
		ctx, cancel := context.WithCancel(t.Context())
		r := io.MultiReader(bytes.NewReader(make([]byte, MinPartSize+1)), cancelReader{cancel})
		err := s.Put(ctx, "id", r, 3*MinPartSize)
		if err == nil {
			t.Fatal("Put succeeded")
		}
		if f.aborted != 1 || f.completed != nil {
			t.Fatalf("aborted %d times, completed %v", f.aborted, f.completed)
		}
	})
	t.Run("a small blob never reaches S3", func(t *testing.T) {
		f := &fakeS3{}
		s := New(f, "bucket")
		if err := s.Put(t.Context(), "id", bytes.NewReader(make([]byte, 10)), 11); err == nil {
			t.Fatal("Put succeeded")
		}
		if len(f.puts) != 0 {
			t.Fatalf("%d PutObject calls for a failed stream", len(f.puts))
		}
	})
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// cancelReader cancels the Put's context, then fails like a reader
// interrupted by it would.
type cancelReader struct{ cancel context.CancelFunc }

func (r cancelReader) Read([]byte) (int, error) { r.cancel(); return 0, context.Canceled }

func TestS3Store_GetRanges(t *testing.T) {
	f := &fakeS3{}
	s := New(f, "bucket")
	for _, c := range []struct{ offset, length int64 }{{0, -1}, {0, 10}, {5, -1}, {5, 10}} {
		rc, err := s.Get(t.Context(), "id", c.offset, c.length)
		if err != nil {
			t.Fatal(err)
		}
		if rc.Size() != fakeObjectSize {
			t.Errorf("Get(%d, %d): size %d, want the object's %d", c.offset, c.length, rc.Size(), fakeObjectSize)
		}
		rc.Close()
	}
	want := []string{"", "bytes=0-9", "bytes=5-", "bytes=5-14"}
	if fmt.Sprint(f.ranges) != fmt.Sprint(want) {
		t.Fatalf("ranges %q, want %q", f.ranges, want)
	}
	if _, err := s.Get(t.Context(), "id", -1, 3); docstore.KindOf(err) != docstore.KindBadRange {
		t.Fatalf("negative offset: %v", err)
	}
}

func TestS3Store_ErrorKinds(t *testing.T) {
	status := testenv.ResponseError
	for _, c := range []struct {
		name string
		err  error
		want docstore.Kind
	}{
		{"NoSuchKey", &types.NoSuchKey{}, docstore.KindNotFound},
		{"HEAD 404", status(404, &types.NotFound{}), docstore.KindNotFound},
		{"NoSuchBucket", status(404, &smithy.GenericAPIError{Code: "NoSuchBucket"}), docstore.KindInternal},
		{"AccessDenied", status(403, &smithy.GenericAPIError{Code: "AccessDenied"}), docstore.KindInternal},
		{"InvalidRange", status(416, &smithy.GenericAPIError{Code: "InvalidRange"}), docstore.KindBadRange},
		{"SlowDown", status(503, &smithy.GenericAPIError{Code: "SlowDown"}), docstore.KindUnavailable},
		{"500 unmodeled", status(500, &smithy.GenericAPIError{Code: "Whatever"}), docstore.KindUnavailable},
		{"429", status(429, &smithy.GenericAPIError{Code: "TooManyRequests"}), docstore.KindUnavailable},
		{"connection refused", &smithyhttp.RequestSendError{Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}}, docstore.KindUnavailable},
		{"deadline", fmt.Errorf("op: %w", context.DeadlineExceeded), docstore.KindUnavailable},
		{"retries exhausted", &retry.MaxAttemptsError{Attempt: 3, Err: status(503, &smithy.GenericAPIError{Code: "ServiceUnavailable"})}, docstore.KindUnavailable},
		{"plain error", errors.New("boom"), docstore.KindInternal},
	} {
		if got := kindOf(c.err); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}
