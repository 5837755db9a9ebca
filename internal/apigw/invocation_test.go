package apigw_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/imagodocs/imago/internal/apigw"
)

// requestLines answers each event with a fresh metadata handler (GET
// /health needs no backend) and returns the request log lines.
func requestLines(t *testing.T, ctx context.Context, n int) []map[string]any {
	t.Helper()
	var logs bytes.Buffer
	h := apigw.New(nil, apigw.Metadata, apigw.Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	for i := 0; i < n; i++ {
		ev := &events.APIGatewayV2HTTPRequest{Version: "2.0", RouteKey: "GET /health", RawPath: "/health"}
		ev.RequestContext.RequestID = "apigw-request"
		ev.RequestContext.HTTP.Method = "GET"
		if resp := h.Handle(ctx, ev); resp.Status != 200 {
			t.Fatalf("GET /health answered %d", resp.Status)
		}
	}
	var lines []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %s", line)
		}
		if rec["msg"] == "request" {
			lines = append(lines, rec)
		}
	}
	if len(lines) != n {
		t.Fatalf("%d request log lines for %d requests", len(lines), n)
	}
	return lines
}

func TestRequestLogCarriesLambdaRequestTraceAndColdStart(t *testing.T) {
	t.Setenv("_X_AMZN_TRACE_ID", "Root=1-00000000-000000000000000000000000;Sampled=0") // stale: the context's wins
	ctx := lambdacontext.NewContext(context.Background(), &lambdacontext.LambdaContext{AwsRequestID: "8476a536-e9f4-11e8-9739-2dfe598c3fcd"})
	//lint:ignore SA1029 aws-lambda-go's runtime stores the trace header under this plain string key
	ctx = context.WithValue(ctx, "x-amzn-trace-id", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
	lines := requestLines(t, ctx, 2)
	first, second := lines[0], lines[1]
	if first["lambda_request_id"] != "8476a536-e9f4-11e8-9739-2dfe598c3fcd" {
		t.Errorf("lambda_request_id %v, want the Lambda context's request id", first["lambda_request_id"])
	}
	if first["request_id"] != "apigw-request" {
		t.Errorf("request_id %v, want API Gateway's", first["request_id"])
	}
	if first["trace_id"] != "1-5759e988-bd862e3fe1be46a994272793" {
		t.Errorf("trace_id %v, want the trace header's Root", first["trace_id"])
	}
	if first["cold_start"] != true || second["cold_start"] != false {
		t.Errorf("cold_start %v then %v, want true then false", first["cold_start"], second["cold_start"])
	}
}

func TestRequestLogTraceFromTheEnvironment(t *testing.T) {
	// Older runtimes and other entry points leave only the variable.
	t.Setenv("_X_AMZN_TRACE_ID", "Root=1-67891233-abcdef012345678912345678;Parent=463ac35c9f6413ad;Sampled=1")
	line := requestLines(t, context.Background(), 1)[0]
	if line["trace_id"] != "1-67891233-abcdef012345678912345678" {
		t.Errorf("trace_id %v, want _X_AMZN_TRACE_ID's Root", line["trace_id"])
	}
	if _, ok := line["lambda_request_id"]; ok {
		t.Errorf("lambda_request_id %v outside Lambda", line["lambda_request_id"])
	}
}

func TestRequestLogOutsideLambdaHasNoInvocationFields(t *testing.T) {
	t.Setenv("_X_AMZN_TRACE_ID", "")
	line := requestLines(t, context.Background(), 1)[0]
	for _, k := range []string{"lambda_request_id", "trace_id"} {
		if v, ok := line[k]; ok {
			t.Errorf("%s = %v under no Lambda at all", k, v)
		}
	}
	if line["cold_start"] != true {
		t.Errorf("cold_start %v on a fresh handler's first request", line["cold_start"])
	}
}
