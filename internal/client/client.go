// Package client is a Go client of Imago's HTTP API (see docs/design.md,
// "The HTTP API"): it uploads documents of any size — inline, through one
// presigned PUT, or in parallel multipart parts that an interrupted upload
// resumes — and downloads them whole or in parallel Range parts into a
// file that only takes its name once its SHA-256 checked out. It also
// manages share links and a document's policy: the trash, restore, purge,
// the legal hold; and it reads the caller's audit trail and checks that
// its chains are intact (audit.go).
//
// Every request that answers 429 or 503, or fails at the network, is
// retried with exponential backoff and jitter, honouring Retry-After —
// but the creation of a share link, which no Idempotency-Key guards, is
// retried at the network only when it was never sent (Client.Share), and
// a deletion or restore whose repeat finds it already done after a lost
// answer counts as done (policy.go). API
// calls have a per-request timeout; transfers of bytes have a stall
// timeout instead (no byte moved for that long), so a large but moving
// transfer is never cut short.
package client

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/imagodocs/imago/internal/api"
)

// Options configure a Client. The zero value of every field but BaseURL
// picks a sensible default.
type Options struct {
	BaseURL string // the API's root, e.g. http://127.0.0.1:8080
	Token   string // bearer token, if the API wants one

	// HTTP sends the requests; its Timeout should be zero (the client sets
	// its own per request). Default: a client with the default transport.
	HTTP *http.Client

	// InlineLimit is the largest document Put sends in the body of
	// POST /documents (default 4 MiB, the API's default limit). A server
	// with a lower limit answers 413 and Put goes through an upload.
	InlineLimit int64
	// PartSize is the size of the Range parts Get asks for (default 4 MiB).
	PartSize int64
	// Parallel is how many parts Put and Get move at once (default 4).
	Parallel int

	// RequestTimeout bounds one API call that moves no document bytes
	// (default 30s).
	RequestTimeout time.Duration
	// StallTimeout fails a transfer of document bytes when no byte moved
	// for that long (default 60s); the attempt is then retried.
	StallTimeout time.Duration
	// AnswerTimeout bounds how long the server may take to answer once it
	// has a request's whole body, and to complete an upload in parts
	// (default 15 minutes): storing a large document behind a presigned
	// PUT, or assembling its parts, may take minutes, and a client that
	// gave up would only make it start over.
	AnswerTimeout time.Duration
	// IngestWait bounds how long Put waits for an uploaded document to
	// become available (default: 2 minutes plus one second per 16 MiB).
	IngestWait time.Duration

	// MaxAttempts is how often one request is tried before its error is
	// returned (default 8). MinBackoff and MaxBackoff bound the wait
	// between attempts (defaults 200ms and 20s); a Retry-After answer is
	// honoured up to MaxRetryAfter (default 2 minutes).
	MaxAttempts   int
	MinBackoff    time.Duration
	MaxBackoff    time.Duration
	MaxRetryAfter time.Duration

	// StateDir keeps the state of interrupted multipart uploads so that
	// Put of the same file resumes them (default: os.UserCacheDir()/imago/uploads).
	// "-" keeps no state.
	StateDir string
}

// Client talks to one Imago API. It is safe for concurrent use.
type Client struct {
	opt  Options
	base string
}

// New returns a Client for opt.
func New(opt Options) *Client {
	if opt.HTTP == nil {
		opt.HTTP = &http.Client{}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	// The server's default response limit (IMAGO_MAX_INLINE_BYTES) bounds
	// both an inline upload and one ranged read.
	if opt.InlineLimit <= 0 {
		opt.InlineLimit = api.DefaultMaxInlineBytes
	}
	if opt.PartSize <= 0 {
		opt.PartSize = api.DefaultMaxInlineBytes
	}
	if opt.Parallel <= 0 {
		opt.Parallel = 4
	}
	if opt.MaxAttempts <= 0 {
		opt.MaxAttempts = 8
	}
	def(&opt.RequestTimeout, 30*time.Second)
	def(&opt.StallTimeout, 60*time.Second)
	def(&opt.AnswerTimeout, 15*time.Minute)
	def(&opt.MinBackoff, 200*time.Millisecond)
	def(&opt.MaxBackoff, 20*time.Second)
	def(&opt.MaxRetryAfter, 2*time.Minute)
	if opt.StateDir == "" {
		opt.StateDir = DefaultStateDir()
	}
	return &Client{opt: opt, base: strings.TrimSuffix(opt.BaseURL, "/")}
}

// Status is a document's lifecycle state.
type Status = api.Status

// The statuses the API answers. StatusFailed is set when the ingest of an
// uploaded document failed; the document's Failure says why.
const (
	StatusPending   = api.StatusPending
	StatusAvailable = api.StatusAvailable
	StatusFailed    = api.StatusFailed
)

// Document is a document's metadata as the API answers it.
type Document = api.Document

// APIError is an error answered by the API (or by the storage behind a
// presigned URL).
type APIError struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration // from a Retry-After header, if any
}

func (e *APIError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
	}
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

// IsNotFound tells whether err is the API's 404: an unknown document, or
// another tenant's.
func IsNotFound(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

func isStatus(err error, status int) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == status
}

// IntegrityError says the bytes do not hash to the SHA-256 they must: the
// bytes a download received are not the document's (Want is the
// document's SHA-256, Got theirs), or the document an upload stored is
// not the file (Upload is set; Want is the file's SHA-256, Got the
// document's).
type IntegrityError struct {
	ID        string
	Want, Got string
	Upload    bool
}

func (e *IntegrityError) Error() string {
	if e.Upload {
		return fmt.Sprintf("document %s is not the file: the document's SHA-256 is %s, the file's is %s (the document stays; imago rm %s removes it)",
			e.ID, cmp.Or(e.Got, "not given"), e.Want, e.ID)
	}
	return fmt.Sprintf("document %s: the bytes received have SHA-256 %s, the document's is %s", e.ID, e.Got, e.Want)
}

// IngestError says the API could not store an uploaded document.
type IngestError struct {
	ID      string
	Failure string
}

func (e *IngestError) Error() string {
	return fmt.Sprintf("document %s: ingest failed: %s", e.ID, e.Failure)
}

// request is one HTTP request the client may send several times: body
// makes a fresh body for each attempt.
type request struct {
	method string
	url    string // absolute, or a path under the API's root
	header http.Header
	body   func() io.Reader
	size   int64 // the body's length; -1 for none
	// transfer marks a request moving document bytes: it gets the stall
	// timeout instead of the request timeout, and AnswerTimeout once its
	// body is sent.
	transfer bool
	// slow marks an API call the server may take long to answer: it gets
	// AnswerTimeout instead of RequestTimeout.
	slow bool
	// progress, when set, is told of the bytes of the body sent.
	progress Progress
	// notIdempotent marks a request that the server carries out afresh
	// each time it gets it, with no Idempotency-Key to make a repeat
	// harmless (creating a share link): it is retried only when the server
	// cannot have acted on it (mayHaveActed), never after it may have.
	notIdempotent bool
}

// timeLimit arms the time limit of one attempt of r, which cancel ends: a
// stall watchdog for a transfer (returned, for the body to feed), a timer
// for any other call. done disarms it and cancels.
func (c *Client) timeLimit(r request, cancel context.CancelCauseFunc) (stall *watchdog, done func()) {
	var timer *time.Timer
	if r.transfer {
		stall = newWatchdog(c.opt.StallTimeout, func(idle time.Duration) {
			cancel(attemptTimeout(fmt.Sprintf("nothing moved for %v", idle.Round(time.Millisecond))))
		})
	} else {
		timeout := c.opt.RequestTimeout
		if r.slow {
			timeout = c.opt.AnswerTimeout
		}
		timer = time.AfterFunc(timeout, func() {
			cancel(attemptTimeout(fmt.Sprintf("no answer within %v", timeout)))
		})
	}
	done = func() {
		if stall != nil {
			stall.stop()
		}
		if timer != nil {
			timer.Stop()
		}
		cancel(nil)
	}
	return stall, done
}

// attempt sends r once. A status of 400 or more becomes an *APIError; on
// success the caller owns the response body and must call done when it
// has read it (it releases the request's timer).
func (c *Client) attempt(ctx context.Context, r request) (resp *http.Response, done func(), err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	stall, done := c.timeLimit(r, cancel)
	// A path is the API's, an absolute URL a presigned one, which carries
	// its own authorization and must not get the bearer token.
	target, api := r.url, !strings.Contains(r.url, "://")
	if api {
		target = c.base + target
	}
	var body io.Reader
	var metered *meteredReader
	if r.body != nil {
		body = r.body()
		if stall != nil || r.progress != nil {
			metered = &meteredReader{r: body, stall: stall, progress: r.progress, size: r.size, answerTimeout: c.opt.AnswerTimeout}
			body = metered
		}
	}
	fail := func(err error) (*http.Response, func(), error) {
		if metered != nil {
			metered.rollback()
		}
		done()
		return nil, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, r.method, target, body)
	if err != nil {
		return fail(permanent(err))
	}
	if r.body != nil {
		req.ContentLength = r.size // never chunked: API Gateway and S3 want a length
		if r.size == 0 {
			req.Body = http.NoBody
		}
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	if c.opt.Token != "" && api {
		req.Header.Set("Authorization", "Bearer "+c.opt.Token)
	}
	resp, err = c.opt.HTTP.Do(req)
	if err != nil {
		if cause := context.Cause(ctx); ctx.Err() != nil && !errors.Is(cause, context.Canceled) {
			err = fmt.Errorf("%w (%v)", err, cause)
		}
		return fail(err)
	}
	if stall != nil {
		resp.Body = &meteredBody{ReadCloser: resp.Body, stall: stall}
	}
	if resp.StatusCode >= 400 {
		err := readAPIError(resp)
		resp.Body.Close()
		return fail(err)
	}
	return resp, done, nil
}

func readAPIError(resp *http.Response) error {
	var e api.ErrorBody
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(raw, &e) != nil || e.Error.Code == "" {
		e.Error.Message = strings.TrimSpace(string(raw))
		if len(e.Error.Message) > 300 {
			e.Error.Message = e.Error.Message[:300] + "…"
		}
	}
	return &APIError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
}

// call sends r, retrying as the package comment says, and decodes a JSON
// answer into out (if out is not nil). It returns the final status.
func (c *Client) call(ctx context.Context, r request, out any) (int, error) {
	status, _, err := c.callActed(ctx, r, out)
	return status, err
}

// callActed is call that also tells whether an attempt before the last
// one may have been carried out by the server though its answer was lost
// (mayHaveActed): a repeat of a request that changes a document may then
// be refused for the very change the lost attempt made.
func (c *Client) callActed(ctx context.Context, r request, out any) (status int, acted bool, err error) {
	err = c.retry(ctx, func(ctx context.Context) error {
		s, err := c.callOnce(ctx, r, out)
		status = s
		if err != nil && mayHaveActed(err) {
			acted = true
		}
		return err
	})
	return status, acted, err
}

// callOnce is one attempt of call.
func (c *Client) callOnce(ctx context.Context, r request, out any) (int, error) {
	resp, done, err := c.attempt(ctx, r)
	if err != nil {
		if r.notIdempotent && mayHaveActed(err) {
			return 0, permanent(err)
		}
		return 0, err
	}
	defer done()
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		err = fmt.Errorf("read the answer to %s %s: %w", r.method, r.url, err)
		if r.notIdempotent { // it succeeded: another attempt would do it again
			return resp.StatusCode, permanent(err)
		}
		return resp.StatusCode, err
	}
	if out == nil {
		return resp.StatusCode, nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return resp.StatusCode, permanent(fmt.Errorf("decode the answer to %s %s: %w", r.method, r.url, err))
	}
	return resp.StatusCode, nil
}

// jsonRequest is an API call with a JSON body.
func jsonRequest(method, path string, v any) request {
	raw, err := json.Marshal(v)
	if err != nil {
		panic(err) // only the client's own types are marshalled
	}
	return request{method: method, url: path, size: int64(len(raw)),
		header: http.Header{"Content-Type": {"application/json"}},
		body:   func() io.Reader { return bytes.NewReader(raw) }}
}

func docPath(id string) string { return "/documents/" + url.PathEscape(id) }

// Stat returns a document's metadata.
func (c *Client) Stat(ctx context.Context, id string) (Document, error) {
	var d Document
	_, err := c.call(ctx, request{method: "GET", url: docPath(id)}, &d)
	if err != nil {
		return Document{}, fmt.Errorf("stat %s: %w", id, err)
	}
	return d, nil
}
