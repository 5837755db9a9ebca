package rediscache

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// A single node and a cluster are tuned alike, explicit options and URL
// parameters included; each value is distinct, so a field set from
// another's source shows.
func TestNewClientTunesNodeAndClusterAlike(t *testing.T) {
	o := ClientOptions{DialTimeout: 1 * time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 3 * time.Second, PoolSize: 7, MaxRetries: 2}
	node, err := NewClient("redis://h:1?conn_max_idle_time=41s", o)
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	cluster, err := NewClient("redis://h:1?cluster=true&conn_max_idle_time=41s", o)
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	n, c := node.(*redis.Client).Options(), cluster.(*redis.ClusterClient).Options()
	for _, k := range []struct {
		name          string
		node, cluster any
		want          any
	}{
		{"DialTimeout", n.DialTimeout, c.DialTimeout, 1 * time.Second},
		{"ReadTimeout", n.ReadTimeout, c.ReadTimeout, 2 * time.Second},
		{"WriteTimeout", n.WriteTimeout, c.WriteTimeout, 3 * time.Second},
		{"PoolTimeout", n.PoolTimeout, c.PoolTimeout, 2 * time.Second},
		{"ConnMaxIdleTime", n.ConnMaxIdleTime, c.ConnMaxIdleTime, 41 * time.Second},
		{"PoolSize", n.PoolSize, c.PoolSize, 7},
		{"MaxActiveConns", n.MaxActiveConns, c.MaxActiveConns, 7},
		{"MinIdleConns", n.MinIdleConns, c.MinIdleConns, 0},
		{"MaxRetries", n.MaxRetries, c.MaxRetries, 2},
		{"DialerRetries", n.DialerRetries, c.DialerRetries, 1},
		{"ContextTimeoutEnabled", n.ContextTimeoutEnabled, c.ContextTimeoutEnabled, true},
		{"DisableIdentity", n.DisableIdentity, c.DisableIdentity, true},
	} {
		if k.node != k.want || k.cluster != k.want {
			t.Errorf("%s: node %v, cluster %v, want %v", k.name, k.node, k.cluster, k.want)
		}
	}
}
