package docstore

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestParseRange(t *testing.T) {
	const size = 1000
	const (
		granted = iota
		ignored // a 200 with the whole document
		refused // a 416
	)
	for _, tc := range []struct {
		header        string
		start, length int64
		outcome       int
	}{
		{"bytes=0-0", 0, 1, granted},
		{"bytes=0-999", 0, 1000, granted},
		{"bytes=0-5000", 0, 1000, granted}, // clamped to the end
		{"bytes=0-99999999999999999999", 0, 1000, granted},
		{"bytes=990-", 990, 10, granted},
		{"bytes=-1", 999, 1, granted},
		{"bytes=-5000", 0, 1000, granted},
		{"bytes=-99999999999999999999", 0, 1000, granted},
		{"bytes=10-19", 10, 10, granted},
		{" bytes=10-19 ", 10, 10, granted},
		// The unit is case-insensitive (RFC 9110 §14.1).
		{"Bytes=0-1", 0, 2, granted},
		{"BYTES=-2", 998, 2, granted},
		// Well-formed single ranges that select no byte: 416.
		{"bytes=1000-", 0, 0, refused},
		{"bytes=1000-2000", 0, 0, refused},
		{"bytes=99999999999999999999-", 0, 0, refused},
		{"bytes=-0", 0, 0, refused},
		// Several ranges, another unit, or no range at all: ignored.
		// (These answered 416 before; RFC 9110 lets a server ignore them,
		// and a client that sent them can still use the whole document.)
		{"bytes=0-1,3-4", 0, 0, ignored},
		{"bytes=0-1,", 0, 0, ignored},
		{"items=0-1", 0, 0, ignored},
		{" bytes = 10-19 ", 0, 0, ignored},
		{"bytes=5-4", 0, 0, ignored},
		{"bytes=a-b", 0, 0, ignored},
		{"bytes=z-", 0, 0, ignored},
		{"bytes=", 0, 0, ignored},
		{"bytes=--1", 0, 0, ignored},
		{"bytes=+1-2", 0, 0, ignored},
		{"bytes=0x1-2", 0, 0, ignored},
		{"bytes 0-1", 0, 0, ignored},
		{"garbage", 0, 0, ignored},
	} {
		r, ok, err := ParseRange(tc.header, size)
		outcome := map[bool]int{true: granted, false: ignored}[ok]
		if err != nil {
			outcome = refused
		}
		if outcome != tc.outcome || ok && (r.Start != tc.start || r.Length != tc.length) || !ok && r != (ByteRange{}) {
			t.Errorf("ParseRange(%q) = %+v, %v, %v; want outcome %d start %d length %d", tc.header, r, ok, err, tc.outcome, tc.start, tc.length)
		}
		var unsat *UnsatisfiableRange
		if err != nil && (KindOf(err) != KindBadRange || !errors.As(err, &unsat) || unsat.Size != size) {
			t.Errorf("ParseRange(%q): error %v is not a bad range of a %d-byte document", tc.header, err, size)
		}
	}
	for _, h := range []string{"bytes=-1", "bytes=0-"} {
		if _, _, err := ParseRange(h, 0); KindOf(err) != KindBadRange {
			t.Errorf("%s of an empty document: %v, want a bad range", h, err)
		}
	}
}

func TestCursorRoundTripAndTampering(t *testing.T) {
	pos := ListPosition{CreatedAt: time.Date(2026, 11, 27, 10, 0, 0, 123456000, time.UTC), ID: NewID()}
	key := randomCursorKey()
	c := EncodeCursor(key, "alice", pos)
	got, err := DecodeCursor(key, "alice", c)
	if err != nil || !got.CreatedAt.Equal(pos.CreatedAt) || got.ID != pos.ID {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	if _, err := DecodeCursor(key, "bob", c); KindOf(err) != KindInvalid {
		t.Errorf("another tenant's cursor: %v", err)
	}
	for i := range c {
		b := []byte(c)
		b[i] ^= 0x01
		if _, err := DecodeCursor(key, "alice", string(b)); err == nil {
			// Flipping a bit of a base64 character may leave the decoded
			// bytes unchanged only in the unused low bits of the last one.
			if i != len(c)-1 {
				t.Errorf("cursor with character %d changed was accepted", i)
			}
		}
	}
	for _, bad := range []string{"", "x", strings.Repeat("A", 100), "!!!!"} {
		if _, err := DecodeCursor(key, "alice", bad); KindOf(err) != KindInvalid {
			t.Errorf("DecodeCursor(%q): %v", bad, err)
		}
	}
}

func TestErrorsCarryKindAndHideDetail(t *testing.T) {
	cause := errors.New("dial tcp 10.0.0.1:443: i/o timeout")
	err := E("s3store.Get", KindUnavailable, cause)
	wrapped := fmt.Errorf("get blob x: %w", err)
	outer := E("docstore.Download", wrapped)
	if KindOf(outer) != KindUnavailable {
		t.Fatalf("kind %v, want unavailable (inherited through wrapping)", KindOf(outer))
	}
	if !errors.Is(outer, cause) {
		t.Fatal("the cause is lost")
	}
	if msg := PublicMessage(outer); strings.Contains(msg, "10.0.0.1") {
		t.Fatalf("public message leaks detail: %q", msg)
	}
	if msg := PublicMessage(errors.New("secret")); msg != "internal error" {
		t.Fatalf("a plain error's public message: %q", msg)
	}
	nf := E("docstore.Get", KindNotFound, fmt.Sprintf("document %s not found", "abc"))
	if PublicMessage(E("outer", nf)) != "document abc not found" {
		t.Fatalf("public message of a wrapped not-found: %q", PublicMessage(E("outer", nf)))
	}
	if KindOf(nil) != KindInternal || IsNotFound(nil) {
		t.Fatal("nil error kinds")
	}
}

// E takes its arguments by type, the op always first: a string after it is
// the caller's message, never a second op.
func TestEBuildsErrorsByArgumentType(t *testing.T) {
	var noCause error
	err := E("fsstore.Put", "the disk is full", KindUnavailable, noCause)
	var e *Error
	if !errors.As(err, &e) || e.Op != "fsstore.Put" || e.Message != "the disk is full" || e.Kind != KindUnavailable || e.Err != nil {
		t.Fatalf("E = %#v", err)
	}
	if got := err.Error(); got != "fsstore.Put: the disk is full" {
		t.Fatalf("Error() = %q", got)
	}
	if PublicMessage(err) != "the disk is full" {
		t.Fatalf("public message %q", PublicMessage(err))
	}
}

func TestInputValidation(t *testing.T) {
	for in, want := range map[string]string{
		`C:\\Users\\me\\scan.pdf`: "scan.pdf",
		"/etc/passwd":             "passwd",
		"../../x.pdf":             "x.pdf",
		"  Relevé.pdf ":           "Relevé.pdf",
		"..":                      "",
		"":                        "",
	} {
		if got, err := CleanFilename(in); err != nil || got != want {
			t.Errorf("CleanFilename(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"a\x00b", "a\nb", "\xff\xfe", strings.Repeat("a", MaxFilenameBytes+1)} {
		if _, err := CleanFilename(bad); KindOf(err) != KindInvalid {
			t.Errorf("CleanFilename(%q): %v", bad, err)
		}
	}
	if ct, err := CleanContentType("Text/Plain; Charset=UTF-8"); err != nil || ct != "text/plain; charset=UTF-8" {
		t.Errorf("CleanContentType: %q %v", ct, err)
	}
	for _, bad := range []string{"text", "/", "a/b; x", "text/plain; =x"} {
		if _, err := CleanContentType(bad); KindOf(err) != KindUnsupportedMedia {
			t.Errorf("CleanContentType(%q): %v", bad, err)
		}
	}
	if err := ValidateMetadata(map[string]string{"case-id": "42", "owner.name": "Zoë"}); err != nil {
		t.Errorf("valid metadata: %v", err)
	}
	tooMany := map[string]string{}
	for i := 0; i <= MaxMetadataPairs; i++ {
		tooMany[fmt.Sprintf("k%d", i)] = "v"
	}
	for name, md := range map[string]map[string]string{
		"upper-case key":   {"Case": "1"},
		"space in key":     {"a b": "1"},
		"empty key":        {"": "1"},
		"control in value": {"a": "x\x00"},
		"long value":       {"a": strings.Repeat("v", MaxMetadataValBytes+1)},
		"too many pairs":   tooMany,
	} {
		if err := ValidateMetadata(md); KindOf(err) != KindInvalid {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestIdempotentIDsAreScopedToTheTenant(t *testing.T) {
	a, b := IDForIdempotencyKey("alice", "k1"), IDForIdempotencyKey("alice", "k1")
	if a != b {
		t.Fatal("the same tenant and key gave two ids")
	}
	if IDForIdempotencyKey("bob", "k1") == a || IDForIdempotencyKey("alice", "k2") == a {
		t.Fatal("another tenant or key gave the same id")
	}
	// The separator keeps ("ab", "c") and ("a", "bc") apart.
	if IDForIdempotencyKey("ab", "c") == IDForIdempotencyKey("a", "bc") {
		t.Fatal("tenant and key run together")
	}
	if _, err := ParseID(string(a)); err != nil {
		t.Fatalf("derived id %s is not a valid id: %v", a, err)
	}
}
