package servicetest_test

import (
	"bytes"
	"errors"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/docstore/servicetest"
	"github.com/imagodocs/imago/internal/localstaging"
)

// TestEmbedded runs the suite on the embedded family, the one `imago
// serve` runs on without IMAGO_TABLE; with it, the cache-tier behaviours
// on the local Redis servers and the Redis state-loss races, which need
// only an origin and this one is the cheapest.
func TestEmbedded(t *testing.T) {
	servicetest.Run(t, servicetest.Harness{Open: openEmbedded, Redis: true, RedisStateLoss: true})
}

func openEmbedded(t *testing.T) *servicetest.Set {
	t.Helper()
	// The staging area's URLs point at `imago serve`; any URL does for the
	// Service.
	e := servicetest.OpenEmbedded(t, "", "http://127.0.0.1:9")
	r := &fsRaw{dir: e.Config.DataDir, prefix: e.Config.StagingPrefix, area: e.Area}
	return &servicetest.Set{Backends: e.Backends, StagingPrefix: e.Config.StagingPrefix, Raw: servicetest.Raw{
		Stage: r.stage, Staged: r.staged, ReadBlob: r.readBlob, WriteBlob: r.writeBlob,
		Blobs:         func(t *testing.T) []string { return files(filepath.Join(r.dir, "blobs")) },
		StagedObjects: func(t *testing.T) []string { return files(filepath.Join(r.dir, "staging")) },
		ReceivePart:   r.receivePart,
	}}
}

// fsRaw reaches the files of the embedded family's data folder.
type fsRaw struct {
	dir, prefix string
	area        *localstaging.Area
}

func (r *fsRaw) stagedPath(key string) string {
	return filepath.Join(r.dir, "staging", strings.TrimPrefix(key, r.prefix))
}

func (r *fsRaw) stage(t *testing.T, key string, body []byte) {
	t.Helper()
	// As localstaging.Area.Receive does: a whole new file renamed into place.
	tmp := r.stagedPath(key) + ".test-tmp"
	if err := os.WriteFile(tmp, body, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, r.stagedPath(key)); err != nil {
		t.Fatal(err)
	}
}

func (r *fsRaw) staged(t *testing.T, key string) bool {
	_, err := os.Stat(r.stagedPath(key))
	return !errors.Is(err, fs.ErrNotExist)
}

func (r *fsRaw) blobPath(id docstore.ID) string {
	return filepath.Join(r.dir, "blobs", string(id[:2]), string(id))
}

func (r *fsRaw) readBlob(t *testing.T, id docstore.ID) []byte {
	t.Helper()
	b, err := os.ReadFile(r.blobPath(id))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (r *fsRaw) writeBlob(t *testing.T, id docstore.ID, b []byte) {
	t.Helper()
	if err := os.WriteFile(r.blobPath(id), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// receivePart hands the area a part as its receiver, the local front's
// /_local/staging/ route, does with a PUT to the part's URL.
func (r *fsRaw) receivePart(t *testing.T, partURL string, body []byte) {
	t.Helper()
	u, err := url.Parse(partURL)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := url.PathUnescape(strings.TrimPrefix(u.EscapedPath(), localstaging.Path))
	if _, err := r.area.ReceivePart(key, u.Query(), bytes.NewReader(body), int64(len(body))); err != nil {
		t.Fatal(err)
	}
}

// files lists every file under dir.
func files(dir string) []string {
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out
}
