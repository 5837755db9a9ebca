package rediscache

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imagodocs/imago/internal/docstore"
)

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
