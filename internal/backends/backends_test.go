package backends_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/backends"
	"github.com/imagodocs/imago/internal/backends/awsbackends"
	"github.com/imagodocs/imago/internal/backends/embedded"
	"github.com/imagodocs/imago/internal/config"
	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/storetest"
	"github.com/imagodocs/imago/internal/testenv"
)

// family is one way of building the backends from configuration.
type family struct {
	name string
	cfg  func(t *testing.T) config.Config
}

func embeddedFamily() family {
	return family{"Embedded", func(t *testing.T) config.Config {
		cfg, err := config.FromEnv(func(k string) string {
			return map[string]string{"IMAGO_DATA_DIR": t.TempDir()}[k]
		})
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}}
}

// awsFamily reads the local servers' configuration (scripts/testenv env).
// withRedis keeps IMAGO_REDIS_URL; otherwise the cache is in-process.
func awsFamily(withRedis bool) family {
	name := "AWS"
	if withRedis {
		name = "AWS+Redis"
	}
	return family{name, func(t *testing.T) config.Config {
		vars := []string{"IMAGO_TABLE", "IMAGO_BUCKET", "IMAGO_KMS_KEY_ID", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_KMS"}
		if withRedis {
			vars = append(vars, "IMAGO_REDIS_URL")
		}
		env := testenv.Require(t, vars...)
		testenv.AWSConfig(t) // checks that every endpoint is on loopback
		cfg, err := config.FromEnv(func(k string) string {
			if k == "IMAGO_REDIS_URL" && !withRedis {
				return ""
			}
			if v, ok := env[k]; ok {
				return v
			}
			return os.Getenv(k)
		})
		if err != nil {
			t.Fatal(err)
		}
		// The local servers on a loaded test machine can be silent for
		// longer than a healthy AWS service ever is: these tests are not
		// about timeouts (faults_test.go is, with its own).
		cfg.AWSTimeout = time.Minute
		return cfg
	}}
}

func allFamilies() []family { return []family{embeddedFamily(), awsFamily(false), awsFamily(true)} }

func open(t *testing.T, cfg config.Config) *backends.Set {
	t.Helper()
	return openWith(t, cfg, "")
}

// openWith builds the family cfg selects, as `imago serve` does: the
// embedded staging area's URLs point at stagingURL.
func openWith(t *testing.T, cfg config.Config, stagingURL string) *backends.Set {
	t.Helper()
	var set *backends.Set
	var err error
	if cfg.UsesAWS() {
		set, err = awsbackends.Open(context.Background(), cfg, nil)
	} else {
		set, _, err = embedded.Open(context.Background(), cfg, nil, stagingURL)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { set.Close() })
	return set
}

func randomDoc(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// TestWriteOrdering fails each step of an upload in turn and checks that
// nothing is left that a download or a listing would serve, and that no
// record points at a missing blob.
func TestWriteOrdering(t *testing.T) {
	for _, fam := range allFamilies() {
		t.Run(fam.name, func(t *testing.T) {
			set := open(t, fam.cfg(t))
			for _, step := range []string{"generate", "create", "put", "mark"} {
				t.Run("fail at "+step, func(t *testing.T) {
					ctx := context.Background()
					p := &storetest.Probe{FailAt: step}
					svc := docstore.NewService(p.Wrap(set.Backends), docstore.Config{SegmentSize: 4096}, nil)
					tenant := docstore.Tenant("ordering-" + string(docstore.NewID()))
					key := "upload-1"
					doc := randomDoc(300_000)
					_, err := svc.Upload(ctx, docstore.UploadRequest{Tenant: tenant, Body: doc, IdempotencyKey: key})
					if err == nil {
						t.Fatal("upload succeeded despite the failure")
					}
					if k := docstore.KindOf(err); k != docstore.KindUnavailable {
						t.Fatalf("error kind %v, want unavailable: %v", k, err)
					}
					id := docstore.IDForIdempotencyKey(tenant, key)
					if _, err := set.Meta.Get(ctx, id); !docstore.IsNotFound(err) {
						t.Errorf("record left behind: %v", err)
					}
					if _, err := set.Blobs.Get(ctx, id, 0, -1); !docstore.IsNotFound(err) {
						t.Errorf("blob left behind: %v", err)
					}
					page, err := svc.List(ctx, tenant, 0, "")
					if err != nil || len(page.Documents) != 0 {
						t.Errorf("listed after a failed upload: %v %v", page.Documents, err)
					}
					if _, err := svc.Download(ctx, docstore.DownloadRequest{Tenant: tenant, ID: id}); !docstore.IsNotFound(err) {
						t.Errorf("download after a failed upload: %v", err)
					}
					// The same upload, retried once the backend is back, succeeds.
					p.FailAt = ""
					d, err := svc.Upload(ctx, docstore.UploadRequest{Tenant: tenant, Body: doc, IdempotencyKey: key})
					if err != nil || d.ID != id {
						t.Fatalf("retry: %v (id %s, want %s)", err, d.ID, id)
					}
					evictEntry(t, set.Cache, id)
					c, err := svc.Download(ctx, docstore.DownloadRequest{Tenant: tenant, ID: id})
					if err != nil || !bytes.Equal(c.Body, doc) {
						t.Fatalf("download after retry: %v", err)
					}
				})
			}
		})
	}
}

// TestServiceOnEveryFamily runs the main paths of the Service on each
// family: upload, miss, hit, range, list, delete.
func TestServiceOnEveryFamily(t *testing.T) {
	for _, fam := range allFamilies() {
		t.Run(fam.name, func(t *testing.T) {
			ctx := context.Background()
			set := open(t, fam.cfg(t))
			p := &storetest.Probe{}
			svc := docstore.NewService(p.Wrap(set.Backends), docstore.Config{}, nil)
			tenant := docstore.Tenant("family-" + string(docstore.NewID()))
			doc := randomDoc(2_500_000)
			d, err := svc.Upload(ctx, docstore.UploadRequest{Tenant: tenant, Filename: "id.pdf", ContentType: "application/pdf", Body: doc})
			if err != nil {
				t.Fatal(err)
			}
			p.Reset()
			c, err := svc.Download(ctx, docstore.DownloadRequest{Tenant: tenant, ID: d.ID})
			if err != nil || !c.CacheHit || !bytes.Equal(c.Body, doc) {
				t.Fatalf("download after upload: hit=%v err=%v", c != nil && c.CacheHit, err)
			}
			if m, b, u := p.Origin(); m+b+u != 0 {
				t.Fatalf("a hit touched the origin: %d metadata reads, %d blob reads, %d unwraps", m, b, u)
			}
			evictEntry(t, set.Cache, d.ID)
			c, err = svc.Download(ctx, docstore.DownloadRequest{Tenant: tenant, ID: d.ID, Range: "bytes=1000000-1099999"})
			if err != nil || c.CacheHit || !bytes.Equal(c.Body, doc[1_000_000:1_100_000]) {
				t.Fatalf("range on a miss: %v", err)
			}
			if _, err := svc.Download(ctx, docstore.DownloadRequest{Tenant: "someone-else", ID: d.ID}); !docstore.IsNotFound(err) {
				t.Fatalf("another tenant: %v", err)
			}
			page, err := svc.List(ctx, tenant, 10, "")
			if err != nil || len(page.Documents) != 1 || page.Documents[0].ID != d.ID {
				t.Fatalf("list: %+v %v", page, err)
			}
			if err := svc.Delete(ctx, tenant, d.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := svc.Download(ctx, docstore.DownloadRequest{Tenant: tenant, ID: d.ID}); !docstore.IsNotFound(err) {
				t.Fatalf("download after delete: %v", err)
			}
			if _, err := set.Blobs.Get(ctx, d.ID, 0, -1); !docstore.IsNotFound(err) {
				t.Fatalf("blob after delete: %v", err)
			}
		})
	}
}

// evictEntry makes a document cold, as an expiry would (a Delete would
// leave a tombstone refusing the refill).
func evictEntry(t *testing.T, c docstore.Cache, id docstore.ID) {
	t.Helper()
	ev, ok := c.(interface {
		Evict(context.Context, docstore.ID) error
	})
	if !ok {
		t.Fatalf("%T cannot evict", c)
	}
	if err := ev.Evict(context.Background(), id); err != nil {
		t.Fatal(err)
	}
}
