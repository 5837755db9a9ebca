package apigw_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/imagodocs/imago/internal/apigw"
	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/docstore/servicetest"
)

// FuzzUploadFunctionEvent sends the upload function any payload: S3 event
// notifications (keys URL-encoded, records of any shape) and API Gateway
// events alike. It never panics; what it takes for an S3 event is one, and
// it answers nothing but an error for it; anything else gets an API
// Gateway response with one of the API's statuses, never a 500.
func FuzzUploadFunctionEvent(f *testing.F) {
	// On tmpfs when there is one: the uploads the fuzzer makes fsync, and
	// on a busy disk that would leave it a handful of executions. Its
	// staging area has no server to receive its PUTs, as the embedded
	// backends have outside `imago serve`.
	e := servicetest.OpenEmbedded(f, fuzzDataDir(f), "")
	svc := docstore.NewService(e.Backends, docstore.Config{StagingPrefix: e.Config.StagingPrefix}, nil)
	fn := apigw.NewUploadFunction(svc, apigw.Options{}, "")

	f.Add([]byte(`{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"staging/0b9b8f5e-2f4c-4f7a-9a57-6f3f0d1f2a3b","size":3}}}]}`))
	f.Add([]byte(`{"Records":[{"eventSource":"aws:s3","eventName":"s3:ObjectCreated:CompleteMultipartUpload","s3":{"object":{"key":"staging%2Fa+b%zz"}}}]}`))
	f.Add([]byte(`{"Records":[{"eventSource":"aws:s3","eventName":"ObjectRemoved:Delete","s3":{"object":{"key":"staging/x"}}},{"eventSource":"aws:sqs"}]}`))
	f.Add([]byte(`{"Records":[{"eventSource":"aws:s3","eventTime":5}]}`))
	f.Add([]byte(`{"Records":[]}`))
	f.Add([]byte(`{"version":"2.0","routeKey":"GET /health","rawPath":"/health","requestContext":{"http":{"method":"GET"}}}`))
	f.Add([]byte(`{"routeKey":"POST /documents","body":"\"Records\"","requestContext":{"http":{"method":"POST"}}}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		out, err := fn.Invoke(context.Background(), payload)
		if apigw.IsS3Event(payload) {
			if out != nil {
				t.Fatalf("answered an S3 event with %q", out)
			}
			return
		}
		if err != nil {
			t.Fatalf("an API Gateway payload failed: %v", err)
		}
		var resp events.APIGatewayV2HTTPResponse
		if err := json.Unmarshal(out, &resp); err != nil {
			t.Fatalf("answer %q: %v", out, err)
		}
		// The statuses of docs/design.md ("Errors"); 503 is a presigned
		// upload here (no server to receive it). Never a 500: no input is a
		// server error.
		switch resp.StatusCode {
		case 200, 201, 204, 304, 400, 401, 404, 405, 409, 413, 415, 416, 503:
		default:
			t.Fatalf("status %d for payload %q: %s", resp.StatusCode, payload, resp.Body)
		}
	})
}
