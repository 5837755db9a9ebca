package rediscache

// Unit tests of the breaker's logic and of how Cache classifies outcomes.
// The fake client here tests logic only; the integration tests against a
// real redis-server (rediscache_test.go) are the proof.

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imagodocs/imago/internal/docstore"
)

func TestBreakerStates(t *testing.T) {
	clock := newFakeClock()
	var changes []string
	b := &breaker{threshold: 3, cooldown: 5 * time.Second, now: clock.Now,
		onChange: func(from, to breakerState, _ int) { changes = append(changes, from.String()+">"+to.String()) }}

	// Failures interrupted by a success do not open it.
	for range 2 {
		b.allow()
		b.record(false)
	}
	b.allow()
	b.record(true)
	for range 2 {
		b.allow()
		b.record(false)
	}
	if b.current() != stateClosed {
		t.Fatal("opened without 3 consecutive failures")
	}
	b.allow()
	b.record(false)
	if b.current() != stateOpen || b.allow() {
		t.Fatal("not open after 3 consecutive failures")
	}
	clock.Advance(4 * time.Second)
	if b.allow() {
		t.Fatal("allowed during the cool-down")
	}
	clock.Advance(2 * time.Second)
	if !b.allow() {
		t.Fatal("no probe after the cool-down")
	}
	if b.allow() {
		t.Fatal("a second call allowed while the probe is in flight")
	}
	b.release() // the probe's caller gave up: the next call probes
	if !b.allow() {
		t.Fatal("a released probe did not hand its turn on")
	}
	b.record(false)
	if b.current() != stateOpen || b.allow() {
		t.Fatal("a failed probe did not reopen the breaker")
	}
	clock.Advance(6 * time.Second)
	if !b.allow() {
		t.Fatal("no probe after the second cool-down")
	}
	b.record(true)
	if b.current() != stateClosed || !b.allow() {
		t.Fatal("a good probe did not close the breaker")
	}
	want := "closed>open open>half-open half-open>open open>half-open half-open>open open>half-open half-open>closed"
	if got := strings.Join(changes, " "); got != want {
		t.Fatalf("transitions:\n got %s\nwant %s", got, want)
	}
}

func TestBreakerConcurrentProbe(t *testing.T) {
	clock := newFakeClock()
	b := &breaker{threshold: 1, cooldown: time.Second, now: clock.Now}
	b.allow()
	b.record(false)
	clock.Advance(2 * time.Second)
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if b.allow() {
				allowed.Add(1)
			}
		})
	}
	wg.Wait()
	if n := allowed.Load(); n != 1 {
		t.Fatalf("%d probes allowed at once, want 1", n)
	}
}

// fakeClient answers every command with err (nil: an empty success).
type fakeClient struct {
	err   error
	calls atomic.Int32
}

func (f *fakeClient) cmdErr() error { f.calls.Add(1); return f.err }

func (f *fakeClient) GetEx(ctx context.Context, key string, _ time.Duration) *redis.StringCmd {
	c := redis.NewStringCmd(ctx, "getex", key)
	if err := f.cmdErr(); err != nil {
		c.SetErr(err)
	} else {
		c.SetErr(redis.Nil)
	}
	return c
}
func (f *fakeClient) Set(ctx context.Context, key string, _ any, _ time.Duration) *redis.StatusCmd {
	c := redis.NewStatusCmd(ctx, "set", key)
	c.SetErr(f.cmdErr())
	return c
}
func (f *fakeClient) SetNX(ctx context.Context, key string, _ any, _ time.Duration) *redis.BoolCmd {
	c := redis.NewBoolCmd(ctx, "set", key)
	c.SetErr(f.cmdErr())
	return c
}
func (f *fakeClient) Del(ctx context.Context, keys ...string) *redis.IntCmd {
	c := redis.NewIntCmd(ctx, "del")
	c.SetErr(f.cmdErr())
	return c
}
func (f *fakeClient) Eval(ctx context.Context, _ string, _ []string, _ ...any) *redis.Cmd {
	c := redis.NewCmd(ctx, "eval")
	c.SetErr(f.cmdErr())
	return c
}
func (f *fakeClient) EvalSha(ctx context.Context, s string, k []string, a ...any) *redis.Cmd {
	return f.Eval(ctx, s, k, a...)
}
func (f *fakeClient) EvalRO(ctx context.Context, s string, k []string, a ...any) *redis.Cmd {
	return f.Eval(ctx, s, k, a...)
}
func (f *fakeClient) EvalShaRO(ctx context.Context, s string, k []string, a ...any) *redis.Cmd {
	return f.Eval(ctx, s, k, a...)
}
func (f *fakeClient) ScriptExists(ctx context.Context, _ ...string) *redis.BoolSliceCmd {
	return redis.NewBoolSliceCmd(ctx)
}

// Pipeline is not faked: the tests that use a fakeClient make no Claim
// with the breaker closed.
func (f *fakeClient) Pipeline() redis.Pipeliner { panic("fakeClient: no pipelines") }
func (f *fakeClient) ScriptLoad(ctx context.Context, _ string) *redis.StringCmd {
	return redis.NewStringCmd(ctx)
}

// replyErr is what go-redis returns for an error reply from the server.
type replyErr string

func (e replyErr) Error() string { return string(e) }
func (replyErr) RedisError()     {}

func TestOutcomeClassification(t *testing.T) {
	ctx := context.Background()

	// Error replies prove Redis is up: they never open the breaker.
	f := &fakeClient{err: replyErr("OOM command not allowed when used memory > 'maxmemory'")}
	c := New(f, Options{BreakerThreshold: 2})
	for range 5 {
		err := c.Fill(ctx, docstore.NewID(), "a claim", &docstore.CachedDocument{})
		if docstore.KindOf(err) != docstore.KindUnavailable || errors.Is(err, ErrCircuitOpen) {
			t.Fatalf("Fill with an error reply: %v", err)
		}
	}
	if c.br.current() != stateClosed {
		t.Fatal("error replies opened the breaker")
	}

	// The caller's own cancellation is no verdict either.
	f = &fakeClient{err: context.Canceled}
	c = New(f, Options{BreakerThreshold: 2})
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	for range 5 {
		if _, err := c.Get(cctx, docstore.NewID()); err == nil {
			t.Fatal("Get with a cancelled context succeeded")
		}
	}
	if c.br.current() != stateClosed {
		t.Fatal("cancelled calls opened the breaker")
	}

	// Transport failures do; then Redis is not called, except by Delete.
	f = &fakeClient{err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}}
	c = New(f, Options{BreakerThreshold: 2})
	c.Get(ctx, docstore.NewID())
	c.Get(ctx, docstore.NewID())
	n := f.calls.Load()
	if _, err := c.Get(ctx, docstore.NewID()); !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("Get after 2 failures: %v, want ErrCircuitOpen", err)
	}
	doc, claim, err := c.Claim(ctx, docstore.NewID())
	if doc != nil || claim != docstore.NoClaim || !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("Claim with the breaker open: (entry %v, claim %q, %v)", doc != nil, claim, err)
	}
	if err := c.Release(ctx, docstore.NewID(), "a claim"); !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("Release with the breaker open: %v", err)
	}
	if f.calls.Load() != n {
		t.Fatal("Redis called with the breaker open")
	}
	c.Delete(ctx, docstore.NewID())
	if f.calls.Load() != n+1 {
		t.Fatal("Delete skipped with the breaker open")
	}
	// A miss is no failure.
	f = &fakeClient{}
	logs, logger := newLogCounts()
	c = New(f, Options{BreakerThreshold: 1, Logger: logger})
	for range 3 {
		if doc, err := c.Get(ctx, docstore.NewID()); doc != nil || err != nil {
			t.Fatalf("miss: (%v, %v)", doc, err)
		}
	}
	if n := logs.count(logCallFailed); n != 0 || c.br.current() != stateClosed {
		t.Fatalf("misses: %d failed calls logged, breaker %v", n, c.br.current())
	}
}

func TestNewPanicsOnBadSealKey(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("New accepted a 16-byte seal key")
		}
	}()
	New(&fakeClient{}, Options{SealKey: make([]byte, 16)})
}

func TestNewClientOptions(t *testing.T) {
	c, err := NewClient("rediss://user:secret@cache.example.com:6380/0", ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	o := c.(*redis.Client).Options()
	if o.TLSConfig == nil || o.TLSConfig.ServerName != "cache.example.com" || o.TLSConfig.MinVersion < tls.VersionTLS12 {
		t.Fatalf("rediss TLS config: %+v", o.TLSConfig)
	}
	if o.Addr != "cache.example.com:6380" || o.Username != "user" || o.Password != "secret" {
		t.Fatalf("address or credentials: %s %s", o.Addr, o.Username)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"DialTimeout", o.DialTimeout, DefaultDialTimeout},
		{"ReadTimeout", o.ReadTimeout, DefaultReadTimeout},
		{"WriteTimeout", o.WriteTimeout, DefaultWriteTimeout},
		{"PoolSize", o.PoolSize, DefaultPoolSize},
		{"MaxActiveConns", o.MaxActiveConns, DefaultPoolSize},
		{"MinIdleConns", o.MinIdleConns, 0},
		{"ConnMaxIdleTime", o.ConnMaxIdleTime, DefaultConnMaxIdleTime},
		{"MaxRetries", o.MaxRetries, 0},
		{"DialerRetries", o.DialerRetries, 1},
		{"ContextTimeoutEnabled", o.ContextTimeoutEnabled, true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}

	plain, err := NewClient("redis://127.0.0.1:6379?read_timeout=2s", ClientOptions{DialTimeout: time.Second, MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if o := plain.(*redis.Client).Options(); o.TLSConfig != nil || o.ReadTimeout != 2*time.Second || o.DialTimeout != time.Second || o.MaxRetries != 1 {
		t.Fatalf("redis:// with overrides: tls %v, read %v, dial %v, retries %d", o.TLSConfig, o.ReadTimeout, o.DialTimeout, o.MaxRetries)
	}

	for _, bad := range []string{"http://h:1", "unix:///tmp/s", "redis://user:hunter2@h:1/notanumber", "redis://user:hunter2@%zz"} {
		_, err := NewClient(bad, ClientOptions{})
		if err == nil {
			t.Errorf("NewClient(%q) succeeded", bad)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("NewClient(%q) error shows the password: %v", bad, err)
		}
	}
}

func TestNewClientCluster(t *testing.T) {
	c, err := NewClient("rediss://user:secret@cache.example.com:6379?cluster=true&addr=cache2.example.com:6379", ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cc, ok := c.(*redis.ClusterClient)
	if !ok {
		t.Fatalf("cluster=true gave a %T, want *redis.ClusterClient", c)
	}
	o := cc.Options()
	if len(o.Addrs) != 2 || o.Addrs[0] != "cache.example.com:6379" || o.Addrs[1] != "cache2.example.com:6379" {
		t.Fatalf("seed nodes: %v", o.Addrs)
	}
	if o.TLSConfig == nil || o.TLSConfig.ServerName != "cache.example.com" || o.TLSConfig.MinVersion < tls.VersionTLS12 {
		t.Fatalf("rediss TLS config: %+v", o.TLSConfig)
	}
	if o.Username != "user" || o.Password != "secret" {
		t.Fatalf("credentials: %s", o.Username)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"DialTimeout", o.DialTimeout, DefaultDialTimeout},
		{"ReadTimeout", o.ReadTimeout, DefaultReadTimeout},
		{"WriteTimeout", o.WriteTimeout, DefaultWriteTimeout},
		{"PoolSize", o.PoolSize, DefaultPoolSize},
		{"MaxActiveConns", o.MaxActiveConns, DefaultPoolSize},
		{"MinIdleConns", o.MinIdleConns, 0},
		{"ConnMaxIdleTime", o.ConnMaxIdleTime, DefaultConnMaxIdleTime},
		{"MaxRetries", o.MaxRetries, -1},
		{"MaxRedirects", o.MaxRedirects, DefaultMaxRedirects},
		{"DialerRetries", o.DialerRetries, 1},
		{"ContextTimeoutEnabled", o.ContextTimeoutEnabled, true},
		{"DisableIdentity", o.DisableIdentity, true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}

	for raw, cluster := range map[string]bool{"redis://h:1": false, "redis://h:1/0?cluster=false": false, "redis://h:1?cluster=true": true} {
		c, err := NewClient(raw, ClientOptions{})
		if err != nil {
			t.Fatalf("NewClient(%q): %v", raw, err)
		}
		c.Close()
		if _, isCluster := c.(*redis.ClusterClient); isCluster != cluster {
			t.Errorf("NewClient(%q) is a %T", raw, c)
		}
	}
	for _, bad := range []string{"redis://user:hunter2@h:1?cluster=yes", "redis://user:hunter2@h:1/2?cluster=true", "redis://user:hunter2@h:1?cluster=true&addr=nope", "redis://user:hunter2@h:1?cluster=true&bogus=1"} {
		_, err := NewClient(bad, ClientOptions{})
		if err == nil {
			t.Errorf("NewClient(%q) succeeded", bad)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("NewClient(%q) error shows the password: %v", bad, err)
		}
	}
}
