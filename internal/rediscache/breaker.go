package rediscache

import (
	"sync"
	"time"
)

// breakerState is the state of the circuit breaker.
type breakerState int

const (
	stateClosed   breakerState = iota // calls go to Redis
	stateOpen                         // calls fail at once until the cool-down ends
	stateHalfOpen                     // one probe call is in flight; the others fail at once
)

func (s breakerState) String() string {
	switch s {
	case stateClosed:
		return "closed"
	case stateOpen:
		return "open"
	case stateHalfOpen:
		return "half-open"
	}
	return "unknown"
}

// breaker is a small consecutive-failure circuit breaker.
//
// Why one is needed at all when every call already has a short timeout: a
// Redis that is down or unreachable costs each request that timeout (a dial
// to a black-holed address waits the whole DialTimeout), and a Lambda
// instance serves one request at a time, so an outage would add the timeout
// to every request's latency. After threshold consecutive failures the
// breaker answers "unavailable" without touching the network for cooldown;
// then a single probe is let through, and its outcome closes the breaker or
// opens it for another cool-down.
//
// Only transport failures count (timeouts, refused or reset connections):
// an error reply from the server (OOM, READONLY, a script error) proves that
// Redis answers quickly, so it counts as a success, and a caller's own
// cancellation counts as nothing.
type breaker struct {
	threshold int
	cooldown  time.Duration
	now       func() time.Time
	onChange  func(from, to breakerState, failures int)

	mu        sync.Mutex
	state     breakerState
	failures  int // consecutive, while closed
	openUntil time.Time
}

// allow reports whether a call may go to Redis. A call that was allowed
// must report its outcome with record or release, exactly once.
func (b *breaker) allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case stateClosed:
		return true
	case stateOpen:
		if b.now().Before(b.openUntil) {
			return false
		}
		// The cool-down is over: this call is the probe.
		b.setState(stateHalfOpen)
		return true
	default: // half-open: a probe is already in flight
		return false
	}
}

// record reports the outcome of an allowed call (or of a call that bypassed
// allow, such as Delete): ok is false for a transport failure.
func (b *breaker) record(ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case stateClosed:
		if ok {
			b.failures = 0
			return
		}
		b.failures++
		if b.failures >= b.threshold {
			b.open()
		}
	case stateHalfOpen:
		if ok {
			b.failures = 0
			b.setState(stateClosed)
			return
		}
		b.open()
	case stateOpen:
		// A call that started before the breaker opened; its outcome says
		// nothing the probe will not say better.
	}
}

// release reports that an allowed call ended without telling anything
// about Redis (the caller gave up). A probe hands its turn to the next call.
func (b *breaker) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == stateHalfOpen {
		b.openUntil = b.now()
		b.setState(stateOpen)
	}
}

func (b *breaker) open() {
	b.openUntil = b.now().Add(b.cooldown)
	b.setState(stateOpen)
}

// setState must be called with mu held.
func (b *breaker) setState(s breakerState) {
	from := b.state
	b.state = s
	if b.onChange != nil && from != s {
		b.onChange(from, s, b.failures)
	}
}
