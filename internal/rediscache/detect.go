package rediscache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// Mode is how a client reaches Redis, as Open chose it.
type Mode string

const (
	// ModeNode: one server (cluster=false, or the server said so).
	ModeNode Mode = "single node"
	// ModeCluster: a cluster client (cluster=true, or the server said so).
	ModeCluster Mode = "cluster"
	// ModeUndetected: the server did not answer at start; the client asks
	// it again on its first calls, and turns into a cluster client as soon
	// as it learns it speaks to one.
	ModeUndetected Mode = "undetected (Redis did not answer at start)"
)

// Open returns a client for a redis:// or rediss:// URL, configured as
// NewClient describes, in the mode the server speaks: a cluster-mode
// endpoint (ElastiCache Serverless always is one) gets a cluster client
// whatever the URL says, since a single-node client would have most of its
// writes answered with MOVED. The URL's cluster=true or cluster=false is
// taken at its word, and no question is asked; without either, Open asks
// the server (INFO cluster, else CLUSTER INFO) within the client's dial,
// write and read timeouts. If the server does not answer, Open does not
// fail: it returns a single-node client that asks again on its first calls
// (one at a time) and sends them to a cluster client once the answer is a
// cluster, and o.Logger hears of both.
func Open(ctx context.Context, rawURL string, o ClientOptions) (redis.UniversalClient, Mode, error) {
	client, err := NewClient(rawURL, o)
	if err != nil {
		return nil, "", err
	}
	u, _ := url.Parse(rawURL) // NewClient parsed it
	if u.Query().Has(clusterParam) {
		if _, ok := client.(*redis.ClusterClient); ok {
			return client, ModeCluster, nil
		}
		return client, ModeNode, nil
	}
	node := client.(*redis.Client)
	opt := node.Options()
	pctx, cancel := context.WithTimeout(ctx, opt.DialTimeout+opt.WriteTimeout+opt.ReadTimeout)
	isCluster, err := askCluster(pctx, node.Process)
	cancel()
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch {
	case err != nil:
		log.WarnContext(ctx, "rediscache: Redis did not answer at start; cluster mode is detected on first use", "error", redact(err.Error(), u))
		d := &detector{u: u, o: o, log: log}
		node.AddHook(d)
		return &detectingClient{Client: node, d: d}, ModeUndetected, nil
	case !isCluster:
		return node, ModeNode, nil
	}
	node.Close()
	cc, err := newClusterClient(u, o)
	if err != nil {
		return nil, "", fmt.Errorf("%w (the server is a cluster)", err)
	}
	return cc, ModeCluster, nil
}

// askCluster asks the server whether it runs in cluster mode: INFO
// cluster's cluster_enabled, or, where INFO is refused or says nothing of
// it, whether CLUSTER INFO is answered. An error means the server did not
// answer either question (a Redis error reply is an answer).
func askCluster(ctx context.Context, process func(context.Context, redis.Cmder) error) (bool, error) {
	info := redis.NewStringCmd(ctx, "info", "cluster")
	err := process(ctx, info)
	if err == nil {
		for line := range strings.Lines(info.Val()) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "cluster_enabled:"); ok {
				return v == "1", nil
			}
		}
	} else if !isRedisError(err) {
		return false, err
	}
	ci := redis.NewStringCmd(ctx, "cluster", "info")
	if err := process(ctx, ci); err != nil {
		if isRedisError(err) {
			return false, nil // "ERR This instance has cluster support disabled"
		}
		return false, err
	}
	return true, nil
}

// isRedisError tells an answer of the server (an error reply) from a
// failure to get one.
func isRedisError(err error) bool {
	var re redis.Error
	return errors.As(err, &re)
}

// detector is the hook of a single-node client whose server did not
// answer at start: it asks again before a call, until it has an answer,
// and sends every call to a cluster client if the answer is a cluster.
type detector struct {
	u   *url.URL
	o   ClientOptions
	log *slog.Logger

	known   atomic.Bool                         // the server has answered
	cluster atomic.Pointer[redis.ClusterClient] // set, with known, if it is a cluster
	asking  atomic.Bool                         // one question at a time

	mu     sync.Mutex // guards closed against a cluster client created after Close
	closed bool
}

func (d *detector) DialHook(next redis.DialHook) redis.DialHook { return next }

func (d *detector) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cc := d.resolve(ctx, next); cc != nil {
			return cc.Process(ctx, cmd)
		}
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook asks and routes as ProcessHook does, a pipeline at a
// time (Cache.Claim is one): a cluster client's pipeline takes the same
// commands, and sends each to the node of its slot.
func (d *detector) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		one := func(ctx context.Context, cmd redis.Cmder) error { return next(ctx, []redis.Cmder{cmd}) }
		cc := d.resolve(ctx, one)
		if cc == nil {
			return next(ctx, cmds)
		}
		pipe := cc.Pipeline()
		for _, cmd := range cmds {
			pipe.Process(ctx, cmd)
		}
		_, err := pipe.Exec(ctx)
		return err
	}
}

// resolve returns the cluster client calls go to, or nil for the single
// node: once the server has answered, what it said; until then it asks
// (through next, the node's own processing), and a call that comes while
// another asks goes to the single node.
func (d *detector) resolve(ctx context.Context, next redis.ProcessHook) *redis.ClusterClient {
	if d.known.Load() {
		return d.cluster.Load()
	}
	if !d.asking.CompareAndSwap(false, true) {
		return nil
	}
	defer d.asking.Store(false)
	isCluster, err := askCluster(ctx, next)
	if err != nil {
		return nil // asked again by the next call
	}
	if !isCluster {
		d.known.Store(true)
		d.log.InfoContext(ctx, "rediscache: Redis answered: single node")
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	cc, err := newClusterClient(d.u, d.o)
	if err != nil {
		// The URL cannot name a cluster (a database other than 0): calls
		// stay on the node, whose MOVED answers are cache failures.
		d.known.Store(true)
		d.log.ErrorContext(ctx, "rediscache: Redis answered: cluster, but the URL does not suit one", "error", err.Error())
		return nil
	}
	d.cluster.Store(cc)
	d.known.Store(true)
	d.log.InfoContext(ctx, "rediscache: Redis answered: cluster")
	return cc
}

// detectingClient is the single-node client of a detector; Close closes
// the cluster client it may have made as well.
type detectingClient struct {
	*redis.Client
	d *detector
}

func (c *detectingClient) Close() error {
	c.d.mu.Lock()
	c.d.closed = true
	cc := c.d.cluster.Load()
	c.d.mu.Unlock()
	err := c.Client.Close()
	if cc != nil {
		err = errors.Join(err, cc.Close())
	}
	return err
}
