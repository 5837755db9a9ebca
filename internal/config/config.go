// Package config reads Imago's configuration from the environment, with
// the defaults and validation of docs/design.md ("Configuration").
package config

import (
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/imagodocs/imago/internal/docstore"
)

// Config is the whole configuration of a function or of `imago serve`.
type Config struct {
	Table          string        // IMAGO_TABLE; set selects the AWS backends
	Bucket         string        // IMAGO_BUCKET
	KMSKeyID       string        // IMAGO_KMS_KEY_ID
	RedisURL       string        // IMAGO_REDIS_URL; empty means the in-process cache; ?cluster=true selects cluster mode
	CacheTTL       time.Duration // IMAGO_CACHE_TTL
	CacheMaxBytes  int64         // IMAGO_CACHE_MAX_BYTES
	CacheKey       []byte        // IMAGO_CACHE_KEY, 32 bytes, or nil
	CursorKey      []byte        // IMAGO_CURSOR_SECRET, 32 bytes, or nil: see CursorSecret
	LinkKey        []byte        // IMAGO_LINK_SECRET, 32 bytes, or nil: see LinkSecret
	LinkMaxTTL     time.Duration // IMAGO_LINK_MAX_TTL: the longest a share link may live
	Retention      time.Duration // IMAGO_RETENTION: the expiry of a document uploaded without one; 0: never
	DeletionDelay  time.Duration // IMAGO_DELETION_DELAY: how long a deleted document stays in the trash; 0: purged at once
	AuditOff       bool          // IMAGO_AUDIT=off: requests are not recorded
	AuditTable     string        // IMAGO_AUDIT_TABLE: the audit trail's DynamoDB table (AWS backends)
	MaxInlineBytes int64         // IMAGO_MAX_INLINE_BYTES
	StagingPrefix  string        // IMAGO_STAGING_PREFIX
	TenantClaim    string        // IMAGO_TENANT_CLAIM
	DataDir        string        // IMAGO_DATA_DIR
	Addr           string        // IMAGO_ADDR
	Tokens         string        // IMAGO_TOKENS: file of bearer token → tenant, for `imago serve`
	RedisTimeout   time.Duration // IMAGO_REDIS_TIMEOUT: per-call budget of the cache tier

	MultipartThreshold int64 // IMAGO_MULTIPART_THRESHOLD: presigned uploads over it go in parts
	// AWSTimeout is how long a connection to S3, DynamoDB or KMS may go
	// without delivering a byte (or taking one) before the attempt fails
	// and the SDK retries; DefaultAWSTimeout unless a test shortens it.
	AWSTimeout time.Duration
	// RedisPoolSize is how many connections to Redis (per node) may be
	// open at once; 0 keeps the cache client's small default, right for
	// a Lambda function's one request at a time. `imago serve`, which
	// serves many at once, sets more.
	RedisPoolSize int
}

// UsesAWS reports whether the AWS backends are selected.
func (c Config) UsesAWS() bool { return c.Table != "" }

// Defaults.
const (
	DefaultCacheTTL       = docstore.DefaultCacheTTL
	DefaultCacheMaxBytes  = docstore.DefaultCacheMaxBytes
	DefaultMaxInlineBytes = docstore.DefaultMaxInlineBytes
	DefaultStagingPrefix  = docstore.DefaultStagingPrefix
	DefaultLinkMaxTTL     = docstore.DefaultLinkMaxTTL
	// DefaultTenantClaim is the JWT claim naming the tenant when
	// IMAGO_TENANT_CLAIM is unset (apigw.DefaultTenantClaim).
	DefaultTenantClaim = "sub"
	DefaultDataDir     = "./.imago"
	DefaultAddr        = "127.0.0.1:8080"
	// DefaultRedisTimeout bounds a whole cache call, dial included
	// (IMAGO_REDIS_TIMEOUT's default, rediscache.DefaultTimeout): a cache
	// slower than that costs a request more than the origin it saves.
	DefaultRedisTimeout = 300 * time.Millisecond
	// DefaultAWSTimeout: with 3 attempts and backoff capped at 1s, a
	// stalled backend costs a request at most about 3×5s + 2s, well inside
	// the functions' 29-second timeout, so the caller gets a 503 rather
	// than a timed-out invocation; a healthy AWS service answers in
	// milliseconds.
	DefaultAWSTimeout = 5 * time.Second

	// DefaultMultipartThreshold is the size over which uploads go in parts;
	// MaxMultipartThreshold is the largest single S3 PUT.
	DefaultMultipartThreshold = docstore.DefaultMultipartThreshold
	MaxMultipartThreshold     = 5 << 30

	// HardMaxInlineBytes is what one Lambda response can carry: 6 MB of
	// JSON, with the body base64-encoded (4/3) and room for headers.
	HardMaxInlineBytes = 4_500_000
)

// FromEnv reads the configuration through getenv (os.Getenv in production,
// a map in tests) and reports every problem at once.
func FromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		Table:         getenv("IMAGO_TABLE"),
		Bucket:        getenv("IMAGO_BUCKET"),
		KMSKeyID:      getenv("IMAGO_KMS_KEY_ID"),
		RedisURL:      getenv("IMAGO_REDIS_URL"),
		StagingPrefix: cmp.Or(getenv("IMAGO_STAGING_PREFIX"), DefaultStagingPrefix),
		TenantClaim:   cmp.Or(getenv("IMAGO_TENANT_CLAIM"), DefaultTenantClaim),
		DataDir:       cmp.Or(getenv("IMAGO_DATA_DIR"), DefaultDataDir),
		Addr:          cmp.Or(getenv("IMAGO_ADDR"), DefaultAddr),
		Tokens:        getenv("IMAGO_TOKENS"),
		AuditTable:    getenv("IMAGO_AUDIT_TABLE"),
		AWSTimeout:    DefaultAWSTimeout,
	}
	var errs []error
	var err error
	if c.CacheTTL, err = duration(getenv, "IMAGO_CACHE_TTL", DefaultCacheTTL); err != nil {
		errs = append(errs, err)
	}
	if c.RedisTimeout, err = duration(getenv, "IMAGO_REDIS_TIMEOUT", DefaultRedisTimeout); err != nil {
		errs = append(errs, err)
	}
	if c.LinkMaxTTL, err = duration(getenv, "IMAGO_LINK_MAX_TTL", DefaultLinkMaxTTL); err != nil {
		errs = append(errs, err)
	} else if c.LinkMaxTTL < time.Minute {
		errs = append(errs, errors.New("IMAGO_LINK_MAX_TTL must be at least 1m: a share link lives at least 60 seconds"))
	}
	if c.CacheMaxBytes, err = size(getenv, "IMAGO_CACHE_MAX_BYTES", DefaultCacheMaxBytes); err != nil {
		errs = append(errs, err)
	}
	if c.MaxInlineBytes, err = size(getenv, "IMAGO_MAX_INLINE_BYTES", DefaultMaxInlineBytes); err != nil {
		errs = append(errs, err)
	} else if c.MaxInlineBytes == 0 || c.MaxInlineBytes > HardMaxInlineBytes {
		errs = append(errs, fmt.Errorf("IMAGO_MAX_INLINE_BYTES must be between 1 and %d (a Lambda response carries at most 6 MB of base64)", HardMaxInlineBytes))
	}
	if c.MultipartThreshold, err = size(getenv, "IMAGO_MULTIPART_THRESHOLD", DefaultMultipartThreshold); err != nil {
		errs = append(errs, err)
	} else if c.MultipartThreshold == 0 || c.MultipartThreshold > MaxMultipartThreshold {
		errs = append(errs, fmt.Errorf("IMAGO_MULTIPART_THRESHOLD must be between 1 and %d (5 GiB, the largest single S3 PUT)", int64(MaxMultipartThreshold)))
	}
	errs = append(errs, c.readSecrets(getenv)...)
	if c.RedisURL != "" && !strings.HasPrefix(c.RedisURL, "redis://") && !strings.HasPrefix(c.RedisURL, "rediss://") {
		errs = append(errs, errors.New("IMAGO_REDIS_URL must start with redis:// or rediss://"))
	} else if c.RedisURL != "" {
		if err := checkRedisCluster(c.RedisURL); err != nil {
			errs = append(errs, err)
		}
	}
	if c.StagingPrefix == "" || strings.HasPrefix(c.StagingPrefix, "/") || !strings.HasSuffix(c.StagingPrefix, "/") || c.StagingPrefix == "blobs/" {
		errs = append(errs, errors.New("IMAGO_STAGING_PREFIX must be a relative prefix ending in '/', other than blobs/"))
	}
	errs = append(errs, c.readPolicyAndAudit(getenv)...)
	if c.UsesAWS() {
		if !c.AuditOff && c.AuditTable == "" {
			// Fail closed: recording on, and nowhere to record, would
			// answer every request 503; better not to start.
			errs = append(errs, errors.New("IMAGO_AUDIT_TABLE is required on the AWS backends (or set IMAGO_AUDIT=off)"))
		}
		if c.Bucket == "" {
			errs = append(errs, errors.New("IMAGO_BUCKET is required when IMAGO_TABLE is set"))
		}
		if c.KMSKeyID == "" {
			errs = append(errs, errors.New("IMAGO_KMS_KEY_ID is required when IMAGO_TABLE is set"))
		}
	}
	if len(errs) > 0 {
		return Config{}, fmt.Errorf("configuration: %w", errors.Join(errs...))
	}
	return c, nil
}

func duration(getenv func(string) string, name string, def time.Duration) (time.Duration, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	d, err := ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s=%q is not a positive duration (e.g. 30s, 5m, 720h, 30d)", name, v)
	}
	return d, nil
}

// readPolicyAndAudit reads the documents' default retention, the
// deletion delay and whether requests are recorded.
func (c *Config) readPolicyAndAudit(getenv func(string) string) []error {
	var errs []error
	var err error
	if c.Retention, err = optionalDuration(getenv, "IMAGO_RETENTION"); err != nil {
		errs = append(errs, err)
	}
	if c.DeletionDelay, err = optionalDuration(getenv, "IMAGO_DELETION_DELAY"); err != nil {
		errs = append(errs, err)
	}
	switch strings.ToLower(strings.TrimSpace(getenv("IMAGO_AUDIT"))) {
	case "", "on":
	case "off":
		c.AuditOff = true
	default:
		errs = append(errs, errors.New("IMAGO_AUDIT must be on or off"))
	}
	return errs
}

// readSecrets reads the deployment's keys: the cache's seal key, and the
// secrets of cursors and share links, which every instance of a Lambda
// deployment must share.
func (c *Config) readSecrets(getenv func(string) string) []error {
	var errs []error
	if v := getenv("IMAGO_CACHE_KEY"); v != "" {
		key, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(key) != 32 {
			errs = append(errs, errors.New("IMAGO_CACHE_KEY must be 32 bytes, base64-encoded (e.g. `openssl rand -base64 32`)"))
		} else {
			c.CacheKey = key
		}
	}
	if v := getenv("IMAGO_CURSOR_SECRET"); v != "" {
		key, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(key) != CursorKeySize {
			errs = append(errs, errors.New("IMAGO_CURSOR_SECRET must be 32 bytes, base64-encoded (e.g. `openssl rand -base64 32`)"))
		} else {
			c.CursorKey = key
		}
	} else if c.UsesAWS() && getenv("AWS_LAMBDA_FUNCTION_NAME") != "" {
		// Every instance of every function must sign and check listing
		// cursors with one secret, and a Lambda function has no folder
		// that outlives it to keep one in.
		errs = append(errs, errors.New("IMAGO_CURSOR_SECRET is required in a Lambda function on the AWS backends: the deployment's secret (32 bytes, base64) that authenticates listing cursors"))
	}
	if v := getenv("IMAGO_LINK_SECRET"); v != "" {
		key, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(key) != LinkKeySize {
			errs = append(errs, errors.New("IMAGO_LINK_SECRET must be 32 bytes, base64-encoded (e.g. `openssl rand -base64 32`)"))
		} else {
			c.LinkKey = key
		}
	} else if c.UsesAWS() && getenv("AWS_LAMBDA_FUNCTION_NAME") != "" {
		// As for cursors: every function instance must make and check
		// share links with the one secret of the deployment.
		errs = append(errs, errors.New("IMAGO_LINK_SECRET is required in a Lambda function on the AWS backends: the deployment's secret (32 bytes, base64) that authenticates share links"))
	}
	return errs
}

// optionalDuration is a duration that may be unset or 0 (off).
func optionalDuration(getenv func(string) string, name string) (time.Duration, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" || v == "0" {
		return 0, nil
	}
	d, err := ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s=%q is not a duration (e.g. 720h, 30d; 0 or unset: off)", name, v)
	}
	return d, nil
}

// ParseDuration reads a duration in Go's form (90m, 1h30m) or in whole
// days (30d): retention periods are said in days, and Go's form has no
// unit longer than an hour.
func ParseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(t, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n < 0 || n > int64(math.MaxInt64/(24*time.Hour)) {
			return 0, fmt.Errorf("%q is not a whole number of days", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(t)
}

func size(getenv func(string) string, name string, def int64) (int64, error) {
	v := getenv(name)
	if v == "" {
		return def, nil
	}
	n, err := ParseSize(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return n, nil
}

// ParseSize reads a byte count, plain or with an IEC suffix: 1048576,
// 1MiB, 512KiB, 2GiB (B, KiB, MiB, GiB, TiB; case-insensitive).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40}, {"b", 1}}
	mult := int64(1)
	lower := strings.ToLower(t)
	for _, u := range units {
		if strings.HasSuffix(lower, u.suffix) {
			mult, t = u.mult, strings.TrimSpace(t[:len(t)-len(u.suffix)])
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is not a size (a byte count, or with KiB, MiB, GiB)", s)
	}
	return n * mult, nil
}

// checkRedisCluster validates IMAGO_REDIS_URL's cluster parameter:
// cluster=true (a cluster-mode endpoint, such as ElastiCache Serverless:
// the client follows MOVED and ASK) or cluster=false; nothing else, so a
// typo does not silently pick the single-node client. The URL itself is
// never repeated (it may hold a password).
func checkRedisCluster(raw string) error {
	// Only the query is looked at here; the client reports the rest.
	rest, query, _ := strings.Cut(raw, "?")
	query, _, _ = strings.Cut(query, "#")
	q, err := url.ParseQuery(query)
	if err != nil {
		return errors.New("IMAGO_REDIS_URL has an invalid query")
	}
	vals, ok := q["cluster"]
	if !ok {
		return nil
	}
	if len(vals) != 1 || (vals[0] != "true" && vals[0] != "false") {
		return errors.New("IMAGO_REDIS_URL: cluster= must be true or false, given once")
	}
	if vals[0] == "true" {
		hostPath := strings.TrimPrefix(strings.TrimPrefix(rest, "rediss://"), "redis://")
		if _, path, ok := strings.Cut(hostPath, "/"); ok && path != "" && path != "0" {
			return errors.New("IMAGO_REDIS_URL: a cluster (cluster=true) has database 0 only")
		}
	}
	return nil
}
