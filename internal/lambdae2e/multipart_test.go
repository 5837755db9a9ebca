//go:build linux

package lambdae2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/imagodocs/imago/internal/testenv"
)

type multipartCreated struct {
	ID        string    `json:"id"`
	Method    string    `json:"method"`
	PartSize  int64     `json:"part_size"`
	PartCount int       `json:"part_count"`
	ExpiresAt time.Time `json:"expires_at"`
}

type presignedParts struct {
	Parts []struct {
		Number    int               `json:"number"`
		URL       string            `json:"url"`
		Method    string            `json:"method"`
		Headers   map[string]string `json:"headers"`
		ExpiresAt time.Time         `json:"expires_at"`
	} `json:"parts"`
}

type listedParts struct {
	Parts []struct {
		Number int    `json:"number"`
		Size   int64  `json:"size"`
		ETag   string `json:"etag"`
	} `json:"parts"`
}

type partRef struct {
	Number int    `json:"number"`
	ETag   string `json:"etag"`
}

// multipartThreshold is set low for these tests, so that uploads in parts
// stay small: 5 MiB parts, the smallest S3 takes.
const multipartThreshold = "IMAGO_MULTIPART_THRESHOLD=6MiB"

// TestLambdaE2E_UploadInParts drives an upload in parts end to end: POST
// /documents/uploads, presigned UploadPart requests to S3 (versitygw),
// ListParts, the refusals of a bad completion, CompleteMultipartUpload
// through the upload function, then S3's ObjectCreated:CompleteMultipartUpload
// event through the relay to the upload function, which ingests it.
//
// Not parallel: the relay has one target, which TestLambdaE2E_LargeUpload
// sets too; a sequential test runs before the parallel ones start.
func TestLambdaE2E_UploadInParts(t *testing.T) {
	vals := requireEnv(t, "IMAGO_TESTENV_RELAY_URL")
	up, down, meta := startFunction(t, fnUpload, multipartThreshold), startFunction(t, fnDownload), startFunction(t, fnMetadata)
	// S3 sends the CompleteMultipartUpload event while the upload function
	// that completed the upload is still running; Lambda runs the event in
	// another instance, as here (the emulator takes one invocation at a time).
	ingest := startFunction(t, fnUpload, multipartThreshold)
	s3c, bucket := s3Client(t)
	rl := relay{base: strings.TrimRight(vals["IMAGO_TESTENV_RELAY_URL"], "/")}
	tenant := "e2e-parts-" + randomHex(8)

	const partSize = 5 << 20
	const size = 2*partSize + 12_345
	doc := randomBytes(size)
	sum := sha256.Sum256(doc)
	digest := hex.EncodeToString(sum[:])
	chunk := func(n int) []byte { return doc[(n-1)*partSize : min(n*partSize, size)] }

	desc, _ := json.Marshal(map[string]any{"filename": "scan parts.tiff", "content_type": "image/tiff",
		"size": size, "part_size": partSize, "metadata": map[string]string{"case": "11"}})
	r := up.call(t, apiEvent(t, apiRequest{sample: "create-upload", route: "POST /documents/uploads", sub: tenant,
		headers: map[string]string{"content-type": "application/json"}, body: desc})).
		expect(t, "POST /documents/uploads", 201)
	var cu multipartCreated
	decodeStrict(t, "POST /documents/uploads", r, &cu)
	if cu.Method != "multipart" || cu.PartSize != partSize || cu.PartCount != 3 || time.Until(cu.ExpiresAt) < time.Hour {
		t.Fatalf("POST /documents/uploads: %s", r)
	}
	stagingKey := "staging/" + cu.ID
	t.Cleanup(func() {
		meta.tryInvoke(apiEvent(t, apiRequest{sample: "delete", route: "DELETE /documents/{id}", id: cu.ID, sub: tenant}))
		s3c.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &bucket, Key: &stagingKey})
	})
	partsCall := func(sub string, numbers ...int) reply {
		body, _ := json.Marshal(map[string]any{"numbers": numbers})
		return up.call(t, apiEvent(t, apiRequest{sample: "presign-parts", route: "POST /documents/{id}/parts", id: cu.ID, sub: sub,
			headers: map[string]string{"content-type": "application/json"}, body: body}))
	}
	listCall := func(sub string) reply {
		return up.call(t, apiEvent(t, apiRequest{sample: "list-parts", route: "GET /documents/{id}/parts", id: cu.ID, sub: sub}))
	}
	completeCall := func(sub string, parts []partRef) reply {
		body, _ := json.Marshal(map[string]any{"parts": parts})
		return up.call(t, apiEvent(t, apiRequest{sample: "complete-upload", route: "POST /documents/{id}/complete", id: cu.ID, sub: sub,
			headers: map[string]string{"content-type": "application/json"}, body: body}))
	}
	getMeta := func() document {
		t.Helper()
		r := meta.call(t, apiEvent(t, apiRequest{sample: "get-metadata", route: "GET /documents/{id}", id: cu.ID, sub: tenant})).
			expect(t, "GET /documents/{id}", 200)
		var d document
		decodeStrict(t, "GET /documents/{id}", r, &d)
		return d
	}

	partsCall(tenant, 0).expectError(t, "POST parts, number 0", 400, "invalid")
	partsCall(tenant, 4).expectError(t, "POST parts, number 4 of 3", 400, "invalid")
	partsCall("e2e-other-"+randomHex(4), 1).expectError(t, "POST parts as another tenant", 404, "not_found")
	listCall("e2e-other-"+randomHex(4)).expectError(t, "GET parts as another tenant", 404, "not_found")
	var pp presignedParts
	partsCall(tenant, 1, 2, 3).expect(t, "POST parts", 200).decode(t, "POST parts", &pp)
	if len(pp.Parts) != 3 {
		t.Fatalf("POST parts: %+v", pp)
	}
	put := func(n int, body []byte) (int, string) {
		t.Helper()
		p := pp.Parts[n-1]
		if p.Number != n || p.Method != http.MethodPut || time.Until(p.ExpiresAt) < time.Minute {
			t.Fatalf("presigned part %d: %+v", n, p)
		}
		if err := checkLoopbackURL(p.URL); err != nil {
			t.Fatalf("part %d url: %v", n, err)
		}
		req, _ := http.NewRequest(p.Method, p.URL, bytes.NewReader(body))
		for k, v := range p.Headers {
			req.Header.Set(k, v)
		}
		req.ContentLength = int64(len(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, "" // S3 may drop a body it refuses
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("ETag")
	}
	if status, _ := put(3, chunk(2)); status == http.StatusOK {
		t.Fatal("S3 took a full part at the short last part's URL")
	}
	etags := map[int]string{}
	for _, n := range []int{1, 3} {
		status, etag := put(n, chunk(n))
		if status != http.StatusOK || etag == "" {
			t.Fatalf("PUT part %d: %d, ETag %q", n, status, etag)
		}
		etags[n] = etag
	}
	var lp listedParts
	listCall(tenant).expect(t, "GET parts", 200).decode(t, "GET parts", &lp)
	if len(lp.Parts) != 2 || lp.Parts[0].Number != 1 || lp.Parts[0].Size != partSize || lp.Parts[0].ETag != etags[1] ||
		lp.Parts[1].Number != 3 || lp.Parts[1].Size != int64(len(chunk(3))) || lp.Parts[1].ETag != etags[3] {
		t.Fatalf("GET parts: %+v, want parts 1 and 3 with ETags %v", lp.Parts, etags)
	}
	completeCall(tenant, []partRef{{1, etags[1]}, {3, etags[3]}}).expectError(t, "complete without part 2", 400, "invalid")
	status, etag := put(2, chunk(2))
	if status != http.StatusOK {
		t.Fatalf("PUT part 2: %d", status)
	}
	etags[2] = etag
	all := []partRef{{1, etags[1]}, {2, etags[2]}, {3, etags[3]}}
	completeCall(tenant, []partRef{{1, etags[1]}, {2, etags[3]}, {3, etags[3]}}).expectError(t, "complete with a wrong ETag", 400, "invalid")
	completeCall(tenant, []partRef{{1, etags[1]}, {2, etags[2]}, {2, etags[2]}, {3, etags[3]}}).expectError(t, "complete with a part twice", 400, "invalid")
	completeCall("e2e-other-"+randomHex(4), all).expectError(t, "complete as another tenant", 404, "not_found")
	if d := getMeta(); d.Status != "pending" {
		t.Fatalf("after refused completions: %+v", d)
	}

	// The relay hands S3's events for this staged object to the upload
	// function, as S3 invokes it.
	before := rl.target(t)
	mine := relayTarget{url: ingest.url, prefix: stagingKey, events: "ObjectCreated", shape: "aws"}
	rl.setTarget(t, mine)
	t.Cleanup(func() {
		if now := rl.target(t); now.url == mine.url {
			rl.setTarget(t, before)
		}
	})
	r = completeCall(tenant, all).expect(t, "POST complete", 202)
	var pending document
	decodeStrict(t, "POST complete", r, &pending)
	if pending.ID != cu.ID || pending.Status != "pending" {
		t.Fatalf("POST complete: %+v", pending)
	}
	var d document
	for deadline := time.Now().Add(60 * time.Second); ; {
		if d = getMeta(); d.Status == "available" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %q 60s after complete; relay events for %s: %+v", d.Status, stagingKey, rl.eventsFor(t, stagingKey))
		}
		time.Sleep(200 * time.Millisecond)
	}
	checkDoc(t, "after the ingest", d, document{Filename: "scan parts.tiff", ContentType: "image/tiff", Size: size,
		SHA256: digest, Status: "available", Metadata: map[string]string{"case": "11"}})
	// The event was S3's CompleteMultipartUpload, delivered successfully.
	var delivered []relayedEvent
	for deadline := time.Now().Add(30 * time.Second); len(delivered) == 0; {
		for _, e := range rl.eventsFor(t, stagingKey) {
			if e.Target != "" {
				delivered = append(delivered, e)
			}
		}
		if len(delivered) == 0 && time.Now().After(deadline) {
			t.Fatalf("the relay has not finished delivering the event of %s", stagingKey)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, e := range delivered {
		if !bytes.Contains(e.Body, []byte("ObjectCreated:CompleteMultipartUpload")) || !e.Forwarded || e.TargetStatus != 200 || e.Error != "" {
			t.Fatalf("the relay's delivery of %s: %+v %s", stagingKey, e, e.Body)
		}
	}

	// Completing again, or asking for parts, is a conflict now.
	completeCall(tenant, all).expectError(t, "a second complete", 409, "conflict")
	partsCall(tenant, 1).expectError(t, "POST parts after the ingest", 409, "conflict")
	listCall(tenant).expectError(t, "GET parts after the ingest", 409, "conflict")

	// The document, read back in Range parts, is the one uploaded.
	assembled := sha256.New()
	for start := 0; start < size; start += maxInline {
		end := min(start+maxInline, size) - 1
		r := down.call(t, apiEvent(t, apiRequest{sample: "download-range", route: "GET /documents/{id}/content", id: cu.ID, sub: tenant,
			headers: map[string]string{"range": fmt.Sprintf("bytes=%d-%d", start, end)}})).expect(t, "GET content, Range", 206)
		assembled.Write(r.body)
	}
	if got := hex.EncodeToString(assembled.Sum(nil)); got != digest {
		t.Fatalf("read back: SHA-256 %s, want %s", got, digest)
	}
	if !objectGone(t, s3c, bucket, stagingKey) {
		t.Fatalf("the staged object %s is still there after the ingest", stagingKey)
	}
	blobKey := blobKeyOf(t, cu.ID) // each ingest attempt has a blob of its own
	blob, _ := getObject(t, s3c, bucket, blobKey)
	testenv.AssertNoPlaintext(t, "the S3 object "+blobKey, blob, doc)
}

// TestLambdaE2E_DeleteAbortsUploadInParts deletes a pending upload in parts
// with a part received: the metadata function aborts it, so S3 keeps no
// upload and no part of it.
func TestLambdaE2E_DeleteAbortsUploadInParts(t *testing.T) {
	t.Parallel()
	requireEnv(t)
	up, meta := startFunction(t, fnUpload, multipartThreshold), startFunction(t, fnMetadata)
	s3c, bucket := s3Client(t)
	tenant := "e2e-abort-" + randomHex(8)
	const size = 7 << 20

	desc, _ := json.Marshal(map[string]any{"filename": "abandoned.bin", "size": size})
	r := up.call(t, apiEvent(t, apiRequest{sample: "create-upload", route: "POST /documents/uploads", sub: tenant,
		headers: map[string]string{"content-type": "application/json"}, body: desc})).expect(t, "POST /documents/uploads", 201)
	var cu multipartCreated
	decodeStrict(t, "POST /documents/uploads", r, &cu)
	if cu.Method != "multipart" || cu.PartSize != 16<<20 || cu.PartCount != 1 {
		t.Fatalf("POST /documents/uploads: %s", r)
	}
	key := "staging/" + cu.ID
	body, _ := json.Marshal(map[string]any{"numbers": []int{1}})
	var pp presignedParts
	up.call(t, apiEvent(t, apiRequest{sample: "presign-parts", route: "POST /documents/{id}/parts", id: cu.ID, sub: tenant,
		headers: map[string]string{"content-type": "application/json"}, body: body})).expect(t, "POST parts", 200).decode(t, "POST parts", &pp)
	req, _ := http.NewRequest(pp.Parts[0].Method, pp.Parts[0].URL, bytes.NewReader(randomBytes(size)))
	for k, v := range pp.Parts[0].Headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT part 1: %s", resp.Status)
	}
	uploads := func() int {
		out, err := s3c.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: &bucket, Prefix: &key})
		if err != nil {
			t.Fatal(err)
		}
		return len(out.Uploads)
	}
	if n := uploads(); n != 1 {
		t.Fatalf("uploads under %s before DELETE: %d, want 1", key, n)
	}
	meta.call(t, apiEvent(t, apiRequest{sample: "delete", route: "DELETE /documents/{id}", id: cu.ID, sub: tenant})).expect(t, "DELETE", 204)
	if n := uploads(); n != 0 {
		t.Fatalf("uploads under %s after DELETE: %d, want 0", key, n)
	}
	if !objectGone(t, s3c, bucket, key) {
		t.Fatalf("a staged object %s is there after DELETE", key)
	}
	r = up.call(t, apiEvent(t, apiRequest{sample: "list-parts", route: "GET /documents/{id}/parts", id: cu.ID, sub: tenant}))
	r.expectError(t, "GET parts after DELETE", 404, "not_found")
}
