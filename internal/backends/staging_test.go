package backends_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/apigw"
	"github.com/imagodocs/imago/internal/backends/embedded"
	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/localfront"
	"github.com/imagodocs/imago/internal/localstaging"
)

// TestListingShowsEveryStatus: a caller finds every document of theirs in
// the listing, pending and failed ones included (to delete them), each
// with its status and a failed one with its failure, newest first.
func TestListingShowsEveryStatus(t *testing.T) {
	for _, fam := range ingestFamilies() {
		t.Run(fam.name, func(t *testing.T) {
			ctx := context.Background()
			set, cfg, raw := openIngest(t, fam)
			svc := docstore.NewService(set.Backends, docstore.Config{}, nil)
			tenant := docstore.Tenant("list-" + string(docstore.NewID()))

			available, err := svc.Upload(ctx, docstore.UploadRequest{Tenant: tenant, Filename: "a.txt", Body: []byte("available")})
			if err != nil {
				t.Fatal(err)
			}
			failed, err := svc.CreateUpload(ctx, docstore.CreateUploadRequest{Tenant: tenant, Filename: "f.bin", Size: 1000})
			if err != nil {
				t.Fatal(err)
			}
			raw.stage(t, cfg.StagingPrefix+string(failed.ID), randomDoc(999)) // not the announced size
			if err := svc.Ingest(ctx, cfg.StagingPrefix+string(failed.ID)); err != nil {
				t.Fatal(err)
			}
			pending, err := svc.CreateUpload(ctx, docstore.CreateUploadRequest{Tenant: tenant, Filename: "p.bin", Size: 1000})
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range []docstore.ID{available.ID, failed.ID, pending.ID} {
				t.Cleanup(func() { svc.Delete(context.Background(), tenant, id) })
			}

			page, err := svc.List(ctx, tenant, 10, "")
			if err != nil {
				t.Fatal(err)
			}
			want := []struct {
				id      docstore.ID
				status  docstore.Status
				failure bool
			}{{pending.ID, docstore.StatusPending, false}, {failed.ID, docstore.StatusFailed, true}, {available.ID, docstore.StatusAvailable, false}}
			if len(page.Documents) != len(want) {
				t.Fatalf("listed %+v, want the pending, failed and available documents", page.Documents)
			}
			for i, w := range want {
				d := page.Documents[i]
				if d.ID != w.id || d.Status != w.status || (d.Failure != "") != w.failure {
					t.Errorf("listed #%d: %s %s failure %q; want %s %s (newest first)", i, d.ID, d.Status, d.Failure, w.id, w.status)
				}
			}
			// Found, so deletable.
			for _, w := range want {
				if err := svc.Delete(ctx, tenant, w.id); err != nil {
					t.Fatalf("DELETE of the %s document: %v", w.status, err)
				}
			}
			if page, err := svc.List(ctx, tenant, 10, ""); err != nil || len(page.Documents) != 0 {
				t.Fatalf("listing after the deletes: %+v %v", page.Documents, err)
			}
		})
	}
}

// TestDeleteAvailableRemovesItsStagingKey: an available document may still
// have bytes at its staging key (an ingest whose delete of the staged
// object failed, a PUT to its URL after the ingest); DELETE removes them,
// whatever its status, and a missing key is no error.
func TestDeleteAvailableRemovesItsStagingKey(t *testing.T) {
	for _, fam := range ingestFamilies() {
		t.Run(fam.name, func(t *testing.T) {
			ctx := context.Background()
			set, cfg, raw := openIngest(t, fam)
			svc := docstore.NewService(set.Backends, docstore.Config{}, nil)
			tenant := docstore.Tenant("delstaged-" + string(docstore.NewID()))
			for _, leftover := range []bool{true, false} {
				d, err := svc.Upload(ctx, docstore.UploadRequest{Tenant: tenant, Filename: "a.txt", Body: []byte("available")})
				if err != nil {
					t.Fatal(err)
				}
				key := cfg.StagingPrefix + string(d.ID)
				if leftover {
					raw.stage(t, key, []byte("plaintext left at the staging key"))
				}
				if err := svc.Delete(ctx, tenant, d.ID); err != nil {
					t.Fatalf("DELETE (staged bytes left: %v): %v", leftover, err)
				}
				if raw.staged(t, key) {
					t.Fatal("DELETE of an available document left the plaintext at its staging key")
				}
				if _, err := svc.Get(ctx, tenant, d.ID); !docstore.IsNotFound(err) {
					t.Fatalf("after DELETE: %v", err)
				}
			}
		})
	}
}

// stagedFiles lists every file under the embedded staging folder.
func stagedFiles(t *testing.T, dataDir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(filepath.Join(dataDir, "staging"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// TestReconcileFinishesOrRemovesStagedBytes: a reconciliation pass ingests
// the staged bytes of a pending document that no delivery ingested, and
// removes those of documents that are available, failed or gone, and
// anything staged under a name that is no document's.
func TestReconcileFinishesOrRemovesStagedBytes(t *testing.T) {
	ctx := context.Background()
	set, cfg, raw := openIngest(t, embeddedFamily())
	svc := docstore.NewService(set.Backends, docstore.Config{}, nil)
	tenant := docstore.Tenant("reconcile-" + string(docstore.NewID()))
	key := func(id docstore.ID) string { return cfg.StagingPrefix + string(id) }

	doc := randomDoc(20_000)
	pending, err := svc.CreateUpload(ctx, docstore.CreateUploadRequest{Tenant: tenant, Filename: "p.bin", Size: int64(len(doc))})
	if err != nil {
		t.Fatal(err)
	}
	raw.stage(t, key(pending.ID), doc)
	available, err := svc.Upload(ctx, docstore.UploadRequest{Tenant: tenant, Filename: "a.txt", Body: []byte("available")})
	if err != nil {
		t.Fatal(err)
	}
	raw.stage(t, key(available.ID), []byte("left after its ingest"))
	failed, err := svc.CreateUpload(ctx, docstore.CreateUploadRequest{Tenant: tenant, Filename: "f.bin", Size: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := set.Meta.MarkFailed(ctx, failed.ID, "test"); err != nil {
		t.Fatal(err)
	}
	raw.stage(t, key(failed.ID), randomDoc(10))
	raw.stage(t, key(docstore.NewID()), []byte("a document deleted meanwhile"))
	raw.stage(t, cfg.StagingPrefix+"not-a-document", []byte("?"))

	// Nothing is settled yet: a pass removes what belongs to documents
	// that are over, and leaves the rest to its owners (the pending
	// document's delivery, a record about to be created).
	rep, err := svc.Reconcile(ctx, time.Now(), time.Now().Add(-time.Hour))
	if want := (docstore.ReconcileReport{Removed: 2}); err != nil || rep != want {
		t.Fatalf("a pass with nothing settled: %+v %v, want %+v", rep, err, want)
	}
	if left := stagedFiles(t, cfg.DataDir); len(left) != 3 {
		t.Fatalf("after a pass with nothing settled: %v, want the 3 unsettled objects", left)
	}
	rep, err = svc.Reconcile(ctx, time.Now(), time.Now().Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if want := (docstore.ReconcileReport{Ingested: 1, Removed: 2}); rep != want {
		t.Errorf("pass: %+v, want %+v", rep, want)
	}
	if left := stagedFiles(t, cfg.DataDir); len(left) != 0 {
		t.Fatalf("left staged: %v", left)
	}
	d, err := svc.Get(ctx, tenant, pending.ID)
	if err != nil || d.Status != docstore.StatusAvailable || d.SHA256 != hexSHA256(doc) {
		t.Fatalf("the pending document after the pass: %+v %v, want available with its SHA-256", d, err)
	}
	if d, _ := svc.Get(ctx, tenant, failed.ID); d.Status != docstore.StatusFailed {
		t.Fatalf("the failed document after the pass: %s", d.Status)
	}
}

// TestReconcileRemovesAnExpiredUploadInParts: a pending upload in parts
// whose document expired (the client never completed it) goes, parts and
// record, at the first pass after its expiry; before it, it is the
// client's.
func TestReconcileRemovesAnExpiredUploadInParts(t *testing.T) {
	ctx := context.Background()
	cfg := embeddedFamily().cfg(t)
	set, area, err := embedded.Open(ctx, cfg, nil, "http://127.0.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { set.Close() })
	svc := docstore.NewService(set.Backends, docstore.Config{MultipartThreshold: 6 << 20}, nil)
	tenant := docstore.Tenant("expired-" + string(docstore.NewID()))
	up, err := svc.CreateUpload(ctx, docstore.CreateUploadRequest{Tenant: tenant, Filename: "big.bin", Size: 12 << 20, PartSize: 5 << 20})
	if err != nil || up.Method != docstore.MethodMultipart {
		t.Fatalf("create: %+v %v", up, err)
	}
	parts, err := svc.PresignParts(ctx, tenant, up.ID, []int{1})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(parts[0].URL)
	key, _ := url.PathUnescape(strings.TrimPrefix(u.EscapedPath(), localstaging.Path))
	if _, err := area.ReceivePart(key, u.Query(), bytes.NewReader(randomDoc(5<<20)), 5<<20); err != nil {
		t.Fatal(err)
	}

	now := time.Now()
	if rep, err := svc.Reconcile(ctx, now, now.Add(time.Second)); err != nil || rep != (docstore.ReconcileReport{}) {
		t.Fatalf("a pass before the expiry: %+v %v, want the upload left to its client", rep, err)
	}
	if len(stagedFiles(t, cfg.DataDir)) != 1 {
		t.Fatal("a pass before the expiry removed the part")
	}
	later := up.ExpiresAt.Add(time.Minute)
	if rep, err := svc.Reconcile(ctx, later, later); err != nil || rep != (docstore.ReconcileReport{Expired: 1}) {
		t.Fatalf("a pass after the expiry: %+v %v, want the document expired", rep, err)
	}
	if left := stagedFiles(t, cfg.DataDir); len(left) != 0 {
		t.Fatalf("the expired upload's parts are still staged: %v", left)
	}
	if _, err := svc.Get(ctx, tenant, up.ID); !docstore.IsNotFound(err) {
		t.Fatalf("the expired document: %v, want gone", err)
	}
}

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
			cfg := embeddedFamily().cfg(t)
			srv := httptest.NewUnstartedServer(nil)
			set, area, err := embedded.Open(ctx, cfg, nil, "http://"+srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { set.Close() })
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
			doc := randomDoc(300_000)
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
				left = stagedFiles(t, cfg.DataDir)
				if d.Status != docstore.StatusPending && len(left) == 0 || time.Now().After(deadline) {
					break
				}
			}
			if d.Status != docstore.StatusAvailable || d.SHA256 != hexSHA256(doc) {
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
