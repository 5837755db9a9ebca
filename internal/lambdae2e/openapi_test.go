//go:build linux

package lambdae2e

import (
	"context"
	"testing"

	"github.com/imagodocs/imago/internal/openapitest"
)

// checkOpenAPI checks an API Gateway event and the function's answer to
// it, as API Gateway turns them into an HTTP exchange, against
// docs/openapi.yaml: every answer the functions give under the emulator
// is validated, so the document cannot drift from what Lambda serves.
func checkOpenAPI(t testing.TB, event []byte, r reply) {
	t.Helper()
	if err := openapitest.Repo(t).CheckLambda(context.Background(), event, r.raw); err != nil {
		t.Errorf("%v", err)
	}
}
