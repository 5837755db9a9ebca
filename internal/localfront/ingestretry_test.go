package localfront_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/apigw"
	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/docstore/servicetest"
	"github.com/imagodocs/imago/internal/localfront"
)

// flakyBlobs fails (or hangs until its context ends, when hang is set)
// the first blob Put, as S3 unreachable for a moment would.
type flakyBlobs struct {
	docstore.BlobStore
	hang  bool
	calls atomic.Int32
}

func (f *flakyBlobs) Put(ctx context.Context, id docstore.ID, r io.Reader, size int64) error {
	if f.calls.Add(1) == 1 {
		if f.hang {
			<-ctx.Done()
			return docstore.E("test.Put", docstore.KindUnavailable, ctx.Err())
		}
		return docstore.E("test.Put", docstore.KindUnavailable, "injected: the blob store is unreachable")
	}
	return f.BlobStore.Put(ctx, id, r, size)
}

// TestLocalIngestIsRetried: on the embedded backends `imago serve` plays
// S3's part, retries included: an ingest that fails (or hangs past its
// bound) once is retried off the PUT's request, and the document becomes
// available, its staged plaintext gone.
func TestLocalIngestIsRetried(t *testing.T) {
	for _, hang := range []bool{false, true} {
		name := "fails once"
		if hang {
			name = "hangs once"
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			srv := httptest.NewUnstartedServer(nil)
			emb := servicetest.OpenEmbedded(t, "", "http://"+srv.Listener.Addr().String())
			set, area := emb.Set, emb.Area
			flaky := &flakyBlobs{BlobStore: set.Blobs, hang: hang}
			b := set.Backends
			b.Blobs = flaky
			svc := docstore.NewService(b, docstore.Config{}, nil)
			upload := apigw.NewUploadFunction(svc, apigw.Options{}, "")
			rc := localfront.NewReceiver(area, upload, nil, localfront.Delivery{Backoff: time.Millisecond, Timeout: 200 * time.Millisecond})
			srv.Config.Handler = rc
			srv.Start()
			t.Cleanup(srv.Close)
			t.Cleanup(rc.Close)

			tenant := docstore.Tenant("retry-" + string(docstore.NewID()))
			doc := make([]byte, 300_000)
			rand.Read(doc)
			sum := sha256.Sum256(doc)
			up, err := svc.CreateUpload(ctx, docstore.CreateUploadRequest{Tenant: tenant, Filename: "r.bin", ContentType: "application/octet-stream", Size: int64(len(doc))})
			if err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest(up.Method, up.UploadURL, bytes.NewReader(doc))
			for k, v := range up.Headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("PUT: %d, want 200 (the bytes are stored)", resp.StatusCode)
			}
			// The ingest ends with the staged object's removal.
			var d docstore.Document
			var left []string
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				if d, err = svc.Get(ctx, tenant, up.ID); err != nil {
					t.Fatal(err)
				}
				left = stagedFiles(emb.Config.DataDir)
				if d.Status != docstore.StatusPending && len(left) == 0 || time.Now().After(deadline) {
					break
				}
			}
			if d.Status != docstore.StatusAvailable || d.SHA256 != hex.EncodeToString(sum[:]) {
				t.Fatalf("after the retried ingest: %s sha256 %s, want available with the document's SHA-256", d.Status, d.SHA256)
			}
			if len(left) != 0 {
				t.Fatalf("staged plaintext left after the ingest: %v", left)
			}
			if n := flaky.calls.Load(); n != 2 {
				t.Errorf("%d blob Puts, want the failed one and its retry", n)
			}
		})
	}
}

// stagedFiles lists every file under the embedded staging folder.
func stagedFiles(dataDir string) []string {
	var out []string
	filepath.WalkDir(filepath.Join(dataDir, "staging"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}
