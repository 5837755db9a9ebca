//go:build linux

package lambdae2e

import (
	"net/url"
	"testing"

	"github.com/imagodocs/imago/internal/api"
)

// TestLambdaE2E_AuditTrail: the functions under the runtime emulator record
// every request in the audit table on DynamoDB Local, each function its own
// chain, and GET /audit (the metadata function) serves the caller's trail,
// newest first, whose chains verify.
func TestLambdaE2E_AuditTrail(t *testing.T) {
	t.Parallel()
	requireEnv(t)
	up, down, meta := startFunction(t, fnUpload), startFunction(t, fnDownload), startFunction(t, fnMetadata)
	tenant := "e2e-audit-" + randomHex(8)
	doc := randomBytes(200_000)
	r := up.call(t, apiEvent(t, apiRequest{sample: "upload", route: "POST /documents", sub: tenant,
		headers: map[string]string{"content-type": "application/pdf"}, body: doc, binary: true})).expect(t, "upload", 201)
	var d document
	r.decode(t, "upload", &d)
	down.call(t, apiEvent(t, apiRequest{sample: "download", route: "GET /documents/{id}/content", id: d.ID, sub: tenant})).expect(t, "read", 200)
	down.call(t, apiEvent(t, apiRequest{sample: "download", route: "GET /documents/{id}/content", id: d.ID, sub: tenant,
		headers: map[string]string{"range": "bytes=0-9"}})).expect(t, "range", 206)
	meta.call(t, apiEvent(t, apiRequest{sample: "get-metadata", route: "GET /documents/{id}", id: d.ID, sub: tenant})).expect(t, "stat", 200)
	meta.call(t, apiEvent(t, apiRequest{sample: "get-metadata", route: "GET /documents/{id}", id: "00000000-0000-4000-8000-000000000000", sub: tenant})).expect(t, "stat of none", 404)

	var page api.AuditPage
	meta.call(t, apiEvent(t, apiRequest{route: "GET /audit", sub: tenant})).expect(t, "GET /audit", 200).decode(t, "GET /audit", &page)
	want := []struct {
		action string
		status int
	}{{api.ActionStat, 404}, {api.ActionStat, 200}, {api.ActionRead, 206}, {api.ActionRead, 200}, {api.ActionUpload, 201}}
	if len(page.Records) != len(want) {
		t.Fatalf("GET /audit: %d records, want %d: %+v", len(page.Records), len(want), page.Records)
	}
	chains := map[string]bool{}
	for i, w := range want {
		rec := page.Records[i]
		if rec.Action != w.action || rec.Status != w.status || rec.Actor != tenant || rec.Tenant != tenant {
			t.Fatalf("record %d: %+v, want %s %d", i, rec, w.action, w.status)
		}
		chains[rec.Chain] = true
	}
	if got := page.Records[3]; got.Bytes == nil || *got.Bytes != int64(len(doc)) || got.Cache == "" || got.DocumentID != d.ID {
		t.Fatalf("the read's record: %+v", got)
	}
	if len(chains) != 3 {
		t.Fatalf("%d chains for three functions' records, want 3 (one per execution environment)", len(chains))
	}
	if b := api.VerifyAudit(page.Records); b != nil {
		t.Fatal(b)
	}
	// Filters: one document, one action; and GET /audit left no record.
	var reads api.AuditPage
	meta.call(t, apiEvent(t, apiRequest{route: "GET /audit", sub: tenant, query: url.Values{"document": {d.ID}, "action": {"read"}}})).
		expect(t, "GET /audit?document=&action=read", 200).decode(t, "filtered", &reads)
	if len(reads.Records) != 2 {
		t.Fatalf("the document's reads: %+v", reads.Records)
	}
	meta.call(t, apiEvent(t, apiRequest{route: "GET /audit", sub: tenant, query: url.Values{"action": {"nonsense"}}})).expectError(t, "GET /audit?action=nonsense", 400, "invalid")
}
