package awsbackends_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/imagodocs/imago/internal/apigw"
	"github.com/imagodocs/imago/internal/backends"
	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/testenv"
)

// faultRig is the three functions' handlers on backends built by
// awsbackends.Open against the real local S3, DynamoDB and KMS servers, each
// reached through a proxy that a test can break mid-stream.
type faultRig struct {
	s3, ddb, kms *testenv.Proxy
	set          *backends.Set
	handlers     map[apigw.Function]*apigw.Handler
}

// faultTimeout is the rig's AWSTimeout: short, so that a stall costs a
// test seconds, yet far above what a healthy local server takes.
const faultTimeout = 2 * time.Second

// requestBudget is the deadline every request runs under, as a Lambda
// invocation has one (the functions' timeout is 29s): a request must
// answer before it, whatever the backends do.
const requestBudget = 25 * time.Second

func newFaultRig(t *testing.T) *faultRig {
	cfg := awsConfig(t, false) // skips (or fails) without the servers
	r := &faultRig{}
	for _, svc := range []struct {
		name  string
		proxy **testenv.Proxy
	}{{"S3", &r.s3}, {"DYNAMODB", &r.ddb}, {"KMS", &r.kms}} {
		env := "AWS_ENDPOINT_URL_" + svc.name
		u, err := url.Parse(os.Getenv(env))
		if err != nil || u.Host == "" {
			t.Fatalf("%s: %q", env, os.Getenv(env))
		}
		*svc.proxy = testenv.NewProxy(t, u.Host)
		t.Setenv(env, "http://"+(*svc.proxy).Addr)
	}
	cfg.AWSTimeout = faultTimeout
	r.set = open(t, cfg)
	svc := docstore.NewService(r.set.Backends, docstore.Config{}, nil)
	r.handlers = map[apigw.Function]*apigw.Handler{}
	for _, fn := range apigw.Functions {
		r.handlers[fn] = apigw.New(svc, fn, apigw.Options{})
	}
	return r
}

type reply struct {
	status  int
	headers map[string]string
	body    []byte
}

// call sends one API Gateway event to the function that serves route and
// fails the test if the handler did not answer before the request's
// deadline.
func (r *faultRig) call(t *testing.T, route, path, id, tenant string, body []byte, headers map[string]string) reply {
	t.Helper()
	fn := apigw.Metadata
	for _, rt := range apigw.Routes {
		if rt.Key() == route {
			fn = rt.Function
		}
	}
	method, _, _ := strings.Cut(route, " ")
	ev := events.APIGatewayV2HTTPRequest{Version: "2.0", RouteKey: route, RawPath: path, Headers: map[string]string{}}
	for k, v := range headers {
		ev.Headers[strings.ToLower(k)] = v
	}
	if _, ok := ev.Headers["content-type"]; !ok && body != nil {
		ev.Headers["content-type"] = "application/octet-stream"
	}
	ev.RequestContext.HTTP.Method = method
	if id != "" {
		ev.PathParameters = map[string]string{"id": id}
	}
	ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
		JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: map[string]string{"sub": tenant}}}
	if body != nil {
		ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(body), true
	}
	payload, _ := json.Marshal(ev)
	ctx, cancel := context.WithTimeout(context.Background(), requestBudget)
	defer cancel()
	out, err := r.handlers[fn].Invoke(ctx, payload)
	if ctx.Err() != nil {
		t.Fatalf("%s: no answer within the request's %v deadline (it would have timed out)", route, requestBudget)
	}
	if err != nil {
		t.Fatalf("%s: invoke: %v", route, err)
	}
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatal(err)
	}
	rep := reply{status: resp.StatusCode, headers: resp.Headers, body: []byte(resp.Body)}
	if resp.IsBase64Encoded {
		rep.body, _ = base64.StdEncoding.DecodeString(resp.Body)
	}
	return rep
}

// assertUnavailable checks a faulted request's answer: a clean 503 with
// the JSON error shape and no internal detail.
func assertUnavailable(t *testing.T, what string, rep reply) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	if rep.status != 503 || json.Unmarshal(rep.body, &e) != nil || e.Error.Code != "unavailable" || e.Error.Message == "" {
		t.Fatalf("%s: %d %s, want 503 with the JSON error {\"error\":{\"code\":\"unavailable\",…}}", what, rep.status, rep.body)
	}
	if strings.Contains(string(rep.body), "127.0.0.1") || strings.Contains(strings.ToLower(string(rep.body)), "dial") {
		t.Fatalf("%s: internal detail in the answer: %s", what, rep.body)
	}
}

// proxyOf names the rig's proxies.
func (r *faultRig) proxyOf(name string) *testenv.Proxy {
	return map[string]*testenv.Proxy{"S3": r.s3, "DynamoDB": r.ddb, "KMS": r.kms}[name]
}

type faultCase struct {
	name    string
	backend string // S3, DynamoDB or KMS
	fault   testenv.Fault
}

// TestFaults_UploadFailsCleanlyAndRetrySucceeds breaks each backend's
// connections in the middle of an upload: the answer is a 503 before the
// request's deadline, nothing of the document is listed, served or
// recorded as available, and the same upload retried with its
// Idempotency-Key once the fault is gone succeeds.
func TestFaults_UploadFailsCleanlyAndRetrySucceeds(t *testing.T) {
	r := newFaultRig(t)
	for _, tc := range []faultCase{
		{"S3 reset mid-upload", "S3", testenv.Fault{Kind: testenv.Reset, Direction: testenv.ToServer, After: 1 << 20}},
		{"S3 closed mid-upload", "S3", testenv.Fault{Kind: testenv.Close, Direction: testenv.ToServer, After: 1 << 20}},
		{"S3 stalled mid-upload", "S3", testenv.Fault{Kind: testenv.Stall, Direction: testenv.ToServer, After: 1 << 20}},
		{"S3 answer to the PUT lost", "S3", testenv.Fault{Kind: testenv.Close, Direction: testenv.FromServer}},
		{"DynamoDB reset", "DynamoDB", testenv.Fault{Kind: testenv.Reset, Direction: testenv.ToServer}},
		{"DynamoDB stalled", "DynamoDB", testenv.Fault{Kind: testenv.Stall, Direction: testenv.ToServer}},
		{"KMS reset", "KMS", testenv.Fault{Kind: testenv.Reset, Direction: testenv.ToServer}},
		{"KMS stalled", "KMS", testenv.Fault{Kind: testenv.Stall, Direction: testenv.FromServer}},
	} {
		t.Run(tc.name, func(t *testing.T) { r.uploadUnderFault(t, tc) })
	}
}

// TestFaults_RetryAfterALostCreateAnswer is the upload whose first
// DynamoDB write lands but whose answer never comes back (the connection
// stalls after the request went through): the upload answers 503, and the
// same upload retried with its Idempotency-Key must then succeed, not be
// refused as "still in progress" until the pending record expires.
func TestFaults_RetryAfterALostCreateAnswer(t *testing.T) {
	r := newFaultRig(t)
	r.uploadUnderFault(t, faultCase{"DynamoDB answers lost", "DynamoDB",
		testenv.Fault{Kind: testenv.Stall, Direction: testenv.FromServer}})
}

// uploadUnderFault uploads a document with an Idempotency-Key while tc's
// fault is armed, checks the clean failure, then retries without it.
func (r *faultRig) uploadUnderFault(t *testing.T, tc faultCase) {
	tenant := "faults-" + string(docstore.NewID())
	key := "upload-" + string(docstore.NewID())
	doc := randomDoc(3_000_000)
	headers := map[string]string{"Idempotency-Key": key}
	proxy := r.proxyOf(tc.backend)

	proxy.Inject(tc.fault)
	before := proxy.Struck()
	rep := r.call(t, "POST /documents", "/documents", "", tenant, doc, headers)
	struck := proxy.Struck() - before
	proxy.Clear()
	if struck == 0 {
		t.Fatalf("the fault never struck (answer %d %s)", rep.status, rep.body)
	}
	assertUnavailable(t, "upload with "+tc.name, rep)
	r.assertNothingServed(t, tenant, docstore.IDForIdempotencyKey(docstore.Tenant(tenant), key))

	rep = r.call(t, "POST /documents", "/documents", "", tenant, doc, headers)
	if rep.status != 201 {
		t.Fatalf("retry with the same Idempotency-Key once the fault is gone: %d %s", rep.status, rep.body)
	}
	var d docstore.Document
	json.Unmarshal(rep.body, &d)
	r.set.Cache.Delete(context.Background(), d.ID) // read the stores, not the cache
	if got := r.call(t, "GET /documents/{id}/content", "/documents/"+string(d.ID)+"/content", string(d.ID), tenant, nil, nil); got.status != 200 || !bytes.Equal(got.body, doc) {
		t.Fatalf("download after the retry: %d, identical %v", got.status, bytes.Equal(got.body, doc))
	}
	if ids := r.listed(t, tenant); len(ids) != 1 || ids[0] != string(d.ID) {
		t.Fatalf("listing after the retry: %v, want [%s]", ids, d.ID)
	}
}

// TestFaults_DownloadFailsCleanlyAndRetrySucceeds breaks each backend's
// connections in the middle of a download that misses the cache.
func TestFaults_DownloadFailsCleanlyAndRetrySucceeds(t *testing.T) {
	r := newFaultRig(t)
	tenant := "faults-" + string(docstore.NewID())
	doc := randomDoc(3_000_000)
	rep := r.call(t, "POST /documents", "/documents", "", tenant, doc, nil)
	if rep.status != 201 {
		t.Fatalf("upload: %d %s", rep.status, rep.body)
	}
	var d docstore.Document
	json.Unmarshal(rep.body, &d)
	id := string(d.ID)
	for _, tc := range []faultCase{
		{"S3 reset mid-download", "S3", testenv.Fault{Kind: testenv.Reset, Direction: testenv.FromServer, After: 512 << 10}},
		{"S3 closed mid-download", "S3", testenv.Fault{Kind: testenv.Close, Direction: testenv.FromServer, After: 512 << 10}},
		{"S3 stalled mid-download", "S3", testenv.Fault{Kind: testenv.Stall, Direction: testenv.FromServer, After: 512 << 10}},
		{"DynamoDB closed", "DynamoDB", testenv.Fault{Kind: testenv.Close, Direction: testenv.FromServer}},
		{"DynamoDB stalled", "DynamoDB", testenv.Fault{Kind: testenv.Stall, Direction: testenv.FromServer}},
		{"KMS closed", "KMS", testenv.Fault{Kind: testenv.Close, Direction: testenv.FromServer}},
		{"KMS stalled", "KMS", testenv.Fault{Kind: testenv.Stall, Direction: testenv.ToServer}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, rt := range []struct{ route, path, header string }{
				{"GET /documents/{id}/content", "/documents/" + id + "/content", ""},
				{"GET /documents/{id}/content", "/documents/" + id + "/content", "bytes=1000000-1999999"},
			} {
				var headers map[string]string
				if rt.header != "" {
					headers = map[string]string{"Range": rt.header}
				}
				r.set.Cache.Delete(context.Background(), d.ID)
				proxy := r.proxyOf(tc.backend)
				proxy.Inject(tc.fault)
				before := proxy.Struck()
				rep := r.call(t, rt.route, rt.path, id, tenant, nil, headers)
				struck := proxy.Struck() - before
				proxy.Clear()
				if struck == 0 {
					t.Fatalf("%s %s: the fault never struck (answer %d)", rt.route, rt.header, rep.status)
				}
				assertUnavailable(t, tc.name+" "+rt.header, rep)

				want, status := doc, 200
				if rt.header != "" {
					want, status = doc[1000000:2000000], 206
				}
				rep = r.call(t, rt.route, rt.path, id, tenant, nil, headers)
				if rep.status != status || !bytes.Equal(rep.body, want) {
					t.Fatalf("%s %s once the fault is gone: %d, identical %v", rt.route, rt.header, rep.status, bytes.Equal(rep.body, want))
				}
			}
		})
	}
}

// assertNothingServed checks that a failed upload left nothing a caller
// could read, and no available record pointing at a missing blob. A
// pending record (its cleanup failed too) is allowed: nothing serves it,
// the listing shows it as pending (so that it can be deleted), and the
// store expires it.
func (r *faultRig) assertNothingServed(t *testing.T, tenant string, id docstore.ID) {
	t.Helper()
	ctx := context.Background()
	rep := r.call(t, "GET /documents", "/documents", "", tenant, nil, nil)
	var page docstore.Page
	if err := json.Unmarshal(rep.body, &page); rep.status != 200 || err != nil {
		t.Fatalf("list: %d %s", rep.status, rep.body)
	}
	for _, d := range page.Documents {
		if d.ID != id || d.Status != docstore.StatusPending {
			t.Errorf("listed after the failed upload: %s %s", d.ID, d.Status)
		}
	}
	if rep := r.call(t, "GET /documents/{id}/content", "/documents/"+string(id)+"/content", string(id), tenant, nil, nil); rep.status == 200 {
		t.Errorf("content served after the failed upload")
	}
	// A blob with no record may be left (its delete failed too): with the
	// record went the wrapped key, so it is unreadable and invisible.
	rec, err := r.set.Meta.Get(ctx, id)
	switch {
	case docstore.IsNotFound(err):
	case err != nil:
		t.Fatalf("read the record: %v", err)
	case rec.Status != docstore.StatusPending:
		t.Errorf("record %s left %s after a failed upload", id, rec.Status)
	}
}

func (r *faultRig) listed(t *testing.T, tenant string) []string {
	t.Helper()
	rep := r.call(t, "GET /documents", "/documents", "", tenant, nil, nil)
	if rep.status != 200 {
		t.Fatalf("list: %d %s", rep.status, rep.body)
	}
	var page docstore.Page
	json.Unmarshal(rep.body, &page)
	var ids []string
	for _, d := range page.Documents {
		ids = append(ids, string(d.ID))
	}
	return ids
}

// TestFaults_SlowButProgressingDownloadSucceeds: the silence timeout is
// not a deadline on the transfer: a download whose bytes keep coming, if
// slowly, takes as long as it takes.
func TestFaults_SlowButProgressingDownloadSucceeds(t *testing.T) {
	r := newFaultRig(t)
	tenant := "faults-" + string(docstore.NewID())
	doc := randomDoc(512 << 10)
	rep := r.call(t, "POST /documents", "/documents", "", tenant, doc, nil)
	if rep.status != 201 {
		t.Fatalf("upload: %d %s", rep.status, rep.body)
	}
	var d docstore.Document
	json.Unmarshal(rep.body, &d)
	r.set.Cache.Delete(context.Background(), d.ID)
	// Each 32 KiB from S3 waits a quarter of the timeout: the whole blob
	// takes several timeouts, and no gap is as long as one.
	r.s3.SetDelay(faultTimeout / 4)
	start := time.Now()
	rep = r.call(t, "GET /documents/{id}/content", "/documents/"+string(d.ID)+"/content", string(d.ID), tenant, nil, nil)
	took := time.Since(start)
	r.s3.SetDelay(0)
	if rep.status != 200 || !bytes.Equal(rep.body, doc) {
		t.Fatalf("slow download: %d, identical %v", rep.status, bytes.Equal(rep.body, doc))
	}
	if took < faultTimeout {
		t.Fatalf("the download took %v, less than the %v timeout: the test proves nothing", took, faultTimeout)
	}
}
