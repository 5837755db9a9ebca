package servicetest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/imagodocs/imago/internal/api"
	"github.com/imagodocs/imago/internal/apigw"
	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/linktoken"
)

// apiCall is one request through a function's Lambda entry point.
type apiCall struct {
	method, route, path string
	params              map[string]string
	tenant              string // "" sends no identity
	headers             map[string]string
	body                []byte
}

func (c apiCall) send(t *testing.T, h *apigw.Handler) events.APIGatewayV2HTTPResponse {
	t.Helper()
	ev := events.APIGatewayV2HTTPRequest{Version: "2.0", RouteKey: c.route, RawPath: c.path, PathParameters: c.params,
		Headers: map[string]string{"user-agent": "servicetest"}}
	for k, v := range c.headers {
		ev.Headers[k] = v
	}
	ev.RequestContext.HTTP.Method = c.method
	ev.RequestContext.HTTP.SourceIP = "192.0.2.7"
	ev.RequestContext.HTTP.UserAgent = "servicetest"
	ev.RequestContext.RequestID = "req-" + string(docstore.NewID())[:8]
	if c.tenant != "" {
		ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
			JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: map[string]string{"sub": c.tenant}}}
	}
	if c.body != nil {
		ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(c.body), true
	}
	payload, _ := json.Marshal(ev)
	out, err := h.Invoke(context.Background(), payload)
	if err != nil {
		t.Fatal(err)
	}
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatal(err)
	}
	return resp
}

// trail is tenant's whole audit trail, newest first.
func trail(t *testing.T, svc *docstore.Service, tenant docstore.Tenant) []api.AuditRecord {
	t.Helper()
	var all []api.AuditRecord
	cursor := ""
	for {
		page, err := svc.AuditPage(context.Background(), tenant, docstore.AuditQuery{}, api.MaxAuditLimit, cursor)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page.Records...)
		if page.NextCursor == "" {
			return all
		}
		cursor = page.NextCursor
	}
}

// testAuditRecordsEveryRequest: every request that names a document or a
// link leaves one record in its caller's trail, refused ones included,
// with what the caller would check of it; a share link's read goes to the
// owner's trail; nobody's trail holds another tenant's requests; the
// chains verify.
func testAuditRecordsEveryRequest(t *testing.T, h Harness) {
	set := h.Open(t)
	svc := docstore.NewService(set.Backends, docstore.Config{LinkKey: bytes.Repeat([]byte{6}, linktoken.SecretSize)}, nil)
	up, down, meta := apigw.New(svc, apigw.Upload, apigw.Options{}), apigw.New(svc, apigw.Download, apigw.Options{}), apigw.New(svc, apigw.Metadata, apigw.Options{})
	owner, other := "audit-"+string(docstore.NewID()), "audit-other-"+string(docstore.NewID())
	doc := randomDoc(100_000)

	r := apiCall{method: "POST", route: "POST /documents", path: "/documents", tenant: owner,
		headers: map[string]string{"content-type": "application/pdf"}, body: doc}.send(t, up)
	var d api.Document
	json.Unmarshal([]byte(r.Body), &d)
	id := d.ID
	docCall := func(method, route, suffix, tenant string, headers map[string]string) events.APIGatewayV2HTTPResponse {
		fn := meta
		if strings.HasSuffix(route, "/content") {
			fn = down
		}
		return apiCall{method: method, route: route, path: "/documents/" + id + suffix, params: map[string]string{"id": id},
			tenant: tenant, headers: headers}.send(t, fn)
	}
	docCall("GET", "GET /documents/{id}", "", owner, nil)
	docCall("GET", "GET /documents/{id}/content", "/content", owner, nil)
	docCall("GET", "GET /documents/{id}/content", "/content", owner, map[string]string{"range": "bytes=0-99"})
	docCall("GET", "GET /documents/{id}", "", other, nil) // another tenant's: 404, in the caller's trail
	apiCall{method: "GET", route: "GET /documents", path: "/documents", tenant: owner}.send(t, meta)
	lr := apiCall{method: "POST", route: "POST /documents/{id}/links", path: "/documents/" + id + "/links",
		params: map[string]string{"id": id}, tenant: owner}.send(t, meta)
	var link api.Link
	json.Unmarshal([]byte(lr.Body), &link)
	token := link.URL[strings.LastIndex(link.URL, "/")+1:]
	apiCall{method: "GET", route: "GET /links/{token}", path: "/links/" + token, params: map[string]string{"token": token}}.send(t, down)
	apiCall{method: "GET", route: "GET /audit", path: "/audit", tenant: owner}.send(t, meta) // not recorded
	docCall("DELETE", "DELETE /documents/{id}", "", owner, nil)
	docCall("GET", "GET /documents/{id}/content", "/content", owner, nil) // 404 now

	got := trail(t, svc, docstore.Tenant(owner))
	type want struct {
		action string
		status int
		check  func(r api.AuditRecord) bool
	}
	wants := []want{ // newest first
		{api.ActionRead, 404, func(r api.AuditRecord) bool { return r.Bytes == nil && r.DocumentID == id }},
		{api.ActionDelete, 204, nil},
		{api.ActionLinkRead, 200, func(r api.AuditRecord) bool {
			return r.Actor == api.ActorLinkPrefix+link.ID && r.LinkID == link.ID && r.Bytes != nil && *r.Bytes == int64(len(doc))
		}},
		{api.ActionLinkCreate, 201, func(r api.AuditRecord) bool { return r.LinkID == link.ID }},
		{api.ActionList, 200, func(r api.AuditRecord) bool { return r.DocumentID == "" }},
		{api.ActionRead, 206, func(r api.AuditRecord) bool {
			return r.Range == "bytes=0-99" && r.Bytes != nil && *r.Bytes == 100 && r.Cache == "hit"
		}},
		{api.ActionRead, 200, func(r api.AuditRecord) bool {
			return r.Bytes != nil && *r.Bytes == int64(len(doc)) && r.Cache == "hit"
		}},
		{api.ActionStat, 200, nil},
		{api.ActionUpload, 201, nil},
	}
	if len(got) != len(wants) {
		t.Fatalf("the owner's trail has %d records, want %d: %+v", len(got), len(wants), got)
	}
	for i, w := range wants {
		r := got[i]
		if r.Action != w.action || r.Status != w.status || (w.check != nil && !w.check(r)) {
			t.Fatalf("record %d: %+v, want %s %d", i, r, w.action, w.status)
		}
		if r.Tenant != owner || r.Time == "" || r.ID == "" || (r.Action != api.ActionList && r.DocumentID != id) {
			t.Fatalf("record %d: %+v", i, r)
		}
		if r.Action != api.ActionLinkRead && (r.Actor != owner || r.SourceIP != "192.0.2.7" || r.UserAgent != "servicetest" || r.RequestID == "") {
			t.Fatalf("record %d names its caller %q from %q (%q, %q)", i, r.Actor, r.SourceIP, r.UserAgent, r.RequestID)
		}
	}
	if b := api.VerifyAudit(got); b != nil {
		t.Fatalf("the owner's chains: %v", b)
	}
	// A presigned upload's ingest is Imago's own doing: a record of the
	// system's, in the owner's trail.
	up2, err := svc.CreateUpload(context.Background(), docstore.CreateUploadRequest{Tenant: docstore.Tenant(owner), Filename: "big.bin", Size: 5000})
	if err != nil {
		t.Fatal(err)
	}
	set.Raw.Stage(t, set.StagingPrefix+string(up2.ID), randomDoc(5000))
	if err := svc.Ingest(context.Background(), set.StagingPrefix+string(up2.ID)); err != nil {
		t.Fatal(err)
	}
	ingested, err := svc.AuditPage(context.Background(), docstore.Tenant(owner), docstore.AuditQuery{Document: up2.ID, Action: api.ActionIngest}, 0, "")
	if err != nil || len(ingested.Records) != 1 || ingested.Records[0].Actor != api.ActorSystem || ingested.Records[0].Status != 200 {
		t.Fatalf("the ingest's record: %+v %v", ingested.Records, err)
	}
	// A refused read of a share link (used up, revoked) is recorded too,
	// in its owner's trail.
	d2, err := svc.Upload(context.Background(), docstore.UploadRequest{Tenant: docstore.Tenant(owner), Body: randomDoc(100)})
	if err != nil {
		t.Fatal(err)
	}
	once, err := svc.CreateLink(context.Background(), docstore.Tenant(owner), d2.ID, docstore.LinkRequest{MaxUses: ptr[int64](1)})
	if err != nil {
		t.Fatal(err)
	}
	tok := svc.LinkToken(once)
	for _, want := range []int{200, 410} {
		r := apiCall{method: "GET", route: "GET /links/{token}", path: "/links/" + tok, params: map[string]string{"token": tok}}.send(t, down)
		if r.StatusCode != want {
			t.Fatalf("a one-use link: %d, want %d", r.StatusCode, want)
		}
	}
	reads, err := svc.AuditPage(context.Background(), docstore.Tenant(owner), docstore.AuditQuery{Document: d2.ID, Action: api.ActionLinkRead}, 0, "")
	if err != nil || len(reads.Records) != 2 || reads.Records[0].Status != 410 || reads.Records[0].Bytes != nil ||
		reads.Records[0].Actor != api.ActorLinkPrefix+string(once.ID) || reads.Records[1].Status != 200 {
		t.Fatalf("the one-use link's reads in its owner's trail: %+v %v", reads.Records, err)
	}
	theirs := trail(t, svc, docstore.Tenant(other))
	if len(theirs) != 1 || theirs[0].Status != 404 || theirs[0].Actor != other || theirs[0].Action != api.ActionStat {
		t.Fatalf("the other tenant's trail: %+v", theirs)
	}
}

// failingAudit is an AuditLog whose appends fail: the audit store down.
type failingAudit struct{ docstore.AuditLog }

func (failingAudit) Append(context.Context, docstore.Tenant, api.AuditRecord) error {
	return docstore.E("test", docstore.KindUnavailable, "the audit store is down")
}

// testAuditFailsClosed: when a request's record cannot be stored, it
// answers 503 and serves no byte of the document, cache hit or not, reads
// or writes; with recording off, nothing is recorded and everything works.
func testAuditFailsClosed(t *testing.T, h Harness) {
	set := h.Open(t)
	key := bytes.Repeat([]byte{9}, linktoken.SecretSize)
	svc := docstore.NewService(set.Backends, docstore.Config{LinkKey: key}, nil)
	tenant := "closed-" + string(docstore.NewID())
	doc := randomDoc(50_000)
	d, err := svc.Upload(context.Background(), docstore.UploadRequest{Tenant: docstore.Tenant(tenant), Body: doc})
	if err != nil {
		t.Fatal(err)
	}
	b := set.Backends
	b.Audit = failingAudit{set.Audit}
	down := docstore.NewService(b, docstore.Config{LinkKey: key}, nil)
	for _, hdr := range []map[string]string{nil, {"range": "bytes=0-9"}} {
		r := apiCall{method: "GET", route: "GET /documents/{id}/content", path: "/documents/" + string(d.ID) + "/content",
			params: map[string]string{"id": string(d.ID)}, tenant: tenant, headers: hdr}.send(t, apigw.New(down, apigw.Download, apigw.Options{}))
		if r.StatusCode != 503 || r.IsBase64Encoded || strings.Contains(r.Body, base64.StdEncoding.EncodeToString(doc[:30])) ||
			r.Headers["retry-after"] == "" || !strings.Contains(r.Body, `"unavailable"`) {
			t.Fatalf("a read whose record cannot be stored: %d %v %.120s", r.StatusCode, r.Headers, r.Body)
		}
	}
	// A share link's read: a 503 with the link's own headers.
	l, err := svc.CreateLink(context.Background(), docstore.Tenant(tenant), d.ID, docstore.LinkRequest{})
	if err != nil {
		t.Fatal(err)
	}
	token := svc.LinkToken(l)
	lr := apiCall{method: "GET", route: "GET /links/{token}", path: "/links/" + token, params: map[string]string{"token": token}}.
		send(t, apigw.New(down, apigw.Download, apigw.Options{}))
	if lr.StatusCode != 503 || lr.IsBase64Encoded || lr.Headers["cache-control"] != "private, no-store" || lr.Headers["referrer-policy"] != "no-referrer" {
		t.Fatalf("a link's read whose record cannot be stored: %d %v", lr.StatusCode, lr.Headers)
	}
	r := apiCall{method: "POST", route: "POST /documents", path: "/documents", tenant: tenant,
		headers: map[string]string{"content-type": "text/plain"}, body: []byte("x")}.send(t, apigw.New(down, apigw.Upload, apigw.Options{}))
	if r.StatusCode != 503 {
		t.Fatalf("an upload whose record cannot be stored: %d", r.StatusCode)
	}

	off := docstore.NewService(b, docstore.Config{AuditOff: true}, nil)
	before := len(trail(t, svc, docstore.Tenant(tenant)))
	r = apiCall{method: "GET", route: "GET /documents/{id}/content", path: "/documents/" + string(d.ID) + "/content",
		params: map[string]string{"id": string(d.ID)}, tenant: tenant}.send(t, apigw.New(off, apigw.Download, apigw.Options{}))
	if r.StatusCode != 200 {
		t.Fatalf("a read with recording off: %d", r.StatusCode)
	}
	if after := len(trail(t, svc, docstore.Tenant(tenant))); after != before {
		t.Fatalf("recording off recorded %d records", after-before)
	}
}

// testAuditChainsUnderConcurrentWriters: several writers (each a Service,
// as each process is), each with many concurrent requests of one tenant:
// every record is stored, no chain forks, every chain verifies.
func testAuditChainsUnderConcurrentWriters(t *testing.T, h Harness) {
	set := h.Open(t)
	tenant := docstore.Tenant("writers-" + string(docstore.NewID()))
	const writers, workers = 3, 12
	per := max(h.Rounds/2, 3)
	var wg sync.WaitGroup
	for range writers {
		svc := docstore.NewService(set.Backends, docstore.Config{}, nil)
		for range workers {
			wg.Go(func() {
				for range per {
					if err := svc.Audit(context.Background(), docstore.AuditEntry{Tenant: tenant, Actor: "a", Action: api.ActionStat, Status: 200}); err != nil {
						t.Errorf("Audit: %v", err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	got := trail(t, docstore.NewService(set.Backends, docstore.Config{}, nil), tenant)
	if len(got) != writers*workers*per {
		t.Fatalf("%d records stored, want %d", len(got), writers*workers*per)
	}
	if b := api.VerifyAudit(got); b != nil {
		t.Fatal(b)
	}
	chains := map[string]bool{}
	for _, r := range got {
		chains[r.Chain] = true
	}
	if len(chains) < writers || len(chains) > writers*docstore.AuditShards {
		t.Fatalf("%d chains for %d writers", len(chains), writers)
	}
}
