// Package rediscache is the shared cache tier of decrypted documents on
// Redis (ElastiCache Serverless / Valkey in production): a docstore.Cache
// and docstore.FillLocker.
//
// Why it looks the way it does:
//
//   - It must never break a request. A cache call that fails only sends the
//     request to the origin (DynamoDB, S3, KMS), so every call is bounded by
//     short timeouts (NewClient's socket timeouts and a per-call deadline,
//     Options.Timeout), and after a few consecutive transport failures a
//     circuit breaker answers KindUnavailable at once, without touching the
//     network, for a cool-down; then one call probes. A Lambda instance
//     serves one request at a time, so without the breaker an outage would
//     add a full timeout to every request.
//
//   - Hits must be cheap for megabyte documents. A value is a small
//     versioned binary header followed by the body (see codec.go): a hit is
//     one GETEX, one allocation of the value's size, and no copy of the body
//     (it is a sub-slice of the value, decrypted in place when sealed).
//
//   - Redis need never hold a readable document. With Options.SealKey every
//     value (header included) is sealed with AES-256-GCM, bound to its key
//     name so that a value moved to another key does not open. A reader with
//     a key refuses unsealed values, so nobody with write access to Redis
//     can plant a document. Rotating the key costs only misses: old entries
//     stop opening and are refilled. (With random 96-bit nonces a key should
//     seal fewer than 2^32 values; rotate it well before that.)
//
//   - A hit slides the TTL (GETEX … EX), so documents in use stay cached and
//     the others expire on their own; nothing else evicts.
//
//   - A delete always wins (see docstore.Cache). Delete is one script that
//     removes the entry and the fill lock and writes a tombstone
//     (imago:tomb:{id}) living docstore.TombstoneTTL; Set is a script that
//     writes the entry only when there is no tombstone. Redis runs a script
//     atomically, so a fill that read the origin before the delete and
//     writes after it stores nothing, whichever instance it runs in.
//
//   - Every key of a document carries the id as a Redis Cluster hash tag
//     (imago:doc:{id}, imago:fill:{id}, imago:tomb:{id}): they share a slot,
//     so one script may touch them together on a cluster (ElastiCache
//     Serverless is one; NewClient follows MOVED and ASK). Entries of the
//     older form imago:doc:<id> are not read; Delete removes one if an
//     older deployment left it, and the rest expire within their TTL.
//
//   - Concurrent misses for one id, across Lambda instances, load the
//     origin once: the first takes a short fill lock (SET NX PX with a
//     random token) and the others poll Get for the entry (docstore.Service
//     does the waiting) or, after
//     a short while, load it themselves. The lock is released with a
//     compare-and-delete script, so a holder whose lock expired cannot
//     delete a newer holder's lock.
//
// Undecodable values (garbage, truncated, an unknown version written by a
// newer deployment, a seal that does not open) are misses, never errors:
// the fill that follows overwrites them. They are not deleted, so that two
// versions running side by side during a deployment do not fight over keys.
package rediscache

import (
	"cmp"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imagodocs/imago/internal/docstore"
)

// Key prefixes. The id follows in braces, a hash tag: Redis Cluster puts
// the keys of one document in one slot.
const (
	docKeyPrefix  = "imago:doc:"
	fillKeyPrefix = "imago:fill:"
	tombKeyPrefix = "imago:tomb:"
)

// Defaults of Options.
const (
	DefaultTTL      = docstore.DefaultCacheTTL
	DefaultMaxBytes = docstore.DefaultCacheMaxBytes
	// DefaultTimeout bounds a whole call, dial included
	// (IMAGO_REDIS_TIMEOUT's default: the same budget bounds each socket
	// operation): a cache slower than that costs a request more than the
	// origin it saves.
	DefaultTimeout = 300 * time.Millisecond
	// DefaultBreakerThreshold: one request makes two to four cache calls
	// (Get, TryLock, Set, release), so three consecutive transport failures
	// means Redis failed one or two requests in a row, not a single stale
	// connection.
	DefaultBreakerThreshold = 3
	// DefaultBreakerCooldown: while open, a Lambda instance pays one probe
	// (at most one Timeout) per cool-down; a longer one would keep the
	// origin (and KMS's request quota) loaded longer after Redis is back.
	DefaultBreakerCooldown = 5 * time.Second
	// DefaultFillLockTTL must exceed the time to load a document from the
	// origin (S3, KMS, decryption); if it does not, a second process loads
	// too, which costs only the duplicate work.
	DefaultFillLockTTL = 5 * time.Second
)

// SealKeySize is the length of Options.SealKey.
const SealKeySize = 32

// ErrCircuitOpen is wrapped by the KindUnavailable errors that the breaker
// returns without calling Redis.
var ErrCircuitOpen = errors.New("rediscache: circuit breaker open, Redis not called")

// Client is the part of go-redis the cache uses. *redis.Client,
// *redis.ClusterClient and redis.UniversalClient satisfy it; give it one with
// ContextTimeoutEnabled (NewClient does), or Options.Timeout cannot bound
// socket reads and writes.
type Client interface {
	GetEx(ctx context.Context, key string, expiration time.Duration) *redis.StringCmd
	SetNX(ctx context.Context, key string, value any, expiration time.Duration) *redis.BoolCmd
	Del(ctx context.Context, keys ...string) *redis.IntCmd
	redis.Scripter
}

// Options configures a Cache. Zero fields take the defaults above.
type Options struct {
	// TTL of an entry, slid on every hit.
	TTL time.Duration
	// MaxBytes is the largest Body stored; Set ignores larger entries.
	// Negative means no limit.
	MaxBytes int64
	// SealKey, when set, must be SealKeySize bytes: the AES-256-GCM key
	// sealing every value. New panics on any other length (validate
	// IMAGO_CACHE_KEY when reading the configuration).
	SealKey []byte
	// Timeout bounds each call, on top of the client's own timeouts.
	Timeout time.Duration
	// Logger receives breaker transitions (Warn/Info), undecodable values
	// (Warn) and individual failures (Debug). Nil discards.
	Logger *slog.Logger
	// Now is the breaker's clock; nil is time.Now.
	Now func() time.Time
	// BreakerThreshold consecutive transport failures open the breaker for
	// BreakerCooldown.
	BreakerThreshold int
	BreakerCooldown  time.Duration
	// FillLockTTL is the lifetime of a fill lock that is never released.
	FillLockTTL time.Duration
}

// Cache is a docstore.Cache and docstore.FillLocker on Redis. It is safe
// for concurrent use.
type Cache struct {
	client   Client
	aead     cipher.AEAD // nil: values are not sealed
	ttl      time.Duration
	maxBytes int64
	timeout  time.Duration
	lockTTL  time.Duration
	log      *slog.Logger
	br       *breaker
}

var (
	_ docstore.Cache      = (*Cache)(nil)
	_ docstore.FillLocker = (*Cache)(nil)
)

// New returns a Cache on client (see NewClient). It panics if opts.SealKey
// is set and is not SealKeySize bytes long.
func New(client Client, opts Options) *Cache {
	c := &Cache{
		client:   client,
		ttl:      cmp.Or(opts.TTL, DefaultTTL),
		maxBytes: cmp.Or(opts.MaxBytes, DefaultMaxBytes),
		timeout:  cmp.Or(opts.Timeout, DefaultTimeout),
		lockTTL:  cmp.Or(opts.FillLockTTL, DefaultFillLockTTL),
		log:      cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)),
	}
	if opts.SealKey != nil {
		if len(opts.SealKey) != SealKeySize {
			panic(fmt.Sprintf("rediscache: SealKey is %d bytes, want %d", len(opts.SealKey), SealKeySize))
		}
		block, err := aes.NewCipher(opts.SealKey)
		if err != nil {
			panic("rediscache: " + err.Error())
		}
		c.aead, err = cipher.NewGCM(block)
		if err != nil {
			panic("rediscache: " + err.Error())
		}
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	c.br = &breaker{
		threshold: cmp.Or(opts.BreakerThreshold, DefaultBreakerThreshold),
		cooldown:  cmp.Or(opts.BreakerCooldown, DefaultBreakerCooldown),
		now:       now,
		onChange:  c.breakerChanged,
	}
	return c
}

func docKey(id docstore.ID) string  { return docKeyPrefix + "{" + string(id) + "}" }
func fillKey(id docstore.ID) string { return fillKeyPrefix + "{" + string(id) + "}" }
func tombKey(id docstore.ID) string { return tombKeyPrefix + "{" + string(id) + "}" }

// legacyDocKey is the key entries had before keys carried hash tags.
func legacyDocKey(id docstore.ID) string { return docKeyPrefix + string(id) }

// Get returns the entry of id and slides its TTL; (nil, nil) on a miss,
// including an entry that cannot be decoded.
func (c *Cache) Get(ctx context.Context, id docstore.ID) (*docstore.CachedDocument, error) {
	const op = "rediscache.Get"
	key := docKey(id)
	if !c.br.allow() {
		return nil, c.skipped(op, "getex", key)
	}
	cctx, cancel := c.callCtx(ctx)
	val, err := c.client.GetEx(cctx, key, c.ttl).Bytes()
	cancel()
	if errors.Is(err, redis.Nil) {
		c.br.record(true)
		return nil, nil
	}
	if err != nil {
		return nil, c.failed(ctx, op, "getex", key, err, true)
	}
	c.br.record(true)
	doc, err := decode(key, val, c.aead)
	if err != nil {
		c.log.LogAttrs(ctx, slog.LevelWarn, "rediscache: undecodable entry, treated as a miss",
			slog.String("key", key), slog.Int("bytes", len(val)), slog.String("reason", err.Error()))
		return nil, nil
	}
	return doc, nil
}

// setScript writes an entry unless its document has a tombstone: the
// check and the write are one step, so a delete cannot fall between them.
// KEYS: entry, tombstone. ARGV: value, TTL in milliseconds. Returns 1 when
// stored, 0 when refused.
var setScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[2]) == 1 then
	return 0
end
redis.call("SET", KEYS[1], ARGV[1], "PX", ARGV[2])
return 1
`)

// deleteScript removes an entry and its fill lock and writes the tombstone
// that refuses later Sets, in one step.
// KEYS: entry, fill lock, tombstone. ARGV: tombstone TTL in milliseconds.
var deleteScript = redis.NewScript(`
redis.call("SET", KEYS[3], "1", "PX", ARGV[1])
return redis.call("DEL", KEYS[1], KEYS[2])
`)

// Set stores the entry of id with the cache's TTL. An entry whose Body is
// larger than MaxBytes is not stored, nor one of a document deleted less
// than docstore.TombstoneTTL ago, nor one whose ctx deadline has passed (a late
// fill: see docstore.FillDeadline); Set returns nil for them.
func (c *Cache) Set(ctx context.Context, id docstore.ID, doc *docstore.CachedDocument) error {
	const op = "rediscache.Set"
	if doc == nil {
		return docstore.E(op, docstore.KindInvalid, fmt.Sprintf("no document to cache for %s", id))
	}
	if c.maxBytes >= 0 && int64(len(doc.Body)) > c.maxBytes {
		return nil
	}
	key := docKey(id)
	if !c.br.allow() {
		return c.skipped(op, "set", key)
	}
	val, err := encode(key, doc, c.aead)
	if err != nil {
		c.br.release()
		return docstore.E(op, docstore.KindInternal, fmt.Errorf("encode %s: %w", key, err))
	}
	if deadline, ok := ctx.Deadline(); ok && !time.Now().Before(deadline) {
		c.br.release()
		return nil
	}
	cctx, cancel := c.callCtx(ctx)
	// The script answers 0 when the tombstone refused the entry: nil too.
	err = setScript.Run(cctx, c.client, []string{key, tombKey(id)}, val, c.ttl.Milliseconds()).Err()
	cancel()
	if err != nil {
		return c.failed(ctx, op, "eval set", key, err, true)
	}
	c.br.record(true)
	return nil
}

// Delete removes the entry of id and its fill lock, and leaves a tombstone
// refusing Sets of id for docstore.TombstoneTTL; a missing entry is not an error.
// An entry of the older key form is removed too (a second command: it
// lives in another slot).
//
// Unlike the other calls, Delete goes to Redis even while the breaker is
// open: a delete that is skipped would let a deleted document be served
// from the cache until its TTL ends, and deletes are rare enough that one
// timeout each during an outage is an acceptable price. Its outcome still
// feeds the breaker.
func (c *Cache) Delete(ctx context.Context, id docstore.ID) error {
	const op = "rediscache.Delete"
	key := docKey(id)
	cctx, cancel := c.callCtx(ctx)
	err := deleteScript.Run(cctx, c.client, []string{key, fillKey(id), tombKey(id)}, docstore.TombstoneTTL.Milliseconds()).Err()
	if err == nil {
		err = c.client.Del(cctx, legacyDocKey(id)).Err()
	}
	cancel()
	if err != nil {
		return c.failed(ctx, op, "eval delete", key, err, false)
	}
	c.br.record(true)
	return nil
}

// Evict removes the entry of id as its expiry would: unlike Delete it
// leaves no tombstone, so the next miss fills the cache again. It is how
// tests make a document cold.
func (c *Cache) Evict(ctx context.Context, id docstore.ID) error {
	const op = "rediscache.Evict"
	key := docKey(id)
	cctx, cancel := c.callCtx(ctx)
	err := c.client.Del(cctx, key).Err()
	cancel()
	if err != nil {
		return c.failed(ctx, op, "del", key, err, false)
	}
	c.br.record(true)
	return nil
}

// unlockScript deletes a fill lock only if it still holds the caller's
// token: a holder whose lock expired and was taken by another process must
// not delete the new holder's lock.
var unlockScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0
`)

func noop() {}

// TryLock takes the fill lock of id for FillLockTTL. When acquired, release
// must be called once the entry is filled or the load failed; it is safe to
// call more than once and works after ctx is cancelled. When the lock is
// held elsewhere TryLock returns (noop, false, nil); on error the release
// returned is a no-op too.
func (c *Cache) TryLock(ctx context.Context, id docstore.ID) (release func(), acquired bool, err error) {
	const op = "rediscache.TryLock"
	key := fillKey(id)
	if !c.br.allow() {
		return noop, false, c.skipped(op, "set nx", key)
	}
	token := rand.Text()
	cctx, cancel := c.callCtx(ctx)
	ok, err := c.client.SetNX(cctx, key, token, c.lockTTL).Result()
	cancel()
	if err != nil {
		return noop, false, c.failed(ctx, op, "set nx", key, err, true)
	}
	c.br.record(true)
	if !ok {
		return noop, false, nil
	}
	var once sync.Once
	// The release outlives the request's cancellation (a load that failed
	// because the caller went away must still free the lock), not its values.
	rctx := context.WithoutCancel(ctx)
	return func() { once.Do(func() { c.unlock(rctx, key, token) }) }, true, nil
}

func (c *Cache) unlock(ctx context.Context, key, token string) {
	const op = "rediscache.Unlock"
	if !c.br.allow() {
		// The lock expires on its own within FillLockTTL.
		return
	}
	cctx, cancel := c.callCtx(ctx)
	err := unlockScript.Run(cctx, c.client, []string{key}, token).Err()
	cancel()
	if err != nil {
		_ = c.failed(ctx, op, "eval unlock", key, err, true)
		return
	}
	c.br.record(true)
}

// callCtx bounds one call by the cache's timeout.
func (c *Cache) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// skipped counts and builds the error of a call the open breaker refused.
func (c *Cache) skipped(op docstore.Op, cmd, key string) error {
	return docstore.E(op, docstore.KindUnavailable, fmt.Errorf("redis %s %s: %w", cmd, key, ErrCircuitOpen))
}

// failed counts a failed call, feeds its outcome to the breaker and builds
// its error. allowed tells whether the call went through breaker.allow (and
// so may be the half-open probe, whose turn must be handed on if the
// outcome says nothing about Redis).
func (c *Cache) failed(ctx context.Context, op docstore.Op, cmd, key string, err error, allowed bool) error {
	var reply redis.Error
	switch {
	case ctx.Err() != nil:
		// The caller gave up (or its own deadline passed): no verdict on
		// Redis.
		if allowed {
			c.br.release()
		}
	case errors.As(err, &reply):
		// Redis answered, quickly, with an error: it is up.
		c.br.record(true)
	default:
		c.br.record(false)
	}
	c.log.LogAttrs(ctx, slog.LevelDebug, "rediscache: call failed",
		slog.String("op", string(op)), slog.String("key", key), slog.String("error", err.Error()))
	return docstore.E(op, docstore.KindUnavailable, fmt.Errorf("redis %s %s: %w", cmd, key, err))
}

func (c *Cache) breakerChanged(from, to breakerState, failures int) {
	switch to {
	case stateOpen:
		if from == stateClosed {
			c.log.LogAttrs(context.Background(), slog.LevelWarn, "rediscache: breaker open, Redis skipped",
				slog.Int("consecutive_failures", failures), slog.Duration("cooldown", c.br.cooldown))
		}
	case stateClosed:
		c.log.LogAttrs(context.Background(), slog.LevelInfo, "rediscache: breaker closed, Redis answers again")
	}
}
