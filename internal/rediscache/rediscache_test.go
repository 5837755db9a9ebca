package rediscache

// Integration tests: they run against a real redis-server on 127.0.0.1 named
// by IMAGO_REDIS_URL (scripts/testenv starts one), and are skipped without
// it, or fail when IMAGO_REQUIRE_TESTENV=1.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/storetest"
	"github.com/imagodocs/imago/internal/testenv"
)

// Generous timeouts for the functional tests: they check behaviour, not
// latency, and must not flake on a loaded machine under -race. The
// resilience tests set their own short ones.
var relaxed = ClientOptions{DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second}

const relaxedTimeout = 4 * time.Second

func redisURL(t testing.TB) string {
	t.Helper()
	return testenv.Require(t, "IMAGO_REDIS_URL")["IMAGO_REDIS_URL"]
}

// upstreamAddr is the host:port of the test server.
func upstreamAddr(t testing.TB) string {
	t.Helper()
	opt, err := redis.ParseURL(redisURL(t))
	if err != nil {
		t.Fatalf("IMAGO_REDIS_URL: %v", err)
	}
	return opt.Addr
}

// newClient returns a NewClient client on the test server, closed with t.
func newClient(t testing.TB, o ClientOptions) redis.UniversalClient {
	t.Helper()
	c, err := NewClient(redisURL(t), o)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// newClientOn returns a relaxed NewClient client on url, closed with t.
func newClientOn(t testing.TB, url string) redis.UniversalClient {
	t.Helper()
	c, err := NewClient(url, relaxed)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func newCache(t testing.TB, opts Options) (*Cache, redis.UniversalClient) {
	t.Helper()
	client := newClient(t, relaxed)
	if opts.Timeout == 0 {
		opts.Timeout = relaxedTimeout
	}
	return New(client, opts), client
}

func testSealKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, SealKeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func sampleDoc(body []byte) *docstore.CachedDocument {
	return &docstore.CachedDocument{Tenant: docstore.Tenant("tenant-" + string(docstore.NewID())), Descriptor: docstore.Descriptor{Filename: "confidential-passport-scan-of-someone.pdf", ContentType: "application/pdf", Size: int64(len(body)), SHA256: strings.Repeat("ab", 32)}, Body: body}
}

// set makes doc the entry of id the one way there is, as a miss does:
// Claim, then Fill.
func set(ctx context.Context, c *Cache, id docstore.ID, doc *docstore.CachedDocument) error {
	_, claim, err := c.Claim(ctx, id)
	if err != nil {
		return err
	}
	if claim == docstore.NoClaim {
		return fmt.Errorf("Claim of %s: an entry or a fill lock is there already", id)
	}
	return c.Fill(ctx, id, claim, doc)
}

func mustSet(t testing.TB, c *Cache, raw redis.UniversalClient, id docstore.ID, doc *docstore.CachedDocument) {
	t.Helper()
	if err := set(context.Background(), c, id, doc); err != nil {
		t.Fatalf("Claim and Fill: %v", err)
	}
	t.Cleanup(func() { raw.Del(context.Background(), docKey(id), fillKey(id)) })
}

func sameDoc(got, want *docstore.CachedDocument) bool {
	return got != nil && got.Tenant == want.Tenant && got.Filename == want.Filename &&
		got.ContentType == want.ContentType && got.Size == want.Size && got.SHA256 == want.SHA256 &&
		bytes.Equal(got.Body, want.Body)
}

// clusterURL is the three-node Redis Cluster of scripts/testenv.
func clusterURL(t testing.TB) string {
	t.Helper()
	return testenv.Require(t, "IMAGO_TESTENV_REDIS_CLUSTER_URL")["IMAGO_TESTENV_REDIS_CLUSTER_URL"]
}

// servers are the single node and the cluster, each test's subtests.
var servers = map[string]func(testing.TB) string{"node": redisURL, "cluster": clusterURL}

func TestRedisCache_Contract(t *testing.T) {
	for name, url := range servers {
		t.Run(name, func(t *testing.T) { testContract(t, url(t)) })
	}
}

func testContract(t *testing.T, url string) {
	for _, sealed := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "sealed"}[sealed], func(t *testing.T) {
			var key []byte
			if sealed {
				key = testSealKey(t)
			}
			storetest.TestCache(t, func(t *testing.T, ttl time.Duration) docstore.Cache {
				client, err := NewClient(url, relaxed)
				if err != nil {
					t.Fatalf("NewClient: %v", err)
				}
				t.Cleanup(func() { client.Close() })
				return New(client, Options{TTL: ttl, SealKey: key, Timeout: relaxedTimeout})
			})
		})
	}
}

// A sealed value holds no run of 64 plaintext bytes, nor the tenant or the
// filename; the same value unsealed does (which shows the check can see).
func TestSealedValueHoldsNoPlaintext(t *testing.T) {
	var text bytes.Buffer
	for i := 0; text.Len() < 256<<10; i++ {
		fmt.Fprintf(&text, "line %d of a very confidential document, repeated to be easy to spot; ", i)
	}
	body := text.Bytes()
	doc := sampleDoc(body)
	for _, sealed := range []bool{true, false} {
		var key []byte
		if sealed {
			key = testSealKey(t)
		}
		c, raw := newCache(t, Options{SealKey: key})
		id := docstore.NewID()
		mustSet(t, c, raw, id, doc)
		val, err := raw.Get(context.Background(), docKey(id)).Bytes()
		if err != nil {
			t.Fatalf("raw GET: %v", err)
		}
		leak := sharesRun(val, body, 64)
		leak = leak || bytes.Contains(val, []byte(doc.Tenant)) || bytes.Contains(val, []byte(doc.Filename))
		if leak != !sealed {
			t.Fatalf("sealed=%v: value of %d bytes shows plaintext: %v, want %v", sealed, len(val), leak, !sealed)
		}
		if got, err := c.Get(context.Background(), id); err != nil || !sameDoc(got, doc) {
			t.Fatalf("sealed=%v: Get after Set: (%v, %v)", sealed, got != nil, err)
		}
	}
}

// sharesRun reports whether hay contains n consecutive bytes of plain. Any
// run of n bytes of plain covers a whole n/2-byte chunk aligned on n/2, so it
// is enough to look up those chunks among every n/2-byte window of hay.
func sharesRun(hay, plain []byte, n int) bool {
	h := n / 2
	windows := make(map[string]struct{}, len(hay))
	for i := 0; i+h <= len(hay); i++ {
		windows[string(hay[i:i+h])] = struct{}{}
	}
	for i := 0; i+h <= len(plain); i += h {
		if _, ok := windows[string(plain[i:i+h])]; ok {
			return true
		}
	}
	return false
}

// A sealed value copied to another key does not open there: a miss, counted
// as undecodable; the original still opens.
func TestSealedValueMovedToAnotherKeyIsAMiss(t *testing.T) {
	ctx := context.Background()
	logs, logger := newLogCounts()
	c, raw := newCache(t, Options{SealKey: testSealKey(t), Logger: logger})
	a, b := docstore.NewID(), docstore.NewID()
	doc := sampleDoc([]byte("the body of a"))
	mustSet(t, c, raw, a, doc)
	t.Cleanup(func() { raw.Del(ctx, docKey(b)) })
	val, err := raw.Get(ctx, docKey(a)).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Set(ctx, docKey(b), val, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(ctx, b); err != nil || got != nil {
		t.Fatalf("Get of a value moved to another key: (%v, %v), want (nil, nil)", got, err)
	}
	if n := logs.count(logUndecodable); n != 1 {
		t.Fatalf("undecodable entries logged after the moved value: %d, want 1", n)
	}
	if got, err := c.Get(ctx, a); err != nil || !sameDoc(got, doc) {
		t.Fatalf("Get of the original: (%v, %v)", got, err)
	}
}

// Readers whose sealing differs from the writer's see misses, never errors
// or garbage: another key, no key, or a key where the writer had none.
func TestSealMismatchIsAMiss(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, relaxed)
	k1, k2 := testSealKey(t), testSealKey(t)
	caches := map[string]*Cache{
		"plain": New(client, Options{Timeout: relaxedTimeout}),
		"k1":    New(client, Options{SealKey: k1, Timeout: relaxedTimeout}),
		"k2":    New(client, Options{SealKey: k2, Timeout: relaxedTimeout}),
	}
	for wname, w := range caches {
		id := docstore.NewID()
		doc := sampleDoc([]byte("body written by " + wname))
		mustSet(t, w, client, id, doc)
		for rname, r := range caches {
			got, err := r.Get(ctx, id)
			switch {
			case err != nil:
				t.Errorf("written %s, read %s: error %v", wname, rname, err)
			case rname == wname && !sameDoc(got, doc):
				t.Errorf("written and read %s: not the document", wname)
			case rname != wname && got != nil:
				t.Errorf("written %s, read %s: a hit, want a miss", wname, rname)
			}
		}
	}
}

// Garbage, short, unknown-version and truncated values are misses.
func TestUndecodableValuesAreMisses(t *testing.T) {
	ctx := context.Background()
	for _, sealed := range []bool{false, true} {
		var key []byte
		if sealed {
			key = testSealKey(t)
		}
		logs, logger := newLogCounts()
		c, raw := newCache(t, Options{SealKey: key, Logger: logger})
		good, err := encode(docKey("x"), sampleDoc(bytes.Repeat([]byte("z"), 1000)), c.aead)
		if err != nil {
			t.Fatal(err)
		}
		values := map[string][]byte{
			"empty":     {},
			"one byte":  {valueVersion},
			"version 0": append([]byte{0}, good[1:]...),
			"version 3": append([]byte{3}, good[1:]...),
			"flags":     append([]byte{valueVersion, good[1] | 0x80}, good[2:]...),
			"truncated": good[:20],
			"text":      []byte("hello, world"),
		}
		for name, v := range values {
			id := docstore.NewID()
			if err := raw.Set(ctx, docKey(id), v, time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { raw.Del(ctx, docKey(id)) })
			if got, err := c.Get(ctx, id); err != nil || got != nil {
				t.Errorf("sealed=%v, %s value: Get = (%v, %v), want (nil, nil)", sealed, name, got, err)
			}
		}
		if n := logs.count(logUndecodable); n != len(values) {
			t.Errorf("sealed=%v: Undecodable = %d, want %d", sealed, n, len(values))
		}
	}
}

// A hit puts the TTL back to the full TTL (GETEX … EX).
func TestGetSlidesTTL(t *testing.T) {
	ctx := context.Background()
	c, raw := newCache(t, Options{TTL: 100 * time.Second})
	id := docstore.NewID()
	mustSet(t, c, raw, id, sampleDoc([]byte("body")))
	if ttl := raw.TTL(ctx, docKey(id)).Val(); ttl < 95*time.Second || ttl > 100*time.Second {
		t.Fatalf("TTL after Set = %v, want about 100s", ttl)
	}
	if err := raw.Expire(ctx, docKey(id), 10*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(ctx, id); err != nil || got == nil {
		t.Fatalf("Get: (%v, %v), want a hit", got, err)
	}
	if ttl := raw.TTL(ctx, docKey(id)).Val(); ttl < 95*time.Second {
		t.Fatalf("TTL after a hit = %v, want it slid back to about 100s", ttl)
	}
	// A miss creates nothing.
	miss := docstore.NewID()
	if got, err := c.Get(ctx, miss); err != nil || got != nil {
		t.Fatalf("Get of a missing entry: (%v, %v)", got, err)
	}
	if n := raw.Exists(ctx, docKey(miss)).Val(); n != 0 {
		t.Fatalf("a miss left a key behind")
	}
}

func TestMaxBytes(t *testing.T) {
	ctx := context.Background()
	c, raw := newCache(t, Options{MaxBytes: 1000})
	big, fits := docstore.NewID(), docstore.NewID()
	t.Cleanup(func() { raw.Del(ctx, docKey(big), docKey(fits), fillKey(big), fillKey(fits)) })
	if err := set(ctx, c, big, sampleDoc(make([]byte, 1001))); err != nil {
		t.Fatalf("Fill over MaxBytes: %v, want nil", err)
	}
	if n := raw.Exists(ctx, docKey(big), fillKey(big)).Val(); n != 0 {
		t.Fatalf("a Fill over MaxBytes stored the entry or kept the fill lock")
	}
	if err := set(ctx, c, fits, sampleDoc(make([]byte, 1000))); err != nil {
		t.Fatal(err)
	}
	if n := raw.Exists(ctx, docKey(fits)).Val(); n != 1 {
		t.Fatalf("an entry of exactly MaxBytes was not stored")
	}
	if err := c.Fill(ctx, fits, "a claim", nil); docstore.KindOf(err) != docstore.KindInvalid {
		t.Fatalf("Fill of nil: %v, want an invalid error", err)
	}
}

// Of concurrent misses of one id, across instances, one claims; the others
// are told the lock is held. The lock lives FillLockTTL.
func TestClaimOneWinner(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, ClientOptions{PoolSize: 20, DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second})
	// Separate caches share nothing but Redis, as Lambda instances do.
	const n = 16
	caches := make([]*Cache, n)
	for i := range caches {
		caches[i] = New(client, Options{FillLockTTL: 10 * time.Second, Timeout: relaxedTimeout})
	}
	id := docstore.NewID()
	t.Cleanup(func() { client.Del(ctx, fillKey(id)) })

	var (
		wg       sync.WaitGroup
		start    = make(chan struct{})
		mu       sync.Mutex
		winners  []docstore.Claim
		failures []error
	)
	for _, c := range caches {
		wg.Go(func() {
			<-start
			doc, claim, err := c.Claim(ctx, id)
			mu.Lock()
			defer mu.Unlock()
			if err != nil || doc != nil {
				failures = append(failures, fmt.Errorf("entry %v, %v", doc != nil, err))
			}
			if claim != docstore.NoClaim {
				winners = append(winners, claim)
			}
		})
	}
	close(start)
	wg.Wait()
	if len(failures) > 0 || len(winners) != 1 {
		t.Fatalf("%d concurrent Claims: %d won, errors %v; want exactly one winner", n, len(winners), failures)
	}
	if ttl := client.PTTL(ctx, fillKey(id)).Val(); ttl <= 0 || ttl > 10*time.Second {
		t.Fatalf("fill lock PTTL = %v, want (0, 10s]", ttl)
	}
	if _, claim, _ := caches[1].Claim(ctx, id); claim != docstore.NoClaim {
		t.Fatal("Claim won a held lock")
	}
	caches[0].Release(ctx, id, winners[0])
	caches[0].Release(ctx, id, winners[0]) // twice is harmless
	if client.Exists(ctx, fillKey(id)).Val() != 0 {
		t.Fatal("release left the lock")
	}
	_, claim, err := caches[2].Claim(ctx, id)
	if err != nil || claim == docstore.NoClaim {
		t.Fatalf("Claim after release: (%q, %v), want the lock", claim, err)
	}
	caches[2].Release(ctx, id, claim)
}

// Claim on a hit is one script that answers the value and takes no lock;
// on a miss it takes the lock and writes no entry.
func TestClaimHitTakesNoLock(t *testing.T) {
	ctx := context.Background()
	c, raw := newCache(t, Options{TTL: 100 * time.Second})
	id := docstore.NewID()
	doc := sampleDoc([]byte("cached"))
	mustSet(t, c, raw, id, doc)
	if err := raw.Expire(ctx, docKey(id), 10*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	got, claim, err := c.Claim(ctx, id)
	if err != nil || claim != docstore.NoClaim || !sameDoc(got, doc) {
		t.Fatalf("Claim of a cached entry: (entry %v, claim %q, %v), want the entry and no claim", got != nil, claim, err)
	}
	if n := raw.Exists(ctx, fillKey(id)).Val(); n != 0 {
		t.Fatal("a hit took the fill lock")
	}
	if ttl := raw.TTL(ctx, docKey(id)).Val(); ttl < 95*time.Second {
		t.Fatalf("TTL after a Claim that hit = %v, want it slid back to about 100s", ttl)
	}
	miss := docstore.NewID()
	t.Cleanup(func() { raw.Del(ctx, fillKey(miss)) })
	if _, claim, err := c.Claim(ctx, miss); err != nil || claim == docstore.NoClaim {
		t.Fatalf("Claim of a miss: (%q, %v)", claim, err)
	}
	if n := raw.Exists(ctx, docKey(miss)).Val(); n != 0 {
		t.Fatal("a Claim that missed left an entry behind")
	}
}

// A server that lost its script cache (a restart, a failover) answers the
// pipelined EVALSHA with NOSCRIPT: Claim loads the script again and claims,
// and the scripts of Fill, Release and Delete reload themselves. On a
// private server: SCRIPT FLUSH is not for the shared one.
func TestClaimAfterTheScriptCacheIsLost(t *testing.T) {
	ctx := context.Background()
	srv := testenv.StartRedis(t)
	c := New(newClientOn(t, srv.URL()), Options{Timeout: relaxedTimeout})
	for round := range 2 {
		srv.Cli(t, "script", "flush")
		id := docstore.NewID()
		doc, claim, err := c.Claim(ctx, id)
		if err != nil || doc != nil || claim == docstore.NoClaim {
			t.Fatalf("round %d: Claim after SCRIPT FLUSH: (entry %v, claim %q, %v), want the lock", round, doc != nil, claim, err)
		}
		srv.Cli(t, "script", "flush")
		want := sampleDoc([]byte("filled after a flush"))
		if err := c.Fill(ctx, id, claim, want); err != nil {
			t.Fatal(err)
		}
		srv.Cli(t, "script", "flush")
		got, claim, err := c.Claim(ctx, id)
		if err != nil || claim != docstore.NoClaim || !sameDoc(got, want) {
			t.Fatalf("round %d: Claim of the filled entry after SCRIPT FLUSH: (entry %v, claim %q, %v)", round, got != nil, claim, err)
		}
	}
}

// An undecodable value (a newer deployment's, or one sealed with a key
// since rotated) is a miss that claims all the same, so that the fill that
// follows overwrites it.
func TestClaimOfAnUndecodableValueFillsOverIt(t *testing.T) {
	ctx := context.Background()
	c, raw := newCache(t, Options{SealKey: testSealKey(t)})
	id := docstore.NewID()
	t.Cleanup(func() { raw.Del(ctx, docKey(id), fillKey(id)) })
	if err := raw.Set(ctx, docKey(id), "garbage", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	doc, claim, err := c.Claim(ctx, id)
	if err != nil || doc != nil || claim == docstore.NoClaim {
		t.Fatalf("Claim of an undecodable value: (entry %v, claim %q, %v), want a miss and the lock", doc != nil, claim, err)
	}
	want := sampleDoc([]byte("the document"))
	if err := c.Fill(ctx, id, claim, want); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(ctx, id); err != nil || !sameDoc(got, want) {
		t.Fatalf("Get after the fill: (%v, %v), want the document over the undecodable value", got != nil, err)
	}
}

// rediss:// through a TLS terminator in front of the test server: the
// client negotiates TLS, verifies the certificate against the name in the
// URL, and the cache works over it.
func TestNewClientTLS(t *testing.T) {
	upstream := upstreamAddr(t)
	cert, pool := selfSigned(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, ln, upstream)
	client, err := NewClient("rediss://"+ln.Addr().String()+"/0", ClientOptions{
		TLSConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		DialTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	c := New(client, Options{Timeout: relaxedTimeout})
	id := docstore.NewID()
	doc := sampleDoc([]byte("over TLS"))
	if err := set(context.Background(), c, id, doc); err != nil {
		t.Fatalf("Claim and Fill over TLS: %v", err)
	}
	defer c.Delete(context.Background(), id)
	if got, err := c.Get(context.Background(), id); err != nil || !sameDoc(got, doc) {
		t.Fatalf("Get over TLS: (%v, %v)", got, err)
	}
	if p.accepted.Load() == 0 {
		t.Fatal("the client did not go through the TLS terminator")
	}

	// Without the CA the handshake fails, as an error, not a hang.
	plain, err := NewClient("rediss://"+ln.Addr().String()+"/0", ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if _, _, err := New(plain, Options{}).Claim(context.Background(), docstore.NewID()); err == nil {
		t.Fatal("Claim over TLS to an untrusted certificate succeeded")
	}
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "rediscache test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// ---- resilience ----

// fakeClock is the breaker's clock in the resilience tests, so that a
// cool-down can pass without waiting for it.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}
func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// Short timeouts, as in production.
var short = ClientOptions{DialTimeout: 200 * time.Millisecond, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond}

const (
	shortTimeout = 500 * time.Millisecond
	// slack is what a loaded 2-core machine under -race may add.
	slack = 500 * time.Millisecond
	// instant is how long a call answered by the open breaker may take.
	instant = 50 * time.Millisecond
)

// cacheCalls are the calls that the breaker guards, each expected to fail.
func cacheCalls(c *Cache) map[string]func(context.Context) error {
	doc := sampleDoc([]byte("body"))
	return map[string]func(context.Context) error{
		"Get": func(ctx context.Context) error {
			got, err := c.Get(ctx, docstore.NewID())
			if got != nil {
				return errors.New("a hit")
			}
			return err
		},
		"Claim": func(ctx context.Context) error {
			got, claim, err := c.Claim(ctx, docstore.NewID())
			if got != nil || claim != docstore.NoClaim {
				return errors.New("a hit or a claim")
			}
			return err
		},
		// The claims of Fill and Release were taken before Redis failed.
		"Fill":    func(ctx context.Context) error { return c.Fill(ctx, docstore.NewID(), "a claim", doc) },
		"Release": func(ctx context.Context) error { return c.Release(ctx, docstore.NewID(), "a claim") },
	}
}

// callFails runs call, which must fail with a KindUnavailable error within
// limit, and returns its error.
func callFails(t *testing.T, what string, call func(context.Context) error, limit time.Duration) error {
	t.Helper()
	start := time.Now()
	err := call(context.Background())
	elapsed := time.Since(start)
	if err == nil {
		t.Fatalf("%s: succeeded, want an error", what)
	}
	if k := docstore.KindOf(err); k != docstore.KindUnavailable {
		t.Fatalf("%s: error of kind %s (%v), want unavailable", what, k, err)
	}
	if elapsed > limit {
		t.Fatalf("%s: failed after %v, want within %v (%v)", what, elapsed, limit, err)
	}
	t.Logf("%s: failed after %v", what, elapsed.Round(time.Microsecond))
	return err
}

// A Redis that is down (nothing listens on the port): every call fails
// within its timeout, and after BreakerThreshold failures the breaker
// answers at once.
func TestRedisDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	client, err := NewClient("redis://"+addr+"/0", short)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	clock := newFakeClock()
	logs, logger := newLogCounts()
	c := New(client, Options{Timeout: shortTimeout, BreakerThreshold: 3, BreakerCooldown: time.Minute, Now: clock.Now, Logger: logger})
	calls := cacheCalls(c)
	for _, name := range []string{"Get", "Claim", "Fill"} {
		err := callFails(t, name+" on a closed port", calls[name], shortTimeout+slack)
		if errors.Is(err, ErrCircuitOpen) {
			t.Fatalf("%s: breaker open before %d failures", name, 3)
		}
	}
	for name, call := range calls {
		if err := callFails(t, name+" with the breaker open", call, instant); !errors.Is(err, ErrCircuitOpen) {
			t.Fatalf("%s with the breaker open: %v, want ErrCircuitOpen", name, err)
		}
	}
	if f, o := logs.count(logCallFailed), logs.count(logBreakerOpen); f != 3 || o != 1 {
		t.Fatalf("logged %d failed calls and %d breaker openings, want 3 and 1", f, o)
	}
	// Delete still tries (a skipped delete could serve a deleted
	// document), and fails within its timeout.
	callFails(t, "Delete with the breaker open", func(ctx context.Context) error { return c.Delete(ctx, docstore.NewID()) }, shortTimeout+slack)
}

// A Redis that is slow (every byte it is sent reaches it a second late):
// each call fails within about the configured timeout; after three failures
// the breaker answers without dialling; after the cool-down one probe goes
// through, and once Redis is fast again the breaker closes.
func TestRedisSlow(t *testing.T) {
	upstream := upstreamAddr(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(t, ln, upstream)
	p.delay.Store(int64(time.Second))

	client, err := NewClient("redis://"+ln.Addr().String()+"/0", short)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	clock := newFakeClock()
	const cooldown = 10 * time.Second
	logs, logger := newLogCounts()
	c := New(client, Options{Timeout: shortTimeout, BreakerThreshold: 3, BreakerCooldown: cooldown, Now: clock.Now, Logger: logger})
	calls := cacheCalls(c)

	for _, name := range []string{"Get", "Claim", "Fill"} {
		callFails(t, name+" on a slow Redis", calls[name], shortTimeout+slack)
	}
	if got := c.br.current(); got != stateOpen {
		t.Fatalf("breaker %v after 3 failures, want open", got)
	}
	dialled := p.accepted.Load()
	if dialled == 0 {
		t.Fatal("the proxy saw no connection")
	}
	for name, call := range calls {
		if err := callFails(t, name+" with the breaker open", call, instant); !errors.Is(err, ErrCircuitOpen) {
			t.Fatalf("%s with the breaker open: %v, want ErrCircuitOpen", name, err)
		}
	}
	if n := p.accepted.Load(); n != dialled {
		t.Fatalf("the open breaker let %d connections through", n-dialled)
	}

	// Cool-down over, Redis still slow: one probe, which fails and opens
	// the breaker again.
	clock.Advance(cooldown + time.Second)
	callFails(t, "the probe on a slow Redis", calls["Get"], shortTimeout+slack)
	if got := c.br.current(); got != stateOpen {
		t.Fatalf("breaker %v after a failed probe, want open", got)
	}
	callFails(t, "Get after the failed probe", calls["Get"], instant)

	// Redis fast again: the next probe closes the breaker.
	p.delay.Store(0)
	clock.Advance(cooldown + time.Second)
	id := docstore.NewID()
	doc := sampleDoc([]byte("after recovery"))
	if err := set(context.Background(), c, id, doc); err != nil {
		t.Fatalf("Claim and Fill after recovery: %v", err)
	}
	t.Cleanup(func() { c.Delete(context.Background(), id) })
	if got := c.br.current(); got != stateClosed {
		t.Fatalf("breaker %v after a good probe, want closed", got)
	}
	if got, err := c.Get(context.Background(), id); err != nil || !sameDoc(got, doc) {
		t.Fatalf("Get after recovery: (%v, %v)", got, err)
	}
	if f, o := logs.count(logCallFailed), logs.count(logBreakerOpen); f != 4 || o != 1 {
		t.Fatalf("logged %d failed calls and %d breaker openings, want 4 and 1", f, o)
	}
}

// proxy forwards TCP connections to upstream, holding every chunk the
// client sends for delay first, and counts the connections it accepted.
type proxy struct {
	upstream string
	delay    atomic.Int64 // time.Duration
	accepted atomic.Int64

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newProxy(t *testing.T, ln net.Listener, upstream string) *proxy {
	p := &proxy{upstream: upstream}
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.accepted.Add(1)
			p.wg.Go(func() { p.serve(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
}

func (p *proxy) serve(client net.Conn) {
	p.track(client)
	defer client.Close()
	up, err := net.Dial("tcp", p.upstream)
	if err != nil {
		return
	}
	p.track(up)
	defer up.Close()
	p.wg.Go(func() {
		io.Copy(client, up)
		client.Close()
	})
	buf := make([]byte, 64<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			time.Sleep(time.Duration(p.delay.Load()))
			if _, werr := up.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// ---- benchmarks ----

const benchSize = 1 << 20

// BenchmarkRedisGet1MiB_Raw is the floor: a plain GET of a 1 MiB value with
// the same client settings.
func BenchmarkRedisGet1MiB_Raw(b *testing.B) {
	ctx := context.Background()
	client := newClient(b, relaxed)
	key := "imago:bench:raw:" + string(docstore.NewID())
	val := make([]byte, benchSize)
	rand.Read(val)
	if err := client.Set(ctx, key, val, time.Minute).Err(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { client.Del(ctx, key) })
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		got, err := client.Get(ctx, key).Bytes()
		if err != nil || len(got) != benchSize {
			b.Fatalf("GET: %d bytes, %v", len(got), err)
		}
	}
}

// BenchmarkCacheGet1MiB is Cache.Get of a 1 MiB entry: GETEX, decode, and
// for "sealed" AES-256-GCM opening in place; "claim-*" is Cache.Claim of
// the same entry, a download's hit: the claim script answering the value.
func BenchmarkCacheGet1MiB(b *testing.B) {
	reads := []struct {
		name string
		read func(ctx context.Context, c *Cache, id docstore.ID) (*docstore.CachedDocument, error)
	}{
		{"", func(ctx context.Context, c *Cache, id docstore.ID) (*docstore.CachedDocument, error) {
			return c.Get(ctx, id)
		}},
		{"claim-", func(ctx context.Context, c *Cache, id docstore.ID) (*docstore.CachedDocument, error) {
			doc, claim, err := c.Claim(ctx, id)
			if err == nil && claim != docstore.NoClaim {
				err = fmt.Errorf("a hit took the fill lock")
			}
			return doc, err
		}},
	}
	for _, rd := range reads {
		for _, sealed := range []bool{false, true} {
			b.Run(rd.name+map[bool]string{false: "plain", true: "sealed"}[sealed], func(b *testing.B) {
				ctx := context.Background()
				var key []byte
				if sealed {
					key = testSealKey(b)
				}
				client := newClient(b, relaxed)
				c := New(client, Options{SealKey: key, Timeout: relaxedTimeout})
				body := make([]byte, benchSize)
				rand.Read(body)
				id := docstore.NewID()
				if err := set(ctx, c, id, sampleDoc(body)); err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { client.Del(ctx, docKey(id)) })
				b.SetBytes(benchSize)
				b.ReportAllocs()
				for b.Loop() {
					doc, err := rd.read(ctx, c, id)
					if err != nil || doc == nil || len(doc.Body) != benchSize {
						b.Fatalf("%sGet: %v", rd.name, err)
					}
				}
			})
		}
	}
}
