package s3store_test

import (
	"bytes"
	"crypto/rand"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/s3store"
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
