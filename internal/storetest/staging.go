package storetest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/docstore"
)

// TestStaging is the contract of the staging area of presigned uploads, for
// keys under "staging/". The suite sends every presigned request itself,
// over HTTP, exactly as the PresignedUpload describes it (method, URL,
// headers, a body of the announced length): newStaging returns a staging
// area whose URLs are served, by S3 or by the receiver `imago serve` runs
// for the embedded one. Expiry is left to each implementation's own tests:
// S3 counts it in whole seconds, and the suite does not wait.
func TestStaging(t *testing.T, newStaging func(t *testing.T) docstore.Staging) {
	const ttl = time.Minute
	newKey := func(t *testing.T, s docstore.Staging) string {
		key := "staging/" + string(docstore.NewID())
		t.Cleanup(func() { s.Delete(context.Background(), key) })
		return key
	}
	presign := func(t *testing.T, s docstore.Staging, key string, size int) docstore.PresignedUpload {
		t.Helper()
		up, err := s.PresignPut(t.Context(), key, "application/pdf", int64(size), ttl)
		if err != nil {
			t.Fatalf("PresignPut %s: %v", key, err)
		}
		return up
	}
	notStaged := func(t *testing.T, s docstore.Staging, what, key string) {
		t.Helper()
		rc, _, err := s.Open(t.Context(), key)
		if err == nil {
			rc.Close()
		}
		wantKind(t, what, err, docstore.KindNotFound)
	}

	t.Run("PresignedPutStagesTheBody", func(t *testing.T) {
		s := newStaging(t)
		for _, size := range []int{1, 300_000} {
			key := newKey(t, s)
			before := time.Now()
			up := presign(t, s, key, size)
			if up.Method != http.MethodPut {
				t.Fatalf("presigned method %q, want PUT", up.Method)
			}
			if up.ExpiresAt.Before(before) || up.ExpiresAt.After(time.Now().Add(ttl+time.Second)) {
				t.Fatalf("ExpiresAt %v: want within the TTL of %v from %v", up.ExpiresAt, ttl, before)
			}
			body := randomBytes(t, size)
			if status := sendPresigned(t, up, body, nil); status != http.StatusOK {
				t.Fatalf("presigned PUT of %d bytes: status %d", size, status)
			}
			if got := mustOpenStaged(t, s, key); !bytes.Equal(got, body) {
				t.Fatalf("staged %d bytes, not the %d sent", len(got), size)
			}
		}
	})

	t.Run("ABodyOfAnotherLengthIsRefused", func(t *testing.T) {
		s := newStaging(t)
		key := newKey(t, s)
		up := presign(t, s, key, 2000)
		for _, n := range []int{1999, 2001} {
			if status := sendPresigned(t, up, randomBytes(t, n), nil); status < 400 {
				t.Fatalf("a body of %d bytes where 2000 were signed: status %d", n, status)
			}
		}
		notStaged(t, s, "Open after refused PUTs", key)
	})

	t.Run("AnotherContentTypeIsRefused", func(t *testing.T) {
		s := newStaging(t)
		key := newKey(t, s)
		up := presign(t, s, key, 100)
		if status := sendPresigned(t, up, randomBytes(t, 100), map[string]string{"Content-Type": "text/html"}); status < 400 {
			t.Fatalf("a PUT with another Content-Type than signed: status %d", status)
		}
		notStaged(t, s, "Open after a refused PUT", key)
	})

	t.Run("ASecondPutReplacesTheFirst", func(t *testing.T) {
		s := newStaging(t)
		key := newKey(t, s)
		up := presign(t, s, key, 5000)
		second := randomBytes(t, 5000)
		for _, body := range [][]byte{randomBytes(t, 5000), second} {
			if status := sendPresigned(t, up, body, nil); status != http.StatusOK {
				t.Fatalf("presigned PUT: status %d", status)
			}
		}
		if !bytes.Equal(mustOpenStaged(t, s, key), second) {
			t.Fatal("the staged object is not the second PUT's body")
		}
	})

	t.Run("DeleteRemovesAndMissingIsNoError", func(t *testing.T) {
		s := newStaging(t)
		key := newKey(t, s)
		if status := sendPresigned(t, presign(t, s, key, 10), randomBytes(t, 10), nil); status != http.StatusOK {
			t.Fatalf("presigned PUT: status %d", status)
		}
		for i := range 2 {
			if err := s.Delete(t.Context(), key); err != nil {
				t.Fatalf("Delete #%d: %v", i+1, err)
			}
		}
		notStaged(t, s, "Open after Delete", key)
		if err := s.Delete(t.Context(), newKey(t, s)); err != nil {
			t.Fatalf("Delete of a key never staged: %v", err)
		}
	})

	t.Run("OpenOfAMissingKeyIsNotFound", func(t *testing.T) {
		s := newStaging(t)
		notStaged(t, s, "Open of a key never staged", newKey(t, s))
	})

	t.Run("KeysOutsideThePrefixAreInvalid", func(t *testing.T) {
		s := newStaging(t)
		key := "blobs/" + string(docstore.NewID())
		_, err := s.PresignPut(t.Context(), key, "application/pdf", 1, ttl)
		wantKind(t, "PresignPut outside the prefix", err, docstore.KindInvalid)
		_, _, err = s.Open(t.Context(), key)
		wantKind(t, "Open outside the prefix", err, docstore.KindInvalid)
		wantKind(t, "Delete outside the prefix", s.Delete(t.Context(), key), docstore.KindInvalid)
	})
}

// sendPresigned makes the request up describes with body, headers replaced
// by override, and returns the status.
func sendPresigned(t *testing.T, up docstore.PresignedUpload, body []byte, override map[string]string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), up.Method, up.URL, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("presigned request %s %s: %v", up.Method, up.URL, err)
	}
	for k, v := range up.Headers {
		req.Header.Set(k, v)
	}
	for k, v := range override {
		req.Header.Set(k, v)
	}
	req.ContentLength = int64(len(body)) // what the client really sends, whatever was signed
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("presigned %s: %v", up.Method, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// mustOpenStaged reads the staged object at key whole, checking the size
// Open reports.
func mustOpenStaged(t *testing.T, s docstore.Staging, key string) []byte {
	t.Helper()
	rc, size, err := s.Open(t.Context(), key)
	if err != nil {
		t.Fatalf("Open %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil || int64(len(b)) != size {
		t.Fatalf("Open %s: read %d bytes of the %d reported, %v", key, len(b), size, err)
	}
	return b
}
