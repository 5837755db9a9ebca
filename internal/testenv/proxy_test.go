package testenv

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// streamServer answers every connection, once it has received a byte,
// with size bytes of a pattern, then closes it.
func streamServer(t *testing.T, size int) (string, []byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	data := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var one [1]byte
				if _, err := c.Read(one[:]); err == nil {
					c.Write(data)
				}
			}()
		}
	}()
	return ln.Addr().String(), data
}

func readAll(t *testing.T, addr string) ([]byte, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second)) // a stuck proxy fails the test instead of hanging it
	if _, err := c.Write([]byte{'?'}); err != nil {
		t.Fatal(err)
	}
	return io.ReadAll(c)
}

func TestProxy_FaultsStrikeAfterNBytes(t *testing.T) {
	addr, data := streamServer(t, 256<<10)
	p := NewProxy(t, addr)

	if got, err := readAll(t, p.Addr); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("no fault: %d bytes, %v", len(got), err)
	}

	p.Inject(Fault{Kind: Reset, Direction: FromServer, After: 100_000})
	got, err := readAll(t, p.Addr)
	if !errors.Is(err, syscall.ECONNRESET) || !bytes.Equal(got, data[:100_000]) {
		t.Fatalf("reset after 100000 bytes: got %d bytes, %v; want exactly 100000 then a reset", len(got), err)
	}
	p.Inject(Fault{Kind: Close, Direction: FromServer, After: 5000})
	if got, err := readAll(t, p.Addr); err != nil || !bytes.Equal(got, data[:5000]) {
		t.Fatalf("close after 5000 bytes: got %d bytes, %v; want exactly 5000 then EOF", len(got), err)
	}
	if p.Struck() != 2 {
		t.Fatalf("struck %d connections, want 2", p.Struck())
	}
	p.Clear()
	if got, err := readAll(t, p.Addr); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after Clear: %d bytes, %v", len(got), err)
	}
}

func TestProxy_StallHoldsUntilClearAndTimesSpendsTheFault(t *testing.T) {
	addr, data := streamServer(t, 64<<10)
	p := NewProxy(t, addr)

	p.Inject(Fault{Kind: Stall, Direction: FromServer, After: 1000, Times: 1})
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{'?'})
	head := make([]byte, 1000)
	if _, err := io.ReadFull(c, head); err != nil || !bytes.Equal(head, data[:1000]) {
		t.Fatalf("before the stall: %v", err)
	}
	// The fault is spent: the next connection goes through whole while the
	// first one is still stalled.
	if got, err := readAll(t, p.Addr); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("second connection: %d bytes, %v", len(got), err)
	}
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	var one [1]byte
	if n, err := c.Read(one[:]); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("stalled connection delivered %d bytes, %v", n, err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	p.Clear()
	if n, err := c.Read(one[:]); n != 0 || err != io.EOF {
		t.Fatalf("after Clear the stalled connection should close: %d bytes, %v", n, err)
	}
}
