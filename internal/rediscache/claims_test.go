package rediscache

import (
	"context"
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/storetest"
)

// The claims contract on one node and on the cluster. Losing state is the
// deletion of the document's keys (what a restart, a failover or an
// eviction does to them), not a FLUSHALL: the servers are shared.
func TestRedisCache_ClaimsContract(t *testing.T) {
	for name, url := range servers {
		t.Run(name, func(t *testing.T) {
			u := url(t)
			raw := newClientOn(t, u)
			storetest.TestCacheClaims(t,
				func(t *testing.T, lockTTL time.Duration) docstore.Cache {
					return New(newClientOn(t, u), Options{FillLockTTL: lockTTL, Timeout: relaxedTimeout})
				},
				func(t *testing.T, id docstore.ID) {
					for _, k := range []string{docKey(id), fillKey(id), tombKey(id)} {
						if err := raw.Del(context.Background(), k).Err(); err != nil {
							t.Fatalf("DEL %s: %v", k, err)
						}
					}
				})
		})
	}
}
