package docstore

import (
	"fmt"
	"strconv"
	"strings"
)

// ByteRange is a satisfiable range of a document: bytes [Start, Start+Length).
type ByteRange struct {
	Start, Length int64
}

// End is the offset of the range's last byte, as Content-Range names it.
func (r ByteRange) End() int64 { return r.Start + r.Length - 1 }

// ParseRange resolves a Range header (RFC 9110 §14.1.2) against a document
// of size bytes: "bytes=a-b", "bytes=a-" or "bytes=-n". Only one range is
// supported. A syntactically valid range that selects no byte of the
// document is KindBadRange, as is a malformed one, so a client always learns
// why it got no 206.
func ParseRange(header string, size int64) (ByteRange, error) {
	const op = "docstore.ParseRange"
	bad := func(why string) (ByteRange, error) {
		return ByteRange{}, E(op, KindBadRange, &UnsatisfiableRange{Size: size},
			fmt.Sprintf("range %q: %s (document size %d)", truncate(header, 64), why, size))
	}
	spec, ok := strings.CutPrefix(strings.TrimSpace(header), "bytes=")
	if !ok {
		return bad("only byte ranges are supported")
	}
	spec = strings.TrimSpace(spec)
	if strings.Contains(spec, ",") {
		return bad("only a single range is supported")
	}
	first, last, ok := strings.Cut(spec, "-")
	if !ok {
		return bad("malformed")
	}
	first, last = strings.TrimSpace(first), strings.TrimSpace(last)
	if first == "" { // suffix range: the last n bytes
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n <= 0 {
			return bad("malformed suffix length")
		}
		if size == 0 {
			return bad("the document is empty")
		}
		n = min(n, size)
		return ByteRange{Start: size - n, Length: n}, nil
	}
	start, err := strconv.ParseInt(first, 10, 64)
	if err != nil || start < 0 {
		return bad("malformed start")
	}
	end := size - 1
	if last != "" {
		end, err = strconv.ParseInt(last, 10, 64)
		if err != nil || end < start {
			return bad("malformed end")
		}
		end = min(end, size-1)
	}
	if start >= size {
		return bad("start is past the end")
	}
	return ByteRange{Start: start, Length: end - start + 1}, nil
}

// UnsatisfiableRange is the cause of a KindBadRange error: it carries the
// document size, which a 416 answer reports in Content-Range.
type UnsatisfiableRange struct{ Size int64 }

func (e *UnsatisfiableRange) Error() string { return "unsatisfiable range" }
