package rediscache

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Client defaults, chosen for a Lambda instance: it serves one request at a
// time, is frozen between invocations, and must never wait long on a cache.
const (
	// DefaultDialTimeout bounds TCP connect plus the TLS handshake. Inside
	// a VPC both take a few milliseconds; 200 ms is far above that and far
	// below anything a caller would notice.
	DefaultDialTimeout = 200 * time.Millisecond
	// DefaultReadTimeout and DefaultWriteTimeout bound one command's reply
	// and request, transfer included: a 1 MiB entry needs ~3.5 MB/s to fit,
	// an 8 MiB one (the default MaxBytes) ~28 MB/s. Raise them if Lambda
	// functions with little memory (and so little network bandwidth) cache
	// large documents and Stats.Errors shows timeouts.
	DefaultReadTimeout  = 300 * time.Millisecond
	DefaultWriteTimeout = 300 * time.Millisecond
	// DefaultPoolSize is small: one request at a time per instance needs
	// one connection; the second and third cover a fill-lock release or a
	// background Set overlapping the next call.
	DefaultPoolSize = 3
	// DefaultConnMaxIdleTime is shorter than a Lambda freeze usually
	// lasts. A connection idle that long most likely sat through a freeze,
	// during which the server, a NAT or the VPC's connection tracking may
	// have dropped it silently; reusing it would cost a full ReadTimeout and
	// an error. Redialling costs a few milliseconds (TCP, TLS, HELLO inside
	// the VPC), so when in doubt, redial. 30 s is also well under idle-flow
	// timeouts on AWS network paths (350 s on a NAT gateway), yet longer than
	// the gap between invocations of a busy instance, which keeps reusing
	// its connection.
	DefaultConnMaxIdleTime = 30 * time.Second
)

// ClientOptions tunes NewClient. Zero fields take, in order, the value of
// the URL's query parameter of the same meaning (go-redis's dial_timeout,
// read_timeout, write_timeout, pool_size, conn_max_idle_time, max_retries)
// and then the package default.
type ClientOptions struct {
	DialTimeout     time.Duration
	ReadTimeout     time.Duration
	WriteTimeout    time.Duration
	PoolSize        int
	ConnMaxIdleTime time.Duration
	// MaxRetries is the number of retries after a failed command. The
	// default is none: a retry doubles the worst case, and a failed cache
	// call only sends the request to the origin.
	MaxRetries int
	// TLSConfig replaces the default TLS configuration of rediss:// URLs
	// (system roots, TLS 1.2 or later, server name from the URL), to trust
	// a private CA in tests, say. Setting it on a redis:// URL turns TLS on.
	TLSConfig *tls.Config
	// ClientName names connections in CLIENT LIST. go-redis sends it with
	// HELLO and again as CLIENT SETNAME, which adds a round trip to every
	// new connection; leave it empty unless it is worth that.
	ClientName string
}

// NewClient returns a go-redis client for a redis:// or rediss:// URL
// (rediss means TLS, which ElastiCache Serverless requires), configured for
// Lambda:
//
//   - a pool of DefaultPoolSize connections, none opened before the first
//     call (MinIdleConns 0) so a cold start does not wait on Redis, and at
//     most PoolSize open at once;
//   - short dial, read and write timeouts, one dial attempt (go-redis
//     otherwise retries a failed dial five times with backoff), no command
//     retries;
//   - ContextTimeoutEnabled, so that a context deadline (Cache puts one on
//     every call) also bounds the socket reads and writes;
//   - no extra commands on connect (CLIENT SETINFO, maintenance
//     notifications): each would add a round trip to every new connection.
//
// The URL may carry credentials (redis://user:password@host:port/db); the
// error, if any, never repeats it. ElastiCache Serverless runs in cluster
// mode: use database 0 (SELECT is refused there); every command this
// package sends touches a single key.
func NewClient(rawURL string, o ClientOptions) (*redis.Client, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, password included
		}
		return nil, fmt.Errorf("rediscache: invalid redis URL: %w", err)
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, fmt.Errorf("rediscache: redis URL scheme %q: want redis:// or rediss://", u.Scheme)
	}
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("rediscache: invalid redis URL: %s", redact(err.Error(), u))
	}

	opt.DialTimeout = pick(o.DialTimeout, opt.DialTimeout, DefaultDialTimeout)
	opt.ReadTimeout = pick(o.ReadTimeout, opt.ReadTimeout, DefaultReadTimeout)
	opt.WriteTimeout = pick(o.WriteTimeout, opt.WriteTimeout, DefaultWriteTimeout)
	opt.PoolSize = pick(o.PoolSize, opt.PoolSize, DefaultPoolSize)
	opt.ConnMaxIdleTime = pick(o.ConnMaxIdleTime, opt.ConnMaxIdleTime, DefaultConnMaxIdleTime)
	switch {
	case o.MaxRetries > 0:
		opt.MaxRetries = o.MaxRetries
	case opt.MaxRetries == 0:
		opt.MaxRetries = -1 // go-redis: -1 means none, 0 means its default of 3
	}
	if o.TLSConfig != nil {
		cfg := o.TLSConfig.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = u.Hostname()
		}
		opt.TLSConfig = cfg
	}
	if o.ClientName != "" {
		opt.ClientName = o.ClientName
	}

	opt.MinIdleConns = 0
	opt.MaxActiveConns = opt.PoolSize
	opt.PoolTimeout = opt.ReadTimeout // waiting for a busy connection is no better than a slow Redis
	opt.DialerRetries = 1             // one attempt: go-redis counts attempts here, and its default is 5
	opt.ContextTimeoutEnabled = true
	opt.PipelinePoolSize = -1 // no pipelines here; no second pool
	opt.DisableIdentity = true
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}

	return redis.NewClient(opt), nil
}

// pick returns the first non-zero value.
func pick[T comparable](vals ...T) T {
	var zero T
	for _, v := range vals {
		if v != zero {
			return v
		}
	}
	return zero
}

// redact removes u's password from s.
func redact(s string, u *url.URL) string {
	if u.User == nil {
		return s
	}
	if p, ok := u.User.Password(); ok && p != "" {
		s = strings.ReplaceAll(s, p, "xxxxx")
	}
	return s
}
