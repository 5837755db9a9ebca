package docstore

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// TestExactReader: the ingest reads exactly the announced number of staged
// bytes, and a staged stream that ends early or holds more is told apart
// from a stream that merely failed (which a retry may get past).
func TestExactReader(t *testing.T) {
	data := bytes.Repeat([]byte("imago"), 1000)
	broken := errors.New("connection reset")
	for _, c := range []struct {
		name         string
		src          io.Reader
		want         int64
		wantMismatch bool
		wantErr      error
	}{
		{"exact", bytes.NewReader(data), int64(len(data)), false, nil},
		{"one byte short", bytes.NewReader(data[:len(data)-1]), int64(len(data)), true, errStagedLength},
		{"one byte more", bytes.NewReader(append(bytes.Clone(data), 'x')), int64(len(data)), true, errStagedLength},
		{"stream fails", io.MultiReader(bytes.NewReader(data[:100]), iotestErr{broken}), int64(len(data)), false, broken},
	} {
		r := &exactReader{r: c.src, left: c.want}
		got, err := io.ReadAll(r)
		if !errors.Is(err, c.wantErr) || r.mismatch != c.wantMismatch {
			t.Errorf("%s: err %v mismatch %v, want err %v mismatch %v", c.name, err, r.mismatch, c.wantErr, c.wantMismatch)
		}
		if c.wantErr == nil && !bytes.Equal(got, data) {
			t.Errorf("%s: read %d bytes, want the %d staged", c.name, len(got), len(data))
		}
	}
}

type iotestErr struct{ err error }

func (e iotestErr) Read([]byte) (int, error) { return 0, e.err }
