package fsstore_test

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/imagodocs/imago/internal/apigw"
	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/fsstore"
	"github.com/imagodocs/imago/internal/localfront"
	"github.com/imagodocs/imago/internal/storetest"
)

func TestStaging_Contract(t *testing.T) {
	storetest.TestStaging(t, func(t *testing.T) docstore.Staging {
		st, _ := newStaging(t)
		serveStaging(t, st)
		return st
	})
}

// serveStaging serves st's presigned PUTs as `imago serve` does, through
// its local front, on a loopback port. The upload function there takes the
// ObjectCreated event and ingests nothing, so that what was staged stays
// for the suite to read.
func serveStaging(t *testing.T, st *fsstore.Staging) {
	t.Helper()
	front := localfront.New(map[apigw.Function]localfront.Invoker{apigw.Upload: eventsIgnored{}}, "sub", nil, nil)
	front.EnableLocalStaging(st, st.PathPrefix())
	srv := httptest.NewServer(front)
	t.Cleanup(srv.Close)
	st.SetBaseURL(srv.URL)
}

// eventsIgnored is an upload function that accepts every event and does
// nothing with it.
type eventsIgnored struct{}

func (eventsIgnored) Invoke(context.Context, []byte) ([]byte, error) { return []byte(`{}`), nil }
