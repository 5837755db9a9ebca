package boltstore_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/boltstore"
	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/storetest"
)

func TestBoltStore_Contract(t *testing.T) {
	storetest.TestMetadataStore(t, func(t *testing.T) docstore.MetadataStore {
		s, err := boltstore.Open(filepath.Join(t.TempDir(), "meta.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestBoltStore_LinkContract(t *testing.T) {
	storetest.TestLinkStore(t, func(t *testing.T) docstore.LinkStore {
		s, err := boltstore.Open(filepath.Join(t.TempDir(), "meta.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestBoltStore_AuditContract(t *testing.T) {
	storetest.TestAuditLog(t, func(t *testing.T) docstore.AuditLog {
		s, err := boltstore.Open(filepath.Join(t.TempDir(), "meta.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestBoltStore_SecondProcessGetsClearError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	s, err := boltstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := boltstore.Open(path); err == nil {
		t.Fatal("a second Open of a held store succeeded")
	}
}

func TestBoltStore_ExpiredPendingRecordsGoOnReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meta.db")
	s, err := boltstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	expired := docstore.Record{Document: docstore.Document{ID: docstore.NewID(), Status: docstore.StatusPending, CreatedAt: time.Now()},
		Tenant: "t", ExpiresAt: time.Now().Add(-time.Minute)}
	live := expired
	live.ID, live.ExpiresAt = docstore.NewID(), time.Now().Add(time.Hour)
	for _, r := range []docstore.Record{expired, live} {
		if err := s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	if s, err = boltstore.Open(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Get(ctx, expired.ID); !docstore.IsNotFound(err) {
		t.Fatalf("expired pending record: %v, want not found", err)
	}
	if _, err := s.Get(ctx, live.ID); err != nil {
		t.Fatalf("live pending record: %v", err)
	}
}
