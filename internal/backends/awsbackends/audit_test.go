package awsbackends_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/imagodocs/imago/internal/apigw"
	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/dynamostore"
	"github.com/imagodocs/imago/internal/testenv"
)

// TestAuditStoreStoppedTurnsReadsInto503: the audit table gone (a table
// that DynamoDB Local does not have, as a deleted or unreachable one): a
// read of a document, hot in the cache, answers 503 with no byte of it.
func TestAuditStoreStoppedTurnsReadsInto503(t *testing.T) {
	cfg := awsConfig(t, true)
	set := open(t, cfg)
	ctx := context.Background()
	tenant := "stopped-audit-" + string(docstore.NewID())
	svc := docstore.NewService(set.Backends, docstore.Config{}, nil)
	doc := []byte("a document whose reads must be recorded")
	d, err := svc.Upload(ctx, docstore.UploadRequest{Tenant: docstore.Tenant(tenant), Body: doc})
	if err != nil {
		t.Fatal(err)
	}
	b := set.Backends
	b.Audit = dynamostore.NewAuditStore(dynamodb.NewFromConfig(testenv.AWSConfig(t, "DYNAMODB")), "imago-no-such-audit-table")
	h := apigw.New(docstore.NewService(b, docstore.Config{}, nil), apigw.Download, apigw.Options{})
	ev := events.APIGatewayV2HTTPRequest{Version: "2.0", RouteKey: "GET /documents/{id}/content",
		RawPath: "/documents/" + string(d.ID) + "/content", PathParameters: map[string]string{"id": string(d.ID)}}
	ev.RequestContext.HTTP.Method = "GET"
	ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
		JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: map[string]string{"sub": tenant}}}
	payload, _ := json.Marshal(ev)
	out, err := h.Invoke(ctx, payload)
	if err != nil {
		t.Fatal(err)
	}
	var resp events.APIGatewayV2HTTPResponse
	json.Unmarshal(out, &resp)
	if resp.StatusCode != 503 || strings.Contains(string(out), "must be recorded") || resp.IsBase64Encoded {
		t.Fatalf("a read with the audit table gone: %d %.200s", resp.StatusCode, out)
	}
}
