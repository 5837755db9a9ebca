package client

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"net/url"
	"slices"
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

// What breaks an audit chain (AuditBreak.Problem).
const (
	// AuditChanged: the record's hash is not the hash of its contents.
	AuditChanged = "changed"
	// AuditRemovedBefore: the record's seq skips one or more after the
	// previous record of its chain: those were removed.
	AuditRemovedBefore = "removed before it"
	// AuditOutOfOrder: the record's prev is not the hash of the record
	// before it in its chain (or not empty for the first), or its seq is
	// not after that record's.
	AuditOutOfOrder = "out of order"
)

// AuditBreak is an audit trail that does not hold: Record is the first
// record, by chain then seq, whose hash, seq or prev is wrong.
type AuditBreak struct {
	Record  AuditRecord
	Problem string // AuditChanged, AuditRemovedBefore or AuditOutOfOrder
	Detail  string
}

func (e *AuditBreak) Error() string {
	return fmt.Sprintf("audit record %s (chain %s, seq %d) %s: %s", e.Record.ID, e.Record.Chain, e.Record.Seq, e.Problem, e.Detail)
}

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

// CheckAuditChains checks that records, in any order, form intact chains:
// grouped by Chain and sorted by Seq, each record's Hash is
// api.AuditHash of it, Seq runs 1, 2, 3… with no gap, and each Prev is the
// Hash of the record before it ("" for the first). It returns an
// *AuditBreak naming the first record, by chain id then seq, that breaks
// this.
//
// What chains cannot show: the removal of a chain's last records (nothing
// after them points back), or of a whole chain. A record changed and its
// hash computed again is found at the next record of its chain, whose prev
// no longer matches — unless it was the last.
func CheckAuditChains(records []AuditRecord) (AuditSummary, error) {
	chains := map[string][]AuditRecord{}
	for _, r := range records {
		chains[r.Chain] = append(chains[r.Chain], r)
	}
	ids := make([]string, 0, len(chains))
	for id := range chains {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		chain := chains[id]
		// Ties (two records claiming one seq) go by id, so that which one
		// is named does not depend on the order the server listed them.
		slices.SortFunc(chain, func(a, b AuditRecord) int {
			return cmp.Or(cmp.Compare(a.Seq, b.Seq), cmp.Compare(a.ID, b.ID))
		})
		var prevSeq int64
		prevHash := ""
		for _, r := range chain {
			fail := func(problem, detail string) error {
				return &AuditBreak{Record: r, Problem: problem, Detail: detail}
			}
			switch {
			case api.AuditHash(r) != r.Hash:
				return AuditSummary{}, fail(AuditChanged, "its hash is not the hash of its contents")
			case r.Seq > prevSeq+1 && prevSeq == 0:
				return AuditSummary{}, fail(AuditRemovedBefore, fmt.Sprintf("its chain begins at seq %d, not 1", r.Seq))
			case r.Seq > prevSeq+1:
				return AuditSummary{}, fail(AuditRemovedBefore, fmt.Sprintf("seq %d follows seq %d", r.Seq, prevSeq))
			case r.Seq < prevSeq+1 && prevSeq == 0:
				return AuditSummary{}, fail(AuditOutOfOrder, fmt.Sprintf("seq %d is not a place in a chain", r.Seq))
			case r.Seq < prevSeq+1:
				return AuditSummary{}, fail(AuditOutOfOrder, fmt.Sprintf("a second record at seq %d", r.Seq))
			case r.Prev != prevHash && prevSeq == 0:
				return AuditSummary{}, fail(AuditOutOfOrder, "the first record of its chain has a prev")
			case r.Prev != prevHash:
				return AuditSummary{}, fail(AuditOutOfOrder, fmt.Sprintf("its prev is not the hash of seq %d", prevSeq))
			}
			prevSeq, prevHash = r.Seq, r.Hash
		}
	}
	return AuditSummary{Records: len(records), Chains: len(chains)}, nil
}

// IsAuditBreak tells whether err says the audit trail does not hold.
func IsAuditBreak(err error) bool {
	var b *AuditBreak
	return errors.As(err, &b)
}
