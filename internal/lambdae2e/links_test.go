//go:build linux

package lambdae2e

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// link is a share link's JSON (docs/design.md, "Share links"), and nothing
// more.
type link struct {
	ID          string    `json:"id"`
	DocumentID  string    `json:"document_id"`
	URL         string    `json:"url"`
	ExpiresAt   time.Time `json:"expires_at"`
	MaxUses     *int64    `json:"max_uses,omitempty"`
	Uses        int64     `json:"uses"`
	Disposition string    `json:"disposition"`
	CreatedAt   time.Time `json:"created_at"`
}

// TestLambdaE2E_ShareLinks makes, uses, lists and revokes share links
// through the functions under the runtime emulator: the metadata function
// owns the links routes, the download function answers GET /links/{token},
// with no authorizer context at all, from the Redis tier when it is hot.
func TestLambdaE2E_ShareLinks(t *testing.T) {
	t.Parallel()
	requireEnv(t)
	up, down, meta := startFunction(t, fnUpload), startFunction(t, fnDownload), startFunction(t, fnMetadata)
	tenant := "e2e-links-" + randomHex(8)

	doc := randomBytes(1_200_000)
	r := up.call(t, apiEvent(t, apiRequest{sample: "upload", route: "POST /documents", sub: tenant,
		headers: map[string]string{"content-type": "image/jpeg"}, body: doc, binary: true})).expect(t, "upload", 201)
	var d document
	decodeStrict(t, "upload", r, &d)

	create := func(body string) link {
		t.Helper()
		r := meta.call(t, apiEvent(t, apiRequest{sample: "create-link", route: "POST /documents/{id}/links", id: d.ID, sub: tenant,
			headers: map[string]string{"content-type": "application/json"}, body: []byte(body)})).expect(t, "POST links "+body, 201)
		var l link
		decodeStrict(t, "POST links", r, &l)
		if loc := r.header("location"); loc != "/documents/"+d.ID+"/links/"+l.ID {
			t.Fatalf("POST links: location %q", loc)
		}
		return l
	}
	open := func(what string, l link, headers map[string]string) reply {
		t.Helper()
		token, ok := strings.CutPrefix(l.URL, "https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/links/")
		if !ok {
			t.Fatalf("a link's URL %q is not on the request's own domain", l.URL)
		}
		r := down.call(t, apiEvent(t, apiRequest{sample: "get-link", route: "GET /links/{token}",
			params: map[string]string{"token": token}, headers: headers}))
		for k, v := range map[string]string{"cache-control": "private, no-store", "referrer-policy": "no-referrer", "x-content-type-options": "nosniff"} {
			if got := r.header(k); got != v {
				t.Fatalf("%s: %s %q, want %q", what, k, got, v)
			}
		}
		return r
	}

	l := create(`{}`)
	if l.DocumentID != d.ID || l.Disposition != "inline" || l.MaxUses != nil || l.Uses != 0 {
		t.Fatalf("a default link: %+v", l)
	}
	r = open("GET link", l, nil).expect(t, "GET link", 200)
	if !bytes.Equal(r.body, doc) || r.header("x-imago-cache") != "hit" || !strings.HasPrefix(r.header("content-disposition"), "inline") {
		t.Fatalf("GET link: cache %q, disposition %q", r.header("x-imago-cache"), r.header("content-disposition"))
	}
	r = open("GET link, Range", l, map[string]string{"range": "bytes=10-19"}).expect(t, "GET link, Range", 206)
	if !bytes.Equal(r.body, doc[10:20]) {
		t.Fatal("GET link, Range: the bytes differ")
	}
	open("GET link, If-None-Match", l, map[string]string{"if-none-match": `"` + d.SHA256 + `"`}).expect(t, "GET link, If-None-Match", 304)
	open("GET link, tampered", link{URL: l.URL[:len(l.URL)-3] + "AAA"}, nil).expectError(t, "GET link, tampered", 404, "not_found")

	// Exactly one of several racing clients gets a link's last use.
	once := create(`{"max_uses":1,"disposition":"attachment"}`)
	var wg sync.WaitGroup
	statuses := make(chan int, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses <- open("GET one-use link", once, nil).StatusCode
		}()
	}
	wg.Wait()
	close(statuses)
	counts := map[int]int{}
	for s := range statuses {
		counts[s]++
	}
	if counts[200] != 1 || counts[410] != 3 {
		t.Fatalf("four clients on a one-use link: %v, want one 200 and three 410", counts)
	}

	r = meta.call(t, apiEvent(t, apiRequest{sample: "list-links", route: "GET /documents/{id}/links", id: d.ID, sub: tenant})).expect(t, "GET links", 200)
	var listed struct {
		Links []link `json:"links"`
	}
	decodeStrict(t, "GET links", r, &listed)
	if len(listed.Links) != 1 || listed.Links[0].ID != l.ID || listed.Links[0].Uses != 2 || listed.Links[0].URL != l.URL {
		t.Fatalf("GET links: %+v", listed.Links)
	}

	meta.call(t, apiEvent(t, apiRequest{sample: "revoke-link", route: "DELETE /documents/{id}/links/{link_id}", id: d.ID,
		params: map[string]string{"link_id": l.ID}, sub: tenant})).expect(t, "DELETE link", 204)
	open("GET revoked link", l, nil).expectError(t, "GET revoked link", 410, "gone")

	live := create(`{"expires_in":120}`)
	open("GET link before the delete", live, nil).expect(t, "GET link before the delete", 200)
	meta.call(t, apiEvent(t, apiRequest{sample: "delete", route: "DELETE /documents/{id}", id: d.ID, sub: tenant})).expect(t, "DELETE document", 204)
	open("GET link of a deleted document", live, nil).expectError(t, "GET link of a deleted document", 404, "not_found")
}
