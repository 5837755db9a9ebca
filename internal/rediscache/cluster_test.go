package rediscache

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imagodocs/imago/internal/docstore"
)

// clusterNode is one master of the test cluster, reached directly.
type clusterNode struct {
	addr, id string
	c        *redis.Client
}

func clusterNodes(t *testing.T, cc *redis.ClusterClient) []clusterNode {
	t.Helper()
	ctx := context.Background()
	var nodes []clusterNode
	for _, addr := range strings.Split(strings.TrimSpace(strings.ReplaceAll(cc.ClusterNodes(ctx).Val(), "\r", "")), "\n") {
		f := strings.Fields(addr)
		if len(f) < 3 || !strings.Contains(f[2], "master") {
			continue
		}
		hostport := strings.SplitN(f[1], "@", 2)[0]
		c := redis.NewClient(&redis.Options{Addr: hostport, DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second})
		t.Cleanup(func() { c.Close() })
		nodes = append(nodes, clusterNode{addr: hostport, id: f[0], c: c})
	}
	if len(nodes) < 2 {
		t.Fatalf("the test cluster has %d masters, want at least 2", len(nodes))
	}
	return nodes
}

// ownerOf returns the master holding key (the others answer MOVED) and
// another one.
func ownerOf(t *testing.T, nodes []clusterNode, key string) (owner, other clusterNode) {
	t.Helper()
	for i, n := range nodes {
		if n.c.Exists(context.Background(), key).Val() == 1 {
			return n, nodes[(i+1)%len(nodes)]
		}
	}
	t.Fatalf("no master holds %s", key)
	return
}

// A slot migrating under a client that learned the slot map before: the
// old owner answers ASK while the keys move and MOVED once they have, and
// the cache follows both, scripts included (all keys of a document share
// the slot, so the delete script moves with them).
func TestClusterFollowsAskAndMoved(t *testing.T) {
	ctx := context.Background()
	client := testClusterClient(t)
	cc := client.(*redis.ClusterClient)
	c := New(client, Options{Timeout: relaxedTimeout})
	id := docstore.NewID()
	doc := sampleDoc([]byte("a document in a slot that is about to move"))
	if err := set(ctx, c, id, doc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Del(ctx, docKey(id)); client.Del(ctx, tombKey(id)); client.Del(ctx, fillKey(id)) })

	slot, err := cc.ClusterKeySlot(ctx, docKey(id)).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{fillKey(id), tombKey(id)} {
		if s := cc.ClusterKeySlot(ctx, k).Val(); s != slot {
			t.Fatalf("%s is in slot %d, %s in %d: one script cannot touch both", k, s, docKey(id), slot)
		}
	}
	nodes := clusterNodes(t, cc)
	from, to := ownerOf(t, nodes, docKey(id))
	s := strconv.FormatInt(slot, 10)
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	must("importing", to.c.Do(ctx, "cluster", "setslot", s, "importing", from.id).Err())
	must("migrating", from.c.Do(ctx, "cluster", "setslot", s, "migrating", to.id).Err())
	host, port, _ := strings.Cut(to.addr, ":")
	must("migrate", from.c.Do(ctx, "migrate", host, port, "", 0, 5000, "keys", docKey(id)).Err())

	// Mid-migration: the key is on the new owner, the slot still on the old.
	got, err := c.Get(ctx, id)
	if err != nil || !sameDoc(got, doc) {
		t.Fatalf("Get while the slot migrates (ASK): (%v, %v), want the document", got, err)
	}
	got, claim, err := c.Claim(ctx, id) // a pipeline of GETEX and a script
	if err != nil || claim != docstore.NoClaim || !sameDoc(got, doc) {
		t.Fatalf("Claim while the slot migrates (ASK): (%v, %q, %v), want the document", got != nil, claim, err)
	}

	for _, n := range nodes {
		must("setslot node", n.c.Do(ctx, "cluster", "setslot", s, "node", to.id).Err())
	}
	// The client's slot map still names the old owner, which says MOVED.
	got, err = c.Get(ctx, id)
	if err != nil || !sameDoc(got, doc) {
		t.Fatalf("Get after the slot moved (MOVED): (%v, %v), want the document", got, err)
	}
	if got, claim, err := c.Claim(ctx, id); err != nil || claim != docstore.NoClaim || !sameDoc(got, doc) {
		t.Fatalf("Claim after the slot moved (MOVED): (%v, %q, %v), want the document", got != nil, claim, err)
	}
	if err := c.Evict(ctx, id); err != nil {
		t.Fatal(err)
	}
	_, claim, err = c.Claim(ctx, id)
	if err != nil || claim == docstore.NoClaim {
		t.Fatalf("Claim after the move: (%q, %v)", claim, err)
	}
	fresh := New(testClusterClient(t), Options{Timeout: relaxedTimeout})
	if err := fresh.Delete(ctx, id); err != nil {
		t.Fatalf("Delete after the move: %v", err)
	}
	if err := c.Fill(ctx, id, claim, doc); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(ctx, id); err != nil || got != nil {
		t.Fatalf("Get after Delete and a late Fill, across the move: (%v, %v), want a miss", got, err)
	}
	if n := to.c.Exists(ctx, tombKey(id)).Val(); n != 1 {
		t.Fatalf("the tombstone is not on the slot's new owner %s", to.addr)
	}
}

func testClusterClient(t *testing.T) redis.UniversalClient {
	t.Helper()
	c, err := NewClient(clusterURL(t), relaxed)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
