package main

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"testing"
)

// TestServeCursorSurvivesARestart: without IMAGO_CURSOR_SECRET, imago
// serve keeps its cursor secret in the data folder, so a cursor handed out
// before a restart still resumes the listing after it, and a cursor
// tampered with is refused.
func TestServeCursorSurvivesARestart(t *testing.T) {
	dataDir := t.TempDir()
	env := map[string]string{"IMAGO_DATA_DIR": dataDir, "IMAGO_ADDR": "127.0.0.1:0"}
	srv := startServer(t, env)
	for _, name := range []string{"a.txt", "b.txt"} {
		uploadMultipart(t, srv.url, name, []byte("content of "+name))
	}
	type page struct {
		Documents  []struct{ ID string }
		NextCursor string `json:"next_cursor"`
	}
	list := func(url string, want int) page {
		t.Helper()
		resp, body := get(t, url)
		if resp.StatusCode != want {
			t.Fatalf("GET %s: %d %s, want %d", url, resp.StatusCode, body, want)
		}
		var p page
		json.Unmarshal(body, &p)
		return p
	}
	first := list(srv.url+"/documents?limit=1", 200)
	if first.NextCursor == "" || len(first.Documents) != 1 {
		t.Fatalf("first page: %+v", first)
	}
	fi, err := os.Stat(filepath.Join(dataDir, "cursor.key"))
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != 32 {
		t.Fatalf("cursor.key: %v %v", fi, err)
	}
	srv.stop()

	srv = startServer(t, env)
	second := list(srv.url+"/documents?limit=1&cursor="+url.QueryEscape(first.NextCursor), 200)
	if len(second.Documents) != 1 || second.Documents[0].ID == first.Documents[0].ID || second.NextCursor != "" {
		t.Fatalf("second page after a restart: %+v (first %+v)", second, first)
	}
	tampered := []byte(first.NextCursor)
	tampered[3] ^= 'A' ^ 'B'
	list(srv.url+"/documents?cursor="+url.QueryEscape(string(tampered)), 400)
}
