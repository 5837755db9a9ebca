package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/imagodocs/imago/internal/docstore"
)

// LargeBlobSize is the size of the blob TestBlobStore streams through Put:
// several MiB, so that a store that splits uploads into parts (S3's
// multipart upload has a 5 MiB minimum part size) uses more than one, with
// a short last part.
const LargeBlobSize = 12<<20 + 12345

// TestBlobStore runs the BlobStore contract against the stores newStore
// returns. newStore may return the same store every time or a fresh one;
// it registers its own cleanup with t.
func TestBlobStore(t *testing.T, newStore func(t *testing.T) docstore.BlobStore) {
	t.Run("PutGetWhole", func(t *testing.T) {
		s := newStore(t)
		id := docstore.NewID()
		data := randomBytes(t, 100_000)
		mustPut(t, s, id, data)
		if got := mustGet(t, s, id, 0, -1); !bytes.Equal(got, data) {
			t.Fatalf("Get whole: got %d bytes, want the %d put", len(got), len(data))
		}
		mustDelete(t, s, id)
	})

	t.Run("GetRange", func(t *testing.T) {
		s := newStore(t)
		id := docstore.NewID()
		data := randomBytes(t, 200_000)
		mustPut(t, s, id, data)
		defer mustDelete(t, s, id)
		n := int64(len(data))
		for _, c := range []struct {
			name           string
			offset, length int64
			want           []byte
		}{
			{"middle", 1000, 5000, data[1000:6000]},
			{"first byte", 0, 1, data[:1]},
			{"last byte", n - 1, 1, data[n-1:]},
			{"prefix", 0, 4096, data[:4096]},
			{"offset to end", 150_000, -1, data[150_000:]},
			{"last byte to end", n - 1, -1, data[n-1:]},
			{"exactly all", 0, n, data},
			{"zero length", 10, 0, nil},
		} {
			got := mustGet(t, s, id, c.offset, c.length)
			if !bytes.Equal(got, c.want) {
				t.Errorf("Get(offset %d, length %d) [%s]: got %d bytes, want %d (content equal: %v)",
					c.offset, c.length, c.name, len(got), len(c.want), bytes.Equal(got, c.want))
			}
		}
	})

	// Every Get tells the size of the whole blob, whatever part it reads:
	// a reader of a part checks it against the size it expects.
	t.Run("GetTellsTheBlobSize", func(t *testing.T) {
		s := newStore(t)
		id := docstore.NewID()
		data := randomBytes(t, 70_000)
		mustPut(t, s, id, data)
		defer mustDelete(t, s, id)
		n := int64(len(data))
		for _, c := range [][2]int64{{0, -1}, {0, 1}, {0, 80}, {1000, 5000}, {n - 1, 1}, {n - 10, 100}, {69_000, -1}, {10, 0}} {
			wantSize(t, s, id, c[0], c[1], n)
		}
		second := randomBytes(t, 1234)
		mustPut(t, s, id, second)
		wantSize(t, s, id, 0, 80, int64(len(second)))

		empty := docstore.NewID()
		mustPut(t, s, empty, nil)
		defer mustDelete(t, s, empty)
		wantSize(t, s, empty, 0, -1, 0)
		wantSize(t, s, empty, 0, 0, 0)
	})

	t.Run("EmptyBlob", func(t *testing.T) {
		s := newStore(t)
		id := docstore.NewID()
		mustPut(t, s, id, nil)
		if got := mustGet(t, s, id, 0, -1); len(got) != 0 {
			t.Fatalf("Get of an empty blob: got %d bytes", len(got))
		}
		mustDelete(t, s, id)
		_, err := s.Get(t.Context(), id, 0, -1)
		wantKind(t, "Get after Delete of an empty blob", err, docstore.KindNotFound)
	})

	t.Run("LargeStreamed", func(t *testing.T) {
		s := newStore(t)
		id := docstore.NewID()
		data := randomBytes(t, LargeBlobSize)
		if err := s.Put(t.Context(), id, unseekable(data), int64(len(data))); err != nil {
			t.Fatalf("Put %d bytes: %v", len(data), err)
		}
		defer mustDelete(t, s, id)

		rc, err := s.Get(t.Context(), id, 0, -1)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		h := sha256.New()
		n, err := io.Copy(h, rc)
		rc.Close()
		if err != nil {
			t.Fatalf("read blob after %d bytes: %v", n, err)
		}
		if n != int64(len(data)) {
			t.Fatalf("read %d bytes, want %d", n, len(data))
		}
		if want := sha256.Sum256(data); !bytes.Equal(h.Sum(nil), want[:]) {
			t.Fatalf("content of the %d bytes read differs from what was put", n)
		}

		// Ranges that cross any plausible part boundary (5, 8, 10 MiB).
		for _, off := range []int64{5<<20 - 100, 8<<20 - 7, 10<<20 - 1} {
			got := mustGet(t, s, id, off, 300)
			if !bytes.Equal(got, data[off:off+300]) {
				t.Errorf("Get(offset %d, length 300) after a streamed Put: wrong bytes", off)
			}
		}
		tail := mustGet(t, s, id, int64(len(data))-5000, -1)
		if !bytes.Equal(tail, data[len(data)-5000:]) {
			t.Errorf("Get of the last 5000 bytes to the end: wrong bytes")
		}
	})

	t.Run("Overwrite", func(t *testing.T) {
		s := newStore(t)
		id := docstore.NewID()
		mustPut(t, s, id, randomBytes(t, 50_000))
		second := randomBytes(t, 1234)
		mustPut(t, s, id, second)
		if got := mustGet(t, s, id, 0, -1); !bytes.Equal(got, second) {
			t.Fatalf("after overwrite: got %d bytes, want the second blob's %d", len(got), len(second))
		}
		mustDelete(t, s, id)
	})

	t.Run("GetMissingIsNotFound", func(t *testing.T) {
		s := newStore(t)
		id := docstore.NewID()
		_, err := s.Get(t.Context(), id, 0, -1)
		wantKind(t, "Get of a missing blob", err, docstore.KindNotFound)
		_, err = s.Get(t.Context(), id, 10, 20)
		wantKind(t, "ranged Get of a missing blob", err, docstore.KindNotFound)
	})

	t.Run("DeleteIdempotent", func(t *testing.T) {
		s := newStore(t)
		id := docstore.NewID()
		mustPut(t, s, id, []byte("to be deleted"))
		mustDelete(t, s, id)
		_, err := s.Get(t.Context(), id, 0, -1)
		wantKind(t, "Get after Delete", err, docstore.KindNotFound)
		mustDelete(t, s, id)               // again
		mustDelete(t, s, docstore.NewID()) // never existed
	})

	t.Run("FailedPutLeavesNoBlob", func(t *testing.T) {
		s := newStore(t)
		for _, c := range []struct {
			name string
			size int64
			r    func(data []byte) io.Reader
		}{
			{"reader error in a small blob", 100_000, func(d []byte) io.Reader { return failAfter(d, 60_000) }},
			{"reader error in a multi-MiB blob", 11 << 20, func(d []byte) io.Reader { return failAfter(d, 7<<20) }},
			{"reader error before the first byte", 1000, func(d []byte) io.Reader { return failAfter(d, 0) }},
			{"reader shorter than size", 100_000, func(d []byte) io.Reader { return unseekable(d[:99_999]) }},
			{"multi-MiB reader shorter than size", 11 << 20, func(d []byte) io.Reader { return unseekable(d[:9<<20]) }},
		} {
			id := docstore.NewID()
			data := randomBytes(t, int(c.size))
			err := s.Put(t.Context(), id, c.r(data), c.size)
			if err == nil {
				t.Errorf("%s: Put succeeded", c.name)
				mustDelete(t, s, id)
				continue
			}
			if _, err := s.Get(t.Context(), id, 0, -1); docstore.KindOf(err) != docstore.KindNotFound {
				t.Errorf("%s: after the failed Put, Get returned %v, want a not_found error", c.name, err)
				mustDelete(t, s, id)
			}
		}
	})

	t.Run("FailedOverwriteKeepsOldOrNothing", func(t *testing.T) {
		s := newStore(t)
		id := docstore.NewID()
		old := randomBytes(t, 3000)
		mustPut(t, s, id, old)
		defer mustDelete(t, s, id)
		if err := s.Put(t.Context(), id, failAfter(randomBytes(t, 5000), 2000), 5000); err == nil {
			t.Fatalf("Put from a failing reader succeeded")
		}
		rc, err := s.Get(t.Context(), id, 0, -1)
		if docstore.IsNotFound(err) {
			return
		}
		if err != nil {
			t.Fatalf("Get after the failed overwrite: %v", err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, old) {
			t.Fatalf("after a failed overwrite Get returned %d bytes (err %v), want the old %d bytes or not_found", len(got), err, len(old))
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		s := newStore(t)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := range 8 {
			wg.Go(func() {
				id := docstore.NewID()
				data := bytes.Repeat([]byte{byte(i)}, 10_000+i)
				if err := s.Put(t.Context(), id, unseekable(data), int64(len(data))); err != nil {
					errs <- fmt.Errorf("Put %d: %w", i, err)
					return
				}
				defer s.Delete(context.WithoutCancel(t.Context()), id)
				rc, err := s.Get(t.Context(), id, 0, -1)
				if err != nil {
					errs <- fmt.Errorf("Get %d: %w", i, err)
					return
				}
				defer rc.Close()
				got, err := io.ReadAll(rc)
				if err != nil || !bytes.Equal(got, data) {
					errs <- fmt.Errorf("blob %d: read %d bytes (err %v), want %d", i, len(got), err, len(data))
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

func mustPut(t *testing.T, s docstore.BlobStore, id docstore.ID, data []byte) {
	t.Helper()
	if err := s.Put(t.Context(), id, unseekable(data), int64(len(data))); err != nil {
		t.Fatalf("Put %s (%d bytes): %v", id, len(data), err)
	}
}

func mustGet(t *testing.T, s docstore.BlobStore, id docstore.ID, offset, length int64) []byte {
	t.Helper()
	rc, err := s.Get(t.Context(), id, offset, length)
	if err != nil {
		t.Fatalf("Get %s (offset %d, length %d): %v", id, offset, length, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s (offset %d, length %d): %v", id, offset, length, err)
	}
	return b
}

// wantSize checks the blob size a Get of part of the blob reports.
func wantSize(t *testing.T, s docstore.BlobStore, id docstore.ID, offset, length, size int64) {
	t.Helper()
	rc, err := s.Get(t.Context(), id, offset, length)
	if err != nil {
		t.Fatalf("Get %s (offset %d, length %d): %v", id, offset, length, err)
	}
	defer rc.Close()
	if got := rc.Size(); got != size {
		t.Errorf("Get (offset %d, length %d) of a %d-byte blob: Size %d", offset, length, size, got)
	}
}

func mustDelete(t *testing.T, s docstore.BlobStore, id docstore.ID) {
	t.Helper()
	if err := s.Delete(context.WithoutCancel(t.Context()), id); err != nil {
		t.Fatalf("Delete %s: %v", id, err)
	}
}

// unseekable hides every method but Read, as the envelope writer's pipe
// does: a store must not rely on seeking or on knowing the body in advance.
func unseekable(b []byte) io.Reader {
	return struct{ io.Reader }{bytes.NewReader(b)}
}

var errReader = errors.New("storetest: reader failed on purpose")

// failAfter yields the first n bytes of b, then fails.
func failAfter(b []byte, n int) io.Reader {
	return io.MultiReader(bytes.NewReader(b[:n]), errorReader{})
}

type errorReader struct{}

func (errorReader) Read([]byte) (int, error) { return 0, errReader }
