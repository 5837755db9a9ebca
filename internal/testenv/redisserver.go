package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// RedisServer is a redis-server of the test's own, on a free loopback port,
// holding nothing on disk (no RDB, no AOF): what a test that restarts or
// evicts Redis runs on, never the shared servers. It is stopped, by its
// PID, when the test ends.
type RedisServer struct {
	Addr string // host:port
	dir  string
	args []string
	cmd  *exec.Cmd
}

// redisStartBound bounds how long a server takes to answer PING, and a
// cluster to reach cluster_state:ok (a restarted cluster master waits two
// seconds before it declares itself ok).
const redisStartBound = 30 * time.Second

// StartRedis starts a private redis-server, with extra appended to its
// arguments. Without redis-server on PATH the test is skipped (it fails
// with IMAGO_REQUIRE_TESTENV=1).
func StartRedis(t testing.TB, extra ...string) *RedisServer {
	t.Helper()
	requireRedisBinaries(t)
	addr, err := freeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(addr, ":")
	dir := t.TempDir()
	s := &RedisServer{Addr: addr, dir: dir,
		args: append([]string{"--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no",
			"--daemonize", "no", "--dir", dir, "--protected-mode", "yes"}, extra...)}
	t.Cleanup(s.stop)
	s.start(t)
	return s
}

// URL is the server's redis:// URL, database 0.
func (s *RedisServer) URL() string { return "redis://" + s.Addr + "/0" }

// Restart kills the server (SIGKILL, by its PID: a crash) and starts it
// again on the same port and directory. It comes back empty: nothing is
// persisted but a cluster node's nodes.conf.
func (s *RedisServer) Restart(t testing.TB) {
	t.Helper()
	s.stop()
	s.start(t)
}

// Cli runs redis-cli against the server and returns its output.
func (s *RedisServer) Cli(t testing.TB, args ...string) string {
	t.Helper()
	out, err := s.cli(args...)
	if err != nil {
		t.Fatalf("redis-cli -h %s %s: %v: %s", s.Addr, strings.Join(args, " "), err, out)
	}
	return out
}

func (s *RedisServer) cli(args ...string) (string, error) {
	host, port, _ := strings.Cut(s.Addr, ":")
	out, err := exec.Command("redis-cli", append([]string{"-h", host, "-p", port}, args...)...).CombinedOutput()
	return strings.ReplaceAll(string(out), "\r", ""), err
}

func (s *RedisServer) start(t testing.TB) {
	t.Helper()
	log, err := os.OpenFile(filepath.Join(s.dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command("redis-server", s.args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = s.dir, log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(redisStartBound)
	for {
		if out, err := s.cli("ping"); err == nil && strings.TrimSpace(out) == "PONG" {
			return
		}
		if time.Now().After(deadline) {
			tail, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			t.Fatalf("redis-server on %s did not answer PING within %v; its log:\n%s", s.Addr, redisStartBound, tail)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop kills the server by its PID and waits for it to exit.
func (s *RedisServer) stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.cmd = nil
}

// RedisCluster is a private Redis Cluster of masters without replicas,
// each a RedisServer.
type RedisCluster struct {
	Nodes []*RedisServer
}

// StartRedisCluster starts n cluster-enabled servers and joins them with
// redis-cli --cluster create, the slots split evenly among them.
func StartRedisCluster(t testing.TB, n int) *RedisCluster {
	t.Helper()
	c := &RedisCluster{}
	addrs := make([]string, n)
	for i := range n {
		s := StartRedis(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "5000")
		c.Nodes, addrs[i] = append(c.Nodes, s), s.Addr
	}
	out, err := exec.Command("redis-cli", append(append([]string{"--cluster", "create"}, addrs...),
		"--cluster-replicas", "0", "--cluster-yes")...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create %v: %v: %s", addrs, err, out)
	}
	c.WaitOK(t)
	return c
}

// URL is the cluster's redis:// URL as rediscache.NewClient reads it.
func (c *RedisCluster) URL() string {
	u := "redis://" + c.Nodes[0].Addr + "?cluster=true"
	for _, s := range c.Nodes[1:] {
		u += "&addr=" + s.Addr
	}
	return u
}

// WaitOK waits until every node reports cluster_state:ok and knows every
// other node as connected.
func (c *RedisCluster) WaitOK(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(redisStartBound)
	for !c.ok() {
		if time.Now().After(deadline) {
			t.Fatalf("the private cluster did not reach cluster_state:ok within %v", redisStartBound)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *RedisCluster) ok() bool {
	for _, s := range c.Nodes {
		info, err := s.cli("cluster", "info")
		if err != nil || !strings.Contains(info, "cluster_state:ok") {
			return false
		}
		nodes, err := s.cli("cluster", "nodes")
		if err != nil || strings.Count(nodes, " connected") != len(c.Nodes) {
			return false
		}
	}
	return true
}

// NodeOf returns the node serving key's slot.
func (c *RedisCluster) NodeOf(t testing.TB, key string) *RedisServer {
	t.Helper()
	var slot int
	if _, err := fmt.Sscan(c.Nodes[0].Cli(t, "cluster", "keyslot", key), &slot); err != nil {
		t.Fatalf("CLUSTER KEYSLOT %s: %v", key, err)
	}
	// A line of CLUSTER NODES: id host:port@cport flags master ping pong
	// epoch link slot-ranges...
	for _, line := range strings.Split(c.Nodes[0].Cli(t, "cluster", "nodes"), "\n") {
		f := strings.Fields(line)
		if len(f) < 9 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		for _, r := range f[8:] {
			lo, hi := -1, -1
			if k, _ := fmt.Sscanf(r, "%d-%d", &lo, &hi); k == 1 {
				hi = lo
			}
			if lo <= slot && slot <= hi {
				for _, s := range c.Nodes {
					if s.Addr == addr {
						return s
					}
				}
			}
		}
	}
	t.Fatalf("no node of the private cluster owns slot %d of %s", slot, key)
	return nil
}

func requireRedisBinaries(t testing.TB) {
	t.Helper()
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			msg := fmt.Sprintf("%s is not installed (scripts/testenv installs it)", bin)
			if Required() {
				t.Fatalf("%s=1: %s", RequireVar, msg)
			}
			t.Skip(msg)
		}
	}
}
