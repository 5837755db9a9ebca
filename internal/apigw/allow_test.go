package apigw

import (
	"context"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

// A 405 names the methods the path takes in Allow (RFC 9110 §15.5.6).
func TestMethodNotAllowedCarriesAllow(t *testing.T) {
	h := New(nil, Metadata, Options{})
	for path, want := range map[string]string{
		"/documents": "GET, POST",
		"/documents/00000000-0000-4000-8000-000000000000/": "DELETE, GET",
		"/health": "GET",
	} {
		ev := &events.APIGatewayV2HTTPRequest{RouteKey: "$default", RawPath: path}
		ev.RequestContext.HTTP.Method = "PATCH"
		resp := h.Handle(context.Background(), ev)
		if resp.Status != 405 || resp.Header("allow") != want {
			t.Errorf("PATCH %s: %d, allow %q, want 405 and %q", path, resp.Status, resp.Header("allow"), want)
		}
	}
}
