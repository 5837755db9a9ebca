package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const event = `{"Records":[{"eventVersion":"2.2","eventSource":"aws:s3","eventName":"s3:ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"staging/a b.txt","size":3}}}]}`

type sink struct {
	mu     sync.Mutex
	bodies []string
}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.bodies = append(s.bodies, string(b))
	s.mu.Unlock()
	io.WriteString(w, `{"ok":true}`)
}

func (s *sink) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.bodies...)
}

func setup(t *testing.T) (*httptest.Server, *sink, *httptest.Server) {
	t.Helper()
	target := &sink{}
	ts := httptest.NewServer(target)
	t.Cleanup(ts.Close)
	rl := &relay{client: &http.Client{Timeout: 5 * time.Second}, keep: 10}
	rs := httptest.NewServer(rl.routes())
	t.Cleanup(rs.Close)
	return rs, target, ts
}

func do(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestRawShapeUnchanged(t *testing.T) {
	rs, target, ts := setup(t)
	if code, body := do(t, "PUT", rs.URL+"/target?shape=raw", ts.URL); code != 200 {
		t.Fatalf("PUT /target: %d %s", code, body)
	}
	do(t, "POST", rs.URL+"/events", event)
	if got := target.got(); len(got) != 1 || got[0] != event {
		t.Fatalf("target got %q, want the body unchanged", got)
	}
}

func TestNoTargetDrops(t *testing.T) {
	rs, target, _ := setup(t)
	if code, _ := do(t, "POST", rs.URL+"/events", event); code != 200 {
		t.Fatalf("status %d", code)
	}
	if n := len(target.got()); n != 0 {
		t.Fatalf("forwarded %d events with no target", n)
	}
	code, body := do(t, "GET", rs.URL+"/events", "")
	if code != 200 || !strings.Contains(body, "staging/a b.txt") {
		t.Fatalf("GET /events: %d %s", code, body)
	}
}

func TestForward(t *testing.T) {
	rs, target, ts := setup(t)
	if code, body := do(t, "PUT", rs.URL+"/target", ts.URL+"/invoke\n"); code != 200 {
		t.Fatalf("PUT /target: %d %s", code, body)
	}
	if _, body := do(t, "GET", rs.URL+"/target", ""); body != ts.URL+"/invoke" {
		t.Fatalf("GET /target = %q", body)
	}
	code, body := do(t, "POST", rs.URL+"/events", event)
	if code != 200 || body != `{"ok":true}` {
		t.Fatalf("POST /events: %d %s", code, body)
	}
	if got := target.got(); len(got) != 1 || !strings.Contains(got[0], `"eventName":"ObjectCreated:Put"`) {
		t.Fatalf("target got %q", got)
	}
	// versitygw's startup test event is never forwarded.
	do(t, "POST", rs.URL+"/events", `{"Service":"S3","Event":"s3:TestEvent"}`)
	if n := len(target.got()); n != 1 {
		t.Fatalf("test event forwarded")
	}
	// An empty PUT clears the target.
	if code, _ := do(t, "PUT", rs.URL+"/target", ""); code != 204 {
		t.Fatalf("clear: %d", code)
	}
	if _, body := do(t, "GET", rs.URL+"/target", ""); body != "" {
		t.Fatalf("target after clear = %q", body)
	}
	do(t, "POST", rs.URL+"/events", event)
	if n := len(target.got()); n != 1 {
		t.Fatalf("forwarded after clear")
	}
}

func TestFilterAndShape(t *testing.T) {
	rs, target, ts := setup(t)
	if code, body := do(t, "PUT", rs.URL+"/target?prefix=staging/&events=ObjectCreated", ts.URL); code != 200 {
		t.Fatalf("PUT /target: %d %s", code, body)
	}
	do(t, "POST", rs.URL+"/events", strings.Replace(event, "staging/", "blobs/", 1))
	do(t, "POST", rs.URL+"/events", strings.Replace(event, "ObjectCreated:Put", "ObjectRemoved:Delete", 1))
	if n := len(target.got()); n != 0 {
		t.Fatalf("filtered events forwarded: %q", target.got())
	}
	do(t, "POST", rs.URL+"/events", event)
	got := target.got()
	if len(got) != 1 {
		t.Fatalf("got %d events", len(got))
	}
	var ev struct {
		Records []struct {
			EventName string `json:"eventName"`
			S3        struct {
				Object struct {
					Key string `json:"key"`
				} `json:"object"`
			} `json:"s3"`
		} `json:"Records"`
	}
	if err := json.Unmarshal([]byte(got[0]), &ev); err != nil {
		t.Fatal(err)
	}
	if r := ev.Records[0]; r.EventName != "ObjectCreated:Put" || r.S3.Object.Key != "staging/a+b.txt" {
		t.Fatalf("aws shape: %+v", r)
	}
}

func TestTargetMustBeLoopback(t *testing.T) {
	rs, _, _ := setup(t)
	for _, u := range []string{"http://10.0.0.1:9000/x", "http://example.com/", "ftp://127.0.0.1/", "http://127.0.0.1:1/?"} {
		code, _ := do(t, "PUT", rs.URL+"/target", u)
		want := 400
		if strings.HasPrefix(u, "http://127.0.0.1") {
			want = 200
		}
		if code != want {
			t.Errorf("PUT /target %q: %d, want %d", u, code, want)
		}
	}
}

func TestForwardFailureIs502(t *testing.T) {
	rs, _, ts := setup(t)
	do(t, "PUT", rs.URL+"/target", ts.URL)
	ts.Close()
	if code, _ := do(t, "POST", rs.URL+"/events", event); code != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", code)
	}
}

// A body as versitygw v1.8.0 sends it.
const versitygwEvent = `{"Records":[{"eventVersion":"2.2","eventSource":"aws:s3","awsRegion":"us-east-1","eventTime":"2026-11-27T03:10:41Z","eventName":"s3:ObjectCreated:Put","userIdentity":{"PrincipalId":"imagotest"},"requestParameters":{"sourceIPAddress":"127.0.0.1"},"responseElements":{"x-amz-request-id":"","x-amz-id-2":""},"s3":{"s3SchemaVersion":"1.0","configurationId":"webhook-global","bucket":{"name":"imago-test","ownerIdentity":{"PrincipalId":"imagotest"},"arn":"arn:aws:s3:::/imago-test/staging/a b.txt"},"object":{"key":"staging/a b.txt","size":1,"eTag":"\"9dd4e461268c8034f5c8564e155c67a6\"","versionId":null,"sequencer":"5"}},"glacierEventData":{"restoreEventData":{"lifecycleRestorationExpiryTime":"","lifecycleRestoreStorageClass":""}}}]}`

func TestAWSShapeOfVersitygwEvent(t *testing.T) {
	out, err := awsShape([]byte(versitygwEvent))
	if err != nil {
		t.Fatal(err)
	}
	var ev struct {
		Records []map[string]any `json:"Records"`
	}
	if err := json.Unmarshal(out, &ev); err != nil {
		t.Fatal(err)
	}
	r := ev.Records[0]
	if _, ok := r["glacierEventData"]; ok {
		t.Errorf("glacierEventData kept")
	}
	if r["eventName"] != "ObjectCreated:Put" || r["eventTime"] != "2026-11-27T03:10:41Z" || r["awsRegion"] != "us-east-1" {
		t.Errorf("record %v", r)
	}
	s3 := r["s3"].(map[string]any)
	obj := s3["object"].(map[string]any)
	bucket := s3["bucket"].(map[string]any)
	if obj["key"] != "staging/a+b.txt" || obj["eTag"] != "9dd4e461268c8034f5c8564e155c67a6" || obj["size"] != 1.0 || obj["sequencer"] != "5" {
		t.Errorf("object %v", obj)
	}
	if _, ok := obj["versionId"]; ok {
		t.Errorf("null versionId kept")
	}
	if bucket["arn"] != "arn:aws:s3:::imago-test" || bucket["name"] != "imago-test" {
		t.Errorf("bucket %v", bucket)
	}
}
