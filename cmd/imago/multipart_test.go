package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/imagodocs/imago/internal/boltstore"
	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/s3store"
	"github.com/imagodocs/imago/internal/testenv"
)

// api calls `imago serve` as one tenant.
type api struct {
	t     *testing.T
	url   string
	token string
}

func (a api) do(method, path string, body []byte) (int, []byte, http.Header) {
	a.t.Helper()
	req, _ := http.NewRequest(method, a.url+path, bytes.NewReader(body))
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

// expect makes a request, checks its status and decodes its JSON into v.
func (a api) expect(method, path string, body any, status int, v any) []byte {
	a.t.Helper()
	var raw []byte
	if body != nil {
		raw, _ = json.Marshal(body)
	}
	got, b, h := a.do(method, path, raw)
	if got != status {
		a.t.Fatalf("%s %s: %d %s, want %d", method, path, got, b, status)
	}
	if status >= 400 && (h.Get("Content-Type") != "application/json" || !bytes.Contains(b, []byte(`"error":{"code":`))) {
		a.t.Fatalf("%s %s: %d is not a JSON error: %s", method, path, got, b)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			a.t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
	return b
}

type multipartUpload struct {
	ID        string    `json:"id"`
	Method    string    `json:"method"`
	UploadURL *string   `json:"upload_url"`
	PartSize  int64     `json:"part_size"`
	PartCount int       `json:"part_count"`
	ExpiresAt time.Time `json:"expires_at"`
}

type presignedPart struct {
	Number    int               `json:"number"`
	URL       string            `json:"url"`
	Method    string            `json:"method"`
	Headers   map[string]string `json:"headers"`
	ExpiresAt time.Time         `json:"expires_at"`
}

type receivedPart struct {
	Number int    `json:"number"`
	Size   int64  `json:"size"`
	ETag   string `json:"etag"`
}

type partRef struct {
	Number int    `json:"number"`
	ETag   string `json:"etag"`
}

// putPart PUTs body to a presigned part URL and returns the status and ETag.
func putPart(t *testing.T, p presignedPart, body []byte) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(p.Method, p.URL, bytes.NewReader(body))
	for k, v := range p.Headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("ETag")
}

// stagedFiles lists every file under the staging folder, parts included.
func stagedFiles(t *testing.T, dataDir string) []string {
	t.Helper()
	var files []string
	filepath.WalkDir(filepath.Join(dataDir, "staging"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	return files
}

// TestServeUploadInParts takes a document over IMAGO_MULTIPART_THRESHOLD
// through the routes of uploads in parts on the embedded backends, with
// `imago serve` receiving the parts, and checks every refusal on the way.
func TestServeUploadInParts(t *testing.T) {
	dataDir := t.TempDir()
	tokens := filepath.Join(t.TempDir(), "tokens")
	os.WriteFile(tokens, []byte("secret-a tenant-a\nsecret-b tenant-b\n"), 0o600)
	srv := startServer(t, map[string]string{"IMAGO_DATA_DIR": dataDir, "IMAGO_ADDR": "127.0.0.1:0",
		"IMAGO_TOKENS": tokens, "IMAGO_MULTIPART_THRESHOLD": "6MiB"})
	a, b := api{t, srv.url, "secret-a"}, api{t, srv.url, "secret-b"}

	const partSize = 5 << 20
	doc := make([]byte, 2*partSize+123_457) // two full parts and a short last one
	rand.Read(doc)
	sum := sha256.Sum256(doc)
	chunk := func(n int) []byte { return doc[(n-1)*partSize : min(n*partSize, len(doc))] }

	// At the threshold: a single presigned PUT, as before.
	var single createdUpload
	a.expect("POST", "/documents/uploads", map[string]any{"filename": "at.bin", "size": 6 << 20}, 201, &single)
	if single.Method != "PUT" || single.UploadURL == "" {
		t.Fatalf("at the threshold: %+v, want a single PUT", single)
	}
	// A part size outside 5 MiB…5 GiB is refused.
	for _, ps := range []int64{0, partSize - 1, 5<<30 + 1} {
		a.expect("POST", "/documents/uploads", map[string]any{"filename": "x.bin", "size": len(doc), "part_size": ps}, 400, nil)
	}

	var up multipartUpload
	raw := a.expect("POST", "/documents/uploads", map[string]any{"filename": "scan.tiff", "content_type": "image/tiff",
		"size": len(doc), "part_size": partSize, "metadata": map[string]string{"case": "9"}}, 201, &up)
	if up.Method != "multipart" || up.UploadURL != nil || up.PartSize != partSize || up.PartCount != 3 || time.Until(up.ExpiresAt) < time.Hour {
		t.Fatalf("create upload in parts: %s", raw)
	}
	docPath := "/documents/" + up.ID
	var md map[string]any
	a.expect("GET", docPath, nil, 200, &md)
	if md["status"] != "pending" || md["size"].(float64) != float64(len(doc)) {
		t.Fatalf("before the parts: %v", md)
	}

	// Presigning: numbers within 1…part_count, at most 1000 of them.
	a.expect("POST", docPath+"/parts", map[string]any{"numbers": []int{0}}, 400, nil)
	a.expect("POST", docPath+"/parts", map[string]any{"numbers": []int{4}}, 400, nil)
	a.expect("POST", docPath+"/parts", map[string]any{"numbers": []int{}}, 400, nil)
	a.expect("POST", docPath+"/parts", map[string]any{"numbers": make([]int, 1001)}, 400, nil)
	a.expect("POST", docPath+"/parts", map[string]any{"number": []int{1}}, 400, nil)
	var presigned struct{ Parts []presignedPart }
	a.expect("POST", docPath+"/parts", map[string]any{"numbers": []int{1, 2, 3}}, 200, &presigned)
	if len(presigned.Parts) != 3 {
		t.Fatalf("presigned parts: %+v", presigned)
	}
	for i, p := range presigned.Parts {
		if p.Number != i+1 || p.Method != "PUT" || !strings.HasPrefix(p.URL, srv.url+"/_local/staging/") || time.Until(p.ExpiresAt) < time.Minute {
			t.Fatalf("presigned part %d: %+v", i+1, p)
		}
	}
	// Another tenant's document is not found, on every route.
	b.expect("POST", docPath+"/parts", map[string]any{"numbers": []int{1}}, 404, nil)
	b.expect("GET", docPath+"/parts", nil, 404, nil)
	b.expect("POST", docPath+"/complete", map[string]any{"parts": []partRef{{1, "x"}}}, 404, nil)
	b.expect("DELETE", docPath, nil, 404, nil)

	// Each part URL takes exactly its part: its length, not another's.
	if status, _ := putPart(t, presigned.Parts[2], chunk(2)); status != 400 {
		t.Fatalf("a full part to the short last part's URL: %d", status)
	}
	forged := presigned.Parts[0]
	forged.URL = strings.Replace(forged.URL, "partNumber=1", "partNumber=2", 1)
	if status, _ := putPart(t, forged, chunk(1)); status != 403 {
		t.Fatalf("a part URL with another part number: %d", status)
	}
	etags := map[int]string{}
	for _, n := range []int{1, 3} {
		status, etag := putPart(t, presigned.Parts[n-1], chunk(n))
		if status != 200 || etag == "" {
			t.Fatalf("PUT part %d: %d ETag %q", n, status, etag)
		}
		etags[n] = etag
	}
	var listed struct{ Parts []receivedPart }
	a.expect("GET", docPath+"/parts", nil, 200, &listed)
	if len(listed.Parts) != 2 || listed.Parts[0] != (receivedPart{1, partSize, etags[1]}) ||
		listed.Parts[1] != (receivedPart{3, int64(len(chunk(3))), etags[3]}) {
		t.Fatalf("GET parts: %+v, want parts 1 and 3 with %v", listed.Parts, etags)
	}
	// Part 2 is missing.
	a.expect("POST", docPath+"/complete", map[string]any{"parts": []partRef{{1, etags[1]}, {3, etags[3]}}}, 400, nil)
	a.expect("POST", docPath+"/complete", map[string]any{"parts": []partRef{{1, etags[1]}, {2, etags[1]}, {3, etags[3]}}}, 400, nil)

	status, etag := putPart(t, presigned.Parts[1], chunk(2))
	if status != 200 || etag == "" {
		t.Fatalf("PUT part 2: %d", status)
	}
	etags[2] = etag
	all := []partRef{{1, etags[1]}, {2, etags[2]}, {3, etags[3]}}
	for name, parts := range map[string][]partRef{
		"wrong etag":   {{1, etags[1]}, {2, etags[1]}, {3, etags[3]}},
		"missing etag": {{1, etags[1]}, {2, ""}, {3, etags[3]}},
		"duplicate":    {{1, etags[1]}, {2, etags[2]}, {2, etags[2]}, {3, etags[3]}},
		"out of order": {{2, etags[2]}, {1, etags[1]}, {3, etags[3]}},
		"missing last": all[:2],
		"unknown part": append(append([]partRef{}, all...), partRef{4, etags[3]}),
		"none":         {},
	} {
		msg := a.expect("POST", docPath+"/complete", map[string]any{"parts": parts}, 400, nil)
		t.Logf("complete, %s: %s", name, msg)
	}
	a.expect("GET", docPath, nil, 200, &md)
	if md["status"] != "pending" {
		t.Fatalf("after refused completions: %v", md)
	}

	var done map[string]any
	a.expect("POST", docPath+"/complete", map[string]any{"parts": all}, 202, &done)
	if done["status"] != "pending" || done["id"] != up.ID {
		t.Fatalf("complete: %v", done)
	}
	// imago serve ingests before answering, as it does a single PUT.
	a.expect("GET", docPath, nil, 200, &md)
	if md["status"] != "available" || md["sha256"] != fmt.Sprintf("%x", sum) || md["size"].(float64) != float64(len(doc)) ||
		md["filename"] != "scan.tiff" || md["metadata"].(map[string]any)["case"] != "9" {
		t.Fatalf("after complete: %v", md)
	}
	if got := getInRangesAs(t, a, up.ID, len(doc), 4<<20); sha256.Sum256(got) != sum {
		t.Fatal("the document assembled from ranges differs")
	}
	if files := stagedFiles(t, dataDir); len(files) != 0 {
		t.Fatalf("staged plaintext left after the ingest: %v", files)
	}
	// No file of the data folder holds the start, middle or end of any
	// part (a cheap stand-in for assertNoPlaintext, slow on 10 MB).
	filepath.WalkDir(dataDir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		data, _ := os.ReadFile(p)
		for n := 1; n <= 3; n++ {
			c := chunk(n)
			for _, off := range []int{0, len(c)/2 - 32, len(c) - 64} {
				if bytes.Contains(data, c[off:off+64]) {
					t.Fatalf("%s holds bytes of part %d at %d", p, n, off)
				}
			}
		}
		return nil
	})

	// Not a pending upload in parts any more: 409 on every route.
	a.expect("POST", docPath+"/complete", map[string]any{"parts": all}, 409, nil)
	a.expect("POST", docPath+"/parts", map[string]any{"numbers": []int{1}}, 409, nil)
	a.expect("GET", docPath+"/parts", nil, 409, nil)
	// Nor is a single-PUT upload.
	a.expect("POST", "/documents/"+single.ID+"/complete", map[string]any{"parts": all}, 409, nil)
	a.expect("GET", "/documents/"+single.ID+"/parts", nil, 409, nil)
}

// getInRangesAs is getInRanges with a bearer token.
func getInRangesAs(t *testing.T, a api, id string, size, part int) []byte {
	t.Helper()
	var got []byte
	for off := 0; off < size; off += part {
		req, _ := http.NewRequest("GET", a.url+"/documents/"+id+"/content", nil)
		req.Header.Set("Authorization", "Bearer "+a.token)
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+part-1))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 206 {
			t.Fatalf("range at %d: %d %s", off, resp.StatusCode, body)
		}
		got = append(got, body...)
	}
	return got
}

// TestServeDeleteAbortsUploadInParts deletes a pending upload in parts with
// parts received: every staged byte goes, and the part URLs stop working.
func TestServeDeleteAbortsUploadInParts(t *testing.T) {
	dataDir := t.TempDir()
	srv := startServer(t, map[string]string{"IMAGO_DATA_DIR": dataDir, "IMAGO_ADDR": "127.0.0.1:0", "IMAGO_MULTIPART_THRESHOLD": "6MiB"})
	a := api{t, srv.url, ""}
	doc := make([]byte, 7<<20)
	rand.Read(doc)

	var up multipartUpload
	a.expect("POST", "/documents/uploads", map[string]any{"filename": "x.bin", "size": len(doc)}, 201, &up)
	if up.PartSize != 16<<20 || up.PartCount != 1 {
		t.Fatalf("default part size: %+v, want one 16 MiB part", up)
	}
	var presigned struct{ Parts []presignedPart }
	a.expect("POST", "/documents/"+up.ID+"/parts", map[string]any{"numbers": []int{1}}, 200, &presigned)
	if status, _ := putPart(t, presigned.Parts[0], doc); status != 200 {
		t.Fatalf("PUT part 1: %d", status)
	}
	if files := stagedFiles(t, dataDir); len(files) != 1 {
		t.Fatalf("staged files with one part received: %v", files)
	}
	a.expect("DELETE", "/documents/"+up.ID, nil, 204, nil)
	if files := stagedFiles(t, dataDir); len(files) != 0 {
		t.Fatalf("staged plaintext left after DELETE: %v", files)
	}
	if status, _ := putPart(t, presigned.Parts[0], doc); status != 404 {
		t.Fatalf("PUT of a part after DELETE: %d", status)
	}
	if files := stagedFiles(t, dataDir); len(files) != 0 {
		t.Fatalf("a part PUT after DELETE left plaintext: %v", files)
	}
	a.expect("GET", "/documents/"+up.ID+"/parts", nil, 404, nil)
	a.expect("POST", "/documents/"+up.ID+"/complete", map[string]any{"parts": []partRef{{1, "x"}}}, 404, nil)
}

// TestServeUploadInPartsOnAWS takes a document in parts through `imago
// serve` on the local S3 (versitygw), DynamoDB and KMS servers: presigned
// UploadPart requests, ListParts, CompleteMultipartUpload, then S3's event,
// posted as the relay would; and DELETE aborts another upload.
func TestServeUploadInPartsOnAWS(t *testing.T) {
	env := testenv.Require(t, awsVars...)
	awsCfg := testenv.AWSConfig(t)
	env["IMAGO_ADDR"], env["IMAGO_MULTIPART_THRESHOLD"] = "127.0.0.1:0", "6MiB"
	env["IMAGO_DATA_DIR"] = t.TempDir() // its cursor.key and link.key, out of the source tree
	testenv.AddCredentials(env)
	srv := startServer(t, env)
	a := api{t, srv.url, ""}
	const partSize = 5 << 20
	doc := make([]byte, partSize+1<<20+4321)
	rand.Read(doc)
	sum := sha256.Sum256(doc)

	var up multipartUpload
	a.expect("POST", "/documents/uploads", map[string]any{"filename": "aws.bin", "size": len(doc), "part_size": partSize}, 201, &up)
	if up.Method != "multipart" || up.PartCount != 2 {
		t.Fatalf("create: %+v", up)
	}
	docPath := "/documents/" + up.ID
	var presigned struct{ Parts []presignedPart }
	a.expect("POST", docPath+"/parts", map[string]any{"numbers": []int{1, 2}}, 200, &presigned)
	var refs []partRef
	for i, p := range presigned.Parts {
		if !strings.HasPrefix(p.URL, env["AWS_ENDPOINT_URL_S3"]) {
			t.Fatalf("part URL %s is not the local S3 server's", p.URL)
		}
		status, etag := putPart(t, p, doc[i*partSize:min((i+1)*partSize, len(doc))])
		if status != 200 || etag == "" {
			t.Fatalf("PUT part %d: %d %q", i+1, status, etag)
		}
		refs = append(refs, partRef{p.Number, etag})
	}
	var listed struct{ Parts []receivedPart }
	a.expect("GET", docPath+"/parts", nil, 200, &listed)
	if len(listed.Parts) != 2 || listed.Parts[1] != (receivedPart{2, 1<<20 + 4321, refs[1].ETag}) {
		t.Fatalf("GET parts: %+v", listed.Parts)
	}
	a.expect("POST", docPath+"/complete", map[string]any{"parts": []partRef{refs[1], refs[0]}}, 400, nil)
	a.expect("POST", docPath+"/complete", map[string]any{"parts": refs}, 202, nil)
	a.expect("POST", docPath+"/complete", map[string]any{"parts": refs}, 409, nil)
	status, err := postS3Event(srv.url, env["IMAGO_BUCKET"], "CompleteMultipartUpload", up.ID, int64(len(doc)))
	if err != nil {
		t.Fatal(err)
	}
	if status != 204 {
		t.Fatalf("S3 event: %d", status)
	}
	var md map[string]any
	a.expect("GET", docPath, nil, 200, &md)
	if md["status"] != "available" || md["sha256"] != fmt.Sprintf("%x", sum) {
		t.Fatalf("after the event: %v", md)
	}
	if got := getInRanges(t, srv.url, up.ID, len(doc), 4<<20); sha256.Sum256(got) != sum {
		t.Fatal("the document assembled from ranges differs")
	}
	a.expect("DELETE", docPath, nil, 204, nil)

	// DELETE of a pending upload in parts aborts it in S3.
	a.expect("POST", "/documents/uploads", map[string]any{"filename": "gone.bin", "size": len(doc)}, 201, &up)
	a.expect("POST", "/documents/"+up.ID+"/parts", map[string]any{"numbers": []int{1}}, 200, &presigned)
	if status, _ := putPart(t, presigned.Parts[0], doc); status != 200 {
		t.Fatalf("PUT part: %d", status)
	}
	a.expect("DELETE", "/documents/"+up.ID, nil, 204, nil)
	s3c := s3store.NewClient(awsCfg)
	bucket, key := env["IMAGO_BUCKET"], "staging/"+up.ID
	out, err := s3c.ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: &bucket, Prefix: &key})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Uploads) != 0 {
		t.Fatalf("uploads left under %s after DELETE: %d", key, len(out.Uploads))
	}
}

// TestServeRemovesAnExpiredUploadInParts: the parts of an upload in parts
// whose document expired (its client never completed it) do not outlive
// it: the restarted server's store expires the record, and its
// reconciliation removes the parts.
func TestServeRemovesAnExpiredUploadInParts(t *testing.T) {
	dataDir := t.TempDir()
	env := map[string]string{"IMAGO_DATA_DIR": dataDir, "IMAGO_ADDR": "127.0.0.1:0", "IMAGO_MULTIPART_THRESHOLD": "6MiB"}
	srv := startServer(t, env)
	a := api{t: t, url: srv.url}
	var up multipartUpload
	a.expect("POST", "/documents/uploads", map[string]any{"filename": "never.img", "size": 12 << 20, "part_size": 5 << 20}, 201, &up)
	var presigned struct{ Parts []presignedPart }
	a.expect("POST", "/documents/"+up.ID+"/parts", map[string]any{"numbers": []int{1}}, 200, &presigned)
	part := make([]byte, 5<<20)
	rand.Read(part)
	if status, _ := putPart(t, presigned.Parts[0], part); status != 200 {
		t.Fatalf("part 1: %d", status)
	}
	srv.stop()

	// A day goes by: the record's expiry is moved into the past.
	store, err := boltstore.Open(filepath.Join(dataDir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rec, err := store.Get(ctx, docstore.ID(up.ID))
	if err == nil {
		err = store.Delete(ctx, rec.ID)
	}
	if err == nil {
		rec.ExpiresAt = time.Now().Add(-time.Minute)
		err = store.Create(ctx, rec)
	}
	store.Close()
	if err != nil {
		t.Fatal(err)
	}

	srv = startServer(t, env)
	waitFor(t, "the expired upload's parts to go", func() bool { return len(stagedFiles(t, dataDir)) == 0 })
	assertNoPlaintext(t, dataDir, part)
	if resp, _ := get(t, srv.url+"/documents/"+up.ID); resp.StatusCode != 404 {
		t.Fatalf("the expired document: %d, want 404", resp.StatusCode)
	}
}

// TestServeListsPendingDocuments: GET /documents, and `imago ls`, show a
// document whose upload is not finished, with its status, so that its
// owner can find it and delete it.
func TestServeListsPendingDocuments(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, map[string]string{"IMAGO_DATA_DIR": dir, "IMAGO_ADDR": "127.0.0.1:0"})
	up := createUpload(t, srv.url, 6_000_000)
	_, body := get(t, srv.url+"/documents")
	var page struct {
		Documents []struct{ ID, Status string }
	}
	if err := json.Unmarshal(body, &page); err != nil || len(page.Documents) != 1 || page.Documents[0].ID != up.ID || page.Documents[0].Status != "pending" {
		t.Fatalf("GET /documents: %s, want the pending document", body)
	}
	status, stdout, stderr := run(t, map[string]string{"IMAGO_URL": srv.url}, "ls")
	if status != 0 || !strings.HasPrefix(stdout, up.ID+"\t6000000\tpending\t") {
		t.Fatalf("imago ls: exit %d %q %s, want the pending document's line", status, stdout, stderr)
	}
	if status, _, stderr := run(t, map[string]string{"IMAGO_URL": srv.url}, "rm", up.ID); status != 0 {
		t.Fatalf("imago rm: exit %d %s", status, stderr)
	}
	if status, stdout, _ := run(t, map[string]string{"IMAGO_URL": srv.url}, "ls"); status != 0 || stdout != "" {
		t.Fatalf("imago ls after rm: exit %d %q", status, stdout)
	}
}
