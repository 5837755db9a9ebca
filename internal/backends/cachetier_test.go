package backends_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"sync"
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
	origin.Cache = cache
	svc := docstore.NewService(origin, docstore.Config{FillWait: o.fillWait}, nil)
	return &instance{svc: svc, cache: cache,
		upload:   apigw.New(svc, apigw.Upload, apigw.Options{}),
		download: apigw.New(svc, apigw.Download, apigw.Options{})}
}

// invoke sends one API Gateway event through a handler's Lambda entry point.
func invoke(t *testing.T, h *apigw.Handler, method, routeKey, path, id, tenant string, body []byte) events.APIGatewayV2HTTPResponse {
	t.Helper()
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
	out, err := h.Invoke(context.Background(), payload)
	if err != nil {
		t.Fatal(err)
	}
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatal(err)
	}
	return resp
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

func origin(t *testing.T) (*storetest.Probe, docstore.Backends, string) {
	t.Helper()
	redisURL := testenv.Require(t, "IMAGO_REDIS_URL")["IMAGO_REDIS_URL"]
	set := open(t, awsFamily(false).cfg(t))
	p := &storetest.Probe{}
	return p, p.Wrap(set.Backends), redisURL
}

func assertOrigin(t *testing.T, what string, p *storetest.Probe, meta, blob, unwrap int64) {
	t.Helper()
	m, b, u := p.Origin()
	if m != meta || b != blob || u != unwrap {
		t.Fatalf("%s: %d metadata reads, %d blob reads, %d key unwraps; want %d, %d, %d", what, m, b, u, meta, blob, unwrap)
	}
	p.Reset()
}

func TestCacheTier_HitsSkipTheOrigin(t *testing.T) {
	p, backends, redisURL := origin(t)
	in := newInstance(t, backends, tierOptions{redisURL: redisURL, ttl: 2 * time.Second})
	doc := randomDoc(1 << 20)
	id := in.put(t, "tenant-a", doc)
	p.Reset()

	if got := in.get(t, "tenant-a", id, doc); got != "hit" {
		t.Fatalf("download right after upload: %s", got)
	}
	assertOrigin(t, "download right after upload", p, 0, 0, 0)

	in.cache.Delete(context.Background(), docstore.ID(id))
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

func TestCacheTier_SealedValuesHoldNoPlaintext(t *testing.T) {
	_, backends, redisURL := origin(t)
	key := make([]byte, 32)
	rand.Read(key)
	in := newInstance(t, backends, tierOptions{redisURL: redisURL, ttl: time.Minute, sealKey: key})
	doc := randomDoc(1 << 20)
	id := in.put(t, "tenant-a", doc)
	if got := in.get(t, "tenant-a", id, doc); got != "hit" {
		t.Fatalf("sealed cache: %s", got)
	}
	opt, _ := redis.ParseURL(redisURL)
	raw := redis.NewClient(opt)
	defer raw.Close()
	val, err := raw.Get(context.Background(), "imago:doc:"+id).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	testenv.AssertNoPlaintext(t, "the Redis value", val, doc)
}

func TestCacheTier_ConcurrentMissesAcrossInstancesLoadOnce(t *testing.T) {
	p, backends, redisURL := origin(t)
	const n = 50
	instances := make([]*instance, n)
	for i := range instances {
		// Warm instances, as Lambda's are between requests: each holds its
		// Redis connection already. Generous timeouts keep a loaded test
		// machine (-race, 2 cores, 50 instances reading 1 MiB each from one
		// Redis at once) from turning this into a test of timeouts, which
		// TestCacheTier_BrokenRedisNeverFailsARequest covers.
		instances[i] = newInstance(t, backends, tierOptions{redisURL: redisURL, ttl: time.Minute, timeout: 15 * time.Second, fillWait: 30 * time.Second})
		if _, err := instances[i].cache.Get(context.Background(), docstore.NewID()); err != nil {
			t.Fatalf("instance %d cannot reach Redis: %v", i, err)
		}
	}
	doc := randomDoc(1 << 20)
	id := instances[0].put(t, "tenant-a", doc)
	instances[0].cache.Delete(context.Background(), docstore.ID(id))
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

func TestCacheTier_BrokenRedisNeverFailsARequest(t *testing.T) {
	_, backends, redisURL := origin(t)
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
		in.cache.Delete(context.Background(), docstore.ID(ids[i]))
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
	if s := in.svc.Stats(); s.CacheErrors == 0 {
		t.Error("no cache error was counted with Redis down")
	}
}
