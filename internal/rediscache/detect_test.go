package rediscache

import (
	"context"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/testenv"
)

// plainClusterURL names one master of the test cluster with a plain URL:
// no cluster=true, no further seed nodes.
func plainClusterURL(t *testing.T) string {
	t.Helper()
	u, err := url.Parse(clusterURL(t))
	if err != nil {
		t.Fatal(err)
	}
	return "redis://" + u.Host
}

func mustOpen(t *testing.T, rawURL string) (redis.UniversalClient, Mode) {
	t.Helper()
	client, mode, err := Open(context.Background(), rawURL, relaxed)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { client.Close() })
	return client, mode
}

// exerciseEveryMaster stores, reads back and deletes documents through c
// until each master of the test cluster has held one: a client that does
// not follow the cluster's slots fails on the others' (MOVED).
func exerciseEveryMaster(t *testing.T, c *Cache) {
	t.Helper()
	ctx := context.Background()
	nodes := clusterNodes(t, testClusterClient(t).(*redis.ClusterClient))
	held := map[string]bool{}
	for round := 0; len(held) < len(nodes); round++ {
		if round == 200 {
			t.Fatalf("200 documents landed on %d of %d masters", len(held), len(nodes))
		}
		id := docstore.NewID()
		doc := sampleDoc([]byte("a document in some slot"))
		if err := set(ctx, c, id, doc); err != nil {
			t.Fatalf("Claim and Fill (round %d): %v", round, err)
		}
		owner, _ := ownerOf(t, nodes, docKey(id))
		held[owner.addr] = true
		if got, err := c.Get(ctx, id); err != nil || !sameDoc(got, doc) {
			t.Fatalf("Get on %s: (%v, %v), want the document", owner.addr, got, err)
		}
		if err := c.Delete(ctx, id); err != nil {
			t.Fatalf("Delete on %s: %v", owner.addr, err)
		}
		if got, err := c.Get(ctx, id); err != nil || got != nil {
			t.Fatalf("Get after Delete on %s: (%v, %v), want a miss", owner.addr, got, err)
		}
	}
}

// A plain URL of a cluster node gets a cluster client: the server is
// asked, and the URL need not say cluster=true.
func TestOpenFindsAClusterBehindAPlainURL(t *testing.T) {
	client, mode := mustOpen(t, plainClusterURL(t))
	exerciseEveryMaster(t, New(client, Options{Timeout: relaxedTimeout}))
	if _, ok := client.(*redis.ClusterClient); !ok || mode != ModeCluster {
		t.Fatalf("Open of a cluster node's plain URL: %T, mode %q", client, mode)
	}
}

// A single node stays a plain client.
func TestOpenKeepsASingleNodePlain(t *testing.T) {
	client, mode := mustOpen(t, redisURL(t))
	if _, ok := client.(*redis.Client); !ok || mode != ModeNode {
		t.Fatalf("Open of a single node: %T, mode %q", client, mode)
	}
	c := New(client, Options{Timeout: relaxedTimeout})
	id, doc := docstore.NewID(), sampleDoc([]byte("one node"))
	mustSet(t, c, client, id, doc)
	if got, err := c.Get(context.Background(), id); err != nil || !sameDoc(got, doc) {
		t.Fatalf("Get: (%v, %v)", got, err)
	}
}

// cluster=true and cluster=false are taken at their word: no question
// reaches the server.
func TestOpenTakesTheURLsWord(t *testing.T) {
	u, _ := url.Parse(clusterURL(t))
	proxy := testenv.NewProxy(t, u.Host)
	for param, want := range map[string]Mode{"true": ModeCluster, "false": ModeNode} {
		client, mode := mustOpen(t, "redis://"+proxy.Addr+"?cluster="+param)
		if mode != want {
			t.Errorf("cluster=%s: mode %q, want %q", param, mode, want)
		}
		if _, isCluster := client.(*redis.ClusterClient); isCluster != (want == ModeCluster) {
			t.Errorf("cluster=%s: %T", param, client)
		}
	}
	if n := proxy.Accepted(); n != 0 {
		t.Fatalf("Open with cluster= in the URL connected %d times", n)
	}
}

// A server that does not answer at start neither fails Open nor stops the
// client: its first calls ask again, and a cluster is then followed.
func TestOpenDetectsOnFirstUseWhenRedisIsDownAtStart(t *testing.T) {
	for name, target := range map[string]func(*testing.T) string{
		"cluster": func(t *testing.T) string { u, _ := url.Parse(clusterURL(t)); return u.Host },
		"node":    upstreamAddrT,
	} {
		t.Run(name, func(t *testing.T) {
			proxy := testenv.NewProxy(t, target(t))
			// The first connection (Open's question) is reset; later
			// ones go through.
			proxy.Inject(testenv.Fault{Kind: testenv.Reset, Direction: testenv.ToServer, Times: 1})
			client, mode := mustOpen(t, "redis://"+proxy.Addr)
			if mode != ModeUndetected || proxy.Struck() != 1 {
				t.Fatalf("Open with the server unreachable: mode %q, %d connections reset", mode, proxy.Struck())
			}
			c := New(client, Options{Timeout: relaxedTimeout})
			if name == "cluster" {
				exerciseEveryMaster(t, c)
				return
			}
			id, doc := docstore.NewID(), sampleDoc([]byte("one node, found late"))
			mustSet(t, c, client, id, doc)
			if got, err := c.Get(context.Background(), id); err != nil || !sameDoc(got, doc) {
				t.Fatalf("Get: (%v, %v)", got, err)
			}
		})
	}
}

func upstreamAddrT(t *testing.T) string { return upstreamAddr(t) }

// No server at all: Open returns at once, without an error, and calls
// fail as cache failures do.
func TestOpenWithNoServerStillOpens(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	start := time.Now()
	client, mode := mustOpen(t, "redis://"+addr)
	if mode != ModeUndetected || time.Since(start) > 5*time.Second {
		t.Fatalf("Open with nothing listening: mode %q after %v", mode, time.Since(start))
	}
	c := New(client, Options{Timeout: relaxedTimeout})
	if _, err := c.Get(context.Background(), docstore.NewID()); docstore.KindOf(err) != docstore.KindUnavailable {
		t.Fatalf("Get with nothing listening: %v, want unavailable", err)
	}
}
