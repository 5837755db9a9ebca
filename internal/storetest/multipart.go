package storetest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/docstore"
)

// PartsStaging is a staging area that takes uploads in parts.
type PartsStaging interface {
	docstore.Staging
	docstore.MultipartStaging
}

// PartSender sends body as a client would to a presigned part request and
// returns the ETag it answered; ok is false when the request was refused.
type PartSender func(t *testing.T, up docstore.PresignedUpload, body []byte) (etag string, ok bool)

// TestMultipartStaging is the contract of uploads in parts, for staging
// keys under "staging/".
func TestMultipartStaging(t *testing.T, newStaging func(t *testing.T) PartsStaging, send PartSender) {
	const minPart = docstore.MinPartSize
	start := func(t *testing.T, s PartsStaging) (key, uploadID string) {
		t.Helper()
		key = "staging/" + string(docstore.NewID())
		uploadID, err := s.CreateMultipart(t.Context(), key, "application/pdf")
		if err != nil || uploadID == "" {
			t.Fatalf("CreateMultipart: %q, %v", uploadID, err)
		}
		t.Cleanup(func() {
			s.AbortMultipart(context.Background(), key, uploadID)
			s.Delete(context.Background(), key)
		})
		return key, uploadID
	}
	put := func(t *testing.T, s PartsStaging, key, uploadID string, n int, body []byte) docstore.Part {
		t.Helper()
		up, err := s.PresignPart(t.Context(), key, uploadID, n, int64(len(body)), time.Minute)
		if err != nil {
			t.Fatalf("PresignPart %d: %v", n, err)
		}
		etag, ok := send(t, up, body)
		if !ok || etag == "" {
			t.Fatalf("part %d: refused (ETag %q)", n, etag)
		}
		return docstore.Part{Number: n, Size: int64(len(body)), ETag: etag}
	}
	t.Run("CompleteAssemblesInOrder", func(t *testing.T) {
		s := newStaging(t)
		key, id := start(t, s)
		if parts, err := s.ListParts(t.Context(), key, id); err != nil || len(parts) != 0 {
			t.Fatalf("ListParts before any part: %v, %v", parts, err)
		}
		doc := randomBytes(t, minPart+1000)
		p2 := put(t, s, key, id, 2, doc[minPart:]) // parts may arrive in any order
		p1 := put(t, s, key, id, 1, doc[:minPart])
		parts, err := s.ListParts(t.Context(), key, id)
		if err != nil || len(parts) != 2 || parts[0] != p1 || parts[1] != p2 {
			t.Fatalf("ListParts: %+v, %v; want %+v", parts, err, []docstore.Part{p1, p2})
		}
		if err := s.CompleteMultipart(t.Context(), key, id, parts); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(mustOpenStaged(t, s, key), doc) {
			t.Fatal("the completed object is not the parts in order")
		}
		_, err = s.ListParts(t.Context(), key, id)
		wantKind(t, "ListParts after completion", err, docstore.KindNotFound)
	})

	t.Run("ARepeatedPartReplacesTheFirst", func(t *testing.T) {
		s := newStaging(t)
		key, id := start(t, s)
		put(t, s, key, id, 1, randomBytes(t, 3000))
		second := randomBytes(t, 3000)
		p := put(t, s, key, id, 1, second)
		parts, err := s.ListParts(t.Context(), key, id)
		if err != nil || len(parts) != 1 || parts[0] != p {
			t.Fatalf("ListParts: %+v, %v; want only %+v", parts, err, p)
		}
		if err := s.CompleteMultipart(t.Context(), key, id, parts); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(mustOpenStaged(t, s, key), second) {
			t.Fatal("the object is not the second PUT of the part")
		}
	})

	t.Run("CompleteRefusesPartsThatDoNotMatch", func(t *testing.T) {
		s := newStaging(t)
		key, id := start(t, s)
		doc := randomBytes(t, minPart+10)
		p1 := put(t, s, key, id, 1, doc[:minPart])
		p2 := put(t, s, key, id, 2, doc[minPart:])
		for what, parts := range map[string][]docstore.Part{
			"a wrong ETag":    {p1, {Number: 2, ETag: p1.ETag}},
			"an unknown part": {p1, p2, {Number: 3, ETag: p2.ETag}},
		} {
			wantKind(t, "CompleteMultipart with "+what, s.CompleteMultipart(t.Context(), key, id, parts), docstore.KindInvalid)
		}
		// The upload is still there, whole.
		if err := s.CompleteMultipart(t.Context(), key, id, []docstore.Part{p1, p2}); err != nil {
			t.Fatalf("CompleteMultipart after refused ones: %v", err)
		}
		if !bytes.Equal(mustOpenStaged(t, s, key), doc) {
			t.Fatal("the completed object differs")
		}
	})

	t.Run("PartsButTheLastAreAtLeast5MiB", func(t *testing.T) {
		s := newStaging(t)
		key, id := start(t, s)
		p1 := put(t, s, key, id, 1, randomBytes(t, 1000))
		p2 := put(t, s, key, id, 2, randomBytes(t, 1000))
		wantKind(t, "CompleteMultipart with a short first part", s.CompleteMultipart(t.Context(), key, id, []docstore.Part{p1, p2}), docstore.KindInvalid)
	})

	t.Run("PartsAreExactlyTheSignedLength", func(t *testing.T) {
		s := newStaging(t)
		key, id := start(t, s)
		up, err := s.PresignPart(t.Context(), key, id, 1, 2000, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := send(t, up, randomBytes(t, 1999)); ok {
			t.Fatal("a part shorter than signed was taken")
		}
		if parts, err := s.ListParts(t.Context(), key, id); err != nil || len(parts) != 0 {
			t.Fatalf("ListParts after a refused part: %+v, %v", parts, err)
		}
	})

	t.Run("AbortDiscardsTheUpload", func(t *testing.T) {
		s := newStaging(t)
		key, id := start(t, s)
		p := put(t, s, key, id, 1, randomBytes(t, 4096))
		if err := s.AbortMultipart(t.Context(), key, id); err != nil {
			t.Fatal(err)
		}
		_, err := s.ListParts(t.Context(), key, id)
		wantKind(t, "ListParts after abort", err, docstore.KindNotFound)
		wantKind(t, "CompleteMultipart after abort", s.CompleteMultipart(t.Context(), key, id, []docstore.Part{p}), docstore.KindNotFound)
		_, _, err = s.Open(t.Context(), key)
		wantKind(t, "Open after abort", err, docstore.KindNotFound)
		if err := s.AbortMultipart(t.Context(), key, id); err != nil {
			t.Fatalf("a second abort: %v", err)
		}
	})
}
