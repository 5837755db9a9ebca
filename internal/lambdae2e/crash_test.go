//go:build linux

package lambdae2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/imagodocs/imago/internal/app"
	"github.com/imagodocs/imago/internal/testenv"
)

// TestLambdaE2E_CrashMidIngest kills the upload function's execution
// environment (emulator and bootstrap, kill -9) while it ingests a staged
// document: held by the test hook once its blob is stored, before the
// record says available. The document must then be pending, serving
// nothing; the event's redelivery to a fresh environment (Lambda's retry)
// ingests it whole, with the right SHA-256, and deletes the staged
// plaintext.
func TestLambdaE2E_CrashMidIngest(t *testing.T) {
	t.Parallel()
	pauseDir := t.TempDir()
	crashing := startFunction(t, fnUpload, app.IngestPauseVar+"="+pauseDir)
	down, meta := startFunction(t, fnDownload), startFunction(t, fnMetadata)
	s3c, bucket := s3Client(t)
	tenant := "e2e-crash-" + randomHex(8)
	ctx := context.Background()

	const size = 3_000_000
	doc := randomBytes(size)
	sum := sha256.Sum256(doc)
	digest := hex.EncodeToString(sum[:])
	desc, _ := json.Marshal(map[string]any{"filename": "crash.bin", "content_type": "application/octet-stream", "size": size})
	r := crashing.call(t, apiEvent(t, apiRequest{sample: "create-upload", route: "POST /documents/uploads", sub: tenant,
		headers: map[string]string{"content-type": "application/json"}, body: desc})).
		expect(t, "POST /documents/uploads", 201)
	var cu createdUpload
	decodeStrict(t, "POST /documents/uploads", r, &cu)
	stagingKey := "staging/" + cu.ID
	t.Cleanup(func() {
		meta.tryInvoke(apiEvent(t, apiRequest{sample: "delete", route: "DELETE /documents/{id}", id: cu.ID, sub: tenant}))
		s3c.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &bucket, Key: &stagingKey})
	})
	// The client's PUT, straight to S3 (the event is delivered by hand).
	if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(stagingKey), Body: bytes.NewReader(doc),
		ContentType: aws.String("application/octet-stream")}); err != nil {
		t.Fatalf("PutObject %s: %v", stagingKey, err)
	}
	event := s3Event(t, s3Object{event: "ObjectCreated:Put", bucket: bucket, key: stagingKey, size: size})

	invoked := make(chan error, 1)
	go func() {
		_, fnErr, err := crashing.tryInvoke(event)
		if err == nil && fnErr != nil {
			err = fmt.Errorf("%s: %s", fnErr.ErrorType, fnErr.ErrorMessage)
		}
		invoked <- err
	}()
	for deadline := time.Now().Add(60 * time.Second); ; {
		if _, err := os.Stat(filepath.Join(pauseDir, cu.ID)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ingest did not reach the hook within 60s\n%s", tail(crashing.log, 30))
		}
		time.Sleep(20 * time.Millisecond)
	}
	crashing.kill()
	<-invoked // the emulator is gone; whatever it answered, the ingest did not finish

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
		return down.call(t, apiEvent(t, apiRequest{sample: "download-range", route: "GET /documents/{id}/content", id: cu.ID, sub: tenant,
			headers: map[string]string{"range": rangeHeader}}))
	}
	if d := getMeta(); d.Status != "pending" {
		t.Fatalf("after the crash mid-ingest: status %q, want pending", d.Status)
	}
	content("bytes=0-99").expectError(t, "content after the crash", 409, "conflict")
	if objectGone(t, s3c, bucket, stagingKey) {
		t.Fatal("the staged object is gone though no ingest finished: the redelivery has nothing to ingest")
	}

	// Lambda retries the event in a fresh execution environment.
	retry := startFunction(t, fnUpload)
	if out := retry.invoke(t, event); len(bytes.TrimSpace(out)) != 0 && string(out) != "null" {
		t.Fatalf("the redelivered event: the function answered %q", out)
	}
	d := getMeta()
	if d.Status != "available" || d.SHA256 != digest || d.Size != size {
		t.Fatalf("after the redelivery: %+v, want available with SHA-256 %s", d, digest)
	}
	got := content(fmt.Sprintf("bytes=0-%d", size-1)).expect(t, "content after the redelivery", 206)
	if !bytes.Equal(got.body, doc) || got.header("etag") != `"`+digest+`"` {
		t.Fatalf("after the redelivery the document serves %d bytes (identical %v), ETag %q", len(got.body), bytes.Equal(got.body, doc), got.header("etag"))
	}
	if !objectGone(t, s3c, bucket, stagingKey) {
		t.Fatal("the staged plaintext is still there after the redelivered ingest")
	}
	blob, _ := getObject(t, s3c, bucket, blobKeyOf(t, cu.ID))
	testenv.AssertNoPlaintext(t, "the blob", blob, doc)
}
