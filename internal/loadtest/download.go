package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/imagodocs/imago/internal/api"
)

// readable interprets an answer to a read of d, a document of this
// driver's own: 404 is a lost document unless a DELETE of it was sent, and
// a document served after its DELETE answered is a mismatch. It reports
// whether the caller should go on and check the answer's content.
func (c *client) readable(rq request, a answer, d *doc, ok ...int) bool {
	sent, deleted := c.reg.deleteState(d)
	if a.err == nil && a.status == http.StatusNotFound {
		if sent.IsZero() {
			c.report(kindLost, "%s %s: 404 for an acknowledged document never deleted", rq.op, d.id)
			return false
		}
		c.expect(rq, a, http.StatusNotFound) // the delete won; the error must still be JSON
		return false
	}
	if !sent.IsZero() && a.err == nil && !slices.Contains(ok, a.status) {
		// Say so: a read racing a DELETE may answer 404, nothing else.
		c.report(kindError, "%s %s %s: status %d while a DELETE of it was in flight (sent %v before this read's answer), want %v or 404: %.300s",
			rq.method, rq.target, rq.header["Range"], a.status, time.Since(sent).Round(time.Millisecond), ok, a.body)
		return false
	}
	if !c.expect(rq, a, ok...) {
		return false
	}
	if !deleted.IsZero() && deleted.Before(a.start) {
		c.report(kindMismatch, "%s %s: %d (X-Imago-Cache %q) for a document whose DELETE had answered 204",
			rq.op, d.id, a.status, a.header.Get("X-Imago-Cache"))
		return false
	}
	return true
}

func (c *client) downloadWhole(ctx context.Context) {
	d := c.reg.pickLive(c.rng, c.tenant)
	if d == nil {
		return
	}
	rq := request{op: "download", method: "GET", target: "/documents/" + d.id + "/content", tenant: c.tenant}
	etag := `"` + d.sha256 + `"`
	conditional := c.rng.IntN(8) == 0
	if conditional {
		rq.op, rq.header = "download-conditional", map[string]string{"If-None-Match": etag}
	}
	if d.size > c.opt.MaxInlineBytes {
		// Too large for one response: 413 naming the limit (or 304, which
		// carries no body).
		c.readable(rq, c.do(ctx, rq), d, http.StatusRequestEntityTooLarge, http.StatusNotModified)
		return
	}
	a := c.do(ctx, rq)
	if conditional {
		c.readable(rq, a, d, http.StatusNotModified)
		return
	}
	if !c.readable(rq, a, d, http.StatusOK) {
		return
	}
	want := content(d.seed, d.size)
	if !bytes.Equal(a.body, want) {
		c.report(kindMismatch, "download %s: %d bytes (sha256 %s), want %d (sha256 %s), X-Imago-Cache %q",
			d.id, len(a.body), hexSHA256(a.body), d.size, d.sha256, a.header.Get("X-Imago-Cache"))
		return
	}
	c.checkContentHeaders(rq, a, d, d.size)
}

func (c *client) checkContentHeaders(rq request, a answer, d *doc, length int64) {
	var bad []string
	if got := a.header.Get("ETag"); got != `"`+d.sha256+`"` {
		bad = append(bad, "ETag "+got)
	}
	if got := a.header.Get("Content-Length"); got != strconv.FormatInt(length, 10) {
		bad = append(bad, "Content-Length "+got)
	}
	if got := a.header.Get("X-Imago-Cache"); got != "hit" && got != "miss" {
		bad = append(bad, "X-Imago-Cache "+got)
	}
	if got := a.header.Get("Content-Type"); got != d.contentType {
		bad = append(bad, "Content-Type "+got)
	}
	if len(bad) > 0 {
		c.report(kindMismatch, "%s %s: headers: %s", rq.op, d.id, strings.Join(bad, ", "))
	}
}

func (c *client) downloadRange(ctx context.Context) {
	d := c.reg.pickLive(c.rng, c.tenant)
	if d == nil {
		return
	}
	start := c.rng.Int64N(d.size)
	maxRange := min(c.opt.MaxInlineBytes, 1<<20)
	length := 1 + c.rng.Int64N(min(d.size-start, maxRange))
	spec := fmt.Sprintf("bytes=%d-%d", start, start+length-1)
	if c.rng.IntN(6) == 0 { // a suffix range: the last bytes
		length = min(d.size, 1+c.rng.Int64N(min(maxRange, 128<<10)))
		start = d.size - length
		spec = fmt.Sprintf("bytes=-%d", length)
	}
	rq := request{op: "download-range", method: "GET", target: "/documents/" + d.id + "/content", tenant: c.tenant,
		header: map[string]string{"Range": spec}}
	a := c.do(ctx, rq)
	if !c.readable(rq, a, d, http.StatusPartialContent) {
		return
	}
	want := content(d.seed, d.size)[start : start+length]
	if !bytes.Equal(a.body, want) {
		c.report(kindMismatch, "range %s of %s (size %d): %d bytes that differ, X-Imago-Cache %q",
			spec, d.id, d.size, len(a.body), a.header.Get("X-Imago-Cache"))
		return
	}
	if got, want := a.header.Get("Content-Range"), fmt.Sprintf("bytes %d-%d/%d", start, start+length-1, d.size); got != want {
		c.report(kindMismatch, "range %s of %s: Content-Range %q, want %q", spec, d.id, got, want)
	}
	c.checkContentHeaders(rq, a, d, length)
}

func (c *client) readMetadata(ctx context.Context) {
	d := c.reg.pickLive(c.rng, c.tenant)
	if d == nil {
		return
	}
	rq := request{op: "metadata", method: "GET", target: "/documents/" + d.id, tenant: c.tenant}
	a := c.do(ctx, rq)
	if !c.readable(rq, a, d, http.StatusOK) {
		return
	}
	c.checkMetadata(rq, a, d)
}

func (c *client) checkMetadata(rq request, a answer, d *doc) {
	var got api.Document
	if err := json.Unmarshal(a.body, &got); err != nil {
		c.report(kindError, "%s %s: unparsable metadata: %.200q", rq.op, d.id, a.body)
		return
	}
	if diff := d.diff(got); diff != "" {
		c.report(kindMismatch, "%s %s: %s", rq.op, d.id, diff)
	}
}
