package localfront

import (
	"cmp"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/imagodocs/imago/internal/api"
	"github.com/imagodocs/imago/internal/apigw"
	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/localstaging"
)

// Receiver takes the presigned PUTs of an Area under Path and, as S3
// would, gives the upload function an ObjectCreated event for each object
// staged: after a single PUT, and (Completed) after an upload in parts was
// completed.
//
// It delivers events as S3 invokes a function asynchronously: an event
// belongs to no request. Each attempt runs on a context of its own,
// detached from the request that staged the object (a client that goes
// away cancels nothing) and bounded by Delivery.Timeout; a failed attempt
// is retried, with backoff, up to Delivery.Attempts in all, in the
// background. What all attempts failed to ingest stays staged for the
// reconciliation (docstore.Service.ReconcileLoop). The answer to the PUT
// (or to the completion) waits for the first attempt, for at most
// Delivery.Wait, so that a client usually knows the document is available
// once it returns; it is 200 (202) either way, as S3's is once the bytes
// are stored.
type Receiver struct {
	area     *localstaging.Area
	upload   Invoker
	log      *slog.Logger
	delivery Delivery

	// closing ends the deliveries (Close); running counts them.
	closing context.Context
	close   context.CancelFunc
	running sync.WaitGroup
}

// Delivery is how a Receiver delivers its events. Zero fields take the
// defaults (DefaultDelivery).
type Delivery struct {
	// Attempts is how many times an event is tried in all.
	Attempts int
	// Backoff is the wait before the first retry; it doubles after each.
	Backoff time.Duration
	// Timeout bounds each attempt.
	Timeout time.Duration
	// Wait is how long the answer to a PUT or a completion waits for the
	// first attempt.
	Wait time.Duration
}

// DefaultDelivery retries twice, as S3's asynchronous invocation does
// (sooner: the reconciliation takes over after a minute), bounds each
// attempt as Lambda bounds the upload function, and answers a PUT well
// within the time a client waits for one (the imago client: 15 minutes)
// even when the first attempt hangs.
var DefaultDelivery = Delivery{Attempts: 3, Backoff: 5 * time.Second, Timeout: docstore.IngestTimeout, Wait: 4 * time.Minute}

// NewReceiver returns the receiver of area's PUTs, announcing staged
// objects to upload as DefaultDelivery says, or as the one delivery given
// says (its zero fields taking the defaults'). Close ends its deliveries.
func NewReceiver(area *localstaging.Area, upload Invoker, log *slog.Logger, delivery ...Delivery) *Receiver {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var d Delivery
	if len(delivery) > 0 {
		d = delivery[0]
	}
	def := DefaultDelivery
	d.Attempts = cmp.Or(max(d.Attempts, 0), def.Attempts)
	d.Backoff = cmp.Or(max(d.Backoff, 0), def.Backoff)
	d.Timeout = cmp.Or(max(d.Timeout, 0), def.Timeout)
	d.Wait = cmp.Or(max(d.Wait, 0), def.Wait)
	closing, close := context.WithCancel(context.Background())
	return &Receiver{area: area, upload: upload, log: log, delivery: d, closing: closing, close: close}
}

// Close ends the deliveries under way (an attempt running is cancelled:
// what it staged stays for the next start's reconciliation) and waits for
// them.
func (rc *Receiver) Close() {
	rc.close()
	rc.running.Wait()
}

// Path is the URL path under which the receiver takes PUTs.
func (rc *Receiver) Path() string { return localstaging.Path }

// ServeHTTP takes one presigned PUT under Path: a part of an upload in
// parts (answered with its ETag) or a single upload (announced to the
// upload function before it is answered).
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		w.Header().Set("Allow", http.MethodPut)
		writeError(w, http.StatusMethodNotAllowed, api.CodeMethodNotAllowed, "method "+r.Method+" is not allowed on "+r.URL.Path)
		return
	}
	key, err := url.PathUnescape(strings.TrimPrefix(r.URL.EscapedPath(), localstaging.Path))
	if err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalid, "malformed key")
		return
	}
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalid, "the query string is not valid URL encoding")
		return
	}
	body := &clientBody{r: r.Body}
	if rc.area.IsPart(query) {
		// A part of an upload in parts: stored, answered with its ETag; the
		// event comes when the upload is completed.
		etag, err := rc.area.ReceivePart(key, query, body, r.ContentLength)
		if err != nil {
			rc.writeError(w, r, body, err)
			return
		}
		w.Header().Set("ETag", etag)
		w.WriteHeader(http.StatusOK)
		return
	}
	if err := rc.area.Receive(key, r.Header.Get("Content-Type"), query, body, r.ContentLength); err != nil {
		rc.writeError(w, r, body, err)
		return
	}
	// Stored: the PUT has succeeded, whatever becomes of the event.
	rc.deliver(r.Context(), "ObjectCreated:Put", key, r.ContentLength)
	w.WriteHeader(http.StatusOK)
}

// Completed plays S3's ObjectCreated:CompleteMultipartUpload event once the
// upload function has completed document id's upload in parts, which
// assembled its staged object. The event is delivered as every other is;
// the error is always nil (the completion has succeeded), and the call
// returns once the first attempt is over, or Delivery.Wait has passed, or
// ctx (the completion's request) has ended.
func (rc *Receiver) Completed(ctx context.Context, id docstore.ID) error {
	rc.deliver(ctx, "ObjectCreated:CompleteMultipartUpload", rc.area.Key(string(id)), 0)
	return nil
}

// deliver gives the upload function the event S3 sends for an object
// created in the staging area, in the background, retrying a failed
// attempt; it returns once the first attempt is over, or Delivery.Wait has
// passed, or req (the request that staged the object) has ended.
func (rc *Receiver) deliver(req context.Context, name, key string, size int64) {
	event := objectCreated(name, key, size)
	// The attempts keep req's values (its logging attributes), not its
	// cancellation: the event is not the request's.
	detached := context.WithoutCancel(req)
	first := make(chan struct{})
	rc.running.Add(1)
	go func() {
		defer rc.running.Done()
		backoff := rc.delivery.Backoff
		for attempt := 1; ; attempt++ {
			err := rc.attempt(detached, event)
			if attempt == 1 {
				close(first)
			}
			switch {
			case err == nil:
				return
			case rc.closing.Err() != nil:
				rc.log.WarnContext(detached, "S3 event not delivered before shutdown; the next start's reconciliation takes it", "key", key, "error", err.Error())
				return
			case attempt >= rc.delivery.Attempts:
				rc.log.ErrorContext(detached, "S3 event failed on every attempt; left to the reconciliation", "key", key, "attempts", attempt, "error", err.Error())
				return
			}
			rc.log.WarnContext(detached, "S3 event failed; retrying", "key", key, "attempt", attempt, "retry_in", backoff.String(), "error", err.Error())
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-rc.closing.Done():
				t.Stop()
				return
			}
			backoff *= 2
		}
	}()
	wait := time.NewTimer(rc.delivery.Wait)
	defer wait.Stop()
	select {
	case <-first:
	case <-wait.C:
	case <-req.Done():
	}
}

// attempt invokes the upload function once with event, bounded by
// Delivery.Timeout and ended by Close.
func (rc *Receiver) attempt(detached context.Context, event []byte) error {
	ctx, cancel := context.WithTimeout(detached, rc.delivery.Timeout)
	defer cancel()
	stop := context.AfterFunc(rc.closing, cancel)
	defer stop()
	_, err := rc.upload.Invoke(ctx, event)
	return err
}

// objectCreated is the S3 event of an object created in the staging area.
func objectCreated(name, key string, size int64) []byte {
	event, _ := json.Marshal(events.S3Event{Records: []events.S3EventRecord{{
		EventVersion: "2.1", EventSource: "aws:s3", AWSRegion: "local",
		EventTime: time.Now().UTC().Truncate(time.Second), EventName: name,
		S3: events.S3Entity{
			Bucket: events.S3Bucket{Name: "imago-local"},
			// S3 URL-encodes keys in events, with '+' for a space.
			Object: events.S3Object{Key: url.QueryEscape(key), Size: size},
		},
	}}})
	return event
}

// writeError answers a PUT that failed. A failure the client's body caused
// (cut short, connection gone) is the client's: 400, logged at info,
// whatever the area made of the short read.
func (rc *Receiver) writeError(w http.ResponseWriter, r *http.Request, body *clientBody, err error) {
	if body.err != nil {
		rc.log.InfoContext(r.Context(), "staging PUT body unreadable", "error", body.err.Error())
		writeError(w, http.StatusBadRequest, api.CodeInvalid, "the request body could not be read in full")
		return
	}
	kind := docstore.KindOf(err)
	if kind == docstore.KindInternal {
		rc.log.ErrorContext(r.Context(), "staging PUT failed", "error", err.Error())
	}
	status := apigw.Status(kind)
	if kind == docstore.KindUnauthenticated {
		status = http.StatusForbidden // as S3 answers a bad signature
	}
	writeError(w, status, kind.String(), docstore.PublicMessage(err))
}

// clientBody is a request body that remembers the first error reading it
// gave (io.ErrUnexpectedEOF for a body cut short, a network error for a
// lost connection), so that a failure it caused is answered as the
// client's, not the server's.
type clientBody struct {
	r   io.Reader
	err error
}

func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}
