// Package rediscache is the shared cache tier of decrypted documents on
// Redis (ElastiCache Serverless / Valkey in production): a docstore.Cache.
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
//     one GETEX (a download's is pipelined with the claim script, which costs
//     it an EXISTS), one allocation of the value's size, and no copy of the
//     body (it is a sub-slice of the value, decrypted in place when sealed).
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
//   - A delete always wins (see docstore.Cache), and rests on nothing that
//     Redis losing state could make true. An entry is written only by the
//     fill script, which compares the fill lock (imago:fill:{id}) with the
//     filler's token and writes the entry, releasing the lock, in one
//     step: a fill whose lock is gone — removed by Delete, expired, taken
//     by another holder, or lost in a restart, a failover or an eviction —
//     stores nothing. The Service takes the lock before the record read
//     whose document it fills, and a DELETE forgets the document again once
//     its record is gone: a lock taken during the delete is removed, and
//     one taken after it finds no record. Delete is one script that removes
//     the entry and the lock and writes a tombstone (imago:tomb:{id})
//     living docstore.TombstoneTTL, which the fill script also honours: one
//     more reason to refuse, never the reason a delete wins.
//
//     The limit: a failover to a replica that had not yet received a
//     Delete (replication is asynchronous) can bring back a lock, or an
//     entry, that the Delete removed, and so admit one fill of a deleted
//     document. WAIT after the Delete would close it by having a replica
//     acknowledge the script before the 204, but ElastiCache Serverless
//     does not offer WAIT; a restart, or the loss of any key, cannot do it.
//
//   - Every key of a document carries the id as a Redis Cluster hash tag
//     (imago:doc:{id}, imago:fill:{id}, imago:tomb:{id}): they share a slot,
//     so one script may touch them together on a cluster (ElastiCache
//     Serverless is one; NewClient follows MOVED and ASK). Entries of the
//     older form imago:doc:<id> are not read; Delete removes one if an
//     older deployment left it, and the rest expire within their TTL.
//
//   - A miss is one round trip (Claim): a pipeline of the GETEX and a
//     script that takes the fill lock (SET NX PX with a token of the
//     caller's) when there is no entry, or says another caller holds it,
//     whose fill the Service waits for (polling Claim) or, after a short
//     while, loads the origin itself without filling. The script does not
//     return the value itself: a megabyte copied through Lua costs several
//     times the GETEX. The lock is released by the fill script, or by a
//     compare-and-delete script when there is nothing to fill, so a holder
//     whose lock expired cannot delete a newer holder's lock.
//
// Undecodable values (garbage, truncated, an unknown version written by a
// newer deployment, a seal that does not open) are misses, never errors:
// Claim takes the fill lock all the same, and the fill that follows
// overwrites them. They are not deleted, so that two versions running side
// by side during a deployment do not fight over keys.
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
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imagodocs/imago/internal/config"
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
	// origin it saves. Package config owns the value, so that reading the
	// configuration does not link the Redis client.
	DefaultTimeout = config.DefaultRedisTimeout
	// DefaultBreakerThreshold: one request makes one or two cache calls
	// (Claim, then Fill or Release on a miss), so three consecutive
	// transport failures means Redis failed two or three requests in a row,
	// not a single stale connection.
	DefaultBreakerThreshold = 3
	// DefaultBreakerCooldown: while open, a Lambda instance pays one probe
	// (at most one Timeout) per cool-down; a longer one would keep the
	// origin (and KMS's request quota) loaded longer after Redis is back.
	DefaultBreakerCooldown = 5 * time.Second
	// DefaultFillLockTTL must exceed the time to load a document from the
	// origin (S3, KMS, decryption): a fill whose lock expired stores
	// nothing, and a second process may load too. Either costs only work.
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
	Pipeline() redis.Pipeliner
	redis.Scripter
}

// Options configures a Cache. Zero fields take the defaults above.
type Options struct {
	// TTL of an entry, slid on every hit.
	TTL time.Duration
	// MaxBytes is the largest Body stored; Fill ignores larger entries.
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

// Cache is a docstore.Cache on Redis. It is safe for concurrent use.
type Cache struct {
	client   Client
	aead     cipher.AEAD // nil: values are not sealed
	ttl      time.Duration
	maxBytes int64
	timeout  time.Duration
	lockTTL  time.Duration
	log      *slog.Logger
	br       *breaker
	// A fill lock's token is tokenPrefix, random to this Cache, followed by
	// a count: unique across processes, and cheap enough to make one for
	// every Claim, hits included (the script needs it before it knows).
	tokenPrefix string
	tokens      atomic.Uint64
}

var _ docstore.Cache = (*Cache)(nil)

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

		tokenPrefix: rand.Text() + ":",
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
		c.undecodable(ctx, key, len(val), err)
		return nil, nil
	}
	return doc, nil
}

func (c *Cache) undecodable(ctx context.Context, key string, size int, err error) {
	c.log.LogAttrs(ctx, slog.LevelWarn, "rediscache: undecodable entry, treated as a miss",
		slog.String("key", key), slog.Int("bytes", size), slog.String("reason", err.Error()))
}

// deleteScript removes an entry and its fill lock and writes the tombstone
// that refuses later fills, in one step.
// KEYS: entry, fill lock, tombstone. ARGV: tombstone TTL in milliseconds.
var deleteScript = redis.NewScript(`
redis.call("SET", KEYS[3], "1", "PX", ARGV[1])
return redis.call("DEL", KEYS[1], KEYS[2])
`)

// Delete removes the entry of id and its fill lock, and leaves a tombstone
// refusing fills of id for docstore.TombstoneTTL; a missing entry is not an
// error. An entry of the older key form is removed too (a second command:
// it lives in another slot).
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
