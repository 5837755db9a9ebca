package docstore

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// FuzzParseRange: ParseRange never panics; a range it grants lies within
// the document and is what the header asked for, written out canonically
// it parses to itself, a refusal is always a 416 that names the size, and
// only a single range of bytes is ever refused (several ranges, another
// unit, anything else is ignored).
func FuzzParseRange(f *testing.F) {
	for _, h := range []string{"bytes=0-0", "bytes=0-", "bytes=-1", "bytes=5-2", "bytes=1-2,3-4", "bytes=-0", "Bytes=0-1",
		"bytes= 3 - 9 ", "items=0-1", "bytes=9223372036854775807-", "bytes=-9223372036854775808", "bytes=+1-2", "bytes=0x1-2"} {
		f.Add(h, int64(10))
	}
	f.Add("bytes=0-", int64(0))
	f.Fuzz(func(t *testing.T, header string, size int64) {
		if size < 0 {
			size = -(size + 1)
		}
		r, ok, err := ParseRange(header, size)
		if err != nil {
			var unsat *UnsatisfiableRange
			if KindOf(err) != KindBadRange || !errors.As(err, &unsat) || unsat.Size != size {
				t.Fatalf("ParseRange(%q, %d): %v is not a bad range of a %d-byte document", header, size, err, size)
			}
			unit, _, _ := strings.Cut(strings.TrimSpace(header), "=")
			if strings.Contains(header, ",") || !strings.EqualFold(unit, "bytes") {
				t.Fatalf("ParseRange(%q, %d) refused a header it must ignore: %v", header, size, err)
			}
			return
		}
		if !ok {
			if r != (ByteRange{}) {
				t.Fatalf("ParseRange(%q, %d) ignored the header but returned %+v", header, size, r)
			}
			return
		}
		if r.Start < 0 || r.Length < 1 || r.Start > size-r.Length {
			t.Fatalf("ParseRange(%q, %d) = %+v, outside the document", header, size, r)
		}
		canonical := fmt.Sprintf("bytes=%d-%d", r.Start, r.End())
		if again, ok, err := ParseRange(canonical, size); err != nil || !ok || again != r {
			t.Fatalf("ParseRange(%q) = %+v, %v, %v; %q gave %+v", canonical, again, ok, err, header, r)
		}
	})
}

// FuzzDecodeCursor: DecodeCursor never panics, and it accepts only the
// exact strings EncodeCursor makes under its key for that tenant: no
// second spelling of a cursor, no other tenant's, no other key's.
func FuzzDecodeCursor(f *testing.F) {
	key := bytes.Repeat([]byte{0x5c}, CursorKeySize)
	pos := ListPosition{CreatedAt: time.Date(2026, 11, 27, 10, 0, 0, 123456789, time.UTC), ID: "0b9b8f5e-2f4c-4f7a-9a57-6f3f0d1f2a3b"}
	valid := EncodeCursor(key, "alice", pos)
	f.Add(valid, "alice")
	f.Add(valid, "bob")
	f.Add(valid[:len(valid)-1]+"B", "alice")
	f.Add(valid+"A", "alice")
	f.Add("", "alice")
	f.Add("%%%%", "alice")
	f.Fuzz(func(t *testing.T, cursor, tenant string) {
		got, err := DecodeCursor(key, Tenant(tenant), cursor)
		if err != nil {
			if KindOf(err) != KindInvalid {
				t.Fatalf("DecodeCursor(%q): %v is not KindInvalid", cursor, err)
			}
			return
		}
		if again := EncodeCursor(key, Tenant(tenant), got); again != cursor {
			t.Fatalf("DecodeCursor accepted %q for %q, which encodes as %q", cursor, tenant, again)
		}
		if _, err := ParseID(string(got.ID)); err != nil {
			t.Fatalf("decoded an invalid id %q", got.ID)
		}
		if _, err := DecodeCursor(bytes.Repeat([]byte{0x5d}, CursorKeySize), Tenant(tenant), cursor); err == nil {
			t.Fatalf("cursor %q verified under another key", cursor)
		}
	})
}

func TestCursorOfAnotherKeyIsRefused(t *testing.T) {
	pos := ListPosition{CreatedAt: time.Now().UTC(), ID: NewID()}
	c := EncodeCursor(randomCursorKey(), "alice", pos)
	if _, err := DecodeCursor(randomCursorKey(), "alice", c); KindOf(err) != KindInvalid {
		t.Fatalf("a cursor made under another key: %v, want KindInvalid", err)
	}
}
