package servicetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imagodocs/imago/internal/apigw"
	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/rediscache"
	"github.com/imagodocs/imago/internal/testenv"
)

// privateRedis is a Redis of the test's own that it may make lose state:
// one node, or a cluster of three masters.
type privateRedis struct {
	url string
	// restart loses every key of the document whose entry key is given: it
	// restarts the node serving it (the only one, or the cluster master
	// owning its slot) and waits until it serves again.
	restart func(t *testing.T, key string)
}

func privateNode(t *testing.T) privateRedis {
	s := testenv.StartRedis(t)
	return privateRedis{url: s.URL(), restart: func(t *testing.T, _ string) { s.Restart(t) }}
}

func privateCluster(t *testing.T) privateRedis {
	c := testenv.StartRedisCluster(t, 3)
	return privateRedis{url: c.URL(), restart: func(t *testing.T, key string) {
		c.NodeOf(t, key).Restart(t)
		c.WaitOK(t)
	}}
}

// documentKeys are the Redis keys of one document: its entry, fill lock
// and tombstone (rediscache's key layout).
func documentKeys(id string) (entry, lock, tombstone string) {
	return testenv.CacheEntryKey(id), "imago:fill:{" + id + "}", "imago:tomb:{" + id + "}"
}

// pausePoint holds one call for one document until released: a fill
// after its origin read (a download whose instance stalls, in KMS say,
// between reading the document and writing the cache), or a DELETE's
// record delete (an instance stalled between its cache step and its record
// delete).
type pausePoint struct {
	mu               sync.Mutex
	id               docstore.ID
	reached, proceed chan struct{}
}

func (p *pausePoint) arm(id docstore.ID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.id, p.reached, p.proceed = id, make(chan struct{}), make(chan struct{})
}

func (p *pausePoint) hook(_ context.Context, id docstore.ID) {
	p.mu.Lock()
	if id != p.id {
		p.mu.Unlock()
		return
	}
	p.id = "" // once
	reached, proceed := p.reached, p.proceed
	p.mu.Unlock()
	close(reached)
	<-proceed
}

// pausingMeta pauses the record's delete at its pausePoint.
type pausingMeta struct {
	docstore.MetadataStore
	pause *pausePoint
}

func (m pausingMeta) Delete(ctx context.Context, id docstore.ID) error {
	m.pause.hook(ctx, id)
	return m.MetadataStore.Delete(ctx, id)
}

func (m pausingMeta) DeleteVersion(ctx context.Context, id docstore.ID, version int64) error {
	m.pause.hook(ctx, id)
	return m.MetadataStore.DeleteVersion(ctx, id, version)
}

// A DELETE that answered 204 wins over every fill, whatever Redis loses on
// the way: a restart (every key gone), the eviction of the tombstone alone
// (volatile-lru evicts keys with a TTL), or the loss of every key of the
// document. Two races, each run many rounds per kind of loss, on one node
// and on a cluster:
//
//   - a fill in flight: a download paused after its origin read, the DELETE
//     answers 204, Redis loses state, the fill goes on;
//   - a DELETE in flight: paused after its cache step and before its record
//     delete, Redis loses state, a cold download reads the document and
//     fills, the DELETE goes on and answers 204.
//
// Afterwards the document answers 404 from every instance and Redis holds
// no entry of it.
func testDeletedDocumentStaysDeleted(t *testing.T, h Harness) {
	if !h.RedisStateLoss {
		t.Skip("the harness runs no Redis state-loss behaviour (Harness.RedisStateLoss)")
	}
	type variant struct {
		name string
		lose func(t *testing.T, r privateRedis, raw redis.UniversalClient, id string)
	}
	variants := []variant{
		{"restart", func(t *testing.T, r privateRedis, _ redis.UniversalClient, id string) {
			entry, _, _ := documentKeys(id)
			r.restart(t, entry)
		}},
		{"tombstone-evicted", func(t *testing.T, _ privateRedis, raw redis.UniversalClient, id string) {
			_, _, tomb := documentKeys(id)
			mustDel(t, raw, tomb)
		}},
		{"document-keys-lost", func(t *testing.T, _ privateRedis, raw redis.UniversalClient, id string) {
			entry, lock, tomb := documentKeys(id)
			mustDel(t, raw, entry, lock, tomb)
		}},
	}
	topologies := []struct {
		name  string
		start func(t *testing.T) privateRedis
		// restarts: a cluster master coming back waits two seconds before
		// it serves again (Redis's rejoin delay), so fewer rounds there.
		restarts int
	}{
		{"node", privateNode, 20},
		{"cluster", privateCluster, 4},
	}
	const rounds = 20
	for _, top := range topologies {
		t.Run(top.name, func(t *testing.T) {
			r := top.start(t)
			raw := retryingRedis(t, r.url)
			origin := withoutCache(h.Open(t).Backends)
			fillPause, deletePause := &pausePoint{}, &pausePoint{}
			pausedDeletes := origin
			pausedDeletes.Meta = pausingMeta{origin.Meta, deletePause}
			// Instances, each with its own Redis client: the one whose
			// downloads fill (pausing when told), the one that deletes
			// (pausing when told), and the one that uploads and looks.
			reader := newStateLossInstance(t, origin, r.url, fillPause.hook)
			deleter := newStateLossInstance(t, pausedDeletes, r.url, nil)
			other := newStateLossInstance(t, origin, r.url, nil)
			doc := randomDoc(64 << 10)

			// stillDeleted checks what a user would: 404 from every
			// instance, and no entry left in Redis to serve.
			stillDeleted := func(t *testing.T, round int, id string) {
				t.Helper()
				entry, _, _ := documentKeys(id)
				if n, err := raw.Exists(context.Background(), entry).Result(); err != nil || n != 0 {
					t.Fatalf("round %d: after the DELETE answered 204 and Redis lost state, Redis holds the document's entry (exists %d, %v)", round, n, err)
				}
				for name, in := range map[string]*tierInstance{"the instance that filled": reader.tierInstance, "the instance that deleted": deleter.tierInstance, "another instance": other.tierInstance} {
					resp, err := in.content("tenant-a", id)
					if err != nil || resp.StatusCode != 404 {
						t.Fatalf("round %d: content from %s after DELETE answered 204: %d (X-Imago-Cache %q) %v, want 404",
							round, name, resp.StatusCode, resp.Headers["x-imago-cache"], err)
					}
				}
			}
			// download starts a download on the reader and returns where
			// its outcome arrives: an error unless it answers 200 or 404.
			download := func(id string) <-chan error {
				done := make(chan error, 1)
				go func() {
					resp, err := reader.content("tenant-a", id)
					if err == nil && resp.StatusCode != 200 && resp.StatusCode != 404 {
						err = fmt.Errorf("answered %d %s", resp.StatusCode, resp.Body)
					}
					done <- err
				}()
				return done
			}
			remove := func(id string) <-chan error {
				done := make(chan error, 1)
				go func() {
					resp, err := deleter.remove("tenant-a", id)
					if err == nil && resp.StatusCode != 204 {
						err = fmt.Errorf("answered %d %s", resp.StatusCode, resp.Body)
					}
					done <- err
				}()
				return done
			}
			cold := func(t *testing.T) string {
				id := other.put(t, "tenant-a", doc)
				evictEntry(t, other.cache, docstore.ID(id))
				return id
			}

			scenarios := []struct {
				name string
				race func(t *testing.T, round int, v variant)
			}{
				{"fill-in-flight", func(t *testing.T, round int, v variant) {
					id := cold(t)
					fillPause.arm(docstore.ID(id))
					downloaded := download(id)
					select {
					case <-fillPause.reached:
					case err := <-downloaded:
						t.Fatalf("round %d: the download finished without reaching its fill: %v", round, err)
					}
					if err := <-remove(id); err != nil {
						t.Fatalf("round %d: DELETE during the fill: %v", round, err)
					}
					v.lose(t, r, raw, id)
					close(fillPause.proceed)
					if err := <-downloaded; err != nil {
						t.Fatalf("round %d: the download that began before the DELETE: %v", round, err)
					}
					stillDeleted(t, round, id)
				}},
				{"delete-in-flight", func(t *testing.T, round int, v variant) {
					id := cold(t)
					deletePause.arm(docstore.ID(id))
					removed := remove(id)
					select {
					case <-deletePause.reached:
					case err := <-removed:
						t.Fatalf("round %d: the DELETE finished without reaching its record delete: %v", round, err)
					}
					v.lose(t, r, raw, id)
					if err := <-download(id); err != nil {
						t.Fatalf("round %d: the download during the DELETE: %v", round, err)
					}
					close(deletePause.proceed)
					if err := <-removed; err != nil {
						t.Fatalf("round %d: the DELETE: %v", round, err)
					}
					stillDeleted(t, round, id)
				}},
			}
			for _, sc := range scenarios {
				t.Run(sc.name, func(t *testing.T) {
					for _, v := range variants {
						t.Run(v.name, func(t *testing.T) {
							n := rounds
							if v.name == "restart" {
								n = top.restarts
							}
							for round := range n {
								sc.race(t, round, v)
							}
						})
					}
				})
			}
		})
	}
}

// stateLossInstance is a tierInstance on the private Redis at url, with
// timeouts generous enough for a server that just restarted and a breaker
// that never opens: a fill must be refused by the cache, not skipped.
type stateLossInstance struct {
	*tierInstance
	cache *rediscache.Cache
}

func newStateLossInstance(t *testing.T, origin docstore.Backends, url string, fillHook func(context.Context, docstore.ID)) stateLossInstance {
	t.Helper()
	client, err := rediscache.NewClient(url, rediscache.ClientOptions{
		DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	cache := rediscache.New(client, rediscache.Options{TTL: time.Minute, Timeout: 10 * time.Second, BreakerThreshold: 1 << 30})
	origin.Cache = cache
	svc := docstore.NewService(origin, docstore.Config{FillHook: fillHook}, nil)
	return stateLossInstance{cache: cache, tierInstance: &tierInstance{
		upload:   apigw.New(svc, apigw.Upload, apigw.Options{}),
		download: apigw.New(svc, apigw.Download, apigw.Options{}),
		metadata: apigw.New(svc, apigw.Metadata, apigw.Options{})}}
}

// retryingRedis is a plain go-redis client on url that retries a command
// that met a connection the server closed by restarting: what it answers
// about the keys is the server's word, not a transport failure.
func retryingRedis(t *testing.T, url string) redis.UniversalClient {
	t.Helper()
	c, err := rediscache.NewClient(url, rediscache.ClientOptions{MaxRetries: 5,
		DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mustDel(t *testing.T, raw redis.UniversalClient, keys ...string) {
	t.Helper()
	for _, k := range keys { // one by one: a cluster client refuses keys of several slots
		if err := raw.Del(context.Background(), k).Err(); err != nil && !errors.Is(err, redis.Nil) {
			t.Fatalf("DEL %s: %v", k, err)
		}
	}
}
