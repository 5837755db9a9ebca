package servicetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/redis/go-redis/v9"

	"github.com/imagodocs/imago/internal/apigw"
	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/rediscache"
	"github.com/imagodocs/imago/internal/storetest"
	"github.com/imagodocs/imago/internal/testenv"
)

// instance is one Lambda execution environment: its own Redis client and
// Service, over origin backends shared with the other instances.
type instance struct {
	svc      *docstore.Service
	upload   *apigw.Handler
	download *apigw.Handler
	cache    *rediscache.Cache
	seen     *observedCache // the cache as the Service sees it
}

// observedCache counts what the Service met in its cache: errors, and fill
// locks another instance held.
type observedCache struct {
	*rediscache.Cache
	errors, contended atomic.Int64
}

func (o *observedCache) Get(ctx context.Context, id docstore.ID) (*docstore.CachedDocument, error) {
	doc, err := o.Cache.Get(ctx, id)
	if err != nil {
		o.errors.Add(1)
	}
	return doc, err
}

func (o *observedCache) Claim(ctx context.Context, id docstore.ID) (*docstore.CachedDocument, docstore.Claim, error) {
	doc, claim, err := o.Cache.Claim(ctx, id)
	if err != nil {
		o.errors.Add(1)
	} else if doc == nil && claim == docstore.NoClaim {
		o.contended.Add(1)
	}
	return doc, claim, err
}

type tierOptions struct {
	redisURL string
	ttl      time.Duration
	sealKey  []byte
	timeout  time.Duration
	fillWait time.Duration
}

func newInstance(t *testing.T, origin docstore.Backends, o tierOptions) *instance {
	t.Helper()
	if o.timeout == 0 {
		o.timeout = 300 * time.Millisecond
	}
	client, err := rediscache.NewClient(o.redisURL, rediscache.ClientOptions{
		DialTimeout: o.timeout, ReadTimeout: o.timeout, WriteTimeout: o.timeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	cache := rediscache.New(client, rediscache.Options{TTL: o.ttl, MaxBytes: 8 << 20, SealKey: o.sealKey, Timeout: o.timeout})
	seen := &observedCache{Cache: cache}
	origin.Cache = seen
	svc := docstore.NewService(origin, docstore.Config{FillWait: o.fillWait}, nil)
	return &instance{svc: svc, cache: cache, seen: seen,
		upload:   apigw.New(svc, apigw.Upload, apigw.Options{}),
		download: apigw.New(svc, apigw.Download, apigw.Options{})}
}

// invoke sends one API Gateway event through a handler's Lambda entry point.
func invoke(t *testing.T, h *apigw.Handler, method, routeKey, path, id, tenant string, body []byte) events.APIGatewayV2HTTPResponse {
	t.Helper()
	resp, err := invokeErr(h, method, routeKey, path, id, tenant, body)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// invokeErr is invoke for goroutines other than the test's.
func invokeErr(h *apigw.Handler, method, routeKey, path, id, tenant string, body []byte) (events.APIGatewayV2HTTPResponse, error) {
	ev := events.APIGatewayV2HTTPRequest{Version: "2.0", RouteKey: routeKey, RawPath: path,
		Headers: map[string]string{"content-type": "application/octet-stream"}}
	ev.RequestContext.HTTP.Method = method
	if id != "" {
		ev.PathParameters = map[string]string{"id": id}
	}
	ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
		JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: map[string]string{"sub": tenant}}}
	if body != nil {
		ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(body), true
	}
	payload, _ := json.Marshal(ev)
	var resp events.APIGatewayV2HTTPResponse
	out, err := h.Invoke(context.Background(), payload)
	if err != nil {
		return resp, err
	}
	err = json.Unmarshal(out, &resp)
	return resp, err
}

func (in *instance) put(t *testing.T, tenant string, doc []byte) string {
	t.Helper()
	resp := invoke(t, in.upload, "POST", "POST /documents", "/documents", "", tenant, doc)
	if resp.StatusCode != 201 {
		t.Fatalf("upload: %d %s", resp.StatusCode, resp.Body)
	}
	var d docstore.Document
	json.Unmarshal([]byte(resp.Body), &d)
	return string(d.ID)
}

// get downloads id and returns the cache outcome, failing on anything but
// the identical document.
func (in *instance) get(t *testing.T, tenant, id string, want []byte) string {
	t.Helper()
	resp := invoke(t, in.download, "GET", "GET /documents/{id}/content", "/documents/"+id+"/content", id, tenant, nil)
	body, _ := base64.StdEncoding.DecodeString(resp.Body)
	if resp.StatusCode != 200 || !bytes.Equal(body, want) {
		t.Fatalf("download: %d, identical %v", resp.StatusCode, bytes.Equal(body, want))
	}
	return resp.Headers["x-imago-cache"]
}

// redisServers names the variable holding each kind of Redis the cache
// tier tests run on: one node, and the three-node cluster.
var redisServers = map[string]string{"node": "IMAGO_REDIS_URL", "cluster": "IMAGO_TESTENV_REDIS_CLUSTER_URL"}

// needRedis skips a cache-tier behaviour on a harness that does not run
// them.
func needRedis(t *testing.T, h Harness) {
	t.Helper()
	if !h.Redis {
		t.Skip("the harness runs no cache-tier behaviour on Redis (Harness.Redis)")
	}
}

// onEachRedis is the behaviour that runs test once per kind of Redis
// server, over h's origin.
func onEachRedis(test func(t *testing.T, h Harness, urlVar string)) func(t *testing.T, h Harness) {
	return func(t *testing.T, h Harness) {
		needRedis(t, h)
		for name, urlVar := range redisServers {
			t.Run(name, func(t *testing.T) { test(t, h, urlVar) })
		}
	}
}

// rawRedis is a plain go-redis client on the server at url, for looking
// behind the cache's back.
func rawRedis(t *testing.T, url string) redis.UniversalClient {
	t.Helper()
	c, err := rediscache.NewClient(url, rediscache.ClientOptions{DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// evict removes a document's entry from Redis, as its expiry would (a
// Delete would leave a tombstone refusing the fills under test).
func evict(t *testing.T, url, id string) {
	t.Helper()
	if err := rawRedis(t, url).Del(context.Background(), testenv.CacheEntryKey(id)).Err(); err != nil {
		t.Fatal(err)
	}
}

// origin is h's origin backends, with no cache (each instance brings its
// own), counted by a probe, and the URL of the Redis server in urlVar.
func origin(t *testing.T, h Harness, urlVar string) (*storetest.Probe, docstore.Backends, string) {
	t.Helper()
	redisURL := testenv.Require(t, urlVar)[urlVar]
	set := h.Open(t)
	p := &storetest.Probe{}
	return p, withoutCache(p.Wrap(set.Backends)), redisURL
}

func assertOrigin(t *testing.T, what string, p *storetest.Probe, meta, blob, unwrap int64) {
	t.Helper()
	m, b, u := p.Origin()
	if m != meta || b != blob || u != unwrap {
		t.Fatalf("%s: %d metadata reads, %d blob reads, %d key unwraps; want %d, %d, %d", what, m, b, u, meta, blob, unwrap)
	}
	p.Reset()
}

func testHitsSkipTheOrigin(t *testing.T, h Harness, urlVar string) {
	p, backends, redisURL := origin(t, h, urlVar)
	in := newInstance(t, backends, tierOptions{redisURL: redisURL, ttl: 2 * time.Second})
	doc := randomDoc(1 << 20)
	id := in.put(t, "tenant-a", doc)
	p.Reset()

	if got := in.get(t, "tenant-a", id, doc); got != "hit" {
		t.Fatalf("download right after upload: %s", got)
	}
	assertOrigin(t, "download right after upload", p, 0, 0, 0)

	evict(t, redisURL, id)
	if got := in.get(t, "tenant-a", id, doc); got != "miss" {
		t.Fatalf("after the entry was removed: %s", got)
	}
	assertOrigin(t, "miss", p, 1, 1, 1)
	if got := in.get(t, "tenant-a", id, doc); got != "hit" {
		t.Fatalf("after the miss: %s", got)
	}
	assertOrigin(t, "hit after the miss", p, 0, 0, 0)

	time.Sleep(2500 * time.Millisecond) // past the TTL
	if got := in.get(t, "tenant-a", id, doc); got != "miss" {
		t.Fatalf("after the TTL: %s", got)
	}
	assertOrigin(t, "miss after the TTL", p, 1, 1, 1)

	resp := invoke(t, in.download, "GET", "GET /documents/{id}/content", "/documents/"+id+"/content", id, "tenant-b", nil)
	if resp.StatusCode != 404 {
		t.Fatalf("another tenant reading a cached document: %d", resp.StatusCode)
	}
	assertOrigin(t, "another tenant's cache hit", p, 0, 0, 0)
}

func testSealedValuesHoldNoPlaintext(t *testing.T, h Harness, urlVar string) {
	_, backends, redisURL := origin(t, h, urlVar)
	key := make([]byte, 32)
	rand.Read(key)
	in := newInstance(t, backends, tierOptions{redisURL: redisURL, ttl: time.Minute, sealKey: key})
	doc := randomDoc(1 << 20)
	id := in.put(t, "tenant-a", doc)
	if got := in.get(t, "tenant-a", id, doc); got != "hit" {
		t.Fatalf("sealed cache: %s", got)
	}
	val, err := rawRedis(t, redisURL).Get(context.Background(), testenv.CacheEntryKey(id)).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	testenv.AssertNoPlaintext(t, "the Redis value", val, doc)
}

func testConcurrentMissesAcrossInstancesLoadOnce(t *testing.T, h Harness, urlVar string) {
	p, backends, redisURL := origin(t, h, urlVar)
	const n = 50
	instances := make([]*instance, n)
	for i := range instances {
		// Warm instances, as Lambda's are between requests: each holds its
		// Redis connection already. Generous timeouts keep a loaded test
		// machine (-race, 2 cores, 50 instances reading 1 MiB each from one
		// Redis at once) from turning this into a test of timeouts, which
		// CacheTier_BrokenRedisNeverFailsARequest covers.
		instances[i] = newInstance(t, backends, tierOptions{redisURL: redisURL, ttl: time.Minute, timeout: 15 * time.Second, fillWait: 30 * time.Second})
		if _, err := instances[i].cache.Get(context.Background(), docstore.NewID()); err != nil {
			t.Fatalf("instance %d cannot reach Redis: %v", i, err)
		}
	}
	doc := randomDoc(1 << 20)
	id := instances[0].put(t, "tenant-a", doc)
	evict(t, redisURL, id)
	p.Reset()

	var wg sync.WaitGroup
	start := make(chan struct{})
	outcomes := make([]string, n)
	for i, in := range instances {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			outcomes[i] = in.get(t, "tenant-a", id, doc)
		}()
	}
	close(start)
	wg.Wait()
	if _, b, u := p.Origin(); b != 1 || u != 1 {
		t.Fatalf("%d concurrent misses in %d instances: %d blob reads and %d key unwraps, want 1 and 1 (outcomes %v)", n, n, b, u, outcomes)
	}
}

// On one node only: the proxy stands for one server (a cluster's nodes
// announce their own addresses).
func testBrokenRedisNeverFailsARequest(t *testing.T, h Harness) {
	needRedis(t, h)
	_, backends, redisURL := origin(t, h, "IMAGO_REDIS_URL")
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	const timeout = 200 * time.Millisecond
	proxy := testenv.NewProxy(t, opt.Addr)
	in := newInstance(t, backends, tierOptions{redisURL: "redis://" + proxy.Addr + "/0", ttl: time.Minute, timeout: timeout})
	docs := make([][]byte, 8)
	ids := make([]string, len(docs))
	for i := range docs {
		docs[i] = randomDoc(256 << 10)
		ids[i] = in.put(t, "tenant-a", docs[i])
		evict(t, redisURL, ids[i])
	}
	// The origin alone, for comparison: the cache is simply skipped.
	noCache := docstore.NewService(backends, docstore.Config{}, nil)
	originStart := time.Now()
	for i := range docs {
		if _, err := noCache.Download(context.Background(), docstore.DownloadRequest{Tenant: "tenant-a", ID: docstore.ID(ids[i])}); err != nil {
			t.Fatal(err)
		}
	}
	originEach := time.Since(originStart) / time.Duration(len(docs))
	budget := originEach + timeout + 400*time.Millisecond // slack for a loaded 2-core machine

	check := func(what string) {
		t.Helper()
		for i := range docs {
			start := time.Now()
			in.get(t, "tenant-a", ids[i], docs[i])
			if took := time.Since(start); took > budget {
				t.Fatalf("%s: download %d took %v, over the origin time %v + the %v cache timeout (+ slack)", what, i, took, originEach, timeout)
			}
		}
	}

	proxy.SetDelay(2 * time.Second) // Redis answers, but far too slowly
	check("slow Redis")
	before := proxy.Accepted()
	check("slow Redis, breaker open")
	if after := proxy.Accepted(); after != before {
		t.Errorf("with the breaker open the cache still dialed Redis %d times", after-before)
	}

	proxy.SetDelay(0)
	proxy.Stop() // Redis stopped mid-test
	check("Redis stopped")
	if in.seen.errors.Load() == 0 {
		t.Error("no cache error was counted with Redis down")
	}
}

// cacheTier is one cache tier the delete-versus-fill tests run on: its
// origin backends, and how a new instance (a Lambda execution environment,
// or the one process of `imago serve`) gets its cache.
type cacheTier struct {
	origin   docstore.Backends
	newCache func(t *testing.T) docstore.Cache
	// rounds of the many-rounds race: fewer where a round costs seconds of
	// S3, DynamoDB and KMS.
	rounds int
}

// cacheTiers are the tiers the delete-versus-fill behaviours run on over
// h's origin: the family's own cache, which the instances share as the
// requests of one process (`imago serve`) do; and, when h runs them, each
// kind of Redis server with a client per instance, as Lambda's have. A
// Redis whose server is not configured is skipped (or fails, with
// IMAGO_REQUIRE_TESTENV=1).
func cacheTiers(h Harness) map[string]func(t *testing.T) cacheTier {
	tiers := map[string]func(t *testing.T) cacheTier{
		"own-cache": func(t *testing.T) cacheTier {
			set := h.Open(t)
			own := set.Cache
			return cacheTier{origin: withoutCache(set.Backends), newCache: func(*testing.T) docstore.Cache { return own }, rounds: h.Rounds}
		},
	}
	if h.Redis {
		for name, urlVar := range redisServers {
			tiers[name] = func(t *testing.T) cacheTier { return redisTier(t, h, urlVar) }
		}
	}
	return tiers
}

func redisTier(t *testing.T, h Harness, urlVar string) cacheTier {
	t.Helper()
	url := testenv.Require(t, urlVar)[urlVar]
	set := h.Open(t)
	return cacheTier{origin: withoutCache(set.Backends), rounds: h.Rounds, newCache: func(t *testing.T) docstore.Cache {
		client, err := rediscache.NewClient(url, rediscache.ClientOptions{
			DialTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { client.Close() })
		return rediscache.New(client, rediscache.Options{TTL: time.Minute, Timeout: 10 * time.Second})
	}}
}

// tierInstance is one instance's Service behind the three functions' handlers.
type tierInstance struct {
	upload, download, metadata *apigw.Handler
}

func newTierInstance(b docstore.Backends, cache docstore.Cache) *tierInstance {
	b.Cache = cache
	svc := docstore.NewService(b, docstore.Config{}, nil)
	return &tierInstance{upload: apigw.New(svc, apigw.Upload, apigw.Options{}),
		download: apigw.New(svc, apigw.Download, apigw.Options{}),
		metadata: apigw.New(svc, apigw.Metadata, apigw.Options{})}
}

func (in *tierInstance) content(tenant, id string) (events.APIGatewayV2HTTPResponse, error) {
	return invokeErr(in.download, "GET", "GET /documents/{id}/content", "/documents/"+id+"/content", id, tenant, nil)
}

func (in *tierInstance) remove(tenant, id string) (events.APIGatewayV2HTTPResponse, error) {
	return invokeErr(in.metadata, "DELETE", "DELETE /documents/{id}", "/documents/"+id, id, tenant, nil)
}

// pausingCache holds the first Fill of one id until proceed is closed: a
// fill stopped between its origin read and its cache write, as a slow
// instance would be.
type pausingCache struct {
	docstore.Cache
	id               docstore.ID
	reached, proceed chan struct{}
	once             sync.Once
}

func (p *pausingCache) Fill(ctx context.Context, id docstore.ID, claim docstore.Claim, doc *docstore.CachedDocument) error {
	if id == p.id {
		p.once.Do(func() { close(p.reached); <-p.proceed })
	}
	return p.Cache.Fill(ctx, id, claim, doc)
}

func pause(c docstore.Cache, id docstore.ID) (docstore.Cache, *pausingCache) {
	p := &pausingCache{Cache: c, id: id, reached: make(chan struct{}), proceed: make(chan struct{})}
	return p, p
}

// Issue 9, defect 1: a fill that read the origin before a DELETE and wrote
// the cache after it must not make the deleted document readable again.
func testDeleteWinsOverAPausedFill(t *testing.T, h Harness) {
	for name, setup := range cacheTiers(h) {
		t.Run(name, func(t *testing.T) {
			tr := setup(t)
			doc := randomDoc(1 << 20)
			id := newTierInstance(tr.origin, nil).put(t, "tenant-a", doc) // uploaded with no cache: cold

			cache, p := pause(tr.newCache(t), docstore.ID(id))
			reader := newTierInstance(tr.origin, cache)
			other := newTierInstance(tr.origin, tr.newCache(t))
			type result struct {
				resp events.APIGatewayV2HTTPResponse
				err  error
			}
			done := make(chan result, 1)
			go func() {
				resp, err := reader.content("tenant-a", id)
				done <- result{resp, err}
			}()
			select {
			case <-p.reached:
			case r := <-done:
				t.Fatalf("the download finished without filling the cache: %d %s, %v", r.resp.StatusCode, r.resp.Headers["x-imago-cache"], r.err)
			}
			resp, err := other.remove("tenant-a", id)
			if err != nil || resp.StatusCode != 204 {
				t.Fatalf("DELETE during the fill: %d %v", resp.StatusCode, err)
			}
			close(p.proceed)
			if r := <-done; r.err != nil || r.resp.StatusCode != 200 && r.resp.StatusCode != 404 {
				t.Fatalf("the download that began before the DELETE: %d %v", r.resp.StatusCode, r.err)
			}
			for name, in := range map[string]*tierInstance{"the instance that filled": reader, "the instance that deleted": other} {
				resp, err := in.content("tenant-a", id)
				if err != nil || resp.StatusCode != 404 {
					t.Fatalf("content after DELETE answered 204, from %s: %d (X-Imago-Cache %q), want 404", name, resp.StatusCode, resp.Headers["x-imago-cache"])
				}
			}
		})
	}
}

// The same race left to the scheduler, as a user meets it: cold documents,
// three downloads on three instances and a DELETE on a fourth, all at once.
// Once the DELETE has answered 204, every instance answers 404.
func testDeleteWinsOverConcurrentDownloads(t *testing.T, h Harness) {
	for name, setup := range cacheTiers(h) {
		t.Run(name, func(t *testing.T) {
			tr := setup(t)
			const readers = 3
			rounds := tr.rounds
			uploader := newTierInstance(tr.origin, nil)
			instances := make([]*tierInstance, readers+1)
			for i := range instances {
				instances[i] = newTierInstance(tr.origin, tr.newCache(t))
			}
			doc := randomDoc(2 << 20)
			stale := 0
			for round := range rounds {
				id := uploader.put(t, "tenant-a", doc)
				var wg sync.WaitGroup
				start := make(chan struct{})
				statuses := make([]int, readers+1)
				errs := make([]error, readers+1)
				for i, in := range instances {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						var resp events.APIGatewayV2HTTPResponse
						if i == readers {
							resp, errs[i] = in.remove("tenant-a", id)
						} else {
							resp, errs[i] = in.content("tenant-a", id)
							if body, _ := base64.StdEncoding.DecodeString(resp.Body); resp.StatusCode == 200 && !bytes.Equal(body, doc) {
								errs[i] = errors.New("a 200 with other bytes than the document's")
							}
						}
						statuses[i] = resp.StatusCode
					}()
				}
				close(start)
				wg.Wait()
				for i, err := range errs {
					if err != nil {
						t.Fatalf("round %d, instance %d: %v", round, i, err)
					}
				}
				if statuses[readers] != 204 {
					t.Fatalf("round %d: DELETE answered %d", round, statuses[readers])
				}
				for i, status := range statuses[:readers] {
					// Before the DELETE or after it: the document, or none.
					if status != 200 && status != 404 {
						t.Errorf("round %d: a download racing the DELETE (instance %d) answered %d", round, i, status)
					}
				}
				for i, in := range instances {
					resp, err := in.content("tenant-a", id)
					if err != nil {
						t.Fatal(err)
					}
					if resp.StatusCode != 404 {
						stale++
						t.Errorf("round %d: content from instance %d after DELETE answered 204: %d (X-Imago-Cache %q), want 404 (downloads during the race: %v)",
							round, i, resp.StatusCode, resp.Headers["x-imago-cache"], statuses[:readers])
					}
				}
			}
			if stale > 0 {
				t.Errorf("%d reads after a DELETE were served in %d rounds", stale, rounds)
			}
		})
	}
}

func (in *tierInstance) put(t *testing.T, tenant string, doc []byte) string {
	t.Helper()
	return (&instance{upload: in.upload}).put(t, tenant, doc)
}

// failingDeletes is a cache whose Delete fails, as a Redis that is down.
type failingDeletes struct{ docstore.Cache }

func (failingDeletes) Delete(context.Context, docstore.ID) error {
	return docstore.E("test", docstore.KindUnavailable, errors.New("the cache is down"))
}

// A DELETE that cannot leave its tombstone in the cache answers 503 and
// deletes nothing: a 204 would leave the document readable from the cache
// once it answers again.
func testDeleteWithoutTheCacheDeletesNothing(t *testing.T, h Harness) {
	check := func(t *testing.T, in *tierInstance, id string, doc []byte) {
		t.Helper()
		resp, err := in.remove("tenant-a", id)
		if err != nil || resp.StatusCode != 503 || !strings.Contains(resp.Body, `"code":"unavailable"`) {
			t.Fatalf("DELETE with the cache down: %d %s %v, want 503 unavailable", resp.StatusCode, resp.Body, err)
		}
		md := invoke(t, in.metadata, "GET", "GET /documents/{id}", "/documents/"+id, id, "tenant-a", nil)
		if md.StatusCode != 200 {
			t.Fatalf("metadata after a refused DELETE: %d", md.StatusCode)
		}
		resp, err = in.content("tenant-a", id)
		body, _ := base64.StdEncoding.DecodeString(resp.Body)
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, doc) {
			t.Fatalf("content after a refused DELETE: %d, identical %v", resp.StatusCode, bytes.Equal(body, doc))
		}
	}
	t.Run("own-cache", func(t *testing.T) {
		set := h.Open(t)
		in := newTierInstance(set.Backends, failingDeletes{set.Cache})
		doc := randomDoc(64 << 10)
		check(t, in, in.put(t, "tenant-a", doc), doc)
	})
	t.Run("node", func(t *testing.T) {
		needRedis(t, h)
		_, backends, redisURL := origin(t, h, "IMAGO_REDIS_URL")
		opt, err := redis.ParseURL(redisURL)
		if err != nil {
			t.Fatal(err)
		}
		proxy := testenv.NewProxy(t, opt.Addr)
		client, err := rediscache.NewClient("redis://"+proxy.Addr+"/0", rediscache.ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { client.Close() })
		in := newTierInstance(backends, rediscache.New(client, rediscache.Options{TTL: time.Minute}))
		doc := randomDoc(64 << 10)
		id := in.put(t, "tenant-a", doc)
		proxy.Stop()
		check(t, in, id, doc)
	})
}

// A waiter whose fill-lock holder lets go without filling (its load failed,
// or it had nothing to fill) claims the lock and loads at once: with a
// FillWait of an hour, this test finishes only if it does. It read the
// record again under its claim, so it fills.
func testWaiterTakesOverAnAbandonedFill(t *testing.T, h Harness, urlVar string) {
	p, backends, redisURL := origin(t, h, urlVar)
	in := newInstance(t, backends, tierOptions{redisURL: redisURL, ttl: time.Minute, timeout: 5 * time.Second, fillWait: time.Hour})
	doc := randomDoc(256 << 10)
	id := in.put(t, "tenant-a", doc)
	evict(t, redisURL, id)

	holder := newInstance(t, backends, tierOptions{redisURL: redisURL, ttl: time.Minute, timeout: 5 * time.Second})
	_, claim, err := holder.cache.Claim(context.Background(), docstore.ID(id))
	if err != nil || claim == docstore.NoClaim {
		t.Fatalf("Claim: %q %v", claim, err)
	}
	release := func() { holder.cache.Release(context.Background(), docstore.ID(id), claim) }
	p.Reset()
	done := make(chan string, 1)
	go func() {
		resp, err := invokeErr(in.download, "GET", "GET /documents/{id}/content", "/documents/"+id+"/content", id, "tenant-a", nil)
		body, _ := base64.StdEncoding.DecodeString(resp.Body)
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, doc) {
			done <- "failed"
			return
		}
		done <- resp.Headers["x-imago-cache"]
	}()
	for in.seen.contended.Load() == 0 { // the download is waiting on the holder
		runtime.Gosched()
	}
	release() // the holder gives up without filling
	if got := <-done; got != "miss" {
		t.Fatalf("the waiter's download: %s, want a miss served from the origin", got)
	}
	if _, b, u := p.Origin(); b != 1 || u != 1 {
		t.Fatalf("%d blob reads, %d unwraps; want one load", b, u)
	}
	if got := in.get(t, "tenant-a", id, doc); got != "hit" {
		t.Fatalf("after the waiter's load: %s, want a hit (it filled the cache)", got)
	}
}
