package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	wire "github.com/imagodocs/imago/internal/api"
)

// TestCLIPolicyAgainstServe drives a document's policy as README shows,
// against `imago serve` with a deletion delay: put --expires-in on every
// upload path (a resumed one too), rm into the trash, ls --trash, restore,
// hold, release, rm --purge.
func TestCLIPolicyAgainstServe(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, map[string]string{"IMAGO_DATA_DIR": filepath.Join(dir, "data"), "IMAGO_ADDR": "127.0.0.1:0",
		"IMAGO_DELETION_DELAY": "1h", "IMAGO_MAX_INLINE_BYTES": "512KiB", "IMAGO_MULTIPART_THRESHOLD": "1MiB"})
	// Part PUTs go through the proxy, which can cut them.
	proxy := newPartsProxy(t, srv.url)
	env := map[string]string{"IMAGO_URL": proxy.url, "XDG_CACHE_HOME": filepath.Join(dir, "cache")}

	docs := map[string][]byte{}
	var paths []string
	for i, size := range []int{1000, 700_000, 2 << 20} { // inline, presigned, in parts
		doc := make([]byte, size)
		rand.Read(doc)
		p := filepath.Join(dir, fmt.Sprintf("doc%d.pdf", i))
		os.WriteFile(p, doc, 0o600)
		paths = append(paths, p)
		docs[filepath.Base(p)] = doc
	}
	putAt := time.Now()
	status, stdout, stderr := run(t, env, append([]string{"put", "--expires-in", "2h"}, paths...)...)
	if status != 0 || stderr != "" {
		t.Fatalf("put --expires-in 2h: exit %d %s", status, stderr)
	}
	var ds []wire.Document
	for _, line := range strings.Split(strings.TrimSuffix(stdout, "\n"), "\n") {
		var d wire.Document
		if err := json.Unmarshal([]byte(line), &d); err != nil {
			t.Fatalf("put printed %q: %v", line, err)
		}
		// Counted from the upload's request, whatever path the bytes took.
		if d.ExpiresAt == nil || d.ExpiresAt.Before(putAt.Add(2*time.Hour-time.Second)) || d.ExpiresAt.After(time.Now().Add(2*time.Hour)) ||
			d.LegalHold || !strings.Contains(line, `"legal_hold":false`) {
			t.Fatalf("put --expires-in 2h printed %s", line)
		}
		ds = append(ds, d)
	}
	if len(ds) != 3 {
		t.Fatalf("put printed %d documents, want 3:\n%s", len(ds), stdout)
	}
	if status, stdout, _ := run(t, env, "put", paths[0]); status != 0 || strings.Contains(stdout, "expires_at") {
		t.Fatalf("put without --expires-in: exit %d %s", status, stdout)
	}
	d := ds[0]

	// rm: into the trash. Not read, not listed; ls --trash lists it.
	if status, _, stderr := run(t, env, "rm", d.ID); status != 0 {
		t.Fatalf("rm: exit %d %s", status, stderr)
	}
	if status, _, _ := run(t, env, "stat", d.ID); status != 3 {
		t.Fatalf("stat of a document in the trash: exit %d, want 3", status)
	}
	if _, stdout, _ := run(t, env, "ls"); strings.Contains(stdout, d.ID) || strings.Count(stdout, "\n") != 3 {
		t.Fatalf("ls lists the trash:\n%s", stdout)
	}
	status, stdout, _ = run(t, env, "ls", "--trash")
	f := strings.Split(strings.TrimSuffix(stdout, "\n"), "\t")
	if status != 0 || len(f) != 7 || f[0] != d.ID || f[1] != "1000" || f[2] != "available" || f[6] != "doc0.pdf" {
		t.Fatalf("ls --trash: exit %d %q", status, stdout)
	}
	deleted, err1 := time.Parse(time.RFC3339, f[4])
	purge, err2 := time.Parse(time.RFC3339, f[5])
	if err1 != nil || err2 != nil || purge.Sub(deleted).Round(time.Second) != time.Hour {
		t.Fatalf("ls --trash: deleted %q, purge %q", f[4], f[5])
	}
	status, stdout, _ = run(t, env, "ls", "--trash", "--json")
	var trashed wire.Document
	if status != 0 || json.Unmarshal([]byte(stdout), &trashed) != nil || trashed.ID != d.ID || trashed.DeletedAt == nil || trashed.PurgeAt == nil {
		t.Fatalf("ls --trash --json: exit %d %q", status, stdout)
	}

	// restore: back whole, same expiry; again: not in the trash, exit 1.
	status, stdout, stderr = run(t, env, "restore", d.ID)
	var restored wire.Document
	if status != 0 || json.Unmarshal([]byte(stdout), &restored) != nil || restored.ID != d.ID || restored.SHA256 != d.SHA256 ||
		restored.ExpiresAt == nil || !restored.ExpiresAt.Equal(*d.ExpiresAt) || restored.DeletedAt != nil || restored.PurgeAt != nil {
		t.Fatalf("restore: exit %d %q %s", status, stdout, stderr)
	}
	if status, stdout, _ := run(t, env, "get", "-o", "-", d.ID); status != 0 || stdout != string(docs["doc0.pdf"]) {
		t.Fatalf("get after restore: exit %d, %d bytes", status, len(stdout))
	}
	if _, stdout, _ := run(t, env, "ls", "--trash"); stdout != "" {
		t.Fatalf("ls --trash after restore: %q", stdout)
	}
	if status, _, stderr := run(t, env, "restore", d.ID); status != 1 || !strings.Contains(stderr, "not in the trash") {
		t.Fatalf("restore of a document not in the trash: exit %d %s", status, stderr)
	}

	// hold: rm refuses it, exit 1, with or without --purge; it stays readable.
	if status, stdout, stderr := run(t, env, "hold", d.ID); status != 0 || stdout != "" || stderr != "" {
		t.Fatalf("hold: exit %d %q %s", status, stdout, stderr)
	}
	if _, stdout, _ := run(t, env, "stat", d.ID); !strings.Contains(stdout, `"legal_hold":true`) {
		t.Fatalf("stat of a held document: %s", stdout)
	}
	for _, args := range [][]string{{"rm", d.ID}, {"rm", "--purge", d.ID}} {
		if status, _, stderr := run(t, env, args...); status != 1 || !strings.Contains(stderr, "legal hold") {
			t.Fatalf("imago %q of a held document: exit %d, want 1: %s", args, status, stderr)
		}
	}
	if status, _, _ := run(t, env, "stat", d.ID); status != 0 {
		t.Fatalf("stat of a held document after rm: exit %d", status)
	}

	// release, then rm --purge: gone for good.
	if status, stdout, stderr := run(t, env, "release", d.ID); status != 0 || stdout != "" || stderr != "" {
		t.Fatalf("release: exit %d %q %s", status, stdout, stderr)
	}
	if status, _, stderr := run(t, env, "rm", "--purge", d.ID); status != 0 {
		t.Fatalf("rm --purge: exit %d %s", status, stderr)
	}
	for _, args := range [][]string{{"stat", d.ID}, {"restore", d.ID}, {"rm", d.ID}, {"hold", d.ID}, {"release", d.ID}} {
		if status, _, stderr := run(t, env, args...); status != 3 || !strings.Contains(stderr, "not found") {
			t.Fatalf("imago %q of a purged document: exit %d, want 3: %s", args, status, stderr)
		}
	}

	// rm --purge of a document in the trash.
	if status, _, _ := run(t, env, "rm", ds[1].ID); status != 0 {
		t.Fatalf("rm: exit %d", status)
	}
	if status, _, stderr := run(t, env, "rm", "--purge", ds[1].ID); status != 0 {
		t.Fatalf("rm --purge from the trash: exit %d %s", status, stderr)
	}
	if status, _, _ := run(t, env, "restore", ds[1].ID); status != 3 {
		t.Fatalf("restore of a document purged from the trash: exit %d, want 3", status)
	}
	if _, stdout, _ := run(t, env, "ls", "--trash"); stdout != "" {
		t.Fatalf("ls --trash after the purges: %q", stdout)
	}

	// A put in parts interrupted, then resumed: one document, with the
	// retention of the run that began it.
	big := make([]byte, 17<<20) // two parts of 16 MiB
	rand.Read(big)
	src := filepath.Join(dir, "big.bin")
	os.WriteFile(src, big, 0o600)
	proxy.failFrom.Store(proxy.partPuts.Load() + 2) // the first part goes through, the second fails
	firstAt := time.Now()
	if status, _, stderr := run(t, env, "put", "--parallel", "1", "--expires-in", "30d", src); status != 1 || !strings.Contains(stderr, "resume") {
		t.Fatalf("interrupted put: exit %d %s", status, stderr)
	}
	firstDone := time.Now()
	proxy.failFrom.Store(0)
	status, stdout, stderr = run(t, env, "put", "--expires-in", "30d", src)
	var resumed wire.Document
	if status != 0 || json.Unmarshal([]byte(stdout), &resumed) != nil || resumed.ExpiresAt == nil ||
		resumed.ExpiresAt.Before(firstAt.Add(30*24*time.Hour-time.Second)) || resumed.ExpiresAt.After(firstDone.Add(30*24*time.Hour)) {
		t.Fatalf("resumed put --expires-in 30d: exit %d %q %s", status, stdout, stderr)
	}
	if status, stdout, _ := run(t, env, "get", "-o", "-", resumed.ID); status != 0 || !bytes.Equal([]byte(stdout), big) {
		t.Fatalf("get of the resumed put: exit %d, %d bytes", status, len(stdout))
	}
}
