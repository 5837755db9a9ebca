package envelope

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
)

// blobGetter serves ranges of an in-memory blob and counts its requests.
type blobGetter struct {
	blob     []byte
	requests int
}

func (g *blobGetter) get(_ context.Context, offset, length int64) (io.ReadCloser, int64, error) {
	g.requests++
	if offset > int64(len(g.blob)) {
		offset = int64(len(g.blob))
	}
	end := min(offset+length, int64(len(g.blob)))
	return io.NopCloser(bytes.NewReader(g.blob[offset:end])), int64(len(g.blob)), nil
}

// Every range of documents around the segment boundaries reads back, with
// one request when it starts in the first segment and two otherwise.
func TestReadRangeAtEveryBoundary(t *testing.T) {
	const seg = 16
	key := newKey(t)
	for _, size := range []int{1, seg - 1, seg, seg + 1, 2 * seg, 2*seg + 1, 3*seg + 5} {
		plain := randomBytes(t, size)
		blob := seal(t, key, testBinding, plain, seg)
		sealed := Sealed{PlainSize: int64(size), SegmentSize: seg, Binding: testBinding}
		for start := 0; start < size; start++ {
			for end := start + 1; end <= size; end++ {
				g := &blobGetter{blob: blob}
				got, err := ReadRange(context.Background(), g.get, sealed, func() ([]byte, error) { return key, nil }, int64(start), int64(end-start))
				if err != nil || !bytes.Equal(got, plain[start:end]) {
					t.Fatalf("size %d, range %d-%d: %v", size, start, end, err)
				}
				if want := 1 + min(1, start/seg); g.requests != want {
					t.Fatalf("size %d, range %d-%d: %d requests, want %d", size, start, end, g.requests, want)
				}
			}
		}
	}
}

// A blob with a byte appended or removed is refused by every range that
// reaches its last segment.
func TestReadRangeRefusesAChangedEnd(t *testing.T) {
	const seg, size = 16, 40
	key := newKey(t)
	plain := randomBytes(t, size)
	blob := seal(t, key, testBinding, plain, seg)
	sealed := Sealed{PlainSize: size, SegmentSize: seg, Binding: testBinding}
	for name, changed := range map[string][]byte{
		"a byte appended": append(bytes.Clone(blob), 0),
		"a byte removed":  blob[:len(blob)-1],
	} {
		for start := int64(2 * seg); start < size; start++ {
			g := &blobGetter{blob: changed}
			_, err := ReadRange(context.Background(), g.get, sealed, func() ([]byte, error) { return key, nil }, start, size-start)
			if !errors.Is(err, ErrAuth) {
				t.Fatalf("%s, range from %d to the end: %v, want ErrAuth", name, start, err)
			}
			_, err = ReadRange(context.Background(), g.get, sealed, func() ([]byte, error) { return key, nil }, start, 1)
			if !errors.Is(err, ErrAuth) {
				t.Fatalf("%s, one byte at %d in the last segment: %v, want ErrAuth", name, start, err)
			}
		}
	}
}

// A blob that grew or shrank is refused by every read, even of a range in
// a segment it still holds whole: its size is not the sealed size its
// record implies.
func TestReadRangeRefusesABlobOfTheWrongSize(t *testing.T) {
	const seg, size = 16, 100 // 7 segments, the last one short
	key := newKey(t)
	plain := randomBytes(t, size)
	blob := seal(t, key, testBinding, plain, seg)
	sealed := Sealed{PlainSize: size, SegmentSize: seg, Binding: testBinding}
	segment := seg + TagSize
	for name, changed := range map[string][]byte{
		"a byte appended":           append(bytes.Clone(blob), 0),
		"a segment appended":        append(bytes.Clone(blob), blob[len(blob)-segment:]...),
		"the last segment cut":      blob[:len(blob)-(size%seg+TagSize)],
		"a whole segment cut":       append(bytes.Clone(blob[:HeaderSize+segment]), blob[HeaderSize+2*segment:]...),
		"a byte removed at the end": blob[:len(blob)-1],
	} {
		for _, r := range [][2]int64{{0, 1}, {3, 10}, {seg, 5}, {2*seg + 1, seg}} {
			g := &blobGetter{blob: changed}
			_, err := ReadRange(context.Background(), g.get, sealed, func() ([]byte, error) { return key, nil }, r[0], r[1])
			if !errors.Is(err, ErrAuth) {
				t.Errorf("%s, %d bytes at %d: %v, want ErrAuth", name, r[1], r[0], err)
			}
		}
	}
	// The blob as sealed still reads.
	g := &blobGetter{blob: blob}
	if got, err := ReadRange(context.Background(), g.get, sealed, func() ([]byte, error) { return key, nil }, 3, 10); err != nil || !bytes.Equal(got, plain[3:13]) {
		t.Fatalf("the untouched blob: %v", err)
	}
}

// The key is asked for once the header has arrived, and its error is
// returned as it is.
func TestReadRangeReturnsTheKeyError(t *testing.T) {
	key := newKey(t)
	blob := seal(t, key, testBinding, randomBytes(t, 100), 16)
	g := &blobGetter{blob: blob}
	keyErr := errors.New("key service down")
	_, err := ReadRange(context.Background(), g.get, Sealed{PlainSize: 100, SegmentSize: 16, Binding: testBinding},
		func() ([]byte, error) { return nil, keyErr }, 50, 10)
	if err != keyErr {
		t.Fatalf("err = %v, want the key's error as it is", err)
	}
	_, err = ReadRange(context.Background(), g.get, Sealed{PlainSize: 100, SegmentSize: 16, Binding: Binding{DocumentID: "other", Tenant: testBinding.Tenant}},
		func() ([]byte, error) { return key, nil }, 0, 100)
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("another document's binding: %v, want ErrAuth", err)
	}
}
