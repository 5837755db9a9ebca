package backends_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/imagodocs/imago/internal/backends"
	"github.com/imagodocs/imago/internal/config"
	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/s3store"
	"github.com/imagodocs/imago/internal/testenv"
)

// rawAccess reaches a family's stored objects behind the Service's back,
// as an attacker with write access to the bucket or the data folder (or a
// client racing its own PUTs) would.
type rawAccess interface {
	// stage writes body as the staged object at key (prefix included).
	stage(t *testing.T, key string, body []byte)
	// staged reports whether a staged object is at key.
	staged(t *testing.T, key string) bool
	// blob reads and writes the stored blob of id.
	readBlob(t *testing.T, id docstore.ID) []byte
	writeBlob(t *testing.T, id docstore.ID, b []byte)
}

func rawFor(t *testing.T, cfg config.Config) rawAccess {
	if cfg.UsesAWS() {
		return &s3Raw{c: s3store.NewClient(testenv.AWSConfig(t)), bucket: cfg.Bucket}
	}
	return &fsRaw{dir: cfg.DataDir, prefix: cfg.StagingPrefix}
}

type fsRaw struct{ dir, prefix string }

func (r *fsRaw) stagedPath(key string) string {
	return filepath.Join(r.dir, "staging", strings.TrimPrefix(key, r.prefix))
}

func (r *fsRaw) stage(t *testing.T, key string, body []byte) {
	t.Helper()
	// As localstaging.Area.Receive does: a whole new file renamed into place.
	tmp := r.stagedPath(key) + ".test-tmp"
	if err := os.WriteFile(tmp, body, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, r.stagedPath(key)); err != nil {
		t.Fatal(err)
	}
}

func (r *fsRaw) staged(t *testing.T, key string) bool {
	_, err := os.Stat(r.stagedPath(key))
	return !errors.Is(err, fs.ErrNotExist)
}

func (r *fsRaw) blobPath(id docstore.ID) string {
	return filepath.Join(r.dir, "blobs", string(id[:2]), string(id))
}

func (r *fsRaw) readBlob(t *testing.T, id docstore.ID) []byte {
	t.Helper()
	b, err := os.ReadFile(r.blobPath(id))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (r *fsRaw) writeBlob(t *testing.T, id docstore.ID, b []byte) {
	t.Helper()
	if err := os.WriteFile(r.blobPath(id), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

type s3Raw struct {
	c      *s3.Client
	bucket string
}

func (r *s3Raw) put(t *testing.T, key string, body []byte) {
	t.Helper()
	if _, err := r.c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &r.bucket, Key: &key, Body: bytes.NewReader(body)}); err != nil {
		t.Fatalf("PutObject %s: %v", key, err)
	}
	t.Cleanup(func() { r.c.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &r.bucket, Key: &key}) })
}

func (r *s3Raw) stage(t *testing.T, key string, body []byte) { r.put(t, key, body) }

func (r *s3Raw) staged(t *testing.T, key string) bool {
	_, err := r.c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &r.bucket, Key: &key})
	return err == nil
}

func (r *s3Raw) readBlob(t *testing.T, id docstore.ID) []byte {
	t.Helper()
	out, err := r.c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &r.bucket, Key: aws.String(s3store.KeyPrefix + string(id))})
	if err != nil {
		t.Fatalf("GetObject blob %s: %v", id, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (r *s3Raw) writeBlob(t *testing.T, id docstore.ID, b []byte) {
	r.put(t, s3store.KeyPrefix+string(id), b)
}

func ingestFamilies() []family { return []family{embeddedFamily(), awsFamily(false)} }

// openIngest builds a family's backends and a Service that can take
// presigned uploads.
func openIngest(t *testing.T, fam family) (*backends.Set, config.Config, rawAccess) {
	t.Helper()
	cfg := fam.cfg(t)
	// The embedded staging area's URLs point at `imago serve`; any URL
	// does for the Service.
	set := openWith(t, cfg, "http://127.0.0.1:9")
	return set, cfg, rawFor(t, cfg)
}

func hexSHA256(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// pauseFirstPut holds the first blob Put until released, so that a test
// can run a whole second ingest while the first is between reading its
// staged object and storing its blob.
type pauseFirstPut struct {
	docstore.BlobStore
	once            sync.Once
	entered, resume chan struct{}
}

func (p *pauseFirstPut) Put(ctx context.Context, id docstore.ID, r io.Reader, size int64) error {
	first := false
	p.once.Do(func() { first = true })
	if first {
		close(p.entered)
		<-p.resume
	}
	return p.BlobStore.Put(ctx, id, r, size)
}

// TestIngestRacingBodiesOneWinsWhole stages body A and starts its ingest,
// holds it before its blob is stored, replaces the staged object with body
// B and ingests that completely, then lets the first ingest finish: two
// PUTs to one upload URL, or a redelivered event, in the worst order. The
// document must then serve bytes that hash to its recorded SHA-256.
func TestIngestRacingBodiesOneWinsWhole(t *testing.T) {
	for _, fam := range ingestFamilies() {
		t.Run(fam.name, func(t *testing.T) {
			ctx := context.Background()
			set, cfg, raw := openIngest(t, fam)
			b := set.Backends
			pause := &pauseFirstPut{BlobStore: b.Blobs, entered: make(chan struct{}), resume: make(chan struct{})}
			b.Blobs = pause
			svc := docstore.NewService(b, docstore.Config{SegmentSize: 4096}, nil)
			tenant := docstore.Tenant("race-" + string(docstore.NewID()))
			const size = 300_000
			bodyA, bodyB := randomDoc(size), randomDoc(size)

			up, err := svc.CreateUpload(ctx, docstore.CreateUploadRequest{Tenant: tenant, Filename: "a.bin", ContentType: "application/octet-stream", Size: size})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { svc.Delete(context.Background(), tenant, up.ID) })
			key := cfg.StagingPrefix + string(up.ID)
			raw.stage(t, key, bodyA)
			first := make(chan error, 1)
			go func() { first <- svc.Ingest(ctx, key) }()
			<-pause.entered
			raw.stage(t, key, bodyB)
			if err := svc.Ingest(ctx, key); err != nil {
				t.Fatalf("second ingest: %v", err)
			}
			close(pause.resume)
			if err := <-first; err != nil {
				t.Fatalf("first ingest: %v", err)
			}

			d, err := svc.Get(ctx, tenant, up.ID)
			if err != nil || d.Status != docstore.StatusAvailable {
				t.Fatalf("after both ingests: %+v %v", d, err)
			}
			if d.SHA256 != hexSHA256(bodyA) && d.SHA256 != hexSHA256(bodyB) {
				t.Fatalf("recorded SHA-256 %s is neither body's", d.SHA256)
			}
			set.Cache.Delete(ctx, up.ID)
			c, err := svc.Download(ctx, docstore.DownloadRequest{Tenant: tenant, ID: up.ID})
			if err != nil {
				t.Fatalf("download: %v", err)
			}
			if got := hexSHA256(c.Body); got != d.SHA256 {
				t.Fatalf("the document serves bytes with SHA-256 %s, its metadata records %s (A %v, B %v)",
					got, d.SHA256, got == hexSHA256(bodyA), got == hexSHA256(bodyB))
			}
			tail, err := svc.Download(ctx, docstore.DownloadRequest{Tenant: tenant, ID: up.ID, Range: "bytes=-1000"})
			if err != nil || !bytes.Equal(tail.Body, c.Body[size-1000:]) {
				t.Fatalf("the last 1000 bytes differ from the whole document's: %v", err)
			}
			if raw.staged(t, key) {
				t.Fatal("the staged plaintext is still there after both ingests")
			}
			if !cfg.UsesAWS() {
				// The loser removed its blob: one blob is left, the winner's.
				var blobs []string
				filepath.WalkDir(filepath.Join(cfg.DataDir, "blobs"), func(p string, e fs.DirEntry, err error) error {
					if err == nil && !e.IsDir() {
						blobs = append(blobs, p)
					}
					return nil
				})
				if len(blobs) != 1 {
					t.Fatalf("blobs left: %v, want exactly the winner's", blobs)
				}
			}
		})
	}
}

// TestTamperedBlobIsRefused changes a stored blob behind the Service's
// back (bytes appended, removed, changed) and checks that no read that
// reaches the blob's end serves it.
func TestTamperedBlobIsRefused(t *testing.T) {
	for _, fam := range ingestFamilies() {
		t.Run(fam.name, func(t *testing.T) {
			ctx := context.Background()
			set, _, raw := openIngest(t, fam)
			svc := docstore.NewService(set.Backends, docstore.Config{SegmentSize: 4096}, nil)
			tenant := docstore.Tenant("tamper-" + string(docstore.NewID()))
			const size = 50_000 // 13 segments, the last one short
			for _, c := range []struct {
				name   string
				tamper func([]byte) []byte
				// firstServed: a range in the first segment, away from a
				// change that keeps the blob's length, is still served (it
				// reads only its segments). A blob that grew or shrank is
				// refused by every read: its length is not its record's.
				firstServed bool
			}{
				{"one byte appended", func(b []byte) []byte { return append(b, 0) }, false},
				{"a segment's worth appended", func(b []byte) []byte { return append(b, bytes.Repeat([]byte{7}, 4096+16)...) }, false},
				{"the last byte removed", func(b []byte) []byte { return b[:len(b)-1] }, false},
				{"a whole segment cut", func(b []byte) []byte { return b[:len(b)-(4096+16)] }, false},
				{"a bit flipped in the last segment", func(b []byte) []byte { b[len(b)-5] ^= 1; return b }, true},
				{"a bit flipped in the header", func(b []byte) []byte { b[20] ^= 1; return b }, false},
			} {
				t.Run(c.name, func(t *testing.T) {
					doc := randomDoc(size)
					d, err := svc.Upload(ctx, docstore.UploadRequest{Tenant: tenant, Body: doc})
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { svc.Delete(context.Background(), tenant, d.ID) })
					raw.writeBlob(t, d.ID, c.tamper(raw.readBlob(t, d.ID)))
					set.Cache.Delete(ctx, d.ID)
					for _, rng := range []string{"", "bytes=0-", "bytes=-1", "bytes=49000-49999", "bytes=100-49999"} {
						got, err := svc.Download(ctx, docstore.DownloadRequest{Tenant: tenant, ID: d.ID, Range: rng})
						if err == nil {
							t.Fatalf("Range %q of the tampered blob was served (%d bytes)", rng, len(got.Body))
						}
						if k := docstore.KindOf(err); k != docstore.KindInternal {
							t.Fatalf("Range %q of the tampered blob: a %v error (%v), want internal", rng, k, err)
						}
					}
					got, err := svc.Download(ctx, docstore.DownloadRequest{Tenant: tenant, ID: d.ID, Range: "bytes=0-99"})
					if c.firstServed && (err != nil || !bytes.Equal(got.Body, doc[:100])) {
						t.Fatalf("the untouched first segment: %v", err)
					}
					if !c.firstServed && (err == nil || docstore.KindOf(err) != docstore.KindInternal) {
						t.Fatalf("the first segment of the tampered blob: %v, want an internal error", err)
					}
				})
			}
		})
	}
}

// TestIngestFailureMarksTheDocument stages an object of the wrong size:
// the document says "failed" with a reason, its content is a conflict,
// the staged bytes are gone, and DELETE removes it.
func TestIngestFailureMarksTheDocument(t *testing.T) {
	for _, fam := range ingestFamilies() {
		t.Run(fam.name, func(t *testing.T) {
			ctx := context.Background()
			set, cfg, raw := openIngest(t, fam)
			svc := docstore.NewService(set.Backends, docstore.Config{}, nil)
			tenant := docstore.Tenant("failed-" + string(docstore.NewID()))
			up, err := svc.CreateUpload(ctx, docstore.CreateUploadRequest{Tenant: tenant, Filename: "a.bin", ContentType: "application/octet-stream", Size: 10_000})
			if err != nil {
				t.Fatal(err)
			}
			key := cfg.StagingPrefix + string(up.ID)
			raw.stage(t, key, randomDoc(9_999))
			if err := svc.Ingest(ctx, key); err != nil {
				t.Fatalf("a permanent failure is handled, not retried: %v", err)
			}
			d, err := svc.Get(ctx, tenant, up.ID)
			if err != nil {
				t.Fatalf("metadata after the failed ingest: %v", err)
			}
			if d.Status != docstore.StatusFailed || d.Failure == "" || strings.Contains(d.Failure, "staging/") {
				t.Fatalf("after the failed ingest: status %q, failure %q; want failed with a reason and no internal detail", d.Status, d.Failure)
			}
			if _, err := svc.Download(ctx, docstore.DownloadRequest{Tenant: tenant, ID: up.ID}); docstore.KindOf(err) != docstore.KindConflict {
				t.Fatalf("content of a failed document: %v, want a conflict", err)
			}
			if raw.staged(t, key) {
				t.Fatal("the staged bytes of the failed ingest are still there")
			}
			// A redelivered event changes nothing.
			raw.stage(t, key, randomDoc(10_000))
			if err := svc.Ingest(ctx, key); err != nil {
				t.Fatal(err)
			}
			if d, _ := svc.Get(ctx, tenant, up.ID); d.Status != docstore.StatusFailed {
				t.Fatalf("a later event revived the failed document: %+v", d)
			}
			if raw.staged(t, key) {
				t.Fatal("a staged object for a failed document was kept")
			}
			if err := svc.Delete(ctx, tenant, up.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := svc.Get(ctx, tenant, up.ID); !docstore.IsNotFound(err) {
				t.Fatalf("after DELETE: %v", err)
			}
		})
	}
}

// TestDeletePendingRemovesStagedBytes deletes a document whose bytes are
// staged but not ingested yet.
func TestDeletePendingRemovesStagedBytes(t *testing.T) {
	for _, fam := range ingestFamilies() {
		t.Run(fam.name, func(t *testing.T) {
			ctx := context.Background()
			set, cfg, raw := openIngest(t, fam)
			svc := docstore.NewService(set.Backends, docstore.Config{}, nil)
			tenant := docstore.Tenant("delpending-" + string(docstore.NewID()))
			up, err := svc.CreateUpload(ctx, docstore.CreateUploadRequest{Tenant: tenant, Filename: "a.bin", ContentType: "application/octet-stream", Size: 1000})
			if err != nil {
				t.Fatal(err)
			}
			key := cfg.StagingPrefix + string(up.ID)
			raw.stage(t, key, randomDoc(1000))
			if err := svc.Delete(ctx, tenant, up.ID); err != nil {
				t.Fatal(err)
			}
			if raw.staged(t, key) {
				t.Fatal("DELETE of a pending document left its staged plaintext")
			}
		})
	}
}

// TestIngestStagedObjectAlreadyGone: an event whose staged object is gone
// (ingested by another delivery, deleted, expired) is done, not retried,
// and leaves the document as it was. On S3 this needs the missing object
// to read as NotFound (s3:ListBucket granted), not AccessDenied.
func TestIngestStagedObjectAlreadyGone(t *testing.T) {
	for _, fam := range ingestFamilies() {
		t.Run(fam.name, func(t *testing.T) {
			ctx := context.Background()
			set, cfg, _ := openIngest(t, fam)
			svc := docstore.NewService(set.Backends, docstore.Config{}, nil)
			tenant := docstore.Tenant("gone-" + string(docstore.NewID()))
			up, err := svc.CreateUpload(ctx, docstore.CreateUploadRequest{Tenant: tenant, Filename: "a.bin", ContentType: "application/octet-stream", Size: 1000})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { svc.Delete(context.Background(), tenant, up.ID) })
			key := cfg.StagingPrefix + string(up.ID)
			_, _, err = set.Staging.Open(ctx, key)
			if !docstore.IsNotFound(err) {
				t.Fatalf("Open of a missing staged object: %v (kind %v), want not_found", err, docstore.KindOf(err))
			}
			if err := svc.Ingest(ctx, key); err != nil {
				t.Fatalf("ingest of a staged object that is gone: %v, want done", err)
			}
			if d, err := svc.Get(ctx, tenant, up.ID); err != nil || d.Status != docstore.StatusPending {
				t.Fatalf("after the event: %+v %v, want still pending", d, err)
			}
		})
	}
}

// TestRangesEndingInsideTheLastSegment reads ranges of an untouched blob
// that end inside its last segment but before the document's end: the
// check for bytes past the blob's end must not take the rest of that
// segment's plaintext for them.
func TestRangesEndingInsideTheLastSegment(t *testing.T) {
	for _, fam := range ingestFamilies() {
		t.Run(fam.name, func(t *testing.T) {
			ctx := context.Background()
			set, _, _ := openIngest(t, fam)
			svc := docstore.NewService(set.Backends, docstore.Config{SegmentSize: 4096}, nil)
			tenant := docstore.Tenant("ranges-" + string(docstore.NewID()))
			const size = 50_000 // the last segment holds bytes 49152 to 49999
			doc := randomDoc(size)
			d, err := svc.Upload(ctx, docstore.UploadRequest{Tenant: tenant, Body: doc})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { svc.Delete(context.Background(), tenant, d.ID) })
			set.Cache.Delete(ctx, d.ID)
			for _, r := range [][2]int{{49152, 49152}, {49200, 49300}, {49000, 49998}, {0, 49990}, {100, 49999}, {49999, 49999}} {
				rng := fmt.Sprintf("bytes=%d-%d", r[0], r[1])
				got, err := svc.Download(ctx, docstore.DownloadRequest{Tenant: tenant, ID: d.ID, Range: rng})
				if err != nil || !bytes.Equal(got.Body, doc[r[0]:r[1]+1]) {
					t.Fatalf("Range %s: %v", rng, err)
				}
			}
		})
	}
}
