package main

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/imagodocs/imago/internal/localfront"
	"github.com/imagodocs/imago/internal/testenv"
)

// TestServeS3EventsEndpointActsForNoTenant posts to `imago serve`'s S3
// events endpoint what an attacker would: an API Gateway event whose
// claims name bob, with a document body and no token. It must be refused
// with nothing stored in bob's name, while a real S3 notification still
// makes bob's presigned upload available.
func TestServeS3EventsEndpointActsForNoTenant(t *testing.T) {
	env := testenv.Require(t, awsVars...)
	testenv.AWSConfig(t)
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	// A tenant of this run alone: the table is shared with other tests.
	tenant := "bob-" + uuid.NewString()
	if err := os.WriteFile(tokens, []byte("secret-b "+tenant+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env["IMAGO_ADDR"], env["IMAGO_DATA_DIR"], env["IMAGO_TOKENS"] = "127.0.0.1:0", dir, tokens
	testenv.AddCredentials(env)
	srv := startServer(t, env)
	bob := api{t, srv.url, "secret-b"}
	listing := func() string {
		t.Helper()
		var page struct{ Documents []struct{ ID string } }
		bob.expect("GET", "/documents", nil, 200, &page)
		var ids []string
		for _, d := range page.Documents {
			ids = append(ids, d.ID)
		}
		return strings.Join(ids, ",")
	}
	if got := listing(); got != "" {
		t.Fatalf("bob's listing before: %s", got)
	}

	hostile := `{"version":"2.0","routeKey":"POST /documents","rawPath":"/documents","rawQueryString":"filename=planted.txt",
		"headers":{"content-type":"text/plain"},"body":"cGxhbnRlZCBieSBzb21lb25lIGVsc2U=","isBase64Encoded":true,
		"requestContext":{"http":{"method":"POST","path":"/documents"},"routeKey":"POST /documents","requestId":"x",
			"authorizer":{"jwt":{"claims":{"sub":"` + tenant + `"}}}}}`
	resp, err := http.Post(srv.url+localfront.S3EventsPath, "application/json", strings.NewReader(hostile))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	resp.Body.Close()
	if got := listing(); got != "" {
		t.Errorf("bob's listing after the hostile post: %s", got)
		for _, id := range strings.Split(got, ",") {
			bob.do("DELETE", "/documents/"+id, nil)
		}
	}
	if resp.StatusCode != 400 || resp.Header.Get("Content-Type") != "application/json" || !strings.Contains(b.String(), `"code":"invalid"`) {
		t.Fatalf("the API Gateway event posted as an S3 event: %d %s, want 400 invalid", resp.StatusCode, b.String())
	}

	// A real notification of bob's presigned upload is still ingested.
	doc := []byte("bob's own document, uploaded through a presigned PUT")
	var up createdUpload
	bob.expect("POST", "/documents/uploads", map[string]any{"filename": "own.txt", "content_type": "text/plain", "size": len(doc)}, 201, &up)
	if status := send(t, up.Method, up.UploadURL, doc, up.Headers); status != 200 {
		t.Fatalf("presigned PUT: %d", status)
	}
	status, err := postS3Event(srv.url, env["IMAGO_BUCKET"], "Put", up.ID, int64(len(doc)))
	if err != nil {
		t.Fatal(err)
	}
	if status != 204 {
		t.Fatalf("S3 event: %d", status)
	}
	var md struct{ Status string }
	bob.expect("GET", "/documents/"+up.ID, nil, 200, &md)
	if md.Status != "available" || listing() != up.ID {
		t.Fatalf("after the S3 event: status %q, bob's listing %s", md.Status, listing())
	}
	t.Cleanup(func() { bob.do("DELETE", "/documents/"+up.ID, nil) })
}
