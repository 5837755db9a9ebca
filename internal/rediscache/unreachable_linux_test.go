//go:build linux

package rediscache

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"
)

// blackHole returns the address of a listening socket whose accept queue is
// full: connecting to it hangs (Linux drops the SYNs), like a Redis behind a
// security group that drops packets, or a host that is gone.
func blackHole(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil { // room for one connection, never accepted
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	filler, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("filling the accept queue: %v", err)
	}
	t.Cleanup(func() { filler.Close() })
	// Check that the next connection does hang.
	if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
		c.Close()
		t.Skip("this kernel accepts connections beyond the backlog; no black hole to test against")
	}
	return addr
}

// A Redis that cannot be reached (the dial hangs): every call fails within
// about DialTimeout, and after BreakerThreshold failures the breaker answers
// at once.
func TestRedisUnreachable(t *testing.T) {
	addr := blackHole(t)
	client, err := NewClient("redis://"+addr+"/0", short)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	c := New(client, Options{Timeout: shortTimeout, BreakerThreshold: 3, BreakerCooldown: time.Minute})
	calls := cacheCalls(c)
	for _, name := range []string{"Get", "Claim", "Fill"} {
		callFails(t, name+" on an unreachable Redis", calls[name], short.DialTimeout+slack)
	}
	for name, call := range calls {
		if err := callFails(t, name+" with the breaker open", call, instant); !errors.Is(err, ErrCircuitOpen) {
			t.Fatalf("%s with the breaker open: %v, want ErrCircuitOpen", name, err)
		}
	}
}
