package testenv

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy is a TCP proxy on 127.0.0.1 in front of a real server, to make it
// slow (every read from the server delayed), gone (Stop: listener and
// connections closed, new ones refused), or broken in the middle of a
// stream (Inject: a connection reset, closed or stalled once some bytes
// have passed) during a test.
type Proxy struct {
	Addr     string
	target   string
	delay    atomic.Int64
	accepted atomic.Int64
	struck   atomic.Int64
	mu       sync.Mutex
	ln       net.Listener
	conns    map[net.Conn]bool
	fault    *activeFault // nil: none
}

// Direction is which way bytes flow through the proxy.
type Direction int

const (
	// ToServer is what the client sends: requests and uploaded bodies.
	ToServer Direction = iota
	// FromServer is what the server answers: responses and downloaded bodies.
	FromServer
)

// FaultKind is what happens to the connection a fault strikes.
type FaultKind int

const (
	// Reset closes both sides of the connection abruptly: the client sees
	// a TCP RST ("connection reset by peer").
	Reset FaultKind = iota + 1
	// Close closes both sides cleanly (FIN), as a server that went away
	// mid-answer.
	Close
	// Stall stops forwarding in the fault's direction and holds the
	// connection open, as a server or network that hangs; the connection
	// is closed when the fault is cleared or the proxy stops.
	Stall
)

// Fault describes a fault to inject.
type Fault struct {
	Kind      FaultKind
	Direction Direction
	// After is how many bytes in Direction, counted across every
	// connection from the moment of Inject, pass before the fault strikes
	// (0: the very next byte, i.e. the next request or answer).
	After int64
	// Times is how many connections the fault strikes before it is spent
	// (0: every connection that carries bytes in Direction, until Clear).
	Times int
}

type activeFault struct {
	Fault
	remaining int64         // bytes still allowed through before striking
	strikes   int           // connections struck so far
	spent     bool          // struck Times connections: later ones go through
	released  chan struct{} // closed by Clear: stalled connections close
}

// NewProxy starts a proxy to target; it stops when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]bool{}}
	go p.accept(ln)
	t.Cleanup(p.Stop)
	return p
}

// SetDelay delays every read from the server by d (0: none).
func (p *Proxy) SetDelay(d time.Duration) { p.delay.Store(int64(d)) }

// Accepted counts the connections accepted so far.
func (p *Proxy) Accepted() int64 { return p.accepted.Load() }

// Inject arms f, replacing any fault armed before. It applies to the
// connections already open as well as to new ones.
func (p *Proxy) Inject(f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
	p.fault = &activeFault{Fault: f, remaining: f.After, released: make(chan struct{})}
}

// Clear disarms the fault; connections it stalled are closed.
func (p *Proxy) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
}

func (p *Proxy) clearLocked() {
	if p.fault != nil {
		close(p.fault.released)
		p.fault = nil
	}
}

// Struck counts the connections faults have struck so far, so that a test
// can tell that its fault happened.
func (p *Proxy) Struck() int64 { return p.struck.Load() }

func (p *Proxy) accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = true, true
		p.mu.Unlock()
		go p.pipe(up, c, c, up, ToServer)
		go p.pipe(c, up, c, up, FromServer)
	}
}

// pipe copies src to dst (one direction of the client connection c and
// its upstream up), applying the delay and any fault armed for dir.
func (p *Proxy) pipe(dst, src, c, up net.Conn, dir Direction) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if dir == FromServer {
			if d := time.Duration(p.delay.Load()); d > 0 {
				time.Sleep(d)
			}
		}
		if n > 0 {
			pass, strike := p.admit(dir, int64(n))
			if pass > 0 {
				if _, werr := dst.Write(buf[:pass]); werr != nil {
					return
				}
			}
			if strike != nil {
				p.strike(strike, c, up)
				return
			}
		}
		if err != nil {
			if tc, ok := dst.(*net.TCPConn); ok && err == io.EOF {
				tc.CloseWrite() // pass the half-close on, as a plain copy would
				return
			}
			return
		}
	}
}

// admit decides how many of n bytes in dir may pass, and whether the
// fault strikes after them.
func (p *Proxy) admit(dir Direction, n int64) (int64, *activeFault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.fault
	if f == nil || f.spent || f.Direction != dir {
		return n, nil
	}
	if n <= f.remaining {
		f.remaining -= n
		return n, nil
	}
	pass := f.remaining
	f.remaining = 0
	f.strikes++
	// Spent, the fault stays armed until Clear, which releases its stalls.
	f.spent = f.Times > 0 && f.strikes >= f.Times
	p.struck.Add(1)
	return pass, f
}

// strike applies f to the connection pair.
func (p *Proxy) strike(f *activeFault, c, up net.Conn) {
	switch f.Kind {
	case Stall:
		<-f.released
	case Reset:
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // close sends RST, not FIN
		}
	}
	c.Close()
	up.Close()
}

// Stop closes the listener and every connection, as a stopped server would.
func (p *Proxy) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clearLocked()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}
