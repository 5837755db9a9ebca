package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// policyServer is an API answering the routes of a document's policy
// (docs/design.md, "Retention, deletion delay, legal hold") for three
// documents — one live, one in the trash, one under a legal hold — and
// inline uploads; any other document is not found. It records every
// request it gets.
type policyServer struct {
	url string

	mu   sync.Mutex
	reqs []policyRequest
}

// policyRequest is one request a policyServer got.
type policyRequest struct {
	method, target string // target: path and query
	expiresIn      string // the X-Imago-Expires-In header
}

const (
	liveDoc    = "1a2b3c4d-0000-4000-8000-000000000001"
	trashedDoc = "1a2b3c4d-0000-4000-8000-000000000002"
	heldDoc    = "1a2b3c4d-0000-4000-8000-000000000003"
	unknownDoc = "00000000-0000-4000-8000-000000000000"
)

func newPolicyServer(t *testing.T) *policyServer {
	s := &policyServer{}
	metadata := func(id, extra string) string {
		return fmt.Sprintf(`{"id":%q,"filename":"scan %s.pdf","content_type":"application/pdf","size":1234,"sha256":"%064x",`+
			`"status":"available","created_at":"2026-12-01T00:00:00Z","metadata":{}%s}`, id, id[len(id)-1:], 0, extra)
	}
	const trashFields = `,"legal_hold":false,"deleted_at":"2026-12-02T10:00:00Z","purge_at":"2026-12-09T10:00:00+01:00"`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.reqs = append(s.reqs, policyRequest{method: r.Method, target: r.URL.RequestURI(), expiresIn: r.Header.Get("X-Imago-Expires-In")})
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fail := func(status int, code, msg string) {
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"error":{"code":%q,"message":%q}}`, code, msg)
		}
		p := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
		if p[0] != "documents" {
			fail(404, "not_found", "no route")
			return
		}
		if len(p) == 1 {
			switch r.Method {
			case "POST": // an inline upload
				body, _ := io.ReadAll(r.Body)
				sum := sha256.Sum256(body)
				created := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
				expiry := ""
				if v := r.Header.Get("X-Imago-Expires-In"); v != "" {
					secs, err := strconv.ParseInt(v, 10, 64)
					if err != nil || secs < 1 {
						fail(400, "invalid", "bad X-Imago-Expires-In")
						return
					}
					expiry = fmt.Sprintf(`,"expires_at":%q`, created.Add(time.Duration(secs)*time.Second).Format(time.RFC3339))
				}
				w.WriteHeader(201)
				fmt.Fprintf(w, `{"id":%q,"filename":"f","content_type":"application/pdf","size":%d,"sha256":%q,"status":"available",`+
					`"created_at":%q,"metadata":{},"legal_hold":false%s}`, liveDoc, len(body), hex.EncodeToString(sum[:]), created.Format(time.RFC3339), expiry)
			case "GET":
				if r.URL.Query().Get("trash") == "true" {
					fmt.Fprintf(w, `{"documents":[%s]}`, metadata(trashedDoc, trashFields))
				} else {
					fmt.Fprintf(w, `{"documents":[%s,%s]}`, metadata(heldDoc, `,"legal_hold":true`), metadata(liveDoc, `,"legal_hold":false`))
				}
			default:
				fail(405, "method_not_allowed", "no such route")
			}
			return
		}
		id, rest := p[1], strings.Join(p[2:], "/")
		if id != liveDoc && id != trashedDoc && id != heldDoc {
			fail(404, "not_found", "document "+id+" not found")
			return
		}
		switch {
		case r.Method == "DELETE" && rest == "":
			switch {
			case id == heldDoc:
				fail(409, "conflict", "document "+id+" is under a legal hold: lift the hold to delete it")
			case id == trashedDoc && r.URL.Query().Get("purge") != "true":
				fail(404, "not_found", "document "+id+" not found")
			default:
				w.WriteHeader(204)
			}
		case r.Method == "POST" && rest == "restore":
			if id != trashedDoc {
				fail(409, "conflict", "document "+id+" is not in the trash")
				return
			}
			fmt.Fprint(w, metadata(trashedDoc, `,"legal_hold":false`))
		case (r.Method == "PUT" || r.Method == "DELETE") && rest == "legal-hold":
			w.WriteHeader(204)
		default:
			fail(405, "method_not_allowed", "no such route")
		}
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

// requests returns, and forgets, the requests received.
func (s *policyServer) requests() []policyRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	reqs := s.reqs
	s.reqs = nil
	return reqs
}

func TestCLIPutSendsExpiresIn(t *testing.T) {
	s := newPolicyServer(t)
	env := map[string]string{"IMAGO_URL": s.url, "XDG_CACHE_HOME": t.TempDir()}
	file := filepath.Join(t.TempDir(), "scan.pdf")
	if err := os.WriteFile(file, []byte("a small document"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args          []string
		header, until string
	}{
		{[]string{"--expires-in", "2h"}, "7200", "2026-12-01T02:00:00Z"},
		{[]string{"--expires-in", "30d"}, "2592000", "2026-12-31T00:00:00Z"},
		{[]string{"--expires-in=1h30m", "-meta", "k=v"}, "5400", "2026-12-01T01:30:00Z"},
		{[]string{"--expires-in", "90s"}, "90", "2026-12-01T00:01:30Z"},
		{nil, "", ""},
	} {
		args := append(append([]string{"put"}, tc.args...), file)
		status, stdout, stderr := run(t, env, args...)
		if status != 0 || stderr != "" {
			t.Fatalf("imago %q: exit %d %s", args, status, stderr)
		}
		reqs := s.requests()
		if len(reqs) != 1 || reqs[0].method != "POST" || reqs[0].expiresIn != tc.header {
			t.Fatalf("imago %q sent %+v, want one POST with X-Imago-Expires-In %q", args, reqs, tc.header)
		}
		var d struct {
			ExpiresAt *string `json:"expires_at"`
		}
		if err := json.Unmarshal([]byte(stdout), &d); err != nil || (d.ExpiresAt == nil) != (tc.until == "") ||
			d.ExpiresAt != nil && *d.ExpiresAt != tc.until {
			t.Fatalf("imago %q printed %s, want expires_at %q", args, stdout, tc.until)
		}
	}
}

func TestCLIPolicyUsageErrors(t *testing.T) {
	s := newPolicyServer(t)
	env := map[string]string{"IMAGO_URL": s.url}
	file := filepath.Join(t.TempDir(), "scan.pdf")
	os.WriteFile(file, []byte("x"), 0o600)
	for _, args := range [][]string{
		{"put", "--expires-in", "1.5s", file}, {"put", "--expires-in", "500ms", file}, {"put", "--expires-in", "0s", file},
		{"put", "--expires-in", "-1h", file}, {"put", "--expires-in", "soon", file}, {"put", "--expires-in", "", file},
		{"put", "--expires-in", "1.5d", file}, {"put", "--expires-in", "2h"},
		{"rm", "--purge"}, {"rm", "--purge=maybe", liveDoc},
		{"restore"}, {"restore", "--bogus", trashedDoc}, {"hold"}, {"release"},
		{"ls", "--trash", "extra"}, {"ls", "--trash", "--limit", "x"},
	} {
		status, stdout, stderr := run(t, env, args...)
		if status != 2 || stdout != "" || !strings.Contains(stderr, "usage: imago "+args[0]) {
			t.Errorf("imago %q: exit %d, want 2\nstdout: %s\nstderr: %s", args, status, stdout, stderr)
		}
	}
	if reqs := s.requests(); len(reqs) != 0 {
		t.Fatalf("a usage error sent %+v", reqs)
	}
}

func TestCLIRmPurgeAndHeld(t *testing.T) {
	s := newPolicyServer(t)
	env := map[string]string{"IMAGO_URL": s.url}
	for _, tc := range []struct {
		args    []string
		status  int
		stderr  string
		targets []string
	}{
		{[]string{"rm", liveDoc}, 0, "", []string{"/documents/" + liveDoc}},
		{[]string{"rm", "--purge", liveDoc, trashedDoc}, 0, "", []string{"/documents/" + liveDoc + "?purge=true", "/documents/" + trashedDoc + "?purge=true"}},
		{[]string{"rm", trashedDoc, "--purge"}, 0, "", []string{"/documents/" + trashedDoc + "?purge=true"}},
		// Held: exit 1, the server's message.
		{[]string{"rm", heldDoc}, 1, "under a legal hold", []string{"/documents/" + heldDoc}},
		{[]string{"rm", "--purge", heldDoc}, 1, "under a legal hold", []string{"/documents/" + heldDoc + "?purge=true"}},
		// Already in the trash, or unknown: not found.
		{[]string{"rm", trashedDoc}, 3, "not found", []string{"/documents/" + trashedDoc}},
		{[]string{"rm", "--purge", unknownDoc}, 3, "not found", []string{"/documents/" + unknownDoc + "?purge=true"}},
		// The first failure's status; the others are still deleted.
		{[]string{"rm", heldDoc, unknownDoc, liveDoc}, 1, "not found", []string{"/documents/" + heldDoc, "/documents/" + unknownDoc, "/documents/" + liveDoc}},
	} {
		status, stdout, stderr := run(t, env, tc.args...)
		if status != tc.status || stdout != "" || !strings.Contains(stderr, tc.stderr) || (tc.status == 0) != (stderr == "") {
			t.Errorf("imago %q: exit %d, want %d\nstdout: %s\nstderr: %s", tc.args, status, tc.status, stdout, stderr)
		}
		var targets []string
		for _, r := range s.requests() {
			if r.method != "DELETE" {
				t.Errorf("imago %q sent %s %s", tc.args, r.method, r.target)
			}
			targets = append(targets, r.target)
		}
		if !slices.Equal(targets, tc.targets) {
			t.Errorf("imago %q sent DELETE %q, want %q", tc.args, targets, tc.targets)
		}
	}
}

func TestCLIRestore(t *testing.T) {
	s := newPolicyServer(t)
	env := map[string]string{"IMAGO_URL": s.url}
	status, stdout, stderr := run(t, env, "restore", trashedDoc)
	var d map[string]any
	if status != 0 || stderr != "" || json.Unmarshal([]byte(stdout), &d) != nil || strings.Count(stdout, "\n") != 1 ||
		d["id"] != trashedDoc || d["legal_hold"] != false || d["deleted_at"] != nil || d["purge_at"] != nil {
		t.Fatalf("restore: exit %d\nstdout: %q\nstderr: %q", status, stdout, stderr)
	}
	if reqs := s.requests(); len(reqs) != 1 || reqs[0].method != "POST" || reqs[0].target != "/documents/"+trashedDoc+"/restore" {
		t.Fatalf("restore sent %+v", reqs)
	}
	// Not in the trash: a failure; purged or unknown: not found.
	status, stdout, stderr = run(t, env, "restore", liveDoc)
	if status != 1 || stdout != "" || !strings.Contains(stderr, "not in the trash") {
		t.Fatalf("restore of a document not in the trash: exit %d\nstdout: %q\nstderr: %q", status, stdout, stderr)
	}
	status, stdout, stderr = run(t, env, "restore", unknownDoc)
	if status != 3 || stdout != "" || !strings.Contains(stderr, "not found") {
		t.Fatalf("restore of an unknown document: exit %d\nstdout: %q\nstderr: %q", status, stdout, stderr)
	}
}

func TestCLIHoldAndRelease(t *testing.T) {
	s := newPolicyServer(t)
	env := map[string]string{"IMAGO_URL": s.url}
	for cmd, method := range map[string]string{"hold": "PUT", "release": "DELETE"} {
		status, stdout, stderr := run(t, env, cmd, liveDoc, heldDoc)
		if status != 0 || stdout != "" || stderr != "" {
			t.Fatalf("%s: exit %d\nstdout: %q\nstderr: %q", cmd, status, stdout, stderr)
		}
		reqs := s.requests()
		if len(reqs) != 2 || reqs[0] != (policyRequest{method: method, target: "/documents/" + liveDoc + "/legal-hold"}) ||
			reqs[1] != (policyRequest{method: method, target: "/documents/" + heldDoc + "/legal-hold"}) {
			t.Fatalf("%s sent %+v", cmd, reqs)
		}
		status, stdout, stderr = run(t, env, cmd, unknownDoc)
		if status != 3 || stdout != "" || !strings.Contains(stderr, "not found") {
			t.Fatalf("%s of an unknown document: exit %d\nstdout: %q\nstderr: %q", cmd, status, stdout, stderr)
		}
		s.requests()
	}
}

func TestCLILsTrash(t *testing.T) {
	s := newPolicyServer(t)
	env := map[string]string{"IMAGO_URL": s.url}
	status, stdout, stderr := run(t, env, "ls", "--trash")
	want := trashedDoc + "\t1234\tavailable\t2026-12-01T00:00:00Z\t2026-12-02T10:00:00Z\t2026-12-09T09:00:00Z\tscan 2.pdf\n"
	if status != 0 || stdout != want || stderr != "" {
		t.Fatalf("ls --trash: exit %d\nstdout: %q\nwant:   %q\nstderr: %s", status, stdout, want, stderr)
	}
	if reqs := s.requests(); len(reqs) != 1 || reqs[0].method != "GET" || reqs[0].target != "/documents?limit=1000&trash=true" {
		t.Fatalf("ls --trash sent %+v", reqs)
	}
	status, stdout, _ = run(t, env, "ls", "--json", "--trash", "--limit", "5")
	var d map[string]any
	if status != 0 || json.Unmarshal([]byte(stdout), &d) != nil || strings.Count(stdout, "\n") != 1 ||
		d["id"] != trashedDoc || d["deleted_at"] != "2026-12-02T10:00:00Z" || d["purge_at"] != "2026-12-09T10:00:00+01:00" {
		t.Fatalf("ls --trash --json: exit %d %q", status, stdout)
	}
	if reqs := s.requests(); len(reqs) != 1 || reqs[0].target != "/documents?limit=5&trash=true" {
		t.Fatalf("ls --trash --limit 5 sent %+v", reqs)
	}
	// Without --trash: the live documents, in the usual five columns.
	status, stdout, _ = run(t, env, "ls")
	if lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n"); status != 0 || len(lines) != 2 ||
		!strings.HasPrefix(lines[0], heldDoc+"\t") || strings.Count(lines[0], "\t") != 4 {
		t.Fatalf("ls: exit %d %q", status, stdout)
	}
	if reqs := s.requests(); len(reqs) != 1 || strings.Contains(reqs[0].target, "trash") {
		t.Fatalf("ls sent %+v", reqs)
	}
}
