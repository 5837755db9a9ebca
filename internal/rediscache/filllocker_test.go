package rediscache

import (
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/storetest"
)

func TestRedisCache_FillLockerContract(t *testing.T) {
	for name, url := range servers {
		t.Run(name, func(t *testing.T) {
			u := url(t)
			storetest.TestFillLocker(t, func(t *testing.T, ttl time.Duration) docstore.FillLocker {
				client, err := NewClient(u, relaxed)
				if err != nil {
					t.Fatalf("NewClient: %v", err)
				}
				t.Cleanup(func() { client.Close() })
				return New(client, Options{FillLockTTL: ttl, Timeout: relaxedTimeout})
			})
		})
	}
}
