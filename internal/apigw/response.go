package apigw

import (
	"encoding/json"
	"strconv"
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
	need := 64 + len(r.Body)
	if r.Binary {
		need = 64 + base64.StdEncoding.EncodedLen(len(r.Body))
	}
	for _, h := range r.Headers {
		need += len(h.Name) + len(h.Value) + 8
	}
	if cap(dst)-len(dst) < need {
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
		if cap(dst)-len(dst) < n+32 { // headers that needed escaping took more room
			dst = append(make([]byte, 0, len(dst)+n+32), dst...)
		}
		base64.StdEncoding.Encode(dst[len(dst):len(dst)+n], r.Body)
		dst = dst[:len(dst)+n]
		dst = append(dst, `","isBase64Encoded":true}`...)
		return dst
	}
	dst = appendJSONString(dst, string(r.Body))
	dst = append(dst, `,"isBase64Encoded":false}`...)
	return dst
}

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
