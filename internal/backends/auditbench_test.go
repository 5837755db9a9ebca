package backends_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/api"
	"github.com/imagodocs/imago/internal/apigw"
	"github.com/imagodocs/imago/internal/backends/awsbackends"
	"github.com/imagodocs/imago/internal/config"
	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/testenv"
)

// openAWS opens the AWS family with Redis, on the local servers.
func openAWS(b *testing.B) *docstoreSet {
	testenv.Require(b, append(append([]string{}, testenv.AWSVars...), "IMAGO_REDIS_URL")...)
	testenv.AWSConfig(b) // checks that every endpoint is on loopback
	cfg, err := config.FromEnv(os.Getenv)
	if err != nil {
		b.Fatal(err)
	}
	set, err := awsbackends.Open(context.Background(), cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { set.Close() })
	return &docstoreSet{set.Backends}
}

type docstoreSet struct{ docstore.Backends }

// BenchmarkCacheHit1MiBAudited compares a 1 MiB cache hit through the
// download function's Lambda path with its audit record appended to the
// audit table on DynamoDB Local (while the answer is encoded), with the
// same hit with recording off (IMAGO_AUDIT=off), and with the record's
// PutItem alone, in the same run. scripts/bench prints the ratios.
func BenchmarkCacheHit1MiBAudited(b *testing.B) {
	set := openAWS(b)
	ctx := context.Background()
	tenant := "bench-audit-" + string(docstore.NewID())
	doc := randomDoc(1 << 20)
	up := docstore.NewService(set.Backends, docstore.Config{AuditOff: true}, nil)
	d, err := up.Upload(ctx, docstore.UploadRequest{Tenant: docstore.Tenant(tenant), Filename: "doc.pdf", Body: doc})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { up.Delete(context.Background(), docstore.Tenant(tenant), d.ID) })
	payload := downloadEvent(d.ID, tenant)
	// The record's conditional PutItem alone: what an audited answer
	// cannot go below, whatever it overlaps it with.
	b.Run("floor=audit-put", func(b *testing.B) {
		svc := docstore.NewService(set.Backends, docstore.Config{}, nil)
		n := int64(len(doc))
		for b.Loop() {
			if err := svc.Audit(ctx, docstore.AuditEntry{Tenant: docstore.Tenant(tenant), Actor: tenant, Action: api.ActionRead,
				Document: d.ID, Status: 200, Bytes: &n, Cache: "hit"}); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, c := range []struct {
		name string
		off  bool
	}{{"baseline=unaudited", true}, {"audited", false}} {
		b.Run(c.name, func(b *testing.B) {
			h := apigw.New(docstore.NewService(set.Backends, docstore.Config{AuditOff: c.off}, nil), apigw.Download, apigw.Options{})
			b.SetBytes(int64(len(doc)))
			for b.Loop() {
				out, err := h.Respond(ctx, payload)
				if err != nil || len(out.Bytes()) < len(doc) {
					b.Fatalf("invoke: %v %.200s", err, out.Bytes())
				}
				out.Close()
			}
		})
	}
}

// BenchmarkAuditAppends measures how many records one tenant's requests
// append per second, 32 at once, from one writer (an `imago serve`, its
// AuditShards chains), on DynamoDB Local: the figure
// audit-appends-per-second.
func BenchmarkAuditAppends(b *testing.B) {
	set := openAWS(b)
	svc := docstore.NewService(set.Backends, docstore.Config{}, nil)
	tenant := docstore.Tenant("bench-appends-" + string(docstore.NewID()))
	const writers = 32
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	n := b.N
	work := make(chan struct{}, n)
	for range n {
		work <- struct{}{}
	}
	close(work)
	for range writers {
		wg.Go(func() {
			for range work {
				if err := svc.Audit(context.Background(), docstore.AuditEntry{Tenant: tenant, Actor: "bench", Action: api.ActionRead, Status: 200}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "appends/s")
}
