package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// permanentError marks an error that another attempt would not cure.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return permanentError{err} }

// attemptTimeout ends one attempt that took too long; it is a net.Error
// that times out, so the attempt is retried.
type attemptTimeout string

func (e attemptTimeout) Error() string   { return string(e) }
func (e attemptTimeout) Timeout() bool   { return true }
func (e attemptTimeout) Temporary() bool { return true }

var _ net.Error = attemptTimeout("")

// retryDelay says whether err is worth another attempt, and the least
// wait the server asked for.
func retryDelay(err error) (retry bool, atLeast time.Duration) {
	var p permanentError
	if errors.As(err, &p) {
		return false, 0
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		switch apiErr.Status {
		case http.StatusTooManyRequests, http.StatusServiceUnavailable:
			return true, apiErr.RetryAfter
		}
		return false, 0
	}
	// The caller's own context is checked before this: a cancellation
	// here is the attempt's timeout.
	var netErr net.Error
	switch {
	case errors.As(err, &netErr),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPIPE):
		return true, 0
	}
	return false, 0
}

// retry runs fn until it succeeds, fails for good, ctx ends or
// MaxAttempts are spent. Waits grow exponentially from MinBackoff to
// MaxBackoff, each drawn at random from its upper half (so that many
// clients refused at once do not come back at once), and are never
// shorter than a Retry-After the server gave.
func (c *Client) retry(ctx context.Context, fn func(context.Context) error) error {
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return errors.Join(ctx.Err(), err)
		}
		again, atLeast := retryDelay(err)
		if !again {
			return err
		}
		if attempt >= c.opt.MaxAttempts {
			return fmt.Errorf("after %d attempts: %w", attempt, err)
		}
		if serr := c.sleep(ctx, c.backoff(attempt, atLeast)); serr != nil {
			return errors.Join(serr, err)
		}
	}
}

func (c *Client) backoff(attempt int, atLeast time.Duration) time.Duration {
	d := c.opt.MinBackoff << min(attempt-1, 30)
	if d <= 0 || d > c.opt.MaxBackoff {
		d = c.opt.MaxBackoff
	}
	d = d/2 + rand.N(d/2+1)
	return max(d, min(atLeast, c.opt.MaxRetryAfter))
}

// sleepHook replaces the wait between attempts in tests, which record the
// waits instead of taking them.
var sleepHook func(time.Duration)

func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	if sleepHook != nil {
		sleepHook(d)
		return ctx.Err()
	}
	return c.sleepPoll(ctx, d)
}

// sleepPoll waits d, or until ctx ends: the wait between polls for an
// ingest, which tests take for real.
func (c *Client) sleepPoll(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an
// HTTP-date (RFC 9110 §10.2.3).
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// watchdog calls fire when touch was not called for its timeout. It
// re-arms lazily rather than resetting a timer on every read.
type watchdog struct {
	last atomic.Int64 // unix nanoseconds of the last touch

	mu      sync.Mutex
	timeout time.Duration
	timer   *time.Timer
	stopped bool
}

func newWatchdog(timeout time.Duration, fire func(idle time.Duration)) *watchdog {
	w := &watchdog{timeout: timeout}
	w.touch()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = time.AfterFunc(timeout, func() { w.check(fire) })
	return w
}

func (w *watchdog) check(fire func(time.Duration)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	idle := time.Since(time.Unix(0, w.last.Load()))
	if idle >= w.timeout {
		fire(idle)
		return
	}
	w.timer.Reset(w.timeout - idle)
}

func (w *watchdog) touch() { w.last.Store(time.Now().UnixNano()) }

// setTimeout changes the timeout from now on.
func (w *watchdog) setTimeout(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timeout = d
	w.touch()
	if !w.stopped {
		w.timer.Reset(d)
	}
}

func (w *watchdog) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.stopped = true
	w.timer.Stop()
}

// meteredReader is a request body that feeds the stall watchdog and the
// progress of the bytes sent. Once the body is sent, the server gets
// answerTimeout to answer: it may store the document before it does.
type meteredReader struct {
	r             io.Reader
	stall         *watchdog
	progress      Progress
	sent          atomic.Int64
	size          int64 // the body's length
	answerTimeout time.Duration
	ended         bool
}

func (m *meteredReader) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	if n > 0 {
		if m.stall != nil {
			m.stall.touch()
		}
		if m.progress != nil {
			m.progress.Add(int64(n))
		}
		m.sent.Add(int64(n))
	}
	if (err == io.EOF || m.sent.Load() >= m.size) && !m.ended && m.stall != nil {
		m.ended = true
		m.stall.setTimeout(m.answerTimeout)
	}
	return n, err
}

// rollback takes back the progress of an attempt whose bytes will be sent again.
func (m *meteredReader) rollback() {
	if m.progress != nil {
		m.progress.Add(-m.sent.Swap(0))
	}
}

// meteredBody is a response body that feeds the stall watchdog.
type meteredBody struct {
	io.ReadCloser
	stall *watchdog
}

func (m *meteredBody) Read(p []byte) (int, error) {
	n, err := m.ReadCloser.Read(p)
	if n > 0 {
		m.stall.touch()
	}
	return n, err
}

// mayHaveActed says whether the server may have acted on a request whose
// attempt failed with err: anything but an answer of the API (the only
// ones retried, 429 and 503, are its "not now, retry": throttled, or a
// backend unavailable) and a connection that was never made. A request
// cut off after it was sent, or whose answer never came in time, may have
// been carried out.
func mayHaveActed(err error) bool {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		// An answer: retryDelay retries only 429 and 503, which did not act.
		return false
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return false // no connection, so nothing was sent
	}
	return true
}
