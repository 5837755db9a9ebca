package apigw_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/imagodocs/imago/internal/apigw"
	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/docstore/servicetest"
)

// FuzzContentDisposition: for any filename the header is a valid header
// value (visible ASCII and spaces only: no line break, no control
// character, nothing a proxy could re-encode) that mime.ParseMediaType
// reads back as an attachment of exactly that filename.
func FuzzContentDisposition(f *testing.F) {
	for _, name := range []string{"passport.pdf", "", "a\"b\\c.pdf", "€ rates.pdf", "x\r\nSet-Cookie: a=b", "100%.txt",
		"; filename=evil.exe", "\xff\xfe", "日本語の書類.pdf", "a\x00b", "'quoted'", "tab\there"} {
		f.Add(name)
	}
	f.Fuzz(func(t *testing.T, filename string) {
		h := apigw.ContentDisposition(filename)
		for i := 0; i < len(h); i++ {
			if c := h[i]; c < 0x20 || c > 0x7e {
				t.Fatalf("ContentDisposition(%q) = %q: byte 0x%02x at %d", filename, h, c, i)
			}
		}
		mt, params, err := mime.ParseMediaType(h)
		if err != nil || mt != "attachment" {
			t.Fatalf("ContentDisposition(%q) = %q: ParseMediaType: %q %v", filename, h, mt, err)
		}
		if got, ok := params["filename"]; filename != "" && (!ok || got != filename) {
			t.Fatalf("ContentDisposition(%q) = %q reads back as filename %q", filename, h, got)
		}
		if filename == "" && len(params) != 0 {
			t.Fatalf("ContentDisposition(\"\") = %q has parameters", h)
		}
	})
}

// FuzzAppendLambdaJSON is differential: the hand-written encoder's output,
// decoded by encoding/json, equals what encoding/json itself round-trips
// from the same response.
func FuzzAppendLambdaJSON(f *testing.F) {
	f.Add(200, "content-type", "application/json", "x-imago-cache", "hit", []byte(`{"id":"x"}`), false)
	f.Add(206, "content-range", "bytes 0-3/10", "etag", `"abc"`, []byte("\x00\x01\xff binary"), true)
	f.Add(400, "x", "line\nbreak\t\"quote\" \\ \u2028 \x7f", "y", "\xff\xfe invalid", []byte("\xc3\x28 not utf-8 <&>"), false)
	f.Add(0, "", "", "", "", []byte(nil), false)
	f.Fuzz(func(t *testing.T, status int, n1, v1, n2, v2 string, body []byte, binary bool) {
		r := &apigw.Response{Status: status, Headers: []apigw.Header{{Name: n1, Value: v1}, {Name: n2, Value: v2}}, Body: body, Binary: binary}
		out := r.AppendLambdaJSON([]byte("prefix"))
		if !bytes.HasPrefix(out, []byte("prefix")) {
			t.Fatal("AppendLambdaJSON did not append")
		}
		out = out[len("prefix"):]
		// Sized exactly up front, whatever the escaping; the pooled form
		// holds the same bytes.
		if exact := r.AppendLambdaJSON(nil); !bytes.Equal(exact, out) || len(exact) != cap(exact) {
			t.Fatalf("alone: %d bytes in a buffer of %d, %q", len(exact), cap(exact), exact)
		}
		if lr := r.LambdaResponse(); !bytes.Equal(lr.Bytes(), out) {
			t.Fatalf("LambdaResponse holds %q", lr.Bytes())
		} else {
			lr.Close()
		}
		if !json.Valid(out) {
			t.Fatalf("not JSON: %q", out)
		}
		var got events.APIGatewayV2HTTPResponse
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("encoding/json cannot decode %q: %v", out, err)
		}
		ref := events.APIGatewayV2HTTPResponse{StatusCode: status, Headers: map[string]string{n1: v1, n2: v2}, IsBase64Encoded: binary}
		if binary {
			ref.Body = base64.StdEncoding.EncodeToString(body)
		} else {
			ref.Body = string(body)
		}
		// Names that are one JSON key once invalid bytes become U+FFFD (each
		// byte one, as a []rune conversion does) are one header: the last
		// duplicate in the object wins, as a map's last assignment.
		if string([]rune(n1)) == string([]rune(n2)) {
			ref.Headers = map[string]string{n2: v2}
		}
		raw, err := json.Marshal(ref)
		if err != nil {
			t.Fatal(err)
		}
		var want events.APIGatewayV2HTTPResponse
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatal(err)
		}
		if got.StatusCode != want.StatusCode || got.Body != want.Body || got.IsBase64Encoded != want.IsBase64Encoded || len(got.Headers) != len(want.Headers) {
			t.Fatalf("decoded %+v, encoding/json round-trips %+v", got, want)
		}
		for k, v := range want.Headers {
			if got.Headers[k] != v {
				t.Fatalf("header %q: decoded %q, want %q", k, got.Headers[k], v)
			}
		}
	})
}

// FuzzUpload sends POST /documents with any Content-Type, body and
// filename through the upload function: it never fails with a server
// error, every refusal is the JSON error shape, and what it stores is
// exactly the raw body, or exactly the "file" part the standard library
// reads from a multipart body.
func FuzzUpload(f *testing.F) {
	b := servicetest.OpenEmbedded(f, fuzzDataDir(f), "").Backends
	b.Staging = nil
	svc := docstore.NewService(b, docstore.Config{MaxInlineBytes: 4 << 10, CacheMaxBytes: 4 << 10, SegmentSize: 64}, nil)
	upload, download := apigw.New(svc, apigw.Upload, apigw.Options{}), apigw.New(svc, apigw.Download, apigw.Options{})

	mp, mpCT := func() ([]byte, string) {
		var b bytes.Buffer
		w := multipart.NewWriter(&b)
		fw, _ := w.CreateFormFile("file", "scan.png")
		fw.Write([]byte("\x89PNG...."))
		w.WriteField("case", "4711")
		w.Close()
		return b.Bytes(), w.FormDataContentType()
	}()
	f.Add(mpCT, mp, "")
	f.Add(mpCT, mp[:len(mp)-8], "")
	f.Add("application/pdf", []byte("%PDF-1.7 raw"), "contract.pdf")
	f.Add("", []byte("no type"), "")
	f.Add(";;;", []byte("x"), "")
	f.Add("text/plain; charset=\"", []byte("x"), "a\x01b")
	f.Add("multipart/form-data; boundary=", []byte("--\r\n"), "")
	f.Fuzz(func(t *testing.T, contentType string, body []byte, filename string) {
		ev := &events.APIGatewayV2HTTPRequest{RouteKey: "POST /documents", RawPath: "/documents",
			Headers: map[string]string{"content-type": contentType}, QueryStringParameters: map[string]string{"filename": filename},
			Body: base64.StdEncoding.EncodeToString(body), IsBase64Encoded: true}
		ev.RequestContext.HTTP.Method = "POST"
		ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
			JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: map[string]string{"sub": "fuzz"}}}
		resp := upload.Handle(context.Background(), ev)
		switch resp.Status {
		case 400, 413, 415:
			var e struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			if json.Unmarshal(resp.Body, &e) != nil || e.Error.Code == "" || e.Error.Message == "" {
				t.Fatalf("%d is not the JSON error shape: %s", resp.Status, resp.Body)
			}
			return
		case 201:
		default:
			t.Fatalf("upload answered %d: %s", resp.Status, resp.Body)
		}
		var doc docstore.Document
		if err := json.Unmarshal(resp.Body, &doc); err != nil {
			t.Fatal(err)
		}
		want := body
		if mt, params, err := mime.ParseMediaType(contentType); err == nil && mt == "multipart/form-data" {
			want = referenceFilePart(t, body, params["boundary"])
		}
		get := &events.APIGatewayV2HTTPRequest{RouteKey: "GET /documents/{id}/content", RawPath: "/documents/" + string(doc.ID) + "/content",
			PathParameters: map[string]string{"id": string(doc.ID)}, RequestContext: ev.RequestContext}
		get.RequestContext.HTTP.Method = "GET"
		got := download.Handle(context.Background(), get)
		if got.Status != 200 || !bytes.Equal(got.Body, want) {
			t.Fatalf("stored %d %q, want %q", got.Status, got.Body, want)
		}
	})
}

// referenceFilePart is the "file" part of a multipart body as the
// standard library reads it; the body must be complete.
func referenceFilePart(t *testing.T, body []byte, boundary string) []byte {
	t.Helper()
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	var file []byte
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("a multipart body the standard reader refuses was stored: %v", err)
		}
		data, err := io.ReadAll(p)
		if err != nil {
			t.Fatalf("a multipart body with an unreadable part was stored: %v", err)
		}
		if p.FormName() == "file" {
			file = data
		}
	}
	if !strings.Contains(string(body), "--"+boundary+"--") {
		t.Fatal("a multipart body without its close delimiter was stored")
	}
	return file
}

// fuzzDataDir is a folder for a fuzz target's embedded backends: on tmpfs
// when the machine has one, since a fuzzer runs thousands of uploads and
// their fsyncs on a busy disk would leave it a handful of executions.
func fuzzDataDir(f *testing.F) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "imago-fuzz-"); err == nil {
			f.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return f.TempDir()
}
