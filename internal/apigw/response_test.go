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
