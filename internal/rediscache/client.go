package rediscache

import (
	"cmp"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
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
	// large documents and the log shows cache calls timing out.
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
// read_timeout, write_timeout, pool_size, max_retries) and then the package
// default. The URL's conn_max_idle_time, else DefaultConnMaxIdleTime, sets
// how long an idle connection is kept.
type ClientOptions struct {
	DialTimeout  time.Duration
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	PoolSize     int
	// MaxRetries is the number of retries after a failed command. The
	// default is none: a retry doubles the worst case, and a failed cache
	// call only sends the request to the origin.
	MaxRetries int
	// TLSConfig replaces the default TLS configuration of rediss:// URLs
	// (system roots, TLS 1.2 or later, server name from the URL), to trust
	// a private CA in tests, say. Setting it on a redis:// URL turns TLS on.
	TLSConfig *tls.Config
	// Logger hears how Open found the server (nil discards).
	Logger *slog.Logger
}

// NewClient returns a go-redis client for a redis:// or rediss:// URL
// (rediss means TLS, which ElastiCache Serverless requires), configured for
// Lambda:
//
//   - a pool of DefaultPoolSize connections (per node on a cluster), none
//     opened before the first call (MinIdleConns 0) so a cold start does not
//     wait on Redis, and at most PoolSize open at once;
//   - short dial, read and write timeouts, one dial attempt (go-redis
//     otherwise retries a failed dial five times with backoff), no command
//     retries;
//   - ContextTimeoutEnabled, so that a context deadline (Cache puts one on
//     every call) also bounds the socket reads and writes;
//   - no extra commands on connect (CLIENT SETINFO, maintenance
//     notifications): each would add a round trip to every new connection.
//
// The URL may carry credentials (redis://user:password@host:port/db); the
// error, if any, never repeats it.
//
// Cluster mode: with the query parameter cluster=true
// (rediss://host:6379?cluster=true) the client is a *redis.ClusterClient,
// which learns the slot map from the node named (and from any further
// seed nodes given as addr=host:port parameters) and follows MOVED and ASK
// redirections. NewClient goes by the URL alone; Open, which the services
// use, asks a server the URL says nothing of whether it is a cluster
// (ElastiCache Serverless speaks cluster mode only; giving its endpoint
// with cluster=true spares the question). A cluster has database 0 only. Every key of
// one document shares a hash tag, so each call touches one slot.
// MaxRedirects (the URL's max_redirects) is DefaultMaxRedirects: a MOVED
// and then an ASK during a slot migration. go-redis's cluster client also
// spends those attempts on a network error, but never beyond the Cache's
// per-call deadline, so a failing call costs what it costs on one node.
func NewClient(rawURL string, o ClientOptions) (redis.UniversalClient, error) {
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
	cluster, err := IsClusterURL(rawURL)
	if err != nil {
		return nil, err
	}
	if cluster {
		return newClusterClient(u, o)
	}
	src := rawURL
	if u.Query().Has(clusterParam) { // cluster=false
		src = withoutClusterParam(u)
	}
	opt, err := redis.ParseURL(src)
	if err != nil {
		return nil, fmt.Errorf("rediscache: invalid redis URL: %s", redact(err.Error(), u))
	}

	tune(nodeKnobs(opt), o, u)
	return redis.NewClient(opt), nil
}

// DefaultMaxRedirects is a cluster client's MaxRedirects.
const DefaultMaxRedirects = 2

// clusterParam is the URL query parameter selecting cluster mode. It is
// ours, not go-redis's: NewClient removes it before go-redis parses the URL.
const clusterParam = "cluster"

// IsClusterURL reports whether a redis URL selects cluster mode
// (cluster=true; cluster=false or no parameter: one node). Any other value
// is an error, so that a typo does not silently pick the wrong client.
func IsClusterURL(rawURL string) (bool, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false, errors.New("rediscache: invalid redis URL")
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return false, fmt.Errorf("rediscache: invalid redis URL query: %s", redact(err.Error(), u))
	}
	vals, ok := q[clusterParam]
	if !ok {
		return false, nil
	}
	if len(vals) != 1 {
		return false, errors.New("rediscache: redis URL: cluster= given more than once")
	}
	switch vals[0] {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("rediscache: redis URL: cluster=%q, want true or false", vals[0])
}

func newClusterClient(u *url.URL, o ClientOptions) (*redis.ClusterClient, error) {
	if db := strings.TrimPrefix(u.Path, "/"); db != "" && db != "0" {
		return nil, fmt.Errorf("rediscache: redis URL: database %q: a cluster has database 0 only", db)
	}
	bare := *u
	bare.Path = ""
	opt, err := redis.ParseClusterURL(withoutClusterParam(&bare))
	if err != nil {
		return nil, fmt.Errorf("rediscache: invalid redis URL: %s", redact(err.Error(), u))
	}

	tune(clusterKnobs(opt), o, u)
	opt.MaxRedirects = cmp.Or(opt.MaxRedirects, DefaultMaxRedirects)
	return redis.NewClusterClient(opt), nil
}

// withoutClusterParam is u without our cluster parameter, for go-redis,
// which refuses parameters it does not know.
func withoutClusterParam(u *url.URL) string {
	bare := *u
	q := bare.Query()
	q.Del(clusterParam)
	bare.RawQuery = q.Encode()
	return bare.String()
}

// maxRetries is the command retry count: an explicit option, else the
// URL's max_retries, else none (go-redis: -1 means none, 0 its default).
func maxRetries(option, fromURL int) int {
	switch {
	case option > 0:
		return option
	case fromURL == 0:
		return -1
	}
	return fromURL
}

// tlsConfig is a copy of cfg naming u's host unless cfg names a server.
func tlsConfig(cfg *tls.Config, u *url.URL) *tls.Config {
	c := cfg.Clone()
	c.ServerName = cmp.Or(c.ServerName, u.Hostname())
	return c
}

// knobs are the fields of a go-redis client's options that NewClient
// tunes. redis.Options and redis.ClusterOptions (whose values apply to the
// client of every node) name them alike but share no type: each points its
// own fields here, and tune sets them, once for both.
type knobs struct {
	dialTimeout, readTimeout, writeTimeout, connMaxIdleTime, poolTimeout                *time.Duration
	poolSize, minIdleConns, maxActiveConns, maxRetries, dialerRetries, pipelinePoolSize *int
	contextTimeoutEnabled, disableIdentity                                              *bool
	tlsConfig                                                                           **tls.Config
	maintNotifications                                                                  **maintnotifications.Config
}

func nodeKnobs(o *redis.Options) knobs {
	return knobs{
		dialTimeout: &o.DialTimeout, readTimeout: &o.ReadTimeout, writeTimeout: &o.WriteTimeout,
		connMaxIdleTime: &o.ConnMaxIdleTime, poolTimeout: &o.PoolTimeout,
		poolSize: &o.PoolSize, minIdleConns: &o.MinIdleConns, maxActiveConns: &o.MaxActiveConns,
		maxRetries: &o.MaxRetries, dialerRetries: &o.DialerRetries, pipelinePoolSize: &o.PipelinePoolSize,
		contextTimeoutEnabled: &o.ContextTimeoutEnabled, disableIdentity: &o.DisableIdentity,
		tlsConfig: &o.TLSConfig, maintNotifications: &o.MaintNotificationsConfig,
	}
}

// clusterKnobs: the same fields, by the same names.
func clusterKnobs(o *redis.ClusterOptions) knobs {
	return knobs{
		dialTimeout: &o.DialTimeout, readTimeout: &o.ReadTimeout, writeTimeout: &o.WriteTimeout,
		connMaxIdleTime: &o.ConnMaxIdleTime, poolTimeout: &o.PoolTimeout,
		poolSize: &o.PoolSize, minIdleConns: &o.MinIdleConns, maxActiveConns: &o.MaxActiveConns,
		maxRetries: &o.MaxRetries, dialerRetries: &o.DialerRetries, pipelinePoolSize: &o.PipelinePoolSize,
		contextTimeoutEnabled: &o.ContextTimeoutEnabled, disableIdentity: &o.DisableIdentity,
		tlsConfig: &o.TLSConfig, maintNotifications: &o.MaintNotificationsConfig,
	}
}

// tune applies the Lambda configuration NewClient describes to options
// parsed from u: o's values, else the URL's, else the defaults, and then
// what is fixed whatever the URL says.
func tune(k knobs, o ClientOptions, u *url.URL) {
	*k.dialTimeout = cmp.Or(o.DialTimeout, *k.dialTimeout, DefaultDialTimeout)
	*k.readTimeout = cmp.Or(o.ReadTimeout, *k.readTimeout, DefaultReadTimeout)
	*k.writeTimeout = cmp.Or(o.WriteTimeout, *k.writeTimeout, DefaultWriteTimeout)
	*k.poolSize = cmp.Or(o.PoolSize, *k.poolSize, DefaultPoolSize)
	*k.connMaxIdleTime = cmp.Or(*k.connMaxIdleTime, DefaultConnMaxIdleTime)
	*k.maxRetries = maxRetries(o.MaxRetries, *k.maxRetries)
	switch {
	case o.TLSConfig != nil:
		*k.tlsConfig = tlsConfig(o.TLSConfig, u)
	case *k.tlsConfig != nil:
		(*k.tlsConfig).MinVersion = max((*k.tlsConfig).MinVersion, tls.VersionTLS12)
	}

	*k.minIdleConns = 0             // no connection before the first call: a cold start does not wait on Redis
	*k.maxActiveConns = *k.poolSize // per node on a cluster
	*k.poolTimeout = *k.readTimeout // waiting for a busy connection is no better than a slow Redis
	*k.dialerRetries = 1            // one attempt: go-redis counts attempts here, and its default is 5
	*k.contextTimeoutEnabled = true // a context deadline also bounds socket reads and writes
	*k.pipelinePoolSize = -1        // no pipelines here; no second pool
	*k.disableIdentity = true       // no CLIENT SETINFO round trip on connect
	*k.maintNotifications = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
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
