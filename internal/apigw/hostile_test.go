package apigw_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/apigw"
	"github.com/imagodocs/imago/internal/docstore"
)

// The tests of issue 9: hostile input that was accepted, or answered
// dishonestly.

// sourceConstantCursor mints a cursor the way the code once did, under a
// key written in its source: anybody who read the source could list from
// any position they liked.
func sourceConstantCursor(tenant string, createdAt time.Time, id docstore.ID) string {
	key := sha256.Sum256([]byte("imago listing cursor v1"))
	body := []byte{1}
	body = binary.BigEndian.AppendUint64(body, uint64(createdAt.UnixNano()))
	body = append(body, id...)
	m := hmac.New(sha256.New, key[:])
	m.Write([]byte(tenant))
	m.Write([]byte{0})
	m.Write(body)
	return base64.RawURLEncoding.EncodeToString(append(body, m.Sum(nil)[:16]...))
}

func (a *api) listPage(tenant string, q map[string]string) (reply, docstore.Page) {
	a.t.Helper()
	r := a.do(call{method: "GET", path: "/documents", tenant: tenant, query: q})
	var p docstore.Page
	if r.status == 200 {
		if err := json.Unmarshal(r.body, &p); err != nil {
			a.t.Fatalf("list: %v: %s", err, r.body)
		}
	}
	return r, p
}

func TestForgedCursorIsRefused(t *testing.T) {
	a := newAPI(t)
	var docs []docstore.Document
	for i := range 3 {
		docs = append(docs, a.upload("lister", []byte(fmt.Sprintf("doc %d", i)), "d.txt"))
	}
	// Positions a caller would like to jump to: past the newest document
	// (the whole listing again), and just after a chosen one.
	for name, c := range map[string]string{
		"after the future":     sourceConstantCursor("lister", time.Now().Add(time.Hour), docstore.NewID()),
		"after the newest one": sourceConstantCursor("lister", docs[2].CreatedAt, docs[2].ID),
	} {
		r, _ := a.listPage("lister", map[string]string{"cursor": c})
		if r.status != 400 || r.errorCode() != "invalid" {
			t.Errorf("a cursor minted with the source's key, %s: %d %s, want 400 invalid", name, r.status, r.body)
		}
	}
}

func TestCursorIsBoundToTheDeploymentSecretAndTenant(t *testing.T) {
	a := newAPI(t)
	for i := range 3 {
		a.upload("lister", []byte(fmt.Sprintf("doc %d", i)), "d.txt")
	}
	secret := func(b byte) []byte { return []byte(strings.Repeat(string(rune(b)), docstore.CursorKeySize)) }
	cfg := docstore.Config{MaxInlineBytes: inlineLimit, CacheMaxBytes: inlineLimit, SegmentSize: 1024, CursorKey: secret('a')}
	a.build(cfg)
	r, first := a.listPage("lister", map[string]string{"limit": "1"})
	if r.status != 200 || first.NextCursor == "" {
		t.Fatalf("first page: %d %s", r.status, r.body)
	}

	// Another instance of the same deployment (same secret) resumes it.
	a.build(cfg)
	r, second := a.listPage("lister", map[string]string{"limit": "1", "cursor": first.NextCursor})
	if r.status != 200 || len(second.Documents) != 1 || second.Documents[0].ID == first.Documents[0].ID {
		t.Fatalf("the same deployment refused or misread its own cursor: %d %s", r.status, r.body)
	}
	// Another tenant may not use it.
	if r, _ := a.listPage("intruder", map[string]string{"cursor": first.NextCursor}); r.status != 400 {
		t.Errorf("another tenant's cursor: %d %s", r.status, r.body)
	}
	// Another deployment (another secret) refuses it.
	cfg.CursorKey = secret('b')
	a.build(cfg)
	if r, _ := a.listPage("lister", map[string]string{"cursor": first.NextCursor}); r.status != 400 || r.errorCode() != "invalid" {
		t.Errorf("a cursor of another deployment: %d %s, want 400 invalid", r.status, r.body)
	}
}

// fileHead is a multipart/form-data body up to the end of a complete
// "file" part's content; what follows decides whether the body is whole.
const fileHead = "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nhello"

func TestTruncatedMultipartIsRefused(t *testing.T) {
	for name, tail := range map[string]string{
		"no closing boundary":                   "\r\n--B",
		"a delimiter, then nothing":             "\r\n--B\r\n",
		"the file part unterminated":            "",
		"a line break, then nothing":            "\r\n",
		"a text part cut short":                 "\r\n--B\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nv",
		"a second part's headers cut short":     "\r\n--B\r\nContent-Disposition: form-da",
		"a closing boundary missing its dashes": "\r\n--B-",
	} {
		t.Run(name, func(t *testing.T) {
			a := newAPI(t)
			r := a.do(call{method: "POST", path: "/documents", tenant: "t", body: []byte(fileHead + tail),
				headers: map[string]string{"content-type": "multipart/form-data; boundary=B"}})
			if r.status != 400 || r.errorCode() != "invalid" {
				t.Fatalf("truncated multipart %q: %d %s, want 400 invalid", tail, r.status, r.body)
			}
			if _, p := a.listPage("t", nil); len(p.Documents) != 0 {
				t.Errorf("a truncated upload was stored: %+v", p.Documents)
			}
		})
	}
	// Whole bodies still pass: the closing delimiter, with or without a
	// final line break, an epilogue, or bare LF line endings.
	for name, body := range map[string]string{
		"closed":            fileHead + "\r\n--B--\r\n",
		"closed, no CRLF":   fileHead + "\r\n--B--",
		"with an epilogue":  fileHead + "\r\n--B--\r\nthis is the epilogue",
		"bare LF":           strings.ReplaceAll(fileHead, "\r\n", "\n") + "\n--B--\n",
		"two parts, closed": fileHead + "\r\n--B\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nv\r\n--B--\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			a := newAPI(t)
			r := a.do(call{method: "POST", path: "/documents", tenant: "t", body: []byte(body),
				headers: map[string]string{"content-type": "multipart/form-data; boundary=B"}})
			if r.status != 201 {
				t.Fatalf("whole multipart body: %d %s", r.status, r.body)
			}
			if d := r.document(t); d.Size != 5 || d.Filename != "a.txt" {
				t.Errorf("stored %+v", d)
			}
		})
	}
}

func TestCreateUploadRefusesAnUnparsableContentType(t *testing.T) {
	for _, ct := range []string{";;;", "application/json;;", "/", "application/json; charset"} {
		a := newAPI(t)
		r := a.do(call{method: "POST", path: "/documents/uploads", tenant: "t", headers: map[string]string{"content-type": ct},
			body: []byte(`{"filename":"a.bin","content_type":"application/octet-stream","size":10}`)})
		if r.status != 415 || r.errorCode() != "unsupported_media_type" {
			t.Errorf("Content-Type %q: %d %s, want 415 unsupported_media_type", ct, r.status, r.body)
		}
	}
}

func TestMethodNotAllowedNamesTheAllowedMethods(t *testing.T) {
	a := newAPI(t)
	for _, tc := range []struct {
		method, path string
		allow        []string
	}{
		{"PUT", "/documents", []string{"GET", "POST"}},
		{"PUT", "/documents/" + string(docstore.NewID()), []string{"DELETE", "GET", "PATCH"}},
		{"POST", "/documents/" + string(docstore.NewID()) + "/content", []string{"GET"}},
		{"DELETE", "/health", []string{"GET"}},
	} {
		r := a.do(call{method: tc.method, path: tc.path, tenant: "t"})
		if r.status != 405 || r.errorCode() != "method_not_allowed" {
			t.Errorf("%s %s: %d %s, want 405", tc.method, tc.path, r.status, r.body)
			continue
		}
		allow := strings.Split(r.headers["allow"], ", ")
		for _, m := range tc.allow {
			if !slices.Contains(allow, m) {
				t.Errorf("%s %s: Allow %q does not name %s", tc.method, tc.path, r.headers["allow"], m)
			}
		}
		for _, m := range allow {
			if _, _, ok, _ := apigw.Match(m, tc.path); !ok {
				t.Errorf("%s %s: Allow %q names %s, which is not a route", tc.method, tc.path, r.headers["allow"], m)
			}
		}
	}
}
