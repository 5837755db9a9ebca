package s3store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/s3store"
	"github.com/imagodocs/imago/internal/storetest"
)

func TestS3Staging_PresignedPutOpenDelete(t *testing.T) {
	client, bucket := localS3(t)
	st := s3store.NewStaging(client, bucket, "staging/")
	ctx := t.Context()
	key := "staging/" + string(docstore.NewID())
	doc := make([]byte, 300_000)
	rand.Read(doc)

	up, err := st.PresignPut(ctx, key, "application/pdf", int64(len(doc)), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if up.Method != "PUT" || up.ExpiresAt.Before(time.Now()) {
		t.Fatalf("presigned: %+v", up)
	}
	put := func(body []byte) int {
		req, _ := http.NewRequest(up.Method, up.URL, bytes.NewReader(body))
		for k, v := range up.Headers {
			req.Header.Set(k, v)
		}
		req.ContentLength = int64(len(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if status := put(doc[:1000]); status < 400 {
		t.Fatalf("a body shorter than the signed length was accepted: %d", status)
	}
	if status := put(doc); status != 200 {
		t.Fatalf("presigned PUT: %d", status)
	}
	rc, size, err := st.Open(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if size != int64(len(doc)) || !bytes.Equal(got, doc) {
		t.Fatalf("staged object: size %d, identical %v", size, bytes.Equal(got, doc))
	}
	if err := st.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Open(ctx, key); !docstore.IsNotFound(err) {
		t.Fatalf("Open after Delete: %v", err)
	}
	if err := st.Delete(ctx, key); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if _, err := st.PresignPut(ctx, "blobs/"+string(docstore.NewID()), "text/plain", 1, time.Minute); docstore.KindOf(err) != docstore.KindInvalid {
		t.Fatalf("presign outside the staging prefix: %v", err)
	}
}

// putPart sends a presigned part request with body and returns the status
// and the ETag header.
func putPart(t *testing.T, up docstore.PresignedUpload, body []byte) (int, string) {
	t.Helper()
	status, etag, err := tryPutPart(up, body)
	if err != nil {
		t.Fatal(err)
	}
	return status, etag
}

func tryPutPart(up docstore.PresignedUpload, body []byte) (int, string, error) {
	req, _ := http.NewRequest(up.Method, up.URL, bytes.NewReader(body))
	for k, v := range up.Headers {
		req.Header.Set(k, v)
	}
	req.ContentLength = int64(len(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("ETag"), nil
}

// refused reports whether S3 refused a part PUT: with an error status, or
// by closing the connection before reading a body it will not take.
func refused(up docstore.PresignedUpload, body []byte) bool {
	status, _, err := tryPutPart(up, body)
	return err != nil || status >= 400
}

func TestS3Staging_UploadInParts(t *testing.T) {
	client, bucket := localS3(t)
	st := s3store.NewStaging(client, bucket, "staging/")
	ctx := t.Context()
	key := "staging/" + string(docstore.NewID())
	t.Cleanup(func() { st.Delete(context.Background(), key) })
	doc := make([]byte, 5<<20+1000) // one minimum part and a short last one
	rand.Read(doc)
	chunks := [][]byte{doc[:5<<20], doc[5<<20:]}

	uploadID, err := st.CreateMultipart(ctx, key, "image/tiff")
	if err != nil || uploadID == "" {
		t.Fatalf("CreateMultipart: %q, %v", uploadID, err)
	}
	if parts, err := st.ListParts(ctx, key, uploadID); err != nil || len(parts) != 0 {
		t.Fatalf("ListParts before any part: %v, %v", parts, err)
	}
	var etags []string
	for i, c := range chunks {
		up, err := st.PresignPart(ctx, key, uploadID, i+1, int64(len(c)), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if up.Method != "PUT" || up.ExpiresAt.Before(time.Now()) {
			t.Fatalf("presigned part: %+v", up)
		}
		if !refused(up, c[:len(c)-1]) {
			t.Fatalf("part %d: a body shorter than the signed length was accepted", i+1)
		}
		status, etag := putPart(t, up, c)
		if status != 200 || etag == "" {
			t.Fatalf("part %d: %d, ETag %q", i+1, status, etag)
		}
		etags = append(etags, etag)
	}
	parts, err := st.ListParts(ctx, key, uploadID)
	if err != nil {
		t.Fatal(err)
	}
	want := []docstore.Part{{Number: 1, Size: 5 << 20, ETag: etags[0]}, {Number: 2, Size: 1000, ETag: etags[1]}}
	if fmt.Sprint(parts) != fmt.Sprint(want) {
		t.Fatalf("ListParts: %+v, want %+v", parts, want)
	}
	bad := []docstore.Part{{Number: 1, ETag: etags[1]}, {Number: 2, ETag: etags[1]}}
	if err := st.CompleteMultipart(ctx, key, uploadID, bad); docstore.KindOf(err) != docstore.KindInvalid {
		t.Fatalf("CompleteMultipart with a wrong ETag: %v, want KindInvalid", err)
	}
	if err := st.CompleteMultipart(ctx, key, uploadID, parts); err != nil {
		t.Fatal(err)
	}
	rc, size, err := st.Open(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if size != int64(len(doc)) || !bytes.Equal(got, doc) {
		t.Fatalf("completed object: size %d, identical %v", size, bytes.Equal(got, doc))
	}
	if _, err := st.ListParts(ctx, key, uploadID); !docstore.IsNotFound(err) {
		t.Fatalf("ListParts after completion: %v, want KindNotFound", err)
	}
	// S3 (and versitygw) may answer a repeated completion with the first
	// one's result; either way the object stays as it is. The Service
	// refuses a second completion itself: ListParts says the upload is over.
	if err := st.CompleteMultipart(ctx, key, uploadID, parts); err != nil && !docstore.IsNotFound(err) {
		t.Fatalf("a second CompleteMultipart: %v, want success or KindNotFound", err)
	}
	if _, size, err := st.Open(ctx, key); err != nil || size != int64(len(doc)) {
		t.Fatalf("after a second completion: size %d, %v", size, err)
	}
}

func TestS3Staging_AbortRemovesParts(t *testing.T) {
	client, bucket := localS3(t)
	st := s3store.NewStaging(client, bucket, "staging/")
	ctx := t.Context()
	key := "staging/" + string(docstore.NewID())
	uploadID, err := st.CreateMultipart(ctx, key, "application/pdf")
	if err != nil {
		t.Fatal(err)
	}
	up, _ := st.PresignPart(ctx, key, uploadID, 1, 4096, time.Minute)
	if status, _ := putPart(t, up, make([]byte, 4096)); status != 200 {
		t.Fatalf("part: %d", status)
	}
	if err := st.AbortMultipart(ctx, key, uploadID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ListParts(ctx, key, uploadID); !docstore.IsNotFound(err) {
		t.Fatalf("ListParts after abort: %v, want KindNotFound", err)
	}
	out, err := client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket, Prefix: &key})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Uploads) != 0 {
		t.Fatalf("uploads left under %s after abort: %+v", key, out.Uploads)
	}
	if !refused(up, make([]byte, 4096)) {
		t.Fatal("a part PUT after abort was accepted")
	}
	if err := st.AbortMultipart(ctx, key, uploadID); err != nil {
		t.Fatalf("a second abort: %v", err)
	}
}

// ListParts follows S3's pages (1000 parts each) to the end.
func TestS3Staging_ListPartsPaginates(t *testing.T) {
	client, bucket := localS3(t)
	st := s3store.NewStaging(client, bucket, "staging/")
	ctx := t.Context()
	key := "staging/" + string(docstore.NewID())
	uploadID, err := st.CreateMultipart(ctx, key, "application/octet-stream")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.AbortMultipart(context.Background(), key, uploadID) })
	const n = 1003
	var g errgroup.Group
	g.SetLimit(8)
	for i := 1; i <= n; i++ {
		g.Go(func() error {
			_, err := client.UploadPart(ctx, &s3.UploadPartInput{Bucket: &bucket, Key: &key, UploadId: &uploadID,
				PartNumber: aws.Int32(int32(i)), Body: bytes.NewReader([]byte{byte(i)})})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	parts, err := st.ListParts(ctx, key, uploadID)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != n {
		t.Fatalf("ListParts: %d parts, want %d", len(parts), n)
	}
	for i, p := range parts {
		if p.Number != i+1 || p.Size != 1 || p.ETag == "" {
			t.Fatalf("part %d: %+v", i+1, p)
		}
	}
}

func TestS3Staging_MultipartContract(t *testing.T) {
	client, bucket := localS3(t)
	storetest.TestMultipartStaging(t, func(t *testing.T) storetest.PartsStaging {
		return s3store.NewStaging(client, bucket, "staging/")
	}, func(t *testing.T, up docstore.PresignedUpload, body []byte) (string, bool) {
		status, etag, err := tryPutPart(up, body)
		return etag, err == nil && status == http.StatusOK
	})
}

func TestS3Staging_Contract(t *testing.T) {
	client, bucket := localS3(t)
	storetest.TestStaging(t, func(t *testing.T) docstore.Staging {
		return s3store.NewStaging(client, bucket, "staging/")
	})
}
