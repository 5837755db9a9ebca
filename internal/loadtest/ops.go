package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/imagodocs/imago/internal/api"
)

// client is one concurrent caller, always of the same tenant.
type client struct {
	*run
	tenant int
	rng    *rand.Rand
}

// liveCap bounds how many documents a tenant keeps: past it, uploads turn
// into deletes, so that reads keep landing on documents that are hot.
const liveCap = 400

// step runs one operation, picked at random.
func (c *client) step(ctx context.Context) {
	live := c.reg.liveCount(c.tenant)
	p := c.rng.IntN(100)
	if live < 4 {
		p = c.rng.IntN(30) // too few documents to read: upload
	} else if live > liveCap && p < 32 {
		p = 80 // too many: delete instead
	}
	switch {
	case p < 14:
		c.uploadRaw(ctx)
	case p < 24:
		c.uploadForm(ctx)
	case p < 30:
		c.uploadIdempotent(ctx)
	case p < 32:
		c.uploadPresignedOrRaw(ctx)
	case p < 54:
		c.downloadWhole(ctx)
	case p < 66:
		c.downloadRange(ctx)
	case p < 71:
		c.readMetadata(ctx)
	case p < 77:
		c.list(ctx)
	case p < 87:
		c.deleteOne(ctx)
	case p < 93:
		c.crossTenant(ctx)
	default:
		c.readDeleted(ctx)
	}
}

// The kinds of operation, for a run of Options.Rounds.
var (
	uploadOps = []func(*client, context.Context){(*client).uploadRaw, (*client).uploadForm, (*client).uploadIdempotent, (*client).uploadPresignedOrRaw}
	otherOps  = []func(*client, context.Context){(*client).downloadWhole, (*client).downloadRange, (*client).readMetadata,
		(*client).list, (*client).deleteOne, (*client).crossTenant, (*client).readDeleted}
)

// answer is one HTTP exchange's outcome.
type answer struct {
	status int
	header http.Header
	body   []byte
	err    error
	start  time.Time
}

// request describes one HTTP request.
type request struct {
	op     string
	method string
	target string // a path of the API, or an absolute (presigned) URL
	tenant int    // whose token goes with it; -1 for none
	body   []byte
	header map[string]string
}

func (c *client) do(ctx context.Context, rq request) answer {
	target := rq.target
	if strings.HasPrefix(target, "/") {
		target = c.opt.URL + target
	}
	var body io.Reader
	if rq.body != nil {
		body = bytes.NewReader(rq.body)
	}
	a := answer{start: time.Now()}
	req, err := http.NewRequestWithContext(ctx, rq.method, target, body)
	if err != nil {
		a.err = err
		return a
	}
	if rq.tenant >= 0 {
		req.Header.Set("Authorization", "Bearer "+c.opt.Tokens[rq.tenant])
	}
	for k, v := range rq.header {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err == nil {
		a.body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		a.status, a.header = resp.StatusCode, resp.Header
	}
	a.err = err
	c.record(rq.op, time.Since(a.start))
	return a
}

// expect reports an error unless the answer has one of the statuses;
// errors that are not the API's JSON error shape are errors too.
func (c *client) expect(rq request, a answer, statuses ...int) bool {
	if a.err != nil {
		c.report(kindError, "%s %s: %v", rq.method, rq.target, a.err)
		return false
	}
	for _, s := range statuses {
		if a.status == s {
			if s >= 400 && !isJSONError(a.body) {
				c.report(kindError, "%s %s: %d answer is not the JSON error shape: %.200q", rq.method, rq.target, a.status, a.body)
				return false
			}
			return true
		}
	}
	c.report(kindError, "%s %s: status %d, want %v: %.300s", rq.method, rq.target, a.status, statuses, a.body)
	return false
}

func isJSONError(body []byte) bool {
	var e api.ErrorBody
	return json.Unmarshal(body, &e) == nil && e.Error.Code != "" && e.Error.Message != ""
}

// diff says how got differs from what d was uploaded as ("" if not).
func (d *doc) diff(got api.Document) string {
	var out []string
	check := func(field string, g, w any) {
		if g != w {
			out = append(out, fmt.Sprintf("%s %v, want %v", field, g, w))
		}
	}
	check("id", got.ID, d.id)
	check("size", got.Size, d.size)
	check("sha256", got.SHA256, d.sha256)
	check("filename", got.Filename, d.filename)
	check("content_type", got.ContentType, d.contentType)
	check("status", got.Status, api.StatusAvailable)
	if !maps.Equal(got.Metadata, d.metadata) && !(len(got.Metadata) == 0 && len(d.metadata) == 0) {
		out = append(out, fmt.Sprintf("metadata %v, want %v", got.Metadata, d.metadata))
	}
	if got.CreatedAt.IsZero() {
		out = append(out, "no created_at")
	}
	return strings.Join(out, "; ")
}
