package backends_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"testing"

	"github.com/imagodocs/imago/internal/docstore"
)

// TestIdempotentRetryFinishesAPendingUpload is the retry of an upload
// whose first attempt left its record pending (its answer was lost after
// the record was created): the retry with the same Idempotency-Key stores
// the document, rather than answering "in progress" until the record
// expires.
func TestIdempotentRetryFinishesAPendingUpload(t *testing.T) {
	for _, fam := range allFamilies() {
		t.Run(fam.name, func(t *testing.T) {
			set := open(t, fam.cfg(t))
			ctx := context.Background()
			tenant := docstore.Tenant("idem-" + string(docstore.NewID()))
			key := "retry-" + string(docstore.NewID())
			doc := randomDoc(200_000)
			// The first attempt: its record created, then nothing.
			first := docstore.NewService(set.Backends, docstore.Config{}, nil)
			id := docstore.IDForIdempotencyKey(tenant, key)
			dk, err := set.Keys.GenerateDataKey(ctx, docstore.ContextFor(tenant, id))
			if err != nil {
				t.Fatal(err)
			}
			rec := docstore.Record{Document: docstore.Document{ID: id, Descriptor: docstore.Descriptor{Filename: "a.bin", ContentType: "application/octet-stream", Size: int64(len(doc))}, Status: docstore.StatusPending, Metadata: map[string]string{}},
				Tenant: tenant, WrappedKey: dk.Wrapped, KeyID: dk.KeyID, FormatVersion: 1, SegmentSize: 64 << 10}
			rec.CreatedAt = rec.CreatedAt.UTC()
			if err := set.Meta.Create(ctx, rec); err != nil {
				t.Fatal(err)
			}
			got, err := first.Upload(ctx, docstore.UploadRequest{Tenant: tenant, Filename: "a.bin",
				ContentType: "application/octet-stream", Body: doc, IdempotencyKey: key})
			if err != nil {
				t.Fatalf("retry of a pending upload: %v", err)
			}
			assertServes(t, first, tenant, got, doc)
			// A retry with another body of the same key is still a conflict.
			other := randomDoc(len(doc))
			if _, err := first.Upload(ctx, docstore.UploadRequest{Tenant: tenant, Body: other, IdempotencyKey: key,
				ContentType: "application/octet-stream"}); docstore.KindOf(err) != docstore.KindConflict {
				t.Fatalf("another body under the same key: %v, want a conflict", err)
			}
		})
	}
}

// TestIdempotentUploadsRaceOneBodyWins races two uploads of different
// bodies under one Idempotency-Key, many rounds: whatever each answers,
// the document serves exactly the bytes its recorded SHA-256 names, and
// an upload that answered with the document answered that one.
func TestIdempotentUploadsRaceOneBodyWins(t *testing.T) {
	for _, fam := range allFamilies() {
		t.Run(fam.name, func(t *testing.T) {
			set := open(t, fam.cfg(t))
			ctx := context.Background()
			svc := docstore.NewService(set.Backends, docstore.Config{}, nil)
			tenant := docstore.Tenant("idem-" + string(docstore.NewID()))
			for round := range 10 {
				key := "race-" + string(docstore.NewID())
				bodies := [][]byte{randomDoc(150_000), randomDoc(150_000)}
				answers := make([]docstore.Document, 2)
				errs := make([]error, 2)
				var wg sync.WaitGroup
				for i := range 2 {
					wg.Go(func() {
						answers[i], errs[i] = svc.Upload(ctx, docstore.UploadRequest{Tenant: tenant, Body: bodies[i],
							IdempotencyKey: key, ContentType: "application/octet-stream"})
					})
				}
				wg.Wait()
				id := docstore.IDForIdempotencyKey(tenant, key)
				md, err := svc.Get(ctx, tenant, id)
				if err != nil {
					t.Fatalf("round %d: metadata: %v (answers %v / %v)", round, err, errs[0], errs[1])
				}
				var won []byte
				for _, b := range bodies {
					if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) == md.SHA256 {
						won = b
					}
				}
				if won == nil {
					t.Fatalf("round %d: the recorded SHA-256 is neither body's", round)
				}
				assertServes(t, svc, tenant, md, won)
				for i := range 2 {
					if errs[i] == nil && answers[i].SHA256 != md.SHA256 {
						t.Fatalf("round %d: upload %d answered sha %s, the document is %s", round, i, answers[i].SHA256, md.SHA256)
					}
					if errs[i] != nil && docstore.KindOf(errs[i]) != docstore.KindConflict {
						t.Fatalf("round %d: upload %d: %v, want success or a conflict", round, i, errs[i])
					}
				}
			}
		})
	}
}

func assertServes(t *testing.T, svc *docstore.Service, tenant docstore.Tenant, d docstore.Document, want []byte) {
	t.Helper()
	c, err := svc.Download(context.Background(), docstore.DownloadRequest{Tenant: tenant, ID: d.ID})
	if err != nil {
		t.Fatalf("download %s: %v", d.ID, err)
	}
	if !bytes.Equal(c.Body, want) {
		t.Fatalf("download %s: %d bytes, not the document recorded", d.ID, len(c.Body))
	}
	sum := sha256.Sum256(c.Body)
	if hex.EncodeToString(sum[:]) != d.SHA256 || c.SHA256 != d.SHA256 {
		t.Fatalf("download %s: bytes hash %x, metadata says %s", d.ID, sum, d.SHA256)
	}
}
