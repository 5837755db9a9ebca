package apigw

import (
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"sync"
	"unicode/utf8"

	// A drop-in for encoding/base64 with SIMD encoders (AVX2 on amd64, NEON
	// on arm64): base64 of the document is most of a cache hit's own work.
	"github.com/segmentio/asm/base64"
)

// Response is what a route answers, before it is encoded as the API
// Gateway payload 2.0 response.
type Response struct {
	Status  int
	Headers []Header
	Body    []byte
	// Binary marks a body that must travel base64-encoded (documents);
	// JSON bodies travel as plain strings so logs and `sam local` stay readable.
	Binary bool
	// audit delivers the outcome of the request's audit record, appended
	// while the response is encoded (audit.go); nil when there is none.
	audit <-chan error
}

// Header is one response header. A slice of pairs, not a map: responses
// carry few headers and are encoded in order, without sorting or hashing.
type Header struct{ Name, Value string }

// Header returns the value of the named header (exact name), or "".
func (r *Response) Header(name string) string {
	for _, h := range r.Headers {
		if h.Name == name {
			return h.Value
		}
	}
	return ""
}

func (r *Response) set(name, value string) {
	r.Headers = append(r.Headers, Header{name, value})
}

// AppendLambdaJSON appends the response in API Gateway's payload 2.0 form:
//
//	{"statusCode":200,"headers":{…},"body":"…","isBase64Encoded":true}
//
// It is written by hand because this is the hot path of a cache hit: the
// document is base64-encoded once, straight into a buffer sized up front,
// where the events struct through encoding/json would copy, escape-scan and
// validate a multi-megabyte string several times over.
func (r *Response) AppendLambdaJSON(dst []byte) []byte {
	return r.appendLambdaJSON(dst, r.lambdaJSONLen())
}

// appendLambdaJSON is AppendLambdaJSON with the form's length, need, known.
func (r *Response) appendLambdaJSON(dst []byte, need int) []byte {
	if cap(dst)-len(dst) < need {
		// One allocation of the exact size: growing a multi-megabyte buffer
		// twice would cost more than the encoding itself (fresh pages).
		grown := make([]byte, len(dst), len(dst)+need)
		copy(grown, dst)
		dst = grown
	}
	dst = append(dst, `{"statusCode":`...)
	dst = strconv.AppendInt(dst, int64(r.Status), 10)
	dst = append(dst, `,"headers":{`...)
	for i, h := range r.Headers {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, h.Name)
		dst = append(dst, ':')
		dst = appendJSONString(dst, h.Value)
	}
	dst = append(dst, `},"body":`...)
	if r.Binary {
		dst = append(dst, '"')
		n := base64.StdEncoding.EncodedLen(len(r.Body))
		base64.StdEncoding.Encode(dst[len(dst):len(dst)+n], r.Body)
		dst = dst[:len(dst)+n]
		return append(dst, binaryTail...)
	}
	dst = appendJSONString(dst, string(r.Body))
	return append(dst, textTail...)
}

const (
	lambdaHead = `{"statusCode":` + `,"headers":{` + `},"body":`
	binaryTail = `","isBase64Encoded":true}`
	textTail   = `,"isBase64Encoded":false}`
)

// lambdaJSONLen is the exact length of the response's AppendLambdaJSON form.
func (r *Response) lambdaJSONLen() int {
	var digits [20]byte
	n := len(lambdaHead) + len(strconv.AppendInt(digits[:0], int64(r.Status), 10))
	for i, h := range r.Headers {
		if i > 0 {
			n++
		}
		n += jsonStringLen(h.Name) + 1 + jsonStringLen(h.Value)
	}
	if r.Binary {
		return n + 1 + base64.StdEncoding.EncodedLen(len(r.Body)) + len(binaryTail)
	}
	return n + jsonStringLen(string(r.Body)) + len(textTail)
}

// jsonStringLen is the length of appendJSONString's form of s.
func jsonStringLen(s string) int {
	n := 2
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			n++
			i++
			continue
		}
		if c < utf8.RuneSelf {
			switch c {
			case '"', '\\', '\n', '\r', '\t':
				n += 2
			default:
				n += 6
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			n += len(`\ufffd`)
			i++
			continue
		}
		n += size
		i += size
	}
	return n
}

// LambdaResponse is a response in API Gateway's payload 2.0 form (see
// AppendLambdaJSON) held in a buffer that is reused once Close is called.
// It is what Respond gives aws-lambda-go's runtime, which reads it (it is an
// io.Reader that does not encode as JSON, so it is sent byte for byte, as
// an Invoke answer is) and closes it after sending. A megabyte cache hit
// then allocates no response buffer: the pages of a fresh 1.4 MB buffer
// and the collections its garbage causes cost more than the base64 that
// fills it.
type LambdaResponse struct {
	buf    []byte // the whole response
	unread []byte
	pooled bool
}

// Pooled buffers: responses of a document; small JSON answers are cheap
// to allocate and would only crowd the pool. A pooled buffer stays live,
// and the collector lets the heap grow to twice what is live: pooling the
// 5.6 MB answers of the 4 MiB Range parts a large document is read in
// raised the download function's peak by 12 MiB (ranged-get-1GiB-peak-rss,
// 45 to 57 MiB of its 64), so only answers of documents up to 1.5 MiB, the
// size of most cache hits, are pooled.
const (
	minPooledResponse = 64 << 10
	maxPooledResponse = 2 << 20
)

var responseBuffers sync.Pool // of *[]byte

// LambdaResponse encodes r into a buffer from the pool when r is large.
func (r *Response) LambdaResponse() *LambdaResponse {
	need := r.lambdaJSONLen()
	if need < minPooledResponse || need > maxPooledResponse {
		b := r.appendLambdaJSON(nil, need)
		return &LambdaResponse{buf: b, unread: b}
	}
	var buf []byte
	if p, ok := responseBuffers.Get().(*[]byte); ok && cap(*p) >= need {
		buf = (*p)[:0]
	}
	b := r.appendLambdaJSON(buf, need)
	return &LambdaResponse{buf: b, unread: b, pooled: true}
}

// Bytes returns the response; it is valid until Close.
func (l *LambdaResponse) Bytes() []byte { return l.buf }

// Read implements io.Reader.
func (l *LambdaResponse) Read(p []byte) (int, error) {
	if len(l.unread) == 0 {
		return 0, io.EOF
	}
	n := copy(p, l.unread)
	l.unread = l.unread[n:]
	return n, nil
}

// WriteTo implements io.WriterTo: io.Copy writes the buffer at once.
func (l *LambdaResponse) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(l.unread)
	l.unread = l.unread[n:]
	return int64(n), err
}

// Close gives the buffer back; the response must not be used afterwards.
// It is safe to call more than once.
func (l *LambdaResponse) Close() error {
	if l.pooled {
		b := l.buf[:0]
		responseBuffers.Put(&b)
	}
	l.buf, l.unread, l.pooled = nil, nil, false
	return nil
}

// ContentType is what aws-lambda-go's runtime declares to the Runtime API.
func (l *LambdaResponse) ContentType() string { return "application/json" }

var errRawResponse = errors.New("apigw: a LambdaResponse is sent as it is, not encoded as JSON")

// MarshalJSON refuses, on purpose: aws-lambda-go sends a handler's result
// that is an io.Reader as it is only when it cannot encode it as JSON.
func (l *LambdaResponse) MarshalJSON() ([]byte, error) { return nil, errRawResponse }

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// as encoding/json does.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// jsonResponse answers a JSON body.
func jsonResponse(status int, v any) *Response {
	body, err := json.Marshal(v)
	if err != nil { // only our own types are marshalled; this is a bug
		body = []byte(`{"error":{"code":"internal","message":"internal error"}}`)
		status = 500
	}
	r := &Response{Status: status, Body: body}
	r.set("content-type", "application/json")
	return r
}
