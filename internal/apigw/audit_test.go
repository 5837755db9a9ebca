package apigw_test

import (
	"slices"
	"testing"

	wire "github.com/imagodocs/imago/internal/api"
	"github.com/imagodocs/imago/internal/apigw"
)

// Every route that names a document, a link or a hold, or lists, is
// recorded with one of the trail's actions; only /health and /audit itself
// are not.
func TestEveryRouteHasAnAuditAction(t *testing.T) {
	for _, r := range append(apigw.Routes, apigw.CompleteUpload) {
		switch r.Path {
		case "/health", "/audit":
			if r.Action != "" {
				t.Errorf("%s is recorded as %q", r.Key(), r.Action)
			}
			continue
		}
		if !slices.Contains(wire.AuditActions, r.Action) {
			t.Errorf("%s: action %q is not one of the trail's", r.Key(), r.Action)
		}
	}
}
