package localstaging

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/imagodocs/imago/internal/apigw"
	"github.com/imagodocs/imago/internal/docstore"
)

// Invoker is the upload function: event JSON in, response JSON out.
type Invoker interface {
	Invoke(ctx context.Context, payload []byte) ([]byte, error)
}

// Receiver takes the presigned PUTs of an Area under Path and, as S3
// would, gives the upload function an ObjectCreated event for each object
// staged: after a single PUT, and (Completed) after an upload in parts was
// completed. The ingest runs before the PUT is answered, so a client knows
// the document is available once it returns.
type Receiver struct {
	area   *Area
	upload Invoker
	log    *slog.Logger
}

// NewReceiver returns the receiver of area's PUTs, announcing staged
// objects to upload.
func NewReceiver(area *Area, upload Invoker, log *slog.Logger) *Receiver {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Receiver{area: area, upload: upload, log: log}
}

// Path is the URL path under which the receiver takes PUTs.
func (rc *Receiver) Path() string { return Path }

// ServeHTTP takes one presigned PUT under Path: a part of an upload in
// parts (answered with its ETag) or a single upload (announced to the
// upload function before it is answered).
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		w.Header().Set("Allow", http.MethodPut)
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "method "+r.Method+" is not allowed on "+r.URL.Path)
		return
	}
	key, err := url.PathUnescape(strings.TrimPrefix(r.URL.EscapedPath(), Path))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid", "malformed key")
		return
	}
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid", "the query string is not valid URL encoding")
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
	if err := rc.announce(r.Context(), "ObjectCreated:Put", key, r.ContentLength); err != nil {
		rc.log.ErrorContext(r.Context(), "S3 event failed", "error", err.Error())
		writeError(w, http.StatusInternalServerError, "internal", "the upload function failed on the event")
		// Nothing redelivers the event here: the client retries its PUT,
		// which stages the bytes again. Staged plaintext does not outlive
		// a failed ingest.
		if err := rc.area.Delete(context.WithoutCancel(r.Context()), key); err != nil {
			rc.log.ErrorContext(r.Context(), "delete the staged object of a failed ingest", "error", err.Error())
		}
		return
	}
	w.WriteHeader(http.StatusOK)
}

// Completed plays S3's ObjectCreated:CompleteMultipartUpload event once the
// upload function has completed document id's upload in parts, which
// assembled its staged object: the upload function's error, if any, is
// the ingest's.
func (rc *Receiver) Completed(ctx context.Context, id docstore.ID) error {
	return rc.announce(ctx, "ObjectCreated:CompleteMultipartUpload", rc.area.Key(string(id)), 0)
}

// announce gives the upload function the event S3 sends for an object
// created in the staging area.
func (rc *Receiver) announce(ctx context.Context, name, key string, size int64) error {
	_, err := rc.upload.Invoke(ctx, objectCreated(name, key, size))
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
		writeError(w, http.StatusBadRequest, "invalid", "the request body could not be read in full")
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

// writeError writes the API's JSON error shape, as the local front does.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	b, _ := json.Marshal(docstore.NewErrorBody(code, msg))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}
