package apigw

import (
	"context"
	"os"
	"strings"

	"github.com/aws/aws-lambda-go/lambdacontext"
)

// traceContextKey is the context key under which aws-lambda-go's runtime
// loop stores the invocation's X-Ray trace header (its own plain string
// key; it also sets _X_AMZN_TRACE_ID in the environment).
const traceContextKey = "x-amzn-trace-id"

// invocation is what identifies one Lambda invocation in Lambda's and
// X-Ray's own records, so that a request log line can be found from a
// trace, an access log line (integrationRequestId) or a Lambda report.
type invocation struct {
	requestID string // the Lambda request id (not API Gateway's)
	traceID   string // the X-Ray trace id, the Root of the trace header
}

// invocationOf reads them from the context Lambda's runtime gives the
// handler; under `imago serve` there is neither.
func invocationOf(ctx context.Context) invocation {
	var inv invocation
	if lc, ok := lambdacontext.FromContext(ctx); ok {
		inv.requestID = lc.AwsRequestID
	}
	header, _ := ctx.Value(traceContextKey).(string)
	if header == "" {
		header = os.Getenv("_X_AMZN_TRACE_ID")
	}
	inv.traceID = traceRoot(header)
	return inv
}

// traceRoot returns the trace id of an X-Ray trace header
// ("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"),
// or the header itself if it has no Root field.
func traceRoot(header string) string {
	for _, field := range strings.Split(header, ";") {
		if root, ok := strings.CutPrefix(strings.TrimSpace(field), "Root="); ok {
			return root
		}
	}
	return strings.TrimSpace(header)
}

// attrs are the invocation's fields of the request log line.
func (inv invocation) attrs() []any {
	var out []any
	if inv.requestID != "" {
		out = append(out, "lambda_request_id", inv.requestID)
	}
	if inv.traceID != "" {
		out = append(out, "trace_id", inv.traceID)
	}
	return out
}
