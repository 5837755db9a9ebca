package apigw_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/imagodocs/imago/internal/apigw"
)

// event is the API Gateway event of method path by tenant.
func event(t *testing.T, method, path, tenant string, pathID string) []byte {
	t.Helper()
	route, _, ok, _ := apigw.Match(method, path)
	ev := events.APIGatewayV2HTTPRequest{Version: "2.0", RouteKey: "$default", RawPath: path, Headers: map[string]string{}}
	if ok {
		ev.RouteKey = route.Key()
	}
	if pathID != "" {
		ev.PathParameters = map[string]string{"id": pathID}
	}
	ev.RequestContext.HTTP.Method, ev.RequestContext.HTTP.Path = method, path
	ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
		JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: map[string]string{"sub": tenant}}}
	payload, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return payload
}

// TestRespondSendsWhatInvokeDoes runs Respond through aws-lambda-go's own
// handler machinery (what lambda.Start(h.Respond) runs for every
// invocation): the runtime must send the pooled response byte for byte,
// exactly Invoke's answer, for documents (pooled buffers) and small JSON
// answers alike.
func TestRespondSendsWhatInvokeDoes(t *testing.T) {
	a := newAPI(t)
	small := a.upload("alice", randomDoc(t, 100), "small.pdf")
	large := a.upload("alice", randomDoc(t, 60_000), "large.pdf") // a response over 64 KiB: pooled
	h := a.handlers[apigw.Download]
	runtime := lambda.NewHandler(h.Respond)
	for name, payload := range map[string][]byte{
		"small document": event(t, "GET", "/documents/"+string(small.ID)+"/content", "alice", string(small.ID)),
		"large document": event(t, "GET", "/documents/"+string(large.ID)+"/content", "alice", string(large.ID)),
		"foreign tenant": event(t, "GET", "/documents/"+string(large.ID)+"/content", "bob", string(large.ID)),
		"health":         event(t, "GET", "/health", "alice", ""),
		"not an event":   []byte(`{"version":5}`),
	} {
		h.Invoke(context.Background(), payload) // the first read fills the cache
		want, err := h.Invoke(context.Background(), payload)
		if err != nil {
			t.Fatal(err)
		}
		for round := range 3 { // the second and third take the pooled buffer back
			got, err := runtime.Invoke(context.Background(), payload)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s, round %d: the runtime sent %.120q (%v), Invoke answers %.120q", name, round, got, err, want)
			}
		}
	}
}

// TestLambdaResponsesDoNotShareBuffers: a response still held is never
// written over by the next one, and a reused buffer carries nothing of the
// document it held before.
func TestLambdaResponsesDoNotShareBuffers(t *testing.T) {
	a := newAPI(t)
	docs := [][]byte{randomDoc(t, 60_000), randomDoc(t, 50_000), randomDoc(t, 64<<10)}
	var payloads [][]byte
	for _, d := range docs {
		up := a.upload("alice", d, "doc.pdf")
		payloads = append(payloads, event(t, "GET", "/documents/"+string(up.ID)+"/content", "alice", string(up.ID)))
	}
	h := a.handlers[apigw.Download]
	body := func(r *apigw.LambdaResponse) []byte {
		t.Helper()
		var out bytes.Buffer
		if _, err := io.Copy(&out, r); err != nil {
			t.Fatal(err)
		}
		var resp events.APIGatewayV2HTTPResponse
		if err := json.Unmarshal(out.Bytes(), &resp); err != nil {
			t.Fatalf("not JSON: %v", err)
		}
		b, err := base64.StdEncoding.DecodeString(resp.Body)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("status %d, body %v", resp.StatusCode, err)
		}
		return b
	}
	for round := range 20 {
		i, j := round%len(docs), (round+1)%len(docs)
		held, err := h.Respond(context.Background(), payloads[i])
		if err != nil {
			t.Fatal(err)
		}
		heldBytes := bytes.Clone(held.Bytes())
		next, err := h.Respond(context.Background(), payloads[j])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(body(next), docs[j]) {
			t.Fatalf("round %d: document %d read back wrong", round, j)
		}
		next.Close()
		if !bytes.Equal(held.Bytes(), heldBytes) {
			t.Fatalf("round %d: the held response changed under another", round)
		}
		if !bytes.Equal(body(held), docs[i]) {
			t.Fatalf("round %d: document %d read back wrong", round, i)
		}
		held.Close()
		held.Close() // twice is harmless
	}
}
