package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/api"
)

// auditChain makes n records of chain, each hashed and chained as the
// server chains them, the first at t0 and one a second apart, in seq order.
func auditChain(chain string, n int, t0 time.Time) []AuditRecord {
	recs := make([]AuditRecord, n)
	prev := ""
	for i := range recs {
		r := AuditRecord{ID: fmt.Sprintf("%s-%04d", chain, i+1), Time: t0.Add(time.Duration(i) * time.Second).UTC().Format(api.AuditTimeLayout),
			Tenant: "local", Actor: "alice", Action: api.ActionRead, DocumentID: "doc-" + chain, Status: 200,
			Chain: chain, Seq: int64(i + 1), Prev: prev}
		r.Hash = api.AuditHash(r)
		recs[i], prev = r, r.Hash
	}
	return recs
}

// newestFirst orders records as GET /audit lists them.
func newestFirst(recs []AuditRecord) []AuditRecord {
	out := slices.Clone(recs)
	slices.SortStableFunc(out, func(a, b AuditRecord) int { return strings.Compare(b.Time+b.ID, a.Time+a.ID) })
	return out
}

func TestAuditSendsTheQuery(t *testing.T) {
	f := newFakeAPI(t)
	c := testClient(t, f, Options{})
	ctx := context.Background()
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	f.setAudit(newestFirst(auditChain("a", 5, t0)))

	p, err := c.Audit(ctx, AuditQuery{})
	if err != nil || len(p.Records) != 5 || p.Records[0].Seq != 5 || p.NextCursor != "" {
		t.Fatalf("a page with no query: %v %+v", err, p)
	}
	// Since excludes seq 1; seq 5 was the first the cursor skipped.
	since := time.Date(2026, 12, 1, 11, 0, 0, 500_000_000, time.FixedZone("CET", 3600))
	until := t0.Add(5 * time.Second)
	p, err = c.Audit(ctx, AuditQuery{Document: "doc-a", Action: api.ActionRead, Since: since, Until: until, Limit: 2, Cursor: "c1"})
	if err != nil || len(p.Records) != 2 || p.Records[0].Seq != 4 || p.Records[1].Seq != 3 || p.NextCursor != "c3" {
		t.Fatalf("a filtered page: %v %+v", err, p)
	}
	if _, err := c.Audit(ctx, AuditQuery{Limit: 5000}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"",
		"action=read&cursor=c1&document=doc-a&limit=2&since=2026-12-01T10%3A00%3A00.5Z&until=2026-12-01T10%3A00%3A05Z",
		"limit=1000", // the API's largest page
	}
	if got := f.auditQueries(); !slices.Equal(got, want) {
		t.Fatalf("queries sent:\n%q\nwant\n%q", got, want)
	}
}

func TestAuditIsRetriedButNotAfterA400(t *testing.T) {
	recordSleeps(t)
	f := newFakeAPI(t)
	c := testClient(t, f, Options{})
	f.setAudit(auditChain("a", 1, time.Now()))
	f.setHook(failTimes(2, http.StatusServiceUnavailable, "1", func(r *http.Request) bool { return r.URL.Path == "/audit" }))
	if p, err := c.Audit(context.Background(), AuditQuery{}); err != nil || len(p.Records) != 1 {
		t.Fatalf("after two 503s: %v %+v", err, p)
	}
	if n := f.count("GET /audit"); n != 3 {
		t.Fatalf("GET /audit sent %d times, want 3", n)
	}
	f.setHook(nil)
	_, err := c.Audit(context.Background(), AuditQuery{Cursor: "forged"})
	if !isStatus(err, http.StatusBadRequest) || !strings.Contains(err.Error(), "bad cursor") {
		t.Fatalf("a forged cursor: %v", err)
	}
	if n := f.count("GET /audit"); n != 4 {
		t.Fatalf("GET /audit sent %d times, want 4: a 400 is not retried", n)
	}
}

func TestAuditRecordsFollowsThePages(t *testing.T) {
	f := newFakeAPI(t)
	c := testClient(t, f, Options{})
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	all := newestFirst(append(auditChain("a", 1200, t0), auditChain("b", 1100, t0.Add(time.Millisecond))...))
	f.setAudit(all)

	collect := func(q AuditQuery) []AuditRecord {
		t.Helper()
		var got []AuditRecord
		for r, err := range c.AuditRecords(context.Background(), q) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, r)
		}
		return got
	}
	if got := collect(AuditQuery{}); !slices.EqualFunc(got, all, func(a, b AuditRecord) bool { return a.ID == b.ID }) {
		t.Fatalf("every record: got %d, want %d in the server's order", len(got), len(all))
	}
	if got := collect(AuditQuery{Limit: 1500, Action: api.ActionRead}); len(got) != 1500 || got[1499].ID != all[1499].ID {
		t.Fatalf("up to 1500: got %d", len(got))
	}
	want := []string{"limit=1000", "cursor=c1000&limit=1000", "cursor=c2000&limit=1000",
		"action=read&limit=1000", "action=read&cursor=c1000&limit=500"}
	if got := f.auditQueries(); !slices.Equal(got, want) {
		t.Fatalf("queries sent:\n%q\nwant\n%q", got, want)
	}
}

// TestAuditRecordsStopsAtACursorThatDoesNotMove: a server answering the
// cursor it got is an error, not a loop.
func TestAuditRecordsStopsAtACursorThatDoesNotMove(t *testing.T) {
	f := newFakeAPI(t)
	c := testClient(t, f, Options{})
	f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		writeJSONAnswer(w, 200, AuditPage{Records: auditChain("a", 1, time.Now()), NextCursor: "same"})
		return true
	})
	n, failed := 0, false
	for _, err := range c.AuditRecords(context.Background(), AuditQuery{}) {
		if err != nil {
			failed = true
			break
		}
		n++
	}
	if !failed || n != 2 || f.count("GET /audit") != 2 {
		t.Fatalf("%d records, failed %v, %d GETs; want 2, an error, 2", n, failed, f.count("GET /audit"))
	}
}

func TestVerifyAuditFetchesEveryPage(t *testing.T) {
	f := newFakeAPI(t)
	c := testClient(t, f, Options{})
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	recs := append(auditChain("a", 1500, t0), auditChain("b", 3, t0)...)
	f.setAudit(newestFirst(recs))
	sum, err := c.VerifyAudit(context.Background())
	if err != nil || sum != (AuditSummary{Records: 1503, Chains: 2}) {
		t.Fatalf("verify: %v %+v", err, sum)
	}
	// The oldest record, on the second page, changed.
	recs[0].Status = 404
	f.setAudit(newestFirst(recs))
	_, err = c.VerifyAudit(context.Background())
	var b *AuditBreak
	if !errors.As(err, &b) || b.Record.ID != "a-0001" || b.Why != AuditChanged || !IsAuditBreak(err) {
		t.Fatalf("verify with the oldest record changed: %v", err)
	}
	f.setHook(failTimes(8, http.StatusServiceUnavailable, "", func(r *http.Request) bool { return true }))
	recordSleeps(t)
	if _, err := c.VerifyAudit(context.Background()); err == nil || IsAuditBreak(err) {
		t.Fatalf("verify of a server that fails: %v", err)
	}
}

func TestCheckAuditChains(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	intact := func() []AuditRecord {
		return append(append(auditChain("b", 5, t0), auditChain("a", 4, t0)...), auditChain("c", 1, t0)...)
	}
	// rehash makes r's hash that of its contents again, as whoever changed
	// it with write access to the store could.
	rehash := func(r *AuditRecord) { r.Hash = api.AuditHash(*r) }
	find := func(recs []AuditRecord, id string) int {
		i := slices.IndexFunc(recs, func(r AuditRecord) bool { return r.ID == id })
		if i < 0 {
			t.Fatalf("no record %s", id)
		}
		return i
	}

	for _, order := range [][]AuditRecord{intact(), newestFirst(intact())} {
		sum, err := CheckAuditChains(order)
		if err != nil || sum != (AuditSummary{Records: 10, Chains: 3}) {
			t.Fatalf("intact chains: %v %+v", err, sum)
		}
	}
	if sum, err := CheckAuditChains(nil); err != nil || sum != (AuditSummary{}) {
		t.Fatalf("no records: %v %+v", err, sum)
	}

	for _, tc := range []struct {
		name    string
		tamper  func([]AuditRecord) []AuditRecord
		id      string
		problem string
		detail  string
	}{
		{"a field changed", func(r []AuditRecord) []AuditRecord {
			r[find(r, "b-0003")].Actor = "mallory"
			return r
		}, "b-0003", AuditChanged, "its hash is not the hash of its contents"},
		{"a field changed and the hash made again", func(r []AuditRecord) []AuditRecord {
			i := find(r, "b-0003")
			r[i].Bytes = new(int64)
			rehash(&r[i])
			return r
		}, "b-0004", AuditOutOfOrder, "its prev is not the hash of seq 3"},
		{"a record removed from the middle", func(r []AuditRecord) []AuditRecord {
			return slices.Delete(r, find(r, "b-0002"), find(r, "b-0002")+1)
		}, "b-0003", AuditRemovedBefore, "seq 3 follows seq 1"},
		{"the first record removed", func(r []AuditRecord) []AuditRecord {
			return slices.Delete(r, find(r, "a-0001"), find(r, "a-0001")+1)
		}, "a-0002", AuditRemovedBefore, "its chain begins at seq 2, not 1"},
		{"two records swapped", func(r []AuditRecord) []AuditRecord {
			i, j := find(r, "b-0002"), find(r, "b-0003")
			r[i].Seq, r[j].Seq = r[j].Seq, r[i].Seq
			return r
		}, "b-0003", AuditChanged, "its hash is not the hash of its contents"},
		{"two records swapped and their hashes made again", func(r []AuditRecord) []AuditRecord {
			i, j := find(r, "b-0002"), find(r, "b-0003")
			r[i].Seq, r[j].Seq = r[j].Seq, r[i].Seq
			r[i].Prev, r[j].Prev = r[j].Prev, r[i].Prev
			rehash(&r[i])
			rehash(&r[j])
			return r
		}, "b-0002", AuditOutOfOrder, "its prev is not the hash of seq 2"},
		{"a record given a second time", func(r []AuditRecord) []AuditRecord {
			d := r[find(r, "a-0002")]
			d.ID = "a-0002x"
			rehash(&d)
			return append(r, d)
		}, "a-0002x", AuditOutOfOrder, "a second record at seq 2"},
		{"a prev on a first record", func(r []AuditRecord) []AuditRecord {
			i := find(r, "c-0001")
			r[i].Prev = strings.Repeat("0", 64)
			rehash(&r[i])
			return r
		}, "c-0001", AuditOutOfOrder, "the first record of its chain has a prev"},
		{"a seq of 0", func(r []AuditRecord) []AuditRecord {
			i := find(r, "c-0001")
			r[i].Seq = 0
			rehash(&r[i])
			return r
		}, "c-0001", AuditOutOfOrder, "seq 0 is not a place in a chain"},
		// The first break by chain id, then seq, whatever the order given.
		{"two chains broken", func(r []AuditRecord) []AuditRecord {
			r[find(r, "b-0001")].Status = 500
			r[find(r, "a-0004")].Status = 500
			return newestFirst(r)
		}, "a-0004", AuditChanged, "its hash is not the hash of its contents"},
	} {
		_, err := CheckAuditChains(tc.tamper(intact()))
		var b *AuditBreak
		if !errors.As(err, &b) || b.Record.ID != tc.id || b.Why != tc.problem || b.Detail != tc.detail {
			t.Errorf("%s: %v; want record %s %s: %s", tc.name, err, tc.id, tc.problem, tc.detail)
			continue
		}
		chain, seq := b.Record.Chain, b.Record.Seq
		if want := fmt.Sprintf("audit record %s (chain %s, seq %d) %s: %s", tc.id, chain, seq, tc.problem, tc.detail); err.Error() != want {
			t.Errorf("%s: %q, want %q", tc.name, err, want)
		}
	}

	// What chains cannot show (docs/design.md): a chain's last records, or
	// a whole chain, removed.
	r := intact()
	r = slices.Delete(r, find(r, "b-0005"), find(r, "b-0005")+1)
	r = slices.Delete(r, find(r, "c-0001"), find(r, "c-0001")+1)
	if sum, err := CheckAuditChains(r); err != nil || sum != (AuditSummary{Records: 8, Chains: 2}) {
		t.Fatalf("tail and whole chain removed: %v %+v (a chain cannot show these)", err, sum)
	}
}

// The query a time is sent as: UTC, full precision.
func TestAuditSendsTimesInUTC(t *testing.T) {
	f := newFakeAPI(t)
	c := testClient(t, f, Options{})
	at := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("", -5*3600))
	if _, err := c.Audit(context.Background(), AuditQuery{Since: at}); err != nil {
		t.Fatal(err)
	}
	q, _ := url.ParseQuery(f.auditQueries()[0])
	if q.Get("since") != "2026-01-02T08:04:05.123456789Z" {
		t.Fatalf("since sent as %q", q.Get("since"))
	}
}
