package loadtest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/imagodocs/imago/internal/api"
)

// listingLag is how long a listing may lag behind the record it lists: it
// is read from the tenant index, which DynamoDB updates after the table
// (within a second, normally; DynamoDB Local and bbolt at once).
const listingLag = 2 * time.Second

// list walks up to three pages of the tenant's listing: every document
// must be the tenant's own, none may have been deleted before the walk
// began, each known one must carry its acknowledged metadata, and the
// pages must be newest first with no document twice.
func (c *client) list(ctx context.Context) {
	limit := 1 + c.rng.IntN(60)
	seen := map[string]bool{}
	var last time.Time
	cursor := ""
	walkStart := time.Now()
	for range 3 {
		target := "/documents?limit=" + strconv.Itoa(limit)
		if cursor != "" {
			target += "&cursor=" + url.QueryEscape(cursor)
		}
		rq := request{op: "list", method: "GET", target: target, tenant: c.tenant}
		pageSent := time.Now()
		a := c.do(ctx, rq)
		if !c.expect(rq, a, http.StatusOK) {
			return
		}
		var page api.Page
		if err := json.Unmarshal(a.body, &page); err != nil || page.Documents == nil {
			c.report(kindError, "list: unparsable page: %.200q", a.body)
			return
		}
		if len(page.Documents) > limit {
			c.report(kindMismatch, "list: %d documents on a page of limit %d", len(page.Documents), limit)
		}
		for _, m := range page.Documents {
			if seen[m.ID] {
				c.report(kindMismatch, "list: document %s twice in one walk (limit %d)", m.ID, limit)
			}
			seen[m.ID] = true
			if !last.IsZero() && m.CreatedAt.After(last) {
				c.report(kindMismatch, "list: %s (created %v) after an older document (%v): not newest first", m.ID, m.CreatedAt, last)
			}
			last = m.CreatedAt
			if other, _, _ := c.reg.known(1-c.tenant, m.ID); other != nil {
				c.report(kindMismatch, "list: another tenant's document %s in the listing", m.ID)
				continue
			}
			d, _, deleted := c.reg.known(c.tenant, m.ID)
			if d == nil {
				continue // not yet registered (an upload in flight) or from another run
			}
			if !deleted.IsZero() && deleted.Before(walkStart) {
				c.report(kindMismatch, "list: %s listed after its DELETE answered 204", m.ID)
				continue
			}
			if m.Status == "pending" && c.reg.addedSince(d, pageSent.Add(-listingLag)) {
				// Listings hold pending documents too: this one's upload
				// was acknowledged while the page was read (or so shortly
				// before that the listing's index had not caught up).
				continue
			}
			if diff := d.diff(m); diff != "" {
				c.report(kindMismatch, "list: %s: %s", m.ID, diff)
			}
		}
		if page.NextCursor == "" {
			return
		}
		cursor = page.NextCursor
	}
}

// deleteOne deletes one of the tenant's documents; right after the 204,
// its metadata and content must be 404.
func (c *client) deleteOne(ctx context.Context) {
	d := c.reg.claimForDelete(c.rng, c.tenant)
	if d == nil {
		return
	}
	rq := request{op: "delete", method: "DELETE", target: "/documents/" + d.id, tenant: c.tenant}
	a := c.do(ctx, rq)
	switch {
	case a.err != nil:
		// The outcome is unknown: the document stays claimed, so that a
		// later 404 is not counted lost.
		c.report(kindError, "DELETE %s: %v", d.id, a.err)
		return
	case a.status == http.StatusNotFound:
		c.report(kindLost, "DELETE %s: 404 for an acknowledged document never deleted", d.id)
		return
	case !c.expect(rq, a, http.StatusNoContent):
		if a.status < 500 {
			c.reg.unclaim(d)
		}
		return
	}
	c.reg.markDeleted(d)
	c.checkGone(ctx, d, "after delete")
}

// checkGone reads a deleted document's metadata and content: both must be
// 404, never a cache hit.
func (c *client) checkGone(ctx context.Context, d *doc, when string) {
	for _, target := range []string{"/documents/" + d.id, "/documents/" + d.id + "/content"} {
		rq := request{op: "read-deleted", method: "GET", target: target, tenant: d.tenant}
		a := c.do(ctx, rq)
		if a.err == nil && a.status != http.StatusNotFound && a.status < 500 {
			_, deletedAt := c.reg.deleteState(d)
			c.report(kindMismatch, "GET %s %s: %d (X-Imago-Cache %q), want 404; its DELETE answered 204 %v before this read",
				target, when, a.status, a.header.Get("X-Imago-Cache"), a.start.Sub(deletedAt).Round(time.Millisecond))
			continue
		}
		c.expect(rq, a, http.StatusNotFound)
	}
}

func (c *client) readDeleted(ctx context.Context) {
	if d := c.reg.pickDeleted(c.rng, c.tenant); d != nil {
		c.checkGone(ctx, d, "of a deleted document")
	}
}

// crossTenant reads, and sometimes tries to delete, a document of the
// other tenant: every answer must be 404, and the document must survive.
func (c *client) crossTenant(ctx context.Context) {
	d := c.reg.pickLive(c.rng, 1-c.tenant)
	if d == nil {
		return
	}
	targets := []string{"/documents/" + d.id, "/documents/" + d.id + "/content"}
	method := "GET"
	if c.rng.IntN(5) == 0 {
		method, targets = "DELETE", targets[:1]
	}
	for _, target := range targets {
		rq := request{op: "cross-tenant", method: method, target: target, tenant: c.tenant}
		a := c.do(ctx, rq)
		if a.err == nil && a.status < 300 {
			c.report(kindMismatch, "%s %s with the other tenant's token: %d, want 404", method, target, a.status)
			continue
		}
		c.expect(rq, a, http.StatusNotFound)
	}
}
