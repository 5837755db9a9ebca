package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	wire "github.com/imagodocs/imago/internal/api"
)

// auditServer answers GET /audit (docs/design.md, "Audit trail") from the
// records it is given, newest first: filters by document and action,
// limit (100 by default, at most 1000) and an opaque cursor; a bad one is
// a 400. It records the query of every request.
type auditServer struct {
	url string

	mu       sync.Mutex
	records  []wire.AuditRecord
	queries  []url.Values
	failWith int // when set, every request answers this status
}

func newAuditServer(t *testing.T, records []wire.AuditRecord) *auditServer {
	s := &auditServer{records: records}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fail := func(status int, msg string) {
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"error":{"code":"invalid","message":%q}}`, msg)
		}
		if r.Method != "GET" || r.URL.Path != "/audit" {
			w.WriteHeader(404)
			fmt.Fprint(w, `{"error":{"code":"not_found","message":"no route"}}`)
			return
		}
		q := r.URL.Query()
		s.mu.Lock()
		defer s.mu.Unlock()
		s.queries = append(s.queries, q)
		if s.failWith != 0 {
			w.WriteHeader(s.failWith)
			fmt.Fprint(w, `{"error":{"code":"internal","message":"internal error"}}`)
			return
		}
		if a := q.Get("action"); a != "" && !slices.Contains(wire.AuditActions, a) {
			fail(400, fmt.Sprintf("action %q is not an audit action", a))
			return
		}
		limit := wire.DefaultAuditLimit
		if v := q.Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > wire.MaxAuditLimit {
				fail(400, "bad limit")
				return
			}
			limit = n
		}
		for _, name := range []string{"since", "until"} {
			if _, err := time.Parse(time.RFC3339Nano, q.Get(name)); q.Get(name) != "" && err != nil {
				fail(400, name+" must be an RFC 3339 time")
				return
			}
		}
		start := 0
		if v := q.Get("cursor"); v != "" {
			n, err := strconv.Atoi(strings.TrimPrefix(v, "after-"))
			if err != nil {
				fail(400, "bad cursor")
				return
			}
			start = n
		}
		var selected []wire.AuditRecord
		for _, rec := range s.records {
			if d := q.Get("document"); d == "" || rec.DocumentID == d {
				if a := q.Get("action"); a == "" || rec.Action == a {
					selected = append(selected, rec)
				}
			}
		}
		page := wire.AuditPage{Records: []wire.AuditRecord{}}
		for i := start; i < len(selected) && i < start+limit; i++ {
			page.Records = append(page.Records, selected[i])
		}
		if start+limit < len(selected) {
			page.NextCursor = "after-" + strconv.Itoa(start+limit)
		}
		json.NewEncoder(w).Encode(page)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

func (s *auditServer) sent() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.queries)
}

// chained makes n records of chain, hashed and chained as the server does,
// one a second apart from t0, newest first as GET /audit lists them.
func chained(chain string, n int, t0 time.Time) []wire.AuditRecord {
	recs := make([]wire.AuditRecord, n)
	prev := ""
	for i := range n {
		r := wire.AuditRecord{ID: fmt.Sprintf("rec-%s-%04d", chain, i+1), Time: t0.Add(time.Duration(i) * time.Second).UTC().Format(wire.AuditTimeLayout),
			Tenant: "local", Actor: "alice", Action: wire.ActionStat, DocumentID: auditDoc, Status: 200,
			Chain: chain, Seq: int64(i + 1), Prev: prev}
		r.Hash = wire.AuditHash(r)
		recs[n-1-i], prev = r, r.Hash
	}
	return recs
}

// rehashed is r with its hash made again from its contents.
func rehashed(r wire.AuditRecord) wire.AuditRecord {
	r.Hash = wire.AuditHash(r)
	return r
}

const auditDoc = "7d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"

var auditT0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func TestCLIAuditLists(t *testing.T) {
	n := int64(51234)
	recs := []wire.AuditRecord{
		{ID: "r3", Time: "2026-12-01T10:00:02.250Z", Tenant: "local", Actor: "link:AbC", Action: wire.ActionLinkRead, DocumentID: auditDoc,
			LinkID: "AbC", Status: 206, Bytes: &n, Cache: "hit", Range: "bytes=0-51233", Chain: "c", Seq: 3},
		{ID: "r2", Time: "2026-12-01T10:00:01.000Z", Tenant: "local", Actor: "alice\tthe\nadmin", Action: wire.ActionList, Status: 200,
			RequestID: "req-2", SourceIP: "127.0.0.1", UserAgent: "imago/1", Chain: "c", Seq: 2},
		{ID: "r1", Time: "2026-12-01T10:00:00.000Z", Tenant: "local", Actor: "alice", Action: wire.ActionRead, DocumentID: auditDoc,
			Status: 404, Chain: "c", Seq: 1},
	}
	s := newAuditServer(t, recs)
	env := map[string]string{"IMAGO_URL": s.url}
	status, stdout, stderr := run(t, env, "audit")
	want := "2026-12-01T10:00:02.250Z\tlink.read\t206\tlink:AbC\t" + auditDoc + "\tAbC\t51234\thit\n" +
		"2026-12-01T10:00:01.000Z\tlist\t200\talice the admin\t-\t-\t-\t-\n" +
		"2026-12-01T10:00:00.000Z\tread\t404\talice\t" + auditDoc + "\t-\t-\t-\n"
	if status != 0 || stdout != want || stderr != "" {
		t.Fatalf("audit: exit %d\nstdout: %q\nwant:   %q\nstderr: %s", status, stdout, want, stderr)
	}

	status, stdout, _ = run(t, env, "audit", "--json")
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if status != 0 || len(lines) != 3 {
		t.Fatalf("audit --json: exit %d %q", status, stdout)
	}
	for i, line := range lines {
		var got wire.AuditRecord
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("line %d: %v %s", i, err, line)
		}
		wantLine, _ := json.Marshal(recs[i])
		gotLine, _ := json.Marshal(got)
		if string(gotLine) != string(wantLine) {
			t.Fatalf("audit --json line %d:\n%s\nwant\n%s", i, gotLine, wantLine)
		}
	}

	// A document: its records; one with none prints nothing, exit 0.
	status, stdout, _ = run(t, env, "audit", auditDoc)
	if status != 0 || strings.Count(stdout, "\n") != 2 || strings.Contains(stdout, "list") {
		t.Fatalf("audit ID: exit %d %q", status, stdout)
	}
	status, stdout, stderr = run(t, env, "audit", "--json", unknownDoc)
	if status != 0 || stdout != "" || stderr != "" {
		t.Fatalf("audit of a document with no records: exit %d %q %q", status, stdout, stderr)
	}
}

func TestCLIAuditSendsItsFilters(t *testing.T) {
	s := newAuditServer(t, nil)
	env := map[string]string{"IMAGO_URL": s.url}
	type sentAt struct {
		q             url.Values
		before, after time.Time
	}
	var sent []sentAt
	for _, args := range [][]string{
		{"audit", "--since", "24h", "--until=2099-12-01T10:00:00+01:00", "--action", "read", auditDoc, "--limit", "5"},
		{"audit", "--since", "30d", "--limit", "5000"},
		{"audit", "--since", "2026-11-30T23:59:59.5Z"},
	} {
		before := time.Now()
		status, _, stderr := run(t, env, args...)
		after := time.Now()
		qs := s.sent()
		if status != 0 || len(qs) != len(sent)+1 {
			t.Fatalf("imago %q: exit %d, %d requests in all\n%s", args, status, len(qs), stderr)
		}
		sent = append(sent, sentAt{qs[len(qs)-1], before, after})
	}
	// A duration is a time back from when the command ran, sent as RFC 3339
	// in UTC.
	sinceWithin := func(s sentAt, d time.Duration) {
		t.Helper()
		since, err := time.Parse(time.RFC3339Nano, s.q.Get("since"))
		if err != nil || !strings.HasSuffix(s.q.Get("since"), "Z") || since.Before(s.before.Add(-d)) || since.After(s.after.Add(-d)) {
			t.Fatalf("since %q: %v, want %v back from between %v and %v", s.q.Get("since"), err, d, s.before, s.after)
		}
	}
	sinceWithin(sent[0], 24*time.Hour)
	sinceWithin(sent[1], 30*24*time.Hour)
	if q := sent[0].q; q.Get("until") != "2099-12-01T09:00:00Z" || q.Get("action") != "read" || q.Get("document") != auditDoc ||
		q.Get("limit") != "5" || q.Has("cursor") || len(q) != 5 {
		t.Fatalf("sent %v", q)
	}
	if q := sent[1].q; q.Get("limit") != "1000" || len(q) != 2 { // the largest page; the CLI goes on
		t.Fatalf("sent %v", q)
	}
	if q := sent[2].q; q.Get("since") != "2026-11-30T23:59:59.5Z" || q.Get("limit") != "1000" || len(q) != 2 {
		t.Fatalf("sent %v", q)
	}
}

func TestCLIAuditFollowsThePages(t *testing.T) {
	s := newAuditServer(t, chained("a", 2345, auditT0))
	env := map[string]string{"IMAGO_URL": s.url}
	status, stdout, stderr := run(t, env, "audit")
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if status != 0 || len(lines) != 2345 || !strings.HasPrefix(lines[0], auditT0.Add(2344*time.Second).Format(wire.AuditTimeLayout)+"\tstat\t200\t") ||
		!strings.HasPrefix(lines[2344], "2026-12-01T10:00:00.000Z\t") {
		t.Fatalf("audit: exit %d, %d lines, first %q, last %q\n%s", status, len(lines), lines[0], lines[len(lines)-1], stderr)
	}
	var cursors []string
	for _, q := range s.sent() {
		cursors = append(cursors, q.Get("cursor"))
	}
	if want := []string{"", "after-1000", "after-2000"}; !slices.Equal(cursors, want) {
		t.Fatalf("cursors sent %q, want %q", cursors, want)
	}
	// --limit stops there, asking for no more than it prints.
	status, stdout, _ = run(t, env, "audit", "--limit", "1200", "--json")
	if status != 0 || strings.Count(stdout, "\n") != 1200 {
		t.Fatalf("audit --limit 1200: exit %d, %d lines", status, strings.Count(stdout, "\n"))
	}
	sent := s.sent()[3:]
	if len(sent) != 2 || sent[0].Get("limit") != "1000" || sent[1].Get("limit") != "200" || sent[1].Get("cursor") != "after-1000" {
		t.Fatalf("audit --limit 1200 sent %v", sent)
	}
}

func TestCLIAuditUsageErrors(t *testing.T) {
	s := newAuditServer(t, nil)
	env := map[string]string{"IMAGO_URL": s.url}
	for _, args := range [][]string{
		{"audit", "--since", "yesterday"}, {"audit", "--since", "-1h"}, {"audit", "--until", "2026-12-01"},
		{"audit", "--since", ""}, {"audit", "--since", "1.5d"}, {"audit", "--limit", "x"}, {"audit", "--limit", "-1"},
		{"audit", "--since", "2026-12-02T00:00:00Z", "--until", "2026-12-01T00:00:00Z"}, {"audit", "--since", "1h", "--until", "2h"},
		{"audit", auditDoc, unknownDoc}, {"audit", "verify", "--json"}, {"audit", "verify", "--since", "1h"},
		{"audit", "verify", "--limit", "3"}, {"audit", "verify", auditDoc}, {"audit", "--bogus"},
	} {
		status, stdout, stderr := run(t, env, args...)
		if status != 2 || stdout != "" || !strings.Contains(stderr, "usage: imago audit") {
			t.Errorf("imago %q: exit %d, want 2\nstdout: %s\nstderr: %s", args, status, stdout, stderr)
		}
	}
	if sent := s.sent(); len(sent) != 0 {
		t.Fatalf("a usage error sent %v", sent)
	}
	if status, stdout, _ := run(t, env, "audit", "-h"); status != 0 || !strings.Contains(stdout, "imago audit verify") ||
		!strings.Contains(stdout, "cannot show the\nremoval of a chain's last records") {
		t.Fatalf("audit -h: exit %d\n%s", status, stdout)
	}
}

// TestCLIAuditFailures: a filter the server refuses, or a server that
// fails, is exit 1 with the server's message.
func TestCLIAuditFailures(t *testing.T) {
	s := newAuditServer(t, chained("a", 3, auditT0))
	env := map[string]string{"IMAGO_URL": s.url}
	status, stdout, stderr := run(t, env, "audit", "--action", "peek")
	if status != 1 || stdout != "" || stderr != "imago: audit: 400 invalid: action \"peek\" is not an audit action\n" {
		t.Fatalf("audit --action peek: exit %d\nstdout: %q\nstderr: %q", status, stdout, stderr)
	}
	s.mu.Lock()
	s.failWith = 500
	s.mu.Unlock()
	for _, args := range [][]string{{"audit"}, {"audit", "verify"}} {
		status, stdout, stderr := run(t, env, args...)
		if status != 1 || stdout != "" || !strings.Contains(stderr, "500 internal: internal error") {
			t.Errorf("imago %q against a failing API: exit %d\nstdout: %s\nstderr: %s", args, status, stdout, stderr)
		}
	}
}

func TestCLIAuditVerify(t *testing.T) {
	// Three chains, 1503 records: verify reads two pages.
	intact := func() []wire.AuditRecord {
		recs := append(chained("b", 1500, auditT0), chained("a", 2, auditT0)...)
		return append(recs, chained("c", 1, auditT0)...)
	}
	find := func(recs []wire.AuditRecord, id string) int {
		i := slices.IndexFunc(recs, func(r wire.AuditRecord) bool { return r.ID == id })
		if i < 0 {
			t.Fatalf("no record %s", id)
		}
		return i
	}
	verify := func(recs []wire.AuditRecord) (int, string, string, *auditServer) {
		t.Helper()
		s := newAuditServer(t, recs)
		status, stdout, stderr := run(t, map[string]string{"IMAGO_URL": s.url}, "audit", "verify")
		return status, stdout, stderr, s
	}

	status, stdout, stderr, s := verify(intact())
	if status != 0 || stdout != "1503 records in 3 chains, intact\n" || stderr != "" {
		t.Fatalf("verify of intact chains: exit %d\nstdout: %q\nstderr: %s", status, stdout, stderr)
	}
	if sent := s.sent(); len(sent) != 2 || sent[0].Get("limit") != "1000" || sent[1].Get("cursor") != "after-1000" || len(sent[0]) != 1 {
		t.Fatalf("verify sent %v: every record, in the largest pages", sent)
	}
	if status, stdout, _, _ := verify(nil); status != 0 || stdout != "0 records in 0 chains, intact\n" {
		t.Fatalf("verify of no records: exit %d %q", status, stdout)
	}
	if status, stdout, _, _ := verify(chained("a", 1, auditT0)); status != 0 || stdout != "1 record in 1 chain, intact\n" {
		t.Fatalf("verify of one record: exit %d %q", status, stdout)
	}

	for _, tc := range []struct {
		name   string
		tamper func([]wire.AuditRecord) []wire.AuditRecord
		want   string // what stderr says
	}{
		{"a field changed", func(r []wire.AuditRecord) []wire.AuditRecord {
			r[find(r, "rec-b-0700")].Status = 404
			return r
		}, "audit record rec-b-0700 (chain b, seq 700) changed: its hash is not the hash of its contents"},
		{"a field changed on the last page", func(r []wire.AuditRecord) []wire.AuditRecord {
			r[find(r, "rec-b-0001")].Actor = "mallory"
			return r
		}, "audit record rec-b-0001 (chain b, seq 1) changed: its hash is not the hash of its contents"},
		{"a field changed and its hash made again", func(r []wire.AuditRecord) []wire.AuditRecord {
			i := find(r, "rec-b-0700")
			r[i].DocumentID = unknownDoc
			r[i] = rehashed(r[i])
			return r
		}, "audit record rec-b-0701 (chain b, seq 701) out of order: its prev is not the hash of seq 700"},
		{"a record removed from the middle", func(r []wire.AuditRecord) []wire.AuditRecord {
			i := find(r, "rec-b-0700")
			return slices.Delete(r, i, i+1)
		}, "audit record rec-b-0701 (chain b, seq 701) removed before it: seq 701 follows seq 699"},
		{"two records swapped", func(r []wire.AuditRecord) []wire.AuditRecord {
			i, j := find(r, "rec-a-0001"), find(r, "rec-a-0002")
			r[i].Seq, r[j].Seq = r[j].Seq, r[i].Seq
			return r
		}, "audit record rec-a-0002 (chain a, seq 1) changed: its hash is not the hash of its contents"},
		{"two records swapped and their hashes made again", func(r []wire.AuditRecord) []wire.AuditRecord {
			i, j := find(r, "rec-a-0001"), find(r, "rec-a-0002")
			r[i].Seq, r[j].Seq = r[j].Seq, r[i].Seq
			r[i].Prev, r[j].Prev = r[j].Prev, r[i].Prev
			r[i], r[j] = rehashed(r[i]), rehashed(r[j])
			return r
		}, "audit record rec-a-0001 (chain a, seq 2) out of order: its prev is not the hash of seq 1"},
		{"two chains broken: the first by chain id is named", func(r []wire.AuditRecord) []wire.AuditRecord {
			r[find(r, "rec-c-0001")].Status = 500
			r[find(r, "rec-b-1500")].Status = 500
			return r
		}, "audit record rec-b-1500 (chain b, seq 1500) changed: its hash is not the hash of its contents"},
	} {
		status, stdout, stderr, _ := verify(tc.tamper(intact()))
		if status != 4 || stdout != "" || stderr != "imago: "+tc.want+"\n" {
			t.Errorf("verify, %s: exit %d, want 4\nstdout: %q\nstderr: %q\nwant:   %q", tc.name, status, stdout, stderr, "imago: "+tc.want+"\n")
		}
	}

	// The limit: a chain's last record, or a whole chain, removed leaves
	// what remains intact.
	r := intact()
	r = slices.Delete(r, find(r, "rec-b-1500"), find(r, "rec-b-1500")+1)
	r = slices.Delete(r, find(r, "rec-c-0001"), find(r, "rec-c-0001")+1)
	if status, stdout, _, _ := verify(r); status != 0 || stdout != "1501 records in 2 chains, intact\n" {
		t.Fatalf("verify without a chain's tail and a whole chain: exit %d %q", status, stdout)
	}
}
