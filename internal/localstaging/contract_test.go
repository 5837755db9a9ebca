package localstaging_test

import (
	"bytes"
	"context"
	"net/http/httptest"
	"testing"

	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/localfront"
	"github.com/imagodocs/imago/internal/localstaging"
	"github.com/imagodocs/imago/internal/storetest"
)

// TestStaging_Contract runs the staging contract suite on a local staging
// area whose presigned PUTs are served as `imago serve` serves them: by the
// area's Receiver, on a loopback port, the area built once that port
// listens. The upload function there takes the ObjectCreated event and
// ingests nothing, so what was staged stays for the suite to read.
func TestStaging_Contract(t *testing.T) {
	storetest.TestStaging(t, func(t *testing.T) docstore.Staging {
		srv := httptest.NewUnstartedServer(nil)
		area, err := localstaging.New(t.TempDir(), "staging/", bytes.Repeat([]byte{7}, 32), "http://"+srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		srv.Config.Handler = localfront.NewReceiver(area, eventsIgnored{}, nil)
		srv.Start()
		t.Cleanup(srv.Close)
		return area
	})
}

// eventsIgnored is an upload function that accepts every event and does
// nothing with it.
type eventsIgnored struct{}

func (eventsIgnored) Invoke(context.Context, []byte) ([]byte, error) { return []byte(`{}`), nil }
