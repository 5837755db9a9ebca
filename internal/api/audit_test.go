package api

import (
	"fmt"
	"testing"
)

// chainOf makes an intact chain of n records.
func chainOf(chain string, n int) []AuditRecord {
	var recs []AuditRecord
	prev := ""
	for i := 1; i <= n; i++ {
		r := AuditRecord{ID: fmt.Sprintf("%s-%d", chain, i), Time: "2026-12-07T01:00:00.000Z", Tenant: "t", Actor: "a",
			Action: ActionRead, Status: 200, Chain: chain, Seq: int64(i), Prev: prev}
		r.Hash = AuditHash(r)
		recs = append(recs, r)
		prev = r.Hash
	}
	return recs
}

func TestVerifyAudit(t *testing.T) {
	intact := append(chainOf("a", 5), chainOf("b", 3)...)
	if b := VerifyAudit(intact); b != nil {
		t.Fatalf("intact chains: %v", b)
	}
	// Any order of the same records verifies.
	rev := make([]AuditRecord, len(intact))
	for i, r := range intact {
		rev[len(intact)-1-i] = r
	}
	if b := VerifyAudit(rev); b != nil {
		t.Fatalf("intact chains listed newest first: %v", b)
	}
	for name, c := range map[string]struct {
		tamper func([]AuditRecord) []AuditRecord
		id     string
		why    string
	}{
		"changed": {func(r []AuditRecord) []AuditRecord { r[2].Status = 404; return r }, "a-3", "changed"},
		"changed and rehashed": {func(r []AuditRecord) []AuditRecord {
			r[2].Status = 404
			r[2].Hash = AuditHash(r[2])
			return r
		}, "a-4", "out of order"},
		"removed": {func(r []AuditRecord) []AuditRecord { return append(r[:1:1], r[2:]...) }, "a-3", "removed before it"},
		"reordered": {func(r []AuditRecord) []AuditRecord {
			r[1].Seq, r[2].Seq = r[2].Seq, r[1].Seq
			return r
		}, "a-3", "changed"},
	} {
		recs := c.tamper(append([]AuditRecord{}, intact...))
		b := VerifyAudit(recs)
		if b == nil || b.Record.ID != c.id || b.Why != c.why {
			t.Errorf("%s: %v, want %s %s", name, b, c.id, c.why)
		}
	}
}
