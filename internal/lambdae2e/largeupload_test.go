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
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/imagodocs/imago/internal/testenv"
)

// relay is the S3 event relay of scripts/testenv: versitygw posts its
// notifications there, and it invokes whatever target is set.
type relay struct{ base string }

type relayTarget struct{ url, prefix, events, shape string }

func (rl relay) do(t testing.TB, method, path string, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, rl.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("relay %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("relay %s %s: %s %s", method, path, resp.Status, b)
	}
	return resp, b
}

func (rl relay) target(t testing.TB) relayTarget {
	t.Helper()
	resp, b := rl.do(t, http.MethodGet, "/target", "")
	return relayTarget{url: strings.TrimSpace(string(b)), prefix: resp.Header.Get("X-Imago-Relay-Prefix"),
		events: resp.Header.Get("X-Imago-Relay-Events"), shape: resp.Header.Get("X-Imago-Relay-Shape")}
}

func (rl relay) setTarget(t testing.TB, tg relayTarget) {
	t.Helper()
	if tg.url == "" {
		rl.do(t, http.MethodDelete, "/target", "")
		return
	}
	q := url.Values{}
	for k, v := range map[string]string{"prefix": tg.prefix, "events": tg.events, "shape": tg.shape} {
		if v != "" {
			q.Set(k, v)
		}
	}
	rl.do(t, http.MethodPut, "/target?"+q.Encode(), tg.url)
}

type relayedEvent struct {
	Body         json.RawMessage `json:"body"`
	Forwarded    bool            `json:"forwarded"`
	Target       string          `json:"target"`
	TargetStatus int             `json:"target_status"`
	Error        string          `json:"error"`
}

// eventsFor returns the events the relay received that name key.
func (rl relay) eventsFor(t testing.TB, key string) []relayedEvent {
	t.Helper()
	_, b := rl.do(t, http.MethodGet, "/events", "")
	var all []relayedEvent
	if err := json.Unmarshal(b, &all); err != nil {
		t.Fatalf("relay GET /events: %v", err)
	}
	var out []relayedEvent
	for _, e := range all {
		if bytes.Contains(e.Body, []byte(`"`+key+`"`)) {
			out = append(out, e)
		}
	}
	return out
}

type createdUpload struct {
	ID        string            `json:"id"`
	UploadURL string            `json:"upload_url"`
	Method    string            `json:"method"`
	Headers   map[string]string `json:"headers"`
	ExpiresAt time.Time         `json:"expires_at"`
}

// TestLambdaE2E_LargeUpload drives the presigned-upload chain end to end:
// POST /documents/uploads through the upload function, the client's PUT to
// S3, S3's event through the relay to the upload function under the
// emulator, which ingests; then the document is read back in Range parts
// through the download function.
func TestLambdaE2E_LargeUpload(t *testing.T) {
	t.Parallel()
	vals := requireEnv(t, "IMAGO_TESTENV_RELAY_URL")
	up, down, meta := startFunction(t, fnUpload), startFunction(t, fnDownload), startFunction(t, fnMetadata)
	s3c, bucket := s3Client(t)
	rl := relay{base: strings.TrimRight(vals["IMAGO_TESTENV_RELAY_URL"], "/")}
	tenant := "e2e-large-" + randomHex(8)
	ctx := context.Background()

	const size = 20_000_000 // 20 MB: four 4 MiB parts and a shorter last one
	doc := randomBytes(size)
	sum := sha256.Sum256(doc)
	digest := hex.EncodeToString(sum[:])

	// POST /documents/uploads
	desc, _ := json.Marshal(map[string]any{"filename": "scan 20MB.tiff", "content_type": "image/tiff",
		"size": size, "metadata": map[string]string{"case": "4711"}})
	r := up.call(t, apiEvent(t, apiRequest{sample: "create-upload", route: "POST /documents/uploads", sub: tenant,
		headers: map[string]string{"content-type": "application/json"}, body: desc})).
		expect(t, "POST /documents/uploads", 201)
	var cu createdUpload
	decodeStrict(t, "POST /documents/uploads", r, &cu)
	if cu.ID == "" || cu.Method != http.MethodPut || cu.UploadURL == "" || time.Until(cu.ExpiresAt) < time.Minute {
		t.Fatalf("POST /documents/uploads: %+v", cu)
	}
	if err := checkLoopbackURL(cu.UploadURL); err != nil {
		t.Fatalf("upload_url: %v", err)
	}
	if r.header("location") != "/documents/"+cu.ID {
		t.Fatalf("POST /documents/uploads: location %q", r.header("location"))
	}
	stagingKey := "staging/" + cu.ID
	t.Cleanup(func() {
		// Whatever happened, leave no 20 MB behind.
		meta.tryInvoke(apiEvent(t, apiRequest{sample: "delete", route: "DELETE /documents/{id}", id: cu.ID, sub: tenant}))
		s3c.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &bucket, Key: &stagingKey})
	})

	getMeta := func() document {
		t.Helper()
		r := meta.call(t, apiEvent(t, apiRequest{sample: "get-metadata", route: "GET /documents/{id}", id: cu.ID, sub: tenant})).
			expect(t, "GET /documents/{id}", 200)
		var d document
		decodeStrict(t, "GET /documents/{id}", r, &d)
		return d
	}
	content := func(rangeHeader string) reply {
		t.Helper()
		h := map[string]string{}
		sample := "download"
		if rangeHeader != "" {
			h["range"], sample = rangeHeader, "download-range"
		}
		return down.call(t, apiEvent(t, apiRequest{sample: sample, route: "GET /documents/{id}/content", id: cu.ID, sub: tenant, headers: h}))
	}
	if d := getMeta(); d.Status != "pending" || d.Size != size || d.Filename != "scan 20MB.tiff" || d.Metadata["case"] != "4711" {
		t.Fatalf("before the PUT: %+v, want pending", d)
	}
	content("bytes=0-99").expectError(t, "GET content of a pending document", 409, "conflict")

	// The relay hands S3's events for this staged object, and only those,
	// to the upload function, reshaped as S3 sends them to Lambda. The
	// previous target is put back afterwards, unless someone changed it
	// meanwhile.
	before := rl.target(t)
	mine := relayTarget{url: up.url, prefix: stagingKey, events: "ObjectCreated", shape: "aws"}
	rl.setTarget(t, mine)
	t.Cleanup(func() {
		if now := rl.target(t); now.url == mine.url {
			rl.setTarget(t, before)
		}
	})

	// The client's PUT, exactly as the answer says.
	putStart := time.Now()
	req, err := http.NewRequest(cu.Method, cu.UploadURL, bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range cu.Headers {
		req.Header.Set(k, v)
	}
	req.ContentLength = size
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("presigned PUT: %v", err)
	}
	respBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("presigned PUT: %s %s", resp.Status, respBody)
	}

	// S3 -> relay -> upload function: poll the metadata function.
	var d document
	for deadline := time.Now().Add(60 * time.Second); ; {
		if d = getMeta(); d.Status == "available" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the document is still %q 60s after the PUT; relay target now %+v; relay events for %s: %+v",
				d.Status, rl.target(t), stagingKey, rl.eventsFor(t, stagingKey))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("PUT of %d bytes to available in %s", size, time.Since(putStart).Round(time.Millisecond))
	checkDoc(t, "after the ingest", d, document{Filename: "scan 20MB.tiff", ContentType: "image/tiff", Size: size,
		SHA256: digest, Status: "available", Metadata: map[string]string{"case": "4711"}})

	// The relay's invocation has returned (the function deletes the staged
	// object after marking the document available), and it succeeded.
	var delivered []relayedEvent
	for deadline := time.Now().Add(30 * time.Second); ; {
		delivered = delivered[:0]
		for _, e := range rl.eventsFor(t, stagingKey) {
			if e.Target != "" { // not filtered out (the ObjectRemoved of the ingest's delete is)
				delivered = append(delivered, e)
			}
		}
		if len(delivered) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the relay has not finished delivering the event of %s", stagingKey)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, e := range delivered {
		if !e.Forwarded || e.Target != up.url || e.TargetStatus != 200 || e.Error != "" {
			t.Fatalf("the relay's delivery of %s: %+v", stagingKey, e)
		}
	}

	// The whole document is over the response limit: 413 naming it.
	msg := content("").expectError(t, "GET content of 20 MB", 413, "too_large")
	if !strings.Contains(msg, strconv.Itoa(maxInline)) || !strings.Contains(msg, "Range") {
		t.Fatalf("413 names neither the limit %d nor Range: %q", maxInline, msg)
	}
	content(fmt.Sprintf("bytes=0-%d", maxInline)).expectError(t, "a Range over the limit", 413, "too_large")

	// In parts of at most the limit, it is the same document.
	assembled := sha256.New()
	for start := 0; start < size; start += maxInline {
		end := min(start+maxInline, size) - 1
		r := content(fmt.Sprintf("bytes=%d-%d", start, end)).expect(t, "GET content, Range", 206)
		if cr := r.header("content-range"); cr != fmt.Sprintf("bytes %d-%d/%d", start, end, size) {
			t.Fatalf("206: content-range %q", cr)
		}
		if len(r.body) != end-start+1 || len(r.body) > maxInline || r.header("content-length") != strconv.Itoa(len(r.body)) || r.header("etag") != `"`+digest+`"` {
			t.Fatalf("206 of %d-%d: %d bytes, content-length %q, etag %q", start, end, len(r.body), r.header("content-length"), r.header("etag"))
		}
		assembled.Write(r.body)
	}
	if got := hex.EncodeToString(assembled.Sum(nil)); got != digest {
		t.Fatalf("the document assembled from Range parts has SHA-256 %s, want %s", got, digest)
	}

	// The staged plaintext is gone; the blob (stored under the id of the
	// ingest attempt that won, as the item records) holds none of it.
	blobKey := blobKeyOf(t, cu.ID)
	if !objectGone(t, s3c, bucket, stagingKey) {
		t.Fatalf("the staged object %s is still there after the ingest", stagingKey)
	}
	blob, blobETag := getObject(t, s3c, bucket, blobKey)
	if len(blob) <= size {
		t.Fatalf("the blob is %d bytes, not more than the %d-byte document", len(blob), size)
	}
	testenv.AssertNoPlaintext(t, "the S3 object "+blobKey, blob, doc)

	// S3 delivers events at least once: a second delivery is harmless.
	if out := up.invoke(t, s3Event(t, s3Object{event: "ObjectCreated:Put", bucket: bucket, key: stagingKey, size: size})); len(bytes.TrimSpace(out)) != 0 && string(out) != "null" {
		t.Fatalf("a repeated S3 event: the function answered %q", out)
	}
	// An event for a key outside the staging prefix is ignored: here, the
	// document's own blob.
	if out := up.invoke(t, s3Event(t, s3Object{event: "ObjectCreated:CompleteMultipartUpload", bucket: bucket, key: blobKey, size: int64(len(blob))})); len(bytes.TrimSpace(out)) != 0 && string(out) != "null" {
		t.Fatalf("an S3 event outside staging/: the function answered %q", out)
	}
	if _, etag := getObject(t, s3c, bucket, blobKey); etag != blobETag {
		t.Fatalf("the blob changed (ETag %s, was %s) after a repeated event and one outside staging/", etag, blobETag)
	}
	if d2 := getMeta(); fmt.Sprint(d2) != fmt.Sprint(d) {
		t.Fatalf("the metadata changed after a repeated event: %+v, was %+v", d2, d)
	}
	r = content(fmt.Sprintf("bytes=%d-%d", size-1000, size-1)).expect(t, "GET content after the repeated event", 206)
	if !bytes.Equal(r.body, doc[size-1000:]) {
		t.Fatalf("the document's last bytes changed after a repeated event")
	}

	// A key as S3 encodes it in events ('+' for a space, %XX for the rest)
	// is decoded: the staged object with that name (it names no document)
	// is the one the function deletes.
	oddKey := "staging/e2e junk +ü~(1) " + randomHex(4) + ".bin"
	if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(oddKey), Body: strings.NewReader("junk")}); err != nil {
		t.Fatalf("PutObject %q: %v", oddKey, err)
	}
	t.Cleanup(func() {
		s3c.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &bucket, Key: aws.String(oddKey)})
	})
	encoded := s3EncodeKey(oddKey)
	if !strings.Contains(encoded, "+") || !strings.Contains(encoded, "%") {
		t.Fatalf("the encoded key %q shows no encoding", encoded)
	}
	up.invoke(t, s3Event(t, s3Object{event: "ObjectCreated:Put", bucket: bucket, key: oddKey, size: 4}))
	if !objectGone(t, s3c, bucket, oddKey) {
		t.Fatalf("the staged object %q is still there: the event's key %q was not decoded", oddKey, encoded)
	}

	// DELETE through the metadata function removes the blob too.
	meta.call(t, apiEvent(t, apiRequest{sample: "delete", route: "DELETE /documents/{id}", id: cu.ID, sub: tenant})).expect(t, "DELETE", 204)
	if !objectGone(t, s3c, bucket, blobKey) {
		t.Fatalf("the blob of the deleted document is still in S3")
	}
	content("bytes=0-99").expectError(t, "GET content after DELETE", 404, "not_found")
}

// blobKeyOf is the S3 key of a document's blob, as its DynamoDB item
// names it (blob_id; the document id when absent).
func blobKeyOf(t testing.TB, id string) string {
	t.Helper()
	ddb := dynamodb.NewFromConfig(testenv.AWSConfig(t, "DYNAMODB"))
	out, err := ddb.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(os.Getenv("IMAGO_TABLE")),
		ConsistentRead: aws.Bool(true), Key: map[string]ddbtypes.AttributeValue{"id": &ddbtypes.AttributeValueMemberS{Value: id}}})
	if err != nil || out.Item == nil {
		t.Fatalf("GetItem %s: %v", id, err)
	}
	if b, ok := out.Item["blob_id"].(*ddbtypes.AttributeValueMemberS); ok && b.Value != "" {
		return "blobs/" + b.Value
	}
	return "blobs/" + id
}

func getObject(t testing.TB, c *s3.Client, bucket, key string) ([]byte, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("GetObject %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatalf("GetObject %s: %v", key, err)
	}
	return b, aws.ToString(out.ETag)
}

// checkLoopbackURL makes sure a URL the function hands out points at the
// local S3 server, so that the test's PUT never leaves the machine.
func checkLoopbackURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	s3u, err := url.Parse(os.Getenv("AWS_ENDPOINT_URL_S3"))
	if err != nil {
		return err
	}
	if u.Host != s3u.Host {
		return fmt.Errorf("%q is not on the local S3 server %s", raw, s3u.Host)
	}
	return nil
}
