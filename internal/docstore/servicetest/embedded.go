package servicetest

import (
	"context"
	"testing"

	"github.com/imagodocs/imago/internal/backends"
	"github.com/imagodocs/imago/internal/backends/embedded"
	"github.com/imagodocs/imago/internal/config"
	"github.com/imagodocs/imago/internal/localstaging"
)

// Embedded is the embedded family built in a folder of a test's own, as
// `imago serve` builds it from IMAGO_DATA_DIR: files, bbolt, a local master
// key, the local staging area, and the in-process cache.
type Embedded struct {
	*backends.Set
	// Area is the staging area, for a receiver of its presigned PUTs.
	Area *localstaging.Area
	// Config is the configuration the family was built from.
	Config config.Config
}

// OpenEmbedded builds the embedded family in dir (a temporary folder of
// tb's when ""), with the defaults of every other setting; the staging
// area's URLs point at stagingURL ("": presigned uploads are unavailable).
// It is released when tb ends.
func OpenEmbedded(tb testing.TB, dir, stagingURL string) *Embedded {
	tb.Helper()
	if dir == "" {
		dir = tb.TempDir()
	}
	cfg, err := config.FromEnv(func(k string) string {
		return map[string]string{"IMAGO_DATA_DIR": dir}[k]
	})
	if err != nil {
		tb.Fatal(err)
	}
	set, area, err := embedded.Open(context.Background(), cfg, nil, stagingURL)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { set.Close() })
	return &Embedded{Set: set, Area: area, Config: cfg}
}
