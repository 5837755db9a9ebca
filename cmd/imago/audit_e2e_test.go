package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	wire "github.com/imagodocs/imago/internal/api"
)

// TestCLIAuditAgainstServe reads the trail `imago serve` keeps as README
// shows: put, get and stat a document, then `imago audit ID` lists what
// was done to it, and `imago audit verify` finds the trail intact.
func TestCLIAuditAgainstServe(t *testing.T) {
	_, env, dir, doc, d := serveAndPut(t)
	code, out, errOut := 0, "", ""
	if code, _, errOut = run(t, env, "get", "-o", filepath.Join(dir, "copy.pdf"), d.ID); code != 0 {
		t.Fatalf("get: %d %s", code, errOut)
	}
	if code, _, errOut = run(t, env, "stat", d.ID); code != 0 {
		t.Fatalf("stat: %d %s", code, errOut)
	}

	code, out, errOut = run(t, env, "audit", d.ID, "--json")
	if code != 0 {
		t.Fatalf("audit --json: %d %s", code, errOut)
	}
	var recs []wire.AuditRecord
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var r wire.AuditRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("audit --json line %q: %v", line, err)
		}
		recs = append(recs, r)
	}
	seen := map[string]wire.AuditRecord{}
	for i, r := range recs {
		if r.DocumentID != d.ID || r.Tenant != "local" || r.Actor != "local" || r.Hash != wire.AuditHash(r) {
			t.Fatalf("record %d: %+v", i, r)
		}
		if i > 0 && r.Time > recs[i-1].Time {
			t.Fatalf("records not newest first: %s after %s", r.Time, recs[i-1].Time)
		}
		if _, ok := seen[r.Action]; !ok {
			seen[r.Action] = r
		}
	}
	for action, status := range map[string]int{wire.ActionUpload: 201, wire.ActionStat: 200, wire.ActionRead: 200} {
		if r, ok := seen[action]; !ok || r.Status != status {
			t.Fatalf("no %s record with status %d among %+v", action, status, recs)
		}
	}
	if read := seen[wire.ActionRead]; read.Bytes == nil || *read.Bytes != int64(len(doc)) || (read.Cache != "hit" && read.Cache != "miss") {
		t.Fatalf("the read's record: %+v", read)
	}
	if got := recs[len(recs)-1]; got.Action != wire.ActionUpload {
		t.Fatalf("the oldest record is %s, want the upload", got.Action)
	}

	// Filters, as the server applies them.
	code, out, _ = run(t, env, "audit", "--action", "upload", "--since", "1h", d.ID)
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, "\tupload\t201\tlocal\t"+d.ID+"\t-\t") {
		t.Fatalf("audit --action upload: %d %q", code, out)
	}
	if code, out, _ = run(t, env, "audit", "--until", "1h"); code != 0 || out != "" {
		t.Fatalf("audit --until 1h (before anything): %d %q", code, out)
	}

	code, out, errOut = run(t, env, "audit", "verify")
	if code != 0 || !strings.HasPrefix(out, fmt.Sprintf("%d records in ", len(recs))) || !strings.HasSuffix(out, ", intact\n") || errOut != "" {
		t.Fatalf("audit verify: %d %q %s", code, out, errOut)
	}
}
