package fsstore_test

import (
	"testing"

	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/fsstore"
	"github.com/imagodocs/imago/internal/storetest"
)

func TestFSStore_Contract(t *testing.T) {
	storetest.TestBlobStore(t, func(t *testing.T) docstore.BlobStore {
		s, err := fsstore.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
