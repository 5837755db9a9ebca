package localstaging_test

import (
	"bytes"
	"io"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/localstaging"
	"github.com/imagodocs/imago/internal/storetest"
)

func newStaging(t *testing.T) (*localstaging.Area, string) {
	t.Helper()
	dir := t.TempDir()
	st, err := localstaging.New(dir, "staging/", bytes.Repeat([]byte{1}, 32), "http://127.0.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	return st, dir
}

// sendPart delivers a presigned part PUT, as `imago serve` does.
func sendPart(st *localstaging.Area, up docstore.PresignedUpload, body []byte) (string, error) {
	u, err := url.Parse(up.URL)
	if err != nil {
		return "", err
	}
	key, _ := url.PathUnescape(strings.TrimPrefix(u.EscapedPath(), localstaging.Path))
	return st.ReceivePart(key, u.Query(), bytes.NewReader(body), int64(len(body)))
}

func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// A part PUT racing an abort never leaves a byte behind, whichever wins:
// many bounded rounds, each with the two started together.
func TestStaging_PartRacingAbortLeavesNothing(t *testing.T) {
	st, dir := newStaging(t)
	ctx := t.Context()
	body := bytes.Repeat([]byte("part"), 64<<10)
	for round := 0; round < 200; round++ {
		key := "staging/" + string(docstore.NewID())
		uploadID, err := st.CreateMultipart(ctx, key, "application/pdf")
		if err != nil {
			t.Fatal(err)
		}
		up, err := st.PresignPart(ctx, key, uploadID, 1, int64(len(body)), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		start := make(chan struct{})
		var putErr, abortErr error
		wg.Add(2)
		go func() { defer wg.Done(); <-start; _, putErr = sendPart(st, up, body) }()
		go func() { defer wg.Done(); <-start; abortErr = st.AbortMultipart(ctx, key, uploadID) }()
		close(start)
		wg.Wait()
		if abortErr != nil {
			t.Fatalf("round %d: abort: %v", round, abortErr)
		}
		if putErr != nil && !docstore.IsNotFound(putErr) {
			t.Fatalf("round %d: part PUT: %v", round, putErr)
		}
		if left := files(t, dir); len(left) != 0 {
			t.Fatalf("round %d: left after abort: %v", round, left)
		}
	}
}

// Two completions racing: exactly one assembles the object; the other
// finds no upload.
func TestStaging_CompletionsRacingOneWins(t *testing.T) {
	st, dir := newStaging(t)
	ctx := t.Context()
	body := bytes.Repeat([]byte{42}, 4096)
	for round := 0; round < 100; round++ {
		key := "staging/" + string(docstore.NewID())
		uploadID, _ := st.CreateMultipart(ctx, key, "application/pdf")
		up, _ := st.PresignPart(ctx, key, uploadID, 1, int64(len(body)), time.Minute)
		etag, err := sendPart(st, up, body)
		if err != nil {
			t.Fatal(err)
		}
		parts := []docstore.Part{{Number: 1, ETag: etag}}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		start := make(chan struct{})
		for i := range errs {
			wg.Add(1)
			go func() { defer wg.Done(); <-start; errs[i] = st.CompleteMultipart(ctx, key, uploadID, parts) }()
		}
		close(start)
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !docstore.IsNotFound(err):
				t.Fatalf("round %d: complete: %v", round, err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d completions succeeded, want 1", round, won)
		}
		rc, size, err := st.Open(ctx, key)
		if err != nil || size != int64(len(body)) {
			t.Fatalf("round %d: staged object: %d bytes, %v", round, size, err)
		}
		rc.Close()
		st.Delete(ctx, key)
		if left := files(t, dir); len(left) != 0 {
			t.Fatalf("round %d: left after completion and delete: %v", round, left)
		}
	}
}

func TestStaging_PartURLsAreBound(t *testing.T) {
	st, _ := newStaging(t)
	ctx := t.Context()
	key := "staging/" + string(docstore.NewID())
	uploadID, _ := st.CreateMultipart(ctx, key, "application/pdf")
	up, _ := st.PresignPart(ctx, key, uploadID, 2, 10, time.Minute)
	if _, err := sendPart(st, up, make([]byte, 9)); docstore.KindOf(err) != docstore.KindInvalid {
		t.Fatalf("a part shorter than signed: %v", err)
	}
	for _, tamper := range []func(string) string{
		func(u string) string { return strings.Replace(u, "partNumber=2", "partNumber=3", 1) },
		func(u string) string { return strings.Replace(u, "size=10", "size=11", 1) },
		func(u string) string { return strings.Replace(u, "uploadId=", "uploadId=0", 1) },
		func(u string) string { return strings.Replace(u, "staging%2F", "staging%2F0", 1) },
	} {
		forged := up
		forged.URL = tamper(up.URL)
		if forged.URL == up.URL {
			t.Fatalf("tampering changed nothing in %s", up.URL)
		}
		if _, err := sendPart(st, forged, make([]byte, 10)); docstore.KindOf(err) != docstore.KindUnauthenticated {
			t.Errorf("forged %s: %v", forged.URL, err)
		}
	}
	expired, _ := st.PresignPart(ctx, key, uploadID, 2, 10, -time.Minute)
	if _, err := sendPart(st, expired, make([]byte, 10)); docstore.KindOf(err) != docstore.KindUnauthenticated {
		t.Fatalf("an expired part URL: %v", err)
	}
	if _, err := st.ListParts(ctx, key, strings.Repeat("0", 32)); !docstore.IsNotFound(err) {
		t.Fatalf("ListParts of an unknown upload: %v", err)
	}
	if _, err := st.CreateMultipart(ctx, "staging/.multipart", "x"); docstore.KindOf(err) != docstore.KindInvalid {
		t.Fatalf("a staging key naming the staging area's own folder: %v", err)
	}
}

func TestStaging_MultipartContract(t *testing.T) {
	var current *localstaging.Area // the suite's subtests run one at a time
	storetest.TestMultipartStaging(t, func(t *testing.T) storetest.PartsStaging {
		current, _ = newStaging(t)
		return current
	}, func(t *testing.T, up docstore.PresignedUpload, body []byte) (string, bool) {
		etag, err := sendPart(current, up, body)
		return etag, err == nil
	})
}

// The inventory lists what is staged in full, staged objects and uploads
// in progress, never a PUT being received; Recover, at start, removes
// only what a killed PUT left half-written.
func TestStaging_InventoryAndRecover(t *testing.T) {
	st, dir := newStaging(t)
	ctx := t.Context()
	object, upload := "staging/"+string(docstore.NewID()), "staging/"+string(docstore.NewID())
	put, _ := st.PresignPut(ctx, object, "text/plain", 5, time.Minute)
	u, _ := url.Parse(put.URL)
	if err := st.Receive(object, "text/plain", u.Query(), strings.NewReader("whole"), 5); err != nil {
		t.Fatal(err)
	}
	uploadID, _ := st.CreateMultipart(ctx, upload, "text/plain")
	up, _ := st.PresignPart(ctx, upload, uploadID, 1, 4, time.Minute)
	if _, err := sendPart(st, up, []byte("part")); err != nil {
		t.Fatal(err)
	}
	half := filepath.Join(dir, ".put.123.tmp") // a PUT cut short by a kill
	os.WriteFile(half, []byte("ha"), 0o600)

	items, err := st.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, it := range items {
		got[it.Key] = it.UploadID
		if it.Modified.IsZero() {
			t.Errorf("%s: no modification time", it.Key)
		}
	}
	if want := map[string]string{object: "", upload: uploadID}; !maps.Equal(got, want) {
		t.Fatalf("inventory %v, want %v", got, want)
	}

	rep, err := st.Recover()
	if err != nil || rep != (localstaging.RecoverReport{Removed: 1}) {
		t.Fatalf("Recover: %+v %v, want the half-written file removed", rep, err)
	}
	if _, err := os.Stat(half); err == nil {
		t.Fatal("the half-written PUT is still there")
	}
	if left := files(t, dir); len(left) != 2 {
		t.Fatalf("after Recover: %v, want the staged object and the part", left)
	}
}

// A completion killed half-way through its assembly (played here by a
// second Area over the same folder recovering while the first is held
// after its first part) is finished by Recover: the staged object is the
// parts' concatenation, in the order the client named, and no part is
// left.
func TestStaging_RecoverFinishesAnInterruptedAssembly(t *testing.T) {
	st, dir := newStaging(t)
	ctx := t.Context()
	pauseDir := t.TempDir()
	st.PauseAssemblies(pauseDir)
	id := string(docstore.NewID())
	key := "staging/" + id
	uploadID, _ := st.CreateMultipart(ctx, key, "application/octet-stream")
	bodies := [][]byte{bytes.Repeat([]byte{1}, docstore.MinPartSize), []byte("the last part")}
	var parts []docstore.Part
	for i, b := range bodies {
		up, _ := st.PresignPart(ctx, key, uploadID, i+1, int64(len(b)), time.Minute)
		etag, err := sendPart(st, up, b)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, docstore.Part{Number: i + 1, ETag: etag})
	}
	completed := make(chan error, 1)
	go func() { completed <- st.CompleteMultipart(ctx, key, uploadID, parts) }()
	marker := filepath.Join(pauseDir, id)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(marker); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the assembly never reached its pause")
		}
	}

	successor, err := localstaging.New(dir, "staging/", bytes.Repeat([]byte{1}, 32), "http://127.0.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := successor.Recover()
	if err != nil || rep.Assembled != 1 || rep.Removed != 1 {
		t.Fatalf("Recover: %+v %v, want the half-written assembly removed and the assembly finished", rep, err)
	}
	// A killed process never wakes; here the held one does, and finds its
	// parts gone.
	os.Remove(marker)
	if err := <-completed; err == nil {
		t.Fatal("the held completion succeeded though Recover took its parts")
	}
	r, size, err := successor.Open(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if want := bytes.Join(bodies, nil); size != int64(len(want)) || !bytes.Equal(got, want) {
		t.Fatalf("the staged object is %d bytes, not the %d of the parts in order", size, len(want))
	}
	if left := files(t, dir); len(left) != 1 {
		t.Fatalf("after Recover: %v, want only the staged object", left)
	}
}
