package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// linkServer is an API answering the share link routes of one document
// (docs/design.md, "Share links"), from a fixed list of links; any other
// document or link is not found. It records the bodies of the POSTs.
type linkServer struct {
	url string
	id  string

	mu      sync.Mutex
	posts   []map[string]any
	deleted []string
}

const (
	linkDoc = "0f1c2a8e-3b4d-4c5e-8f90-1a2b3c4d5e6f"
	link1   = "5b9e0c3a-1d2f-4e6a-9b8c-7d6e5f4a3b2c"
	link2   = "6c0f1d4b-2e3a-4f7b-8c9d-8e7f6a5b4c3d"
)

func newLinkServer(t *testing.T) *linkServer {
	s := &linkServer{id: linkDoc}
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		base := "/documents/" + s.id + "/links"
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == "POST" && r.URL.Path == base:
			var body map[string]any
			raw, _ := io.ReadAll(r.Body)
			if err := json.Unmarshal(raw, &body); err != nil {
				w.WriteHeader(400)
				fmt.Fprint(w, `{"error":{"code":"invalid","message":"bad JSON"}}`)
				return
			}
			s.mu.Lock()
			s.posts = append(s.posts, body)
			s.mu.Unlock()
			w.Header().Set("Location", base+"/"+link1)
			w.WriteHeader(201)
			fmt.Fprintf(w, `{"id":%q,"document_id":%q,"url":"%s/links/tok1","expires_at":"2026-12-01T02:00:00Z","max_uses":3,"uses":0,"disposition":"attachment","created_at":"2026-12-01T00:00:00Z"}`,
				link1, s.id, srv.URL)
		case r.Method == "GET" && r.URL.Path == base:
			fmt.Fprintf(w, `{"links":[`+
				`{"id":%q,"document_id":%q,"url":"%s/links/tok1","expires_at":"2026-12-01T02:00:00Z","max_uses":3,"uses":1,"disposition":"attachment","created_at":"2026-12-01T00:00:00Z"},`+
				`{"id":%q,"document_id":%q,"url":"%s/links/tok2","expires_at":"2026-12-01T01:00:00+01:00","uses":7,"disposition":"inline","created_at":"2026-11-30T23:00:00Z"}]}`,
				link1, s.id, srv.URL, link2, s.id, srv.URL)
		case r.Method == "DELETE" && (r.URL.Path == base+"/"+link1 || r.URL.Path == base+"/"+link2):
			s.mu.Lock()
			s.deleted = append(s.deleted, strings.TrimPrefix(r.URL.Path, base+"/"))
			s.mu.Unlock()
			w.WriteHeader(204)
		default:
			w.WriteHeader(404)
			fmt.Fprint(w, `{"error":{"code":"not_found","message":"not found"}}`)
		}
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

func (s *linkServer) postBodies() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.posts...)
}

func TestCLISharePrintsTheURL(t *testing.T) {
	s := newLinkServer(t)
	env := map[string]string{"IMAGO_URL": s.url}
	status, stdout, stderr := run(t, env, "share", s.id)
	if status != 0 || stdout != s.url+"/links/tok1\n" || stderr != "" {
		t.Fatalf("share: exit %d\nstdout: %q\nstderr: %q", status, stdout, stderr)
	}
	// No flags: the server's defaults, nothing sent for them.
	if got := s.postBodies(); len(got) != 1 || len(got[0]) != 0 {
		t.Fatalf("share without flags sent %v, want {}", got)
	}

	// --json: the link's JSON, every field as the server gave it, on one line.
	status, stdout, _ = run(t, env, "share", "--json", s.id)
	var raw map[string]any
	if err := json.Unmarshal([]byte(stdout), &raw); status != 0 || err != nil || strings.Count(stdout, "\n") != 1 {
		t.Fatalf("share --json: exit %d %v %q", status, err, stdout)
	}
	if raw["id"] != link1 || raw["document_id"] != s.id || raw["url"] != s.url+"/links/tok1" || raw["max_uses"] != 3.0 ||
		raw["uses"] != 0.0 || raw["disposition"] != "attachment" || raw["expires_at"] != "2026-12-01T02:00:00Z" || raw["created_at"] != "2026-12-01T00:00:00Z" {
		t.Fatalf("share --json printed %s", stdout)
	}
}

func TestCLIShareSendsItsFlags(t *testing.T) {
	s := newLinkServer(t)
	env := map[string]string{"IMAGO_URL": s.url}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--expires", "2h"}, `{"expires_in":7200}`},
		{[]string{"--expires", "30d"}, `{"expires_in":2592000}`},
		{[]string{"--expires=90s", "--max-uses", "5"}, `{"expires_in":90,"max_uses":5}`},
		{[]string{"--attachment"}, `{"disposition":"attachment"}`},
		{[]string{"--max-uses=1", "--attachment", "--expires", "1h30m"}, `{"disposition":"attachment","expires_in":5400,"max_uses":1}`},
	} {
		before := len(s.postBodies())
		args := append(append([]string{"share"}, tc.args...), s.id)
		if status, _, stderr := run(t, env, args...); status != 0 {
			t.Fatalf("imago %v: exit %d %s", args, status, stderr)
		}
		bodies := s.postBodies()
		got, _ := json.Marshal(bodies[before]) // keys sorted
		var want map[string]any
		json.Unmarshal([]byte(tc.want), &want)
		wantRaw, _ := json.Marshal(want)
		if len(bodies) != before+1 || string(got) != string(wantRaw) {
			t.Fatalf("imago %v sent %s, want %s", args, got, wantRaw)
		}
	}
}

func TestCLIShareUsageErrors(t *testing.T) {
	s := newLinkServer(t)
	env := map[string]string{"IMAGO_URL": s.url}
	for _, args := range [][]string{
		{"share"}, {"share", s.id, "extra"}, {"share", "--expires", "1.5s", s.id}, {"share", "--expires", "500ms", s.id},
		{"share", "--expires", "0s", s.id}, {"share", "--expires", "-1h", s.id}, {"share", "--expires", "soon", s.id},
		{"share", "--expires", "", s.id}, {"share", "--expires", "1.5d", s.id}, {"share", "--max-uses", "0", s.id},
		{"share", "--max-uses", "x", s.id}, {"share", "--bogus", s.id},
		{"links"}, {"links", s.id, "extra"}, {"unshare"}, {"unshare", s.id}, {"unshare", s.id, link1, "extra"},
	} {
		status, stdout, stderr := run(t, env, args...)
		if status != 2 || stdout != "" || !strings.Contains(stderr, "usage: imago "+args[0]) {
			t.Errorf("imago %q: exit %d, want 2\nstdout: %s\nstderr: %s", args, status, stdout, stderr)
		}
	}
	if got := s.postBodies(); len(got) != 0 {
		t.Fatalf("a usage error sent %v", got)
	}
}

func TestCLILinksListsThem(t *testing.T) {
	s := newLinkServer(t)
	env := map[string]string{"IMAGO_URL": s.url}
	status, stdout, stderr := run(t, env, "links", s.id)
	want := link1 + "\t1/3\t2026-12-01T02:00:00Z\tattachment\t" + s.url + "/links/tok1\n" +
		link2 + "\t7/∞\t2026-12-01T00:00:00Z\tinline\t" + s.url + "/links/tok2\n"
	if status != 0 || stdout != want || stderr != "" {
		t.Fatalf("links: exit %d\nstdout: %q\nwant:   %q\nstderr: %s", status, stdout, want, stderr)
	}
	status, stdout, _ = run(t, env, "links", "--json", s.id)
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if status != 0 || len(lines) != 2 {
		t.Fatalf("links --json: exit %d %q", status, stdout)
	}
	for i, id := range []string{link1, link2} {
		var l map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &l); err != nil || l["id"] != id || l["document_id"] != s.id {
			t.Fatalf("links --json line %d: %v %s", i, err, lines[i])
		}
		if _, limited := l["max_uses"]; limited != (i == 0) {
			t.Fatalf("links --json line %d: max_uses present %v: %s", i, limited, lines[i])
		}
	}
}

func TestCLIUnshare(t *testing.T) {
	s := newLinkServer(t)
	env := map[string]string{"IMAGO_URL": s.url}
	status, stdout, stderr := run(t, env, "unshare", s.id, link2)
	if status != 0 || stdout != "" || stderr != "" {
		t.Fatalf("unshare: exit %d\nstdout: %q\nstderr: %q", status, stdout, stderr)
	}
	s.mu.Lock()
	deleted := append([]string(nil), s.deleted...)
	s.mu.Unlock()
	if len(deleted) != 1 || deleted[0] != link2 {
		t.Fatalf("deleted %v, want %s", deleted, link2)
	}
}

// TestCLILinkCommandsNotFound: an unknown document or link is exit 3.
func TestCLILinkCommandsNotFound(t *testing.T) {
	s := newLinkServer(t)
	env := map[string]string{"IMAGO_URL": s.url}
	const unknown = "00000000-0000-4000-8000-000000000000"
	for _, args := range [][]string{
		{"share", unknown}, {"share", "--json", "--expires", "2h", unknown}, {"links", unknown},
		{"unshare", s.id, unknown}, {"unshare", unknown, link1},
	} {
		status, stdout, stderr := run(t, env, args...)
		if status != 3 || stdout != "" || !strings.Contains(stderr, "not found") {
			t.Errorf("imago %q: exit %d, want 3\nstdout: %s\nstderr: %s", args, status, stdout, stderr)
		}
	}
}
