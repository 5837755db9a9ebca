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
	"strconv"
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

// claimScript takes the fill lock of a miss. It is sent in one round trip
// with the GETEX of the entry, right behind it: a hit costs that GETEX and
// this script's EXISTS, nothing of the value's size (a script returning
// the value itself would copy a megabyte through Lua twice, several times
// the cost of the GETEX on Redis 7).
// KEYS: entry, fill lock. ARGV: token, lock TTL in milliseconds.
// Returns 2 (there is an entry), 1 (the lock is the caller's) or 0 (it is
// held by someone else).
var claimScript = redis.NewScript(`
if redis.call("EXISTS", KEYS[1]) == 1 then
	return 2
end
if redis.call("SET", KEYS[2], ARGV[1], "NX", "PX", ARGV[2]) then
	return 1
end
return 0
`)

// fillScript writes an entry only while the caller's token holds the fill
// lock, and releases the lock: the check and the write are one step, so
// neither a Delete nor the loss of the lock can fall between them. A
// tombstone refuses the write too.
// KEYS: entry, fill lock, tombstone. ARGV: token, value, TTL in
// milliseconds. Returns 1 when stored, 0 when refused.
var fillScript = redis.NewScript(`
if redis.call("GET", KEYS[2]) ~= ARGV[1] then
	return 0
end
redis.call("DEL", KEYS[2])
if redis.call("EXISTS", KEYS[3]) == 1 then
	return 0
end
redis.call("SET", KEYS[1], ARGV[2], "PX", ARGV[3])
return 1
`)

// deleteScript removes an entry and its fill lock and writes the tombstone
// that refuses later fills, in one step.
// KEYS: entry, fill lock, tombstone. ARGV: tombstone TTL in milliseconds.
var deleteScript = redis.NewScript(`
redis.call("SET", KEYS[3], "1", "PX", ARGV[1])
return redis.call("DEL", KEYS[1], KEYS[2])
`)

// releaseScript deletes a fill lock only if it still holds the caller's
// token: a holder whose lock expired and was taken by another process must
// not delete the new holder's lock.
var releaseScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0
`)

// Claim returns the entry of id, sliding its TTL, or else takes the fill
// lock of id for FillLockTTL, in one round trip: a pipeline of GETEX and
// claimScript (see docstore.Cache). A hit costs what Get's does, plus the
// script's EXISTS: the value arrives in one allocation and the body is not
// copied. The pipeline is not atomic, and need not be: the lock's safety
// rests on the lock alone. When a command of another client falls between
// the two, Claim says so as a held lock (an entry appeared after the GETEX:
// the Service's wait finds it) or releases the lock it took (the entry went
// after the GETEX). An undecodable value is a miss for which Claim takes
// the lock with a call of its own, so that the fill overwrites the value.
func (c *Cache) Claim(ctx context.Context, id docstore.ID) (*docstore.CachedDocument, docstore.Claim, error) {
	const op = "rediscache.Claim"
	key, lock := docKey(id), fillKey(id)
	if !c.br.allow() {
		return nil, docstore.NoClaim, c.skipped(op, "getex+claim", key)
	}
	token := c.tokenPrefix + strconv.FormatUint(c.tokens.Add(1), 36)
	cctx, cancel := c.callCtx(ctx)
	defer cancel()
	pipe := c.client.Pipeline()
	get := pipe.GetEx(cctx, key, c.ttl)
	script := claimScript.EvalSha(cctx, pipe, []string{key, lock}, token, c.lockTTL.Milliseconds())
	pipe.Exec(cctx) // each command carries its own outcome
	val, err := get.Bytes()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, docstore.NoClaim, c.failed(ctx, op, "getex", key, err, true)
	}
	hit, undecodable := err == nil, false
	outcome, err := script.Int64()
	if hit {
		doc, derr := decode(key, val, c.aead)
		if derr == nil {
			c.br.record(true)
			if err == nil && outcome == 1 {
				// The entry went between the GETEX and the script: the
				// lock is this caller's, and it has no use for it.
				c.unlock(cctx, lock, token)
			}
			return doc, docstore.NoClaim, nil
		}
		c.undecodable(ctx, key, len(val), derr)
		undecodable = true
	}
	if redis.HasErrorPrefix(err, "NOSCRIPT") {
		// The server lost its script cache (a restart, a failover): this
		// call loads the script again.
		outcome, err = claimScript.Run(cctx, c.client, []string{key, lock}, token, c.lockTTL.Milliseconds()).Int64()
	}
	if err != nil {
		return nil, docstore.NoClaim, c.failed(ctx, op, "eval claim", lock, err, true)
	}
	c.br.record(true)
	switch {
	case outcome == 1:
		return nil, docstore.Claim(token), nil
	case outcome == 2 && undecodable:
		// The undecodable value kept the script from claiming: a miss all
		// the same, whose fill overwrites it.
		claimed, err := c.client.SetNX(cctx, lock, token, c.lockTTL).Result()
		if err != nil {
			return nil, docstore.NoClaim, c.failed(ctx, op, "set nx", lock, err, true)
		}
		if claimed {
			return nil, docstore.Claim(token), nil
		}
	}
	// Held by someone else, or an entry appeared after the GETEX: either
	// way a fill is there or coming, and the caller's wait finds it.
	return nil, docstore.NoClaim, nil
}

// Fill stores the entry of id with the cache's TTL if claim still holds
// the fill lock of id, and releases the lock (see docstore.Cache). It
// stores nothing, and returns nil, when the lock is gone or another's, when
// id has a tombstone, when the Body is larger than MaxBytes, or when ctx's
// deadline has passed (a late fill: see docstore.FillDeadline); the last
// two release the lock with a call of their own.
func (c *Cache) Fill(ctx context.Context, id docstore.ID, claim docstore.Claim, doc *docstore.CachedDocument) error {
	const op = "rediscache.Fill"
	if doc == nil {
		return docstore.E(op, docstore.KindInvalid, fmt.Sprintf("no document to cache for %s", id))
	}
	if claim == docstore.NoClaim {
		return nil
	}
	deadline, ok := ctx.Deadline()
	if c.maxBytes >= 0 && int64(len(doc.Body)) > c.maxBytes || ctx.Err() != nil || ok && !time.Now().Before(deadline) {
		return c.Release(context.WithoutCancel(ctx), id, claim)
	}
	key := docKey(id)
	if !c.br.allow() {
		// The lock expires on its own within FillLockTTL.
		return c.skipped(op, "eval fill", key)
	}
	val, err := encode(key, doc, c.aead)
	if err != nil {
		c.br.release()
		return docstore.E(op, docstore.KindInternal, fmt.Errorf("encode %s: %w", key, err))
	}
	cctx, cancel := c.callCtx(ctx)
	// The script answers 0 when the lock or a tombstone refused the entry:
	// nil too.
	err = fillScript.Run(cctx, c.client, []string{key, fillKey(id), tombKey(id)}, string(claim), val, c.ttl.Milliseconds()).Err()
	cancel()
	if err != nil {
		return c.failed(ctx, op, "eval fill", key, err, true)
	}
	c.br.record(true)
	return nil
}

// Release frees the fill lock of id if claim still holds it; a lock that
// expired and was taken since is left to its holder. While the breaker is
// open it does nothing: the lock expires on its own within FillLockTTL.
func (c *Cache) Release(ctx context.Context, id docstore.ID, claim docstore.Claim) error {
	const op = "rediscache.Release"
	if claim == docstore.NoClaim {
		return nil
	}
	lock := fillKey(id)
	if !c.br.allow() {
		return c.skipped(op, "eval release", lock)
	}
	if err := c.unlock(ctx, lock, string(claim)); err != nil {
		return c.failed(ctx, op, "eval release", lock, err, true)
	}
	c.br.record(true)
	return nil
}

// unlock deletes the fill lock if it holds token.
func (c *Cache) unlock(ctx context.Context, lock, token string) error {
	cctx, cancel := c.callCtx(ctx)
	defer cancel()
	return releaseScript.Run(cctx, c.client, []string{lock}, token).Err()
}

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
