// Command s3relay receives the S3 event notifications that versitygw POSTs to
// its --event-webhook-url and relays them, body unchanged, to a settable
// target URL (a Lambda Runtime Interface Emulator invoke URL, typically
// http://127.0.0.1:PORT/2015-03-31/functions/function/invocations).
//
// Routes:
//
//	POST   /events  an S3 event ({"Records":[…]}). With a target set, the event is
//	                POSTed to the target (one at a time, in arrival order),
//	                as AWS S3 would send it to Lambda unless shape=raw (below),
//	                and the target's answer body is returned with 200
//	                (502 if the target could not be reached); with no target
//	                the event is dropped and 200 returned. Bodies without
//	                "Records" (versitygw's startup s3:TestEvent) are logged and
//	                never forwarded.
//	GET    /events  the last events received, newest last, as JSON (for tests)
//	DELETE /events  forget them
//	PUT    /target  body = target URL (http(s), loopback host only); empty body clears.
//	                Optional query parameters, each reset by every PUT:
//	                  prefix=staging/        forward only events whose (decoded)
//	                                         object key starts with it
//	                  events=ObjectCreated   forward only these event names
//	                                         (comma-separated prefixes, "s3:" optional)
//	                  shape=aws (default)    each record as AWS S3 sends it to Lambda
//	                                         (see awsShape: versitygw's differ, and
//	                                         aws-lambda-go's events.S3Event cannot
//	                                         even decode them)
//	                  shape=raw              the body exactly as versitygw sent it
//	                e.g. PUT /target?prefix=staging/&events=ObjectCreated mirrors an S3
//	                notification configuration filtered on the staging prefix.
//	GET    /target  the current target URL, empty if none (the filters are in the
//	                X-Imago-Relay-Prefix, -Events and -Shape headers)
//	DELETE /target  clear the target
//	GET    /health  200
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const maxEventBytes = 16 << 20

type relay struct {
	client *http.Client

	mu     sync.Mutex
	target targetConfig
	recent []received
	keep   int

	forwardMu sync.Mutex // one invocation at a time: the RIE runs one at a time
}

// targetConfig is where events go and which of them.
type targetConfig struct {
	URL    string
	Prefix string   // object key prefix; "" = every key
	Events []string // event name prefixes without "s3:"; empty = every event
	Shape  string   // "aws" (AWS's record shape) or "raw" (unchanged)
}

func (t targetConfig) String() string {
	if t.URL == "" {
		return "none"
	}
	return fmt.Sprintf("%s (prefix %q, events %q, shape %s)", t.URL, t.Prefix, strings.Join(t.Events, ","), t.Shape)
}

// wants reports whether a record goes to the target.
func (t targetConfig) wants(eventName, key string) bool {
	if t.Prefix != "" && !strings.HasPrefix(key, t.Prefix) {
		// versitygw sends keys decoded, AWS encoded: accept either.
		d, err := url.QueryUnescape(key)
		if err != nil || !strings.HasPrefix(d, t.Prefix) {
			return false
		}
	}
	if len(t.Events) == 0 {
		return true
	}
	name := strings.TrimPrefix(eventName, "s3:")
	for _, e := range t.Events {
		if strings.HasPrefix(name, e) {
			return true
		}
	}
	return false
}

type received struct {
	ReceivedAt   time.Time       `json:"received_at"`
	Body         json.RawMessage `json:"body"`
	Forwarded    bool            `json:"forwarded"`
	Target       string          `json:"target,omitempty"`
	TargetStatus int             `json:"target_status,omitempty"`
	Error        string          `json:"error,omitempty"`
}

// s3Event is only what the log line needs; the body is forwarded as received.
type s3Event struct {
	Records []struct {
		EventName string `json:"eventName"`
		S3        struct {
			Bucket struct {
				Name string `json:"name"`
			} `json:"bucket"`
			Object struct {
				Key  string `json:"key"`
				Size int64  `json:"size"`
			} `json:"object"`
		} `json:"s3"`
	} `json:"Records"`
	Event string `json:"Event"` // s3:TestEvent
}

func main() {
	addr := flag.String("addr", "127.0.0.1:19005", "loopback listen address host:port")
	target := flag.String("target", os.Getenv("IMAGO_TESTENV_RELAY_TARGET"), "initial target URL (optional)")
	timeout := flag.Duration("forward-timeout", 15*time.Minute, "timeout of one forward to the target")
	keep := flag.Int("keep", 256, "how many recent events GET /events returns")
	flag.Parse()
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	log.SetPrefix("s3relay: ")

	if err := requireLoopbackHost(hostOf(*addr)); err != nil {
		log.Fatalf("-addr %q: %v", *addr, err)
	}
	r := &relay{client: &http.Client{Timeout: *timeout}, keep: *keep}
	if *target != "" {
		t, err := checkTarget(*target)
		if err != nil {
			log.Fatalf("-target: %v", err)
		}
		r.target = targetConfig{URL: t, Shape: "aws"}
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: r.routes(), ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Printf("listening on http://%s (target %s)", ln.Addr(), r.target)
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			log.Fatal(err)
		}
	case <-ctx.Done():
		log.Printf("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
}

func (rl *relay) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintln(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("POST /events", rl.postEvent)
	mux.HandleFunc("GET /events", rl.getEvents)
	mux.HandleFunc("DELETE /events", func(w http.ResponseWriter, _ *http.Request) {
		rl.mu.Lock()
		rl.recent = nil
		rl.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /target", func(w http.ResponseWriter, _ *http.Request) {
		t := rl.getTarget()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Imago-Relay-Prefix", t.Prefix)
		w.Header().Set("X-Imago-Relay-Events", strings.Join(t.Events, ","))
		w.Header().Set("X-Imago-Relay-Shape", t.Shape)
		fmt.Fprint(w, t.URL)
	})
	mux.HandleFunc("PUT /target", rl.putTarget)
	mux.HandleFunc("DELETE /target", func(w http.ResponseWriter, _ *http.Request) {
		rl.setTarget(targetConfig{})
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

func (rl *relay) getTarget() targetConfig {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	return rl.target
}

func (rl *relay) setTarget(t targetConfig) {
	rl.mu.Lock()
	old := rl.target
	rl.target = t
	rl.mu.Unlock()
	if t.URL == "" {
		log.Printf("target cleared (was %s): events are dropped", old)
	} else {
		log.Printf("target set to %s (was %s)", t, old)
	}
}

func (rl *relay) putTarget(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(io.LimitReader(r.Body, 4096))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	raw := strings.TrimSpace(string(b))
	if raw == "" {
		rl.setTarget(targetConfig{})
		w.WriteHeader(http.StatusNoContent)
		return
	}
	t, err := checkTarget(raw)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	q := r.URL.Query()
	cfg := targetConfig{URL: t, Prefix: q.Get("prefix"), Shape: "aws"}
	for _, e := range strings.Split(q.Get("events"), ",") {
		if e = strings.TrimPrefix(strings.TrimSpace(e), "s3:"); e != "" && e != "*" {
			cfg.Events = append(cfg.Events, strings.TrimSuffix(e, "*"))
		}
	}
	switch s := q.Get("shape"); s {
	case "", "aws":
	case "raw":
		cfg.Shape = "raw"
	default:
		http.Error(w, fmt.Sprintf("shape %q: want raw or aws", s), http.StatusBadRequest)
		return
	}
	rl.setTarget(cfg)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprint(w, t)
}

func (rl *relay) postEvent(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxEventBytes+1))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if len(body) > maxEventBytes {
		http.Error(w, "event too large", http.StatusRequestEntityTooLarge)
		return
	}
	var ev s3Event
	if err := json.Unmarshal(body, &ev); err != nil {
		log.Printf("event: not JSON (%v), %d bytes: dropped", err, len(body))
		http.Error(w, "event is not JSON", http.StatusBadRequest)
		return
	}
	if len(ev.Records) == 0 {
		log.Printf("event: no Records (Event=%q): not forwarded", ev.Event)
		rl.remember(received{ReceivedAt: time.Now(), Body: body})
		w.WriteHeader(http.StatusOK)
		return
	}
	for _, rec := range ev.Records {
		log.Printf("event: %s bucket=%s key=%s size=%d", rec.EventName, rec.S3.Bucket.Name, rec.S3.Object.Key, rec.S3.Object.Size)
	}

	tc := rl.getTarget()
	target := tc.URL
	entry := received{ReceivedAt: time.Now(), Body: body, Target: target}
	if target == "" {
		log.Printf("event: no target set: dropped")
		rl.remember(entry)
		w.Header().Set("X-Imago-Relay-Forwarded", "false")
		w.WriteHeader(http.StatusOK)
		return
	}
	wanted := false
	for _, rec := range ev.Records {
		wanted = wanted || tc.wants(rec.EventName, rec.S3.Object.Key)
	}
	if !wanted {
		log.Printf("event: filtered out (target %s): dropped", tc)
		entry.Target = ""
		rl.remember(entry)
		w.Header().Set("X-Imago-Relay-Forwarded", "false")
		w.WriteHeader(http.StatusOK)
		return
	}
	out := body
	if tc.Shape == "aws" {
		if out, err = awsShape(body); err != nil {
			log.Printf("event: cannot reshape: %v: dropped", err)
			http.Error(w, "relay: cannot reshape event: "+err.Error(), http.StatusBadRequest)
			return
		}
	}

	// The forward outlives versitygw's request (its webhook client gives up
	// after 3 s): a Lambda invocation may take longer than that.
	ctx := context.WithoutCancel(r.Context())
	status, respBody, hdr, err := rl.forward(ctx, target, out)
	entry.Forwarded = err == nil
	entry.TargetStatus = status
	if err != nil {
		entry.Error = err.Error()
		rl.remember(entry)
		log.Printf("event: forward to %s failed: %v", target, err)
		http.Error(w, "relay: forward to target failed: "+err.Error(), http.StatusBadGateway)
		return
	}
	rl.remember(entry)
	fnErr := hdr.Get("X-Amz-Function-Error")
	log.Printf("event: forwarded to %s: status %d%s, answer %s", target, status,
		map[bool]string{true: " function error " + fnErr, false: ""}[fnErr != ""], snippet(respBody))
	w.Header().Set("X-Imago-Relay-Forwarded", "true")
	w.Header().Set("X-Imago-Relay-Target-Status", strconv.Itoa(status))
	if fnErr != "" {
		w.Header().Set("X-Amz-Function-Error", fnErr)
	}
	if ct := hdr.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(respBody)
}

func (rl *relay) forward(ctx context.Context, target string, body []byte) (int, []byte, http.Header, error) {
	rl.forwardMu.Lock()
	defer rl.forwardMu.Unlock()
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := rl.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, 6<<20))
	if err != nil {
		return resp.StatusCode, nil, resp.Header, fmt.Errorf("read target answer: %w", err)
	}
	log.Printf("event: target answered in %s", time.Since(start).Round(time.Millisecond))
	return resp.StatusCode, rb, resp.Header, nil
}

// awsShape rewrites versitygw's (v1.8.0) records the way S3 writes them for
// Lambda; every other field is kept:
//   - eventName "s3:ObjectCreated:Put" -> "ObjectCreated:Put"
//   - s3.object.key "staging/a b.txt" -> "staging/a+b.txt" (AWS URL-encodes keys
//     as form values, slashes kept)
//   - s3.object.eTag without the quotes, a null versionId left out
//   - s3.bucket.arn "arn:aws:s3:::/bucket/key" -> "arn:aws:s3:::bucket"
//   - glacierEventData left out (AWS sends it only for restore events; versitygw
//     sends an empty lifecycleRestorationExpiryTime "" that does not decode as a time)
func awsShape(body []byte) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, err
	}
	recs, _ := doc["Records"].([]any)
	for _, r := range recs {
		rec, ok := r.(map[string]any)
		if !ok {
			continue
		}
		if n, ok := rec["eventName"].(string); ok {
			rec["eventName"] = strings.TrimPrefix(n, "s3:")
		}
		if n, _ := rec["eventName"].(string); !strings.HasPrefix(n, "ObjectRestore:") {
			delete(rec, "glacierEventData")
		}
		s3, _ := rec["s3"].(map[string]any)
		obj, _ := s3["object"].(map[string]any)
		if k, ok := obj["key"].(string); ok {
			obj["key"] = strings.ReplaceAll(url.QueryEscape(k), "%2F", "/")
		}
		if e, ok := obj["eTag"].(string); ok {
			obj["eTag"] = strings.Trim(e, `"`)
		}
		if v, ok := obj["versionId"]; ok && v == nil {
			delete(obj, "versionId")
		}
		bucket, _ := s3["bucket"].(map[string]any)
		if name, ok := bucket["name"].(string); ok && name != "" {
			bucket["arn"] = "arn:aws:s3:::" + name
		}
	}
	return json.Marshal(doc)
}

func (rl *relay) remember(e received) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	rl.recent = append(rl.recent, e)
	if over := len(rl.recent) - rl.keep; over > 0 {
		rl.recent = append([]received(nil), rl.recent[over:]...)
	}
}

func (rl *relay) getEvents(w http.ResponseWriter, _ *http.Request) {
	rl.mu.Lock()
	out := append([]received{}, rl.recent...)
	rl.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// checkTarget accepts an http(s) URL whose host is a loopback address: the
// test environment never sends traffic anywhere else.
func checkTarget(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("target %q: %v", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("target %q: scheme must be http or https", raw)
	}
	if err := requireLoopbackHost(u.Hostname()); err != nil {
		return "", fmt.Errorf("target %q: %v", raw, err)
	}
	return u.String(), nil
}

func requireLoopbackHost(host string) error {
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("host %q is not a loopback address", host)
}

func hostOf(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	return h
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return strconv.Quote(s)
}
