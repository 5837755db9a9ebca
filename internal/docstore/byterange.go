package docstore

import (
	"fmt"
	"math"
	"strings"
)

// ByteRange is a satisfiable range of a document: bytes [Start, Start+Length).
type ByteRange struct {
	Start, Length int64
}

// End is the offset of the range's last byte, as Content-Range names it.
func (r ByteRange) End() int64 { return r.Start + r.Length - 1 }

// ParseRange resolves a Range header (RFC 9110 §14.1.2) against a document
// of size bytes: "bytes=a-b", "bytes=a-" or "bytes=-n", the unit in any
// case. It has three outcomes:
//
//   - ok: one range within the document, to answer with a 206;
//   - !ok and no error: a header to ignore, answering the whole document
//     with a 200, as RFC 9110 lets a server do with any Range it does not
//     serve — another unit, several ranges (only one is served), or a
//     header that is not a range at all, such as "bytes=5-2";
//   - a KindBadRange error (a 416 naming the size): a well-formed single
//     range that selects no byte of the document — it starts at or past
//     the end, asks for the last 0 bytes, or the document is empty.
func ParseRange(header string, size int64) (r ByteRange, ok bool, err error) {
	const op = "docstore.ParseRange"
	unsatisfiable := func(why string) (ByteRange, bool, error) {
		return ByteRange{}, false, E(op, KindBadRange, &UnsatisfiableRange{Size: size},
			fmt.Sprintf("range %q: %s (document size %d)", truncate(header, 64), why, size))
	}
	unit, spec, found := strings.Cut(strings.TrimSpace(header), "=")
	if !found || !strings.EqualFold(unit, "bytes") || strings.Contains(spec, ",") {
		return ByteRange{}, false, nil
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return ByteRange{}, false, nil
	}
	first, last = strings.TrimSpace(first), strings.TrimSpace(last)
	if first == "" { // suffix range: the last n bytes
		n, valid := digits(last)
		switch {
		case !valid:
			return ByteRange{}, false, nil
		case n == 0:
			return unsatisfiable("a suffix of no byte")
		case size == 0:
			return unsatisfiable("the document is empty")
		}
		n = min(n, size)
		return ByteRange{Start: size - n, Length: n}, true, nil
	}
	start, valid := digits(first)
	if !valid {
		return ByteRange{}, false, nil
	}
	end := int64(math.MaxInt64)
	if last != "" {
		if end, valid = digits(last); !valid || end < start {
			return ByteRange{}, false, nil
		}
	}
	if start >= size {
		return unsatisfiable("start is past the end")
	}
	end = min(end, size-1)
	return ByteRange{Start: start, Length: end - start + 1}, true, nil
}

// digits parses RFC 9110's 1*DIGIT (no sign, no other base); a value too
// large for an int64 saturates, which no document reaches either way.
func digits(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			n = math.MaxInt64
			continue
		}
		n = n*10 + d
	}
	return n, true
}

// UnsatisfiableRange is the cause of a KindBadRange error: it carries the
// document size, which a 416 answer reports in Content-Range.
type UnsatisfiableRange struct{ Size int64 }

func (e *UnsatisfiableRange) Error() string { return "unsatisfiable range" }
