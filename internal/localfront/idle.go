package localfront

import (
	"io"
	"net/http"
	"time"
)

// idleChunk is the most one write sends under one deadline: a large body
// written at once gets a fresh deadline every idleChunk bytes, so that a
// slow client is cut only when a whole chunk did not move for the idle
// time, not because the body is long.
const idleChunk = 64 << 10

// WithIdleTimeout bounds the transfer of h's request and response bodies
// by progress rather than by total time: a read of the request body, or a
// write of idleChunk bytes of the response, that moves nothing for idle
// fails, and the connection with it. A server-wide ReadTimeout or
// WriteTimeout would instead cut any transfer that outlasts it, however
// steadily it moves: a 5 GiB part takes hours on a slow link.
//
// Only the body's reads have a read deadline, never the time between
// them: once the body is read the server waits on the connection in the
// background, and a deadline there would cancel the request's context
// while its handler still works (an ingest of a large upload).
func WithIdleTimeout(h http.Handler, idle time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		iw := &idleWriter{ResponseWriter: w, rc: rc, idle: idle}
		// A shallow copy with the wrapped body: the server keeps its own
		// request, whose body type tells it how much is left unread.
		r2 := r.WithContext(r.Context())
		if r.Body != nil && r.Body != http.NoBody {
			r2.Body = &idleBody{ReadCloser: r.Body, rc: rc, idle: idle}
		}
		rc.SetWriteDeadline(time.Now().Add(idle)) // an answer of headers only
		h.ServeHTTP(iw, r2)
		// The server flushes what is buffered once h returns, however long
		// h took after its last write.
		rc.SetWriteDeadline(time.Now().Add(idle))
	})
}

// idleBody gives each read of the request body idle to move a byte.
type idleBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.rc.SetReadDeadline(time.Now().Add(b.idle))
	n, err := b.ReadCloser.Read(p)
	if err == nil || err == io.EOF {
		b.rc.SetReadDeadline(time.Time{})
	}
	// Else the deadline stays, passed or not: the server, which reads
	// what the handler left of the body before it answers, must not wait
	// on the connection of a body that failed.
	return n, err
}

// idleWriter gives each idleChunk of the response idle to go out.
type idleWriter struct {
	http.ResponseWriter
	rc   *http.ResponseController
	idle time.Duration
}

func (w *idleWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), idleChunk)]
		w.rc.SetWriteDeadline(time.Now().Add(w.idle))
		n, err := w.ResponseWriter.Write(chunk)
		written += n
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *idleWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
