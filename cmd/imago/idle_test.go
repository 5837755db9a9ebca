package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestServeCutsStalledTransfersOnly: `imago serve` takes an upload that
// keeps moving however long it lasts (here several times the idle limit),
// and drops one that stops moving once the idle limit has passed.
func TestServeCutsStalledTransfersOnly(t *testing.T) {
	const idle = 300 * time.Millisecond
	defer func(d time.Duration) { transferIdleTimeout = d }(transferIdleTimeout)
	transferIdleTimeout = idle
	srv := startServer(t, map[string]string{"IMAGO_DATA_DIR": t.TempDir(), "IMAGO_ADDR": "127.0.0.1:0"})
	addr := strings.TrimPrefix(srv.url, "http://")

	open := func(n int) net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "POST /documents?filename=slow.bin HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", n)
		return c
	}

	const steps, step = 20, 4 << 10
	c := open(steps * step)
	for range steps {
		time.Sleep(idle / 5)
		if _, err := c.Write(make([]byte, step)); err != nil {
			t.Fatalf("the server dropped an upload that moves: %v", err)
		}
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("a slow upload that moves: %v", err)
	}
	var md struct{ Size int }
	json.NewDecoder(resp.Body).Decode(&md)
	resp.Body.Close()
	if resp.StatusCode != 201 || md.Size != steps*step {
		t.Fatalf("a slow upload that moves: %d, size %d", resp.StatusCode, md.Size)
	}

	c = open(1 << 20)
	c.Write(make([]byte, 1000))
	// Nothing more: the server must drop the request on its own, well
	// before the guard.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err = http.ReadResponse(bufio.NewReader(c), nil)
	var netErr net.Error
	switch {
	case errors.As(err, &netErr) && netErr.Timeout():
		t.Fatal("a stalled upload was never dropped")
	case err == nil:
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("a stalled upload: %d", resp.StatusCode)
		}
	}
}
