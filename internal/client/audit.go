package client

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/url"
	"strconv"
	"time"

	"github.com/imagodocs/imago/internal/api"
)

// AuditRecord is one record of the caller's audit trail (docs/design.md,
// "Audit trail").
type AuditRecord = api.AuditRecord

// AuditPage is one page of audit records, newest first; its NextCursor is
// empty on the last page.
type AuditPage = api.AuditPage

// AuditQuery selects audit records of the caller's tenant. The zero value
// selects all of them, from the newest.
type AuditQuery struct {
	Document string    // a document's id; empty: every record
	Action   string    // one action (api.AuditActions); empty: every one
	Since    time.Time // inclusive; zero: from the first
	Until    time.Time // exclusive; zero: up to now
	// Limit is how many records one page holds (Audit; 0: the server's
	// default, at most api.MaxAuditLimit), or how many AuditRecords yields
	// in all (0: every one).
	Limit int
	// Cursor is where the records begin: a page's NextCursor (empty: the
	// newest).
	Cursor string
}

// maxAuditPage is the API's largest page of audit records.
const maxAuditPage = api.MaxAuditLimit

// Audit returns one page of the caller's audit records that q selects,
// newest first. GET /audit changes nothing, so it is retried as any call.
func (c *Client) Audit(ctx context.Context, q AuditQuery) (AuditPage, error) {
	v := url.Values{}
	if q.Document != "" {
		v.Set("document", q.Document)
	}
	if q.Action != "" {
		v.Set("action", q.Action)
	}
	// Sent in UTC at full precision: the server compares instants, and a
	// time rounded to the second would move an inclusive bound.
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339Nano))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(min(q.Limit, maxAuditPage)))
	}
	if q.Cursor != "" {
		v.Set("cursor", q.Cursor)
	}
	path := "/audit"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var p AuditPage
	if _, err := c.call(ctx, request{method: "GET", url: path}, &p); err != nil {
		return AuditPage{}, fmt.Errorf("audit: %w", err)
	}
	return p, nil
}

// AuditRecords yields the caller's audit records that q selects, newest
// first, up to q.Limit of them (every one when it is 0), from q.Cursor on,
// fetching pages as it goes. It stops at the first error, which it yields.
func (c *Client) AuditRecords(ctx context.Context, q AuditQuery) iter.Seq2[AuditRecord, error] {
	return func(yield func(AuditRecord, error) bool) {
		limit, seen := q.Limit, 0
		for {
			page := q
			page.Limit = maxAuditPage
			if limit > 0 {
				page.Limit = min(limit-seen, maxAuditPage)
			}
			p, err := c.Audit(ctx, page)
			if err != nil {
				yield(AuditRecord{}, err)
				return
			}
			for _, r := range p.Records {
				if limit > 0 && seen >= limit {
					return
				}
				seen++
				if !yield(r, nil) {
					return
				}
			}
			switch {
			case p.NextCursor == "" || (limit > 0 && seen >= limit):
				return
			case p.NextCursor == q.Cursor:
				// Following it would fetch the same page forever.
				yield(AuditRecord{}, fmt.Errorf("audit: the server answered the cursor it was given as the next one"))
				return
			}
			q.Cursor = p.NextCursor
		}
	}
}

// What breaks an audit chain (AuditBreak.Why).
// What a check of the chains finds wrong with a record.
const (
	AuditChanged       = api.AuditChanged
	AuditRemovedBefore = api.AuditRemovedBefore
	AuditOutOfOrder    = api.AuditOutOfOrder
)

// AuditBreak is an audit trail that does not hold: Record is the first
// record, by chain then seq, whose hash, seq or prev is wrong; Why says
// what (AuditChanged, AuditRemovedBefore, AuditOutOfOrder).
type AuditBreak = api.AuditBreak

// AuditSummary is what VerifyAudit checked.
type AuditSummary struct {
	Records, Chains int
}

// VerifyAudit fetches every audit record of the caller's tenant and checks
// its chains (CheckAuditChains). A broken chain is an *AuditBreak.
func (c *Client) VerifyAudit(ctx context.Context) (AuditSummary, error) {
	var recs []AuditRecord
	for r, err := range c.AuditRecords(ctx, AuditQuery{}) {
		if err != nil {
			return AuditSummary{}, err
		}
		recs = append(recs, r)
	}
	return CheckAuditChains(recs)
}

// CheckAuditChains checks that records, in any order, form intact chains
// (api.VerifyAudit, the one check the server's tests use too), and says
// how many records and chains it checked. A broken chain is an
// *AuditBreak naming the first record, by chain id then seq, that breaks.
// What chains cannot show: the removal of a chain's last records, or of a
// whole chain.
func CheckAuditChains(records []AuditRecord) (AuditSummary, error) {
	if b := api.VerifyAudit(records); b != nil {
		return AuditSummary{}, b
	}
	chains := map[string]bool{}
	for _, r := range records {
		chains[r.Chain] = true
	}
	return AuditSummary{Records: len(records), Chains: len(chains)}, nil
}

// IsAuditBreak tells whether err says the audit trail does not hold.
func IsAuditBreak(err error) bool {
	var b *AuditBreak
	return errors.As(err, &b)
}
