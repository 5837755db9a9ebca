package client

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestPutSendsTheRetention: every path Put takes — inline, inline refused
// for its size then an upload, one presigned PUT, parts — gives the
// document the retention asked for, in whole seconds; none is sent when
// none is asked for.
func TestPutSendsTheRetention(t *testing.T) {
	f := newFakeAPI(t)
	c := testClient(t, f, Options{})
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		size      int
		expiresIn time.Duration
		want      string
	}{
		{"inline", 1000, 2 * time.Hour, "7200"},
		{"inline, no retention", 1000, 0, ""},
		{"presigned", 2 << 20, 30 * 24 * time.Hour, "2592000"},
		{"presigned, no retention", 2 << 20, 0, ""},
		{"in parts", 5<<20 + 3, 90 * time.Second, "90"},
		{"in parts, no retention", 5<<20 + 3, 0, ""},
	} {
		path, _ := randomFile(t, tc.size)
		d, err := c.Put(ctx, path, PutOptions{ExpiresIn: tc.expiresIn})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := f.doc(d.ID).expiresIn; got != tc.want {
			t.Fatalf("%s: the server was sent expires_in %q, want %q", tc.name, got, tc.want)
		}
		switch {
		case tc.want == "" && d.ExpiresAt != nil:
			t.Fatalf("%s: the document expires at %v", tc.name, d.ExpiresAt)
		case tc.want != "" && (d.ExpiresAt == nil || !d.ExpiresAt.Equal(d.CreatedAt.Add(tc.expiresIn))):
			t.Fatalf("%s: the document expires at %v, want %v after %v", tc.name, d.ExpiresAt, tc.expiresIn, d.CreatedAt)
		}
	}
	if n := f.count("POST /documents/{id}/complete"); n != 2 {
		t.Fatalf("%d uploads in parts, want 2", n)
	}

	// A server whose inline limit is below the client's refuses the
	// inline upload (413); the upload that follows carries the retention.
	f.mu.Lock()
	f.inlineLimit = 500
	f.mu.Unlock()
	path, _ := randomFile(t, 1000)
	d, err := c.Put(ctx, path, PutOptions{ExpiresIn: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.doc(d.ID).expiresIn; got != "3600" || f.count("POST /documents/uploads") != 5 {
		t.Fatalf("after a 413: expires_in %q, %d uploads created", got, f.count("POST /documents/uploads"))
	}
}

func TestPutRefusesARetentionItCannotSend(t *testing.T) {
	f := newFakeAPI(t)
	c := testClient(t, f, Options{})
	path, _ := randomFile(t, 100)
	for _, d := range []time.Duration{1500 * time.Millisecond, -time.Hour, time.Millisecond} {
		if _, err := c.Put(context.Background(), path, PutOptions{ExpiresIn: d}); err == nil || !strings.Contains(err.Error(), "whole number of seconds") {
			t.Errorf("put with a retention of %v: %v", d, err)
		}
	}
	if n := f.count("POST /documents") + f.count("POST /documents/uploads"); n != 0 {
		t.Fatalf("%d uploads sent", n)
	}
}

// TestPutResumedKeepsTheRetention: an upload in parts interrupted and
// resumed is the one document, with the retention its first run asked
// for.
func TestPutResumedKeepsTheRetention(t *testing.T) {
	recordSleeps(t)
	f := newFakeAPI(t)
	c := testClient(t, f, Options{Parallel: 1})
	path, doc := randomFile(t, 5<<20+3) // 6 parts of 1 MiB
	var sent atomic.Int64
	f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == "PUT" && strings.HasPrefix(r.URL.Path, "/_parts/") && sent.Add(1) > 2 {
			apiError(w, 500, "internal", "the machine went away")
			return true
		}
		return false
	})
	if _, err := c.Put(context.Background(), path, PutOptions{ExpiresIn: 48 * time.Hour}); err == nil || !strings.Contains(err.Error(), "resume") {
		t.Fatalf("interrupted put: %v", err)
	}
	f.idle()
	f.setHook(nil)
	d, err := c.Put(context.Background(), path, PutOptions{ExpiresIn: 48 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if f.count("POST /documents/uploads") != 1 || f.doc(d.ID).expiresIn != "172800" || d.ExpiresAt == nil || d.Size != int64(len(doc)) {
		t.Fatalf("resumed put: %d uploads created, expires_in %q, %+v", f.count("POST /documents/uploads"), f.doc(d.ID).expiresIn, d)
	}
}

// TestTrashRestorePurgeAndHold goes through a document's policy on a
// server with a deletion delay.
func TestTrashRestorePurgeAndHold(t *testing.T) {
	f := newFakeAPI(t)
	f.deletionDelay = time.Hour
	c := testClient(t, f, Options{})
	ctx := context.Background()
	a, b := putDoc(t, c), putDoc(t, c)

	// Deleted: in the trash, not read, not listed.
	if err := c.Delete(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stat(ctx, a); !IsNotFound(err) {
		t.Fatalf("stat of a document in the trash: %v", err)
	}
	if got := ids(t, c.List(ctx, 0)); len(got) != 1 || got[0] != b {
		t.Fatalf("list: %v, want just %s", got, b)
	}
	var trashed []Document
	for d, err := range c.ListTrash(ctx, 0) {
		if err != nil {
			t.Fatal(err)
		}
		trashed = append(trashed, d)
	}
	if len(trashed) != 1 || trashed[0].ID != a || trashed[0].DeletedAt == nil || trashed[0].PurgeAt == nil ||
		trashed[0].PurgeAt.Sub(*trashed[0].DeletedAt) != time.Hour {
		t.Fatalf("the trash: %+v", trashed)
	}
	if err := c.Delete(ctx, a); !IsNotFound(err) {
		t.Fatalf("delete of a document in the trash: %v", err)
	}

	// Restored: read again, out of the trash; a second restore is a
	// conflict, not a not found.
	d, err := c.Restore(ctx, a)
	if err != nil || d.ID != a || d.DeletedAt != nil || d.PurgeAt != nil {
		t.Fatalf("restore: %v %+v", err, d)
	}
	if _, err := c.Stat(ctx, a); err != nil {
		t.Fatalf("stat after restore: %v", err)
	}
	if _, err := c.Restore(ctx, a); !isStatus(err, http.StatusConflict) {
		t.Fatalf("restore of a document not in the trash: %v", err)
	}
	if got := ids(t, c.ListTrash(ctx, 0)); len(got) != 0 {
		t.Fatalf("the trash after restore: %v", got)
	}

	// Purged from the trash, and at once: gone for good.
	if err := c.Delete(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := c.Purge(ctx, a); err != nil {
		t.Fatalf("purge from the trash: %v", err)
	}
	if _, err := c.Restore(ctx, a); !IsNotFound(err) {
		t.Fatalf("restore of a purged document: %v", err)
	}

	// Held: refuses deletion and purge (409, the server's message), until
	// released; both idempotent.
	for range 2 {
		if err := c.Hold(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if s, _ := c.Stat(ctx, b); !s.LegalHold {
		t.Fatalf("held: %+v", s)
	}
	for what, del := range map[string]func(context.Context, string) error{"delete": c.Delete, "purge": c.Purge} {
		if err := del(ctx, b); !isStatus(err, http.StatusConflict) || !strings.Contains(err.Error(), "legal hold") {
			t.Fatalf("%s of a held document: %v", what, err)
		}
	}
	for range 2 {
		if err := c.Release(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Purge(ctx, b); err != nil {
		t.Fatalf("purge of a released document: %v", err)
	}
	if got := ids(t, c.ListTrash(ctx, 0)); len(got) != 0 {
		t.Fatalf("the trash after purging everything: %v", got)
	}

	// Unknown: not found, every call.
	const unknown = "00000000-0000-4000-8000-000000000000"
	for what, call := range map[string]func(context.Context, string) error{
		"delete": c.Delete, "purge": c.Purge, "hold": c.Hold, "release": c.Release,
		"restore": func(ctx context.Context, id string) error { _, err := c.Restore(ctx, id); return err },
	} {
		if err := call(ctx, unknown); !IsNotFound(err) || !strings.Contains(err.Error(), what+" "+unknown) {
			t.Errorf("%s of an unknown document: %v", what, err)
		}
	}
}

// TestPolicyCallsAfterALostAnswer: a deletion, restore or hold the server
// carried out but whose answer was lost is retried, and the repeat's
// answer — not found, not in the trash — is taken for the success it is.
func TestPolicyCallsAfterALostAnswer(t *testing.T) {
	recordSleeps(t)
	f := newFakeAPI(t)
	f.deletionDelay = time.Hour
	c := testClient(t, f, Options{})
	ctx := context.Background()
	id := putDoc(t, c)

	// loseAnswer makes the next request that match names carry out act,
	// then drop the connection without an answer.
	loseAnswer := func(match func(*http.Request) bool, act func(d *fakeDoc)) {
		var once atomic.Bool
		f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
			if !match(r) || once.Swap(true) {
				return false
			}
			f.mu.Lock()
			act(f.docs[id])
			f.mu.Unlock()
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				conn.Close()
			}
			return true
		})
	}
	trash := func(d *fakeDoc) {
		now := time.Now()
		purge := now.Add(f.deletionDelay)
		d.DeletedAt, d.PurgeAt = &now, &purge
	}

	loseAnswer(func(r *http.Request) bool { return r.Method == "DELETE" }, trash)
	if err := c.Delete(ctx, id); err != nil {
		t.Fatalf("delete whose answer was lost: %v", err)
	}
	if n := f.count("DELETE /documents/{id}"); n != 2 {
		t.Fatalf("DELETE reached the server %d times, want 2", n)
	}

	loseAnswer(func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/restore") }, (*fakeDoc).restore)
	d, err := c.Restore(ctx, id)
	if err != nil || d.ID != id || d.DeletedAt != nil {
		t.Fatalf("restore whose answer was lost: %v %+v", err, d)
	}
	if n := f.count("POST /documents/{id}/restore"); n != 2 {
		t.Fatalf("restore reached the server %d times, want 2", n)
	}

	loseAnswer(func(r *http.Request) bool { return r.Method == "PUT" }, func(d *fakeDoc) { d.LegalHold = true })
	if err := c.Hold(ctx, id); err != nil {
		t.Fatalf("hold whose answer was lost: %v", err)
	}
	if n := f.count("PUT /documents/{id}/legal-hold"); n != 2 {
		t.Fatalf("hold reached the server %d times, want 2", n)
	}
	f.setHook(nil)
	if err := c.Release(ctx, id); err != nil {
		t.Fatal(err)
	}

	loseAnswer(func(r *http.Request) bool { return r.Method == "DELETE" },
		func(d *fakeDoc) { delete(f.docs, d.ID) }) // under f.mu
	if err := c.Purge(ctx, id); err != nil {
		t.Fatalf("purge whose answer was lost: %v", err)
	}
	if _, err := c.Stat(ctx, id); !IsNotFound(err) {
		t.Fatalf("stat after purge: %v", err)
	}

	// Without a lost answer, the same refusals are failures: a restore of
	// a document not in the trash, a deletion of one unknown.
	f.setHook(nil)
	other := putDoc(t, c)
	if _, err := c.Restore(ctx, other); !isStatus(err, http.StatusConflict) {
		t.Fatalf("restore of a document not in the trash: %v", err)
	}
	if err := c.Purge(ctx, id); !IsNotFound(err) {
		t.Fatalf("purge of a purged document: %v", err)
	}
}

// ids collects the ids a listing yields.
func ids(t *testing.T, seq func(func(Document, error) bool)) []string {
	t.Helper()
	var out []string
	for d, err := range seq {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d.ID)
	}
	return out
}
