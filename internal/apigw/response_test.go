package apigw

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

// TestAppendLambdaJSONBinary decodes the hand-written response with
// encoding/json, as the Lambda runtime and API Gateway do: every body size
// around base64's 3-byte groups, headers that need escaping (which take
// more room than the size estimate), and a buffer that already holds bytes.
func TestAppendLambdaJSONBinary(t *testing.T) {
	doc := make([]byte, 70_000)
	rand.Read(doc)
	for _, n := range []int{0, 1, 2, 3, 4, 5, 64, 65, 66, 4095, 4096, 4097, 70_000} {
		for _, hdr := range []string{"plain", "\"quoted\"\n\t\\", string(bytes.Repeat([]byte{1}, 200))} {
			r := &Response{Status: 206, Body: doc[:n], Binary: true,
				Headers: []Header{{"content-type", "application/octet-stream"}, {"x-test", hdr}}}
			prefix := []byte("prefix")
			out := r.AppendLambdaJSON(prefix)
			if !bytes.HasPrefix(out, prefix) {
				t.Fatalf("n=%d: the bytes before were lost", n)
			}
			var got events.APIGatewayV2HTTPResponse
			if err := json.Unmarshal(out[len(prefix):], &got); err != nil {
				t.Fatalf("n=%d: not JSON: %v", n, err)
			}
			body, err := base64.StdEncoding.DecodeString(got.Body)
			if err != nil || !got.IsBase64Encoded || !bytes.Equal(body, doc[:n]) || got.StatusCode != 206 || got.Headers["x-test"] != hdr {
				t.Fatalf("n=%d header %q: decoded %d bytes (%v), status %d, header %q", n, hdr, len(body), err, got.StatusCode, got.Headers["x-test"])
			}
		}
	}
}

// TestAppendLambdaJSONAllocatesOnce: the response of a megabyte document is
// built in one allocation of exactly its size, whatever its headers need in
// escaping; a second buffer of the document's size would cost more than
// the base64 itself.
func TestAppendLambdaJSONAllocatesOnce(t *testing.T) {
	doc := make([]byte, 1<<20)
	rand.Read(doc)
	for _, hdr := range []string{"plain", "\"quoted\"\n\t\\", string(bytes.Repeat([]byte{1}, 200)), "caf\u00e9 \xff"} {
		for _, r := range []*Response{
			{Status: 200, Body: doc, Binary: true, Headers: []Header{{"content-type", "application/pdf"}, {"x-test", hdr}}},
			{Status: 404, Body: []byte(`{"error":"` + hdr + `"}`), Headers: []Header{{"x-test", hdr}}},
		} {
			out := r.AppendLambdaJSON(nil)
			if len(out) != cap(out) {
				t.Fatalf("header %q: %d bytes in a buffer of %d", hdr, len(out), cap(out))
			}
			if !json.Valid(out) {
				t.Fatalf("header %q: not JSON", hdr)
			}
			if n := testing.AllocsPerRun(3, func() { r.AppendLambdaJSON(nil) }); r.Binary && n != 1 {
				t.Fatalf("header %q: %v allocations, want 1", hdr, n)
			}
		}
	}
}

// BenchmarkLambdaResponse1MiB is the encoding of a 1 MiB document's answer:
// into a fresh buffer (Invoke) and into a pooled one given back after
// use (Respond, as the Lambda runtime closes it).
func BenchmarkLambdaResponse1MiB(b *testing.B) {
	doc := make([]byte, 1<<20)
	rand.Read(doc)
	r := &Response{Status: 200, Body: doc, Binary: true, Headers: []Header{{"content-type", "application/pdf"}}}
	b.Run("fresh", func(b *testing.B) {
		b.SetBytes(int64(len(doc)))
		b.ReportAllocs()
		for b.Loop() {
			r.AppendLambdaJSON(nil)
		}
	})
	b.Run("pooled", func(b *testing.B) {
		b.SetBytes(int64(len(doc)))
		b.ReportAllocs()
		for b.Loop() {
			r.LambdaResponse().Close()
		}
	})
}
