package storetest

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/docstore"
)

// TestMetadataStore runs the MetadataStore contract against the stores
// newStore returns (the same store every time, or a fresh one).
func TestMetadataStore(t *testing.T, newStore func(t *testing.T) docstore.MetadataStore) {
	t.Run("CreateGetRoundTrip", func(t *testing.T) {
		s := newStore(t)
		rec := sampleRecord(randomTenant(), time.Now())
		rec.Metadata = map[string]string{"department": "legal", "note": "ünïcödé, spaces & = signs", "empty": ""}
		mustCreate(t, s, rec)
		got := mustGetRecord(t, s, rec.ID)
		assertRecord(t, "Get after Create", got, rec)
	})

	t.Run("CreateAvailableRoundTrip", func(t *testing.T) {
		s := newStore(t)
		rec := sampleRecord(randomTenant(), time.Now())
		rec.Status = docstore.StatusAvailable
		rec.Size = 7 << 30 // larger than 32 bits
		rec.SHA256 = strings.Repeat("ab", 32)
		rec.BlobID = rec.ID
		rec.ExpiresAt = time.Time{}
		rec.Metadata = nil
		mustCreate(t, s, rec)
		assertRecord(t, "Get after Create", mustGetRecord(t, s, rec.ID), rec)
	})

	t.Run("MultipartUploadRoundTrip", func(t *testing.T) {
		// A document uploaded in parts keeps its upload id and part size,
		// pending and once available.
		s := newStore(t)
		rec := sampleRecord(randomTenant(), time.Now())
		rec.Size = 6<<40 - 1
		rec.UploadID = "2~Zm9vYmFy-" + string(rec.ID[:8]) + "/+=.."
		rec.PartSize = 550 << 20
		mustCreate(t, s, rec)
		assertRecord(t, "Get after Create", mustGetRecord(t, s, rec.ID), rec)
		done, err := s.MarkAvailable(t.Context(), rec.ID, rec.Size, strings.Repeat("cd", 32), docstore.NewID(), time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if done.UploadID != rec.UploadID || done.PartSize != rec.PartSize {
			t.Fatalf("MarkAvailable's record: upload %q part size %d; want %q %d", done.UploadID, done.PartSize, rec.UploadID, rec.PartSize)
		}
		if got := mustGetRecord(t, s, rec.ID); got.UploadID != rec.UploadID || got.PartSize != rec.PartSize {
			t.Fatalf("Get after MarkAvailable: upload %q part size %d; want %q %d", got.UploadID, got.PartSize, rec.UploadID, rec.PartSize)
		}
	})

	t.Run("CreateConflict", func(t *testing.T) {
		s := newStore(t)
		rec := sampleRecord(randomTenant(), time.Now())
		mustCreate(t, s, rec)
		again := rec
		again.Filename = "other.pdf"
		again.Tenant = randomTenant()
		wantKind(t, "second Create of one id", s.Create(t.Context(), again), docstore.KindConflict)
		assertRecord(t, "Get after the refused Create", mustGetRecord(t, s, rec.ID), rec)
	})

	t.Run("GetMissingIsNotFound", func(t *testing.T) {
		s := newStore(t)
		_, err := s.Get(t.Context(), docstore.NewID())
		wantKind(t, "Get of a missing record", err, docstore.KindNotFound)
	})

	t.Run("MarkAvailable", func(t *testing.T) {
		s := newStore(t)
		rec := sampleRecord(randomTenant(), time.Now())
		mustCreate(t, s, rec)
		sum := strings.Repeat("0f", 32)
		blob := docstore.NewID()
		got, err := s.MarkAvailable(t.Context(), rec.ID, 123_456_789, sum, blob, time.Time{})
		if err != nil {
			t.Fatalf("MarkAvailable: %v", err)
		}
		want := rec
		want.Status = docstore.StatusAvailable
		want.Size = 123_456_789
		want.SHA256 = sum
		want.BlobID = blob
		want.ExpiresAt = time.Time{}
		assertRecord(t, "MarkAvailable's result", got, want)
		assertRecord(t, "Get after MarkAvailable", mustGetRecord(t, s, rec.ID), want)
	})

	t.Run("MarkAvailableMissingIsNotFound", func(t *testing.T) {
		s := newStore(t)
		_, err := s.MarkAvailable(t.Context(), docstore.NewID(), 1, strings.Repeat("00", 32), docstore.NewID(), time.Time{})
		wantKind(t, "MarkAvailable of a missing record", err, docstore.KindNotFound)
		_, err = s.MarkFailed(t.Context(), docstore.NewID(), "too short")
		wantKind(t, "MarkFailed of a missing record", err, docstore.KindNotFound)
	})

	t.Run("MarkFailed", func(t *testing.T) {
		s := newStore(t)
		tenant := randomTenant()
		rec := sampleRecord(tenant, time.Now())
		mustCreate(t, s, rec)
		got, err := s.MarkFailed(t.Context(), rec.ID, "the uploaded object is 9 bytes; 10 were announced")
		if err != nil {
			t.Fatalf("MarkFailed: %v", err)
		}
		want := rec
		want.Status = docstore.StatusFailed
		want.Failure = "the uploaded object is 9 bytes; 10 were announced"
		assertRecord(t, "MarkFailed's result", got, want)
		assertRecord(t, "Get after MarkFailed", mustGetRecord(t, s, rec.ID), want)
		// A failed record is final, and listed with its failure, so that
		// its owner finds it to delete it.
		_, err = s.MarkAvailable(t.Context(), rec.ID, 10, strings.Repeat("11", 32), docstore.NewID(), time.Time{})
		wantKind(t, "MarkAvailable of a failed record", err, docstore.KindConflict)
		_, err = s.MarkFailed(t.Context(), rec.ID, "again")
		wantKind(t, "MarkFailed of a failed record", err, docstore.KindConflict)
		assertRecord(t, "Get after the refused updates", mustGetRecord(t, s, rec.ID), want)
		listed, err := s.List(t.Context(), tenant, nil, 10)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		assertListed(t, "List of a tenant with a failed record", listed, []docstore.Record{want})
		assertRecord(t, "listed failed record", listed[0], want)
	})

	t.Run("MarkAvailableRacesHaveOneWinner", func(t *testing.T) {
		// Racing ingest attempts of one document each record their own
		// blob: exactly one conditional write may win, and the record
		// names the winner's blob with the winner's digest.
		s := newStore(t)
		rec := sampleRecord(randomTenant(), time.Now())
		mustCreate(t, s, rec)
		const racers = 8
		type attempt struct {
			blob docstore.ID
			sum  string
			err  error
		}
		results := make(chan attempt, racers)
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				a := attempt{blob: docstore.NewID(), sum: strings.Repeat(fmt.Sprintf("%02x", i), 32)}
				if i%4 == 3 {
					_, a.err = s.MarkFailed(t.Context(), rec.ID, "failed attempt")
					a.blob, a.sum = "", ""
				} else {
					_, a.err = s.MarkAvailable(t.Context(), rec.ID, int64(i), a.sum, a.blob, time.Time{})
				}
				results <- a
			})
		}
		wg.Wait()
		close(results)
		var winners []attempt
		for a := range results {
			switch {
			case a.err == nil:
				winners = append(winners, a)
			case docstore.KindOf(a.err) != docstore.KindConflict:
				t.Fatalf("a losing attempt: %v, want a conflict", a.err)
			}
		}
		if len(winners) != 1 {
			t.Fatalf("%d attempts won, want exactly 1", len(winners))
		}
		got := mustGetRecord(t, s, rec.ID)
		if w := winners[0]; w.blob == "" {
			if got.Status != docstore.StatusFailed || got.BlobID != "" {
				t.Fatalf("MarkFailed won, the record reads %s with blob %q", got.Status, got.BlobID)
			}
		} else if got.Status != docstore.StatusAvailable || got.BlobID != w.blob || got.SHA256 != w.sum {
			t.Fatalf("the record names blob %s and digest %s, the winner wrote %s and %s", got.BlobID, got.SHA256, w.blob, w.sum)
		}
	})

	t.Run("MarkAvailableTwiceIsConflict", func(t *testing.T) {
		s := newStore(t)
		rec := sampleRecord(randomTenant(), time.Now())
		mustCreate(t, s, rec)
		first := docstore.NewID()
		if _, err := s.MarkAvailable(t.Context(), rec.ID, 10, strings.Repeat("11", 32), first, time.Time{}); err != nil {
			t.Fatalf("MarkAvailable: %v", err)
		}
		_, err := s.MarkAvailable(t.Context(), rec.ID, 20, strings.Repeat("22", 32), docstore.NewID(), time.Time{})
		wantKind(t, "second MarkAvailable", err, docstore.KindConflict)
		got := mustGetRecord(t, s, rec.ID)
		if got.Size != 10 || got.SHA256 != strings.Repeat("11", 32) || got.BlobID != first {
			t.Fatalf("the refused MarkAvailable changed the record: size %d, sha256 %s, blob %s", got.Size, got.SHA256, got.BlobID)
		}
		_, err = s.MarkFailed(t.Context(), rec.ID, "late failure")
		wantKind(t, "MarkFailed of an available record", err, docstore.KindConflict)
		if got := mustGetRecord(t, s, rec.ID); got.Status != docstore.StatusAvailable || got.Failure != "" {
			t.Fatalf("the refused MarkFailed changed the record: status %s, failure %q", got.Status, got.Failure)
		}
	})

	t.Run("ListNewestFirst", func(t *testing.T) {
		s := newStore(t)
		tenant := randomTenant()
		base := time.Now().Add(-time.Hour)
		// Three records share one instant: they come newest-first by id.
		var want []docstore.Record
		for i, at := range []time.Time{
			base, base.Add(time.Minute), base.Add(2 * time.Minute),
			base.Add(time.Second), base.Add(time.Second), base.Add(time.Second),
			base.Add(time.Microsecond),
		} {
			rec := sampleRecord(tenant, at)
			rec.Filename = fmt.Sprintf("doc-%d.pdf", i)
			want = append(want, createAvailable(t, s, rec))
		}
		// Pending and failed records are listed too, each as it is, among
		// the others by age; another tenant's are not.
		pending := sampleRecord(tenant, base.Add(3*time.Minute))
		mustCreate(t, s, pending)
		failed := sampleRecord(tenant, base.Add(time.Second))
		mustCreate(t, s, failed)
		failedRec, err := s.MarkFailed(t.Context(), failed.ID, "the uploaded object could not be read")
		if err != nil {
			t.Fatalf("MarkFailed: %v", err)
		}
		want = append(want, pending, failedRec)
		sortNewestFirst(want)
		createAvailable(t, s, sampleRecord(randomTenant(), base.Add(4*time.Minute)))

		got, err := s.List(t.Context(), tenant, nil, 100)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		assertListed(t, "List", got, want)
		for i := range got {
			assertRecord(t, "listed record", got[i], want[i])
		}
	})

	t.Run("ListIncludesRecordsCreatedAvailable", func(t *testing.T) {
		s := newStore(t)
		tenant := randomTenant()
		rec := sampleRecord(tenant, time.Now())
		rec.Status = docstore.StatusAvailable
		rec.Size, rec.SHA256, rec.ExpiresAt = 42, strings.Repeat("cd", 32), time.Time{}
		mustCreate(t, s, rec)
		got, err := s.List(t.Context(), tenant, nil, 10)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		assertListed(t, "List", got, []docstore.Record{rec})
	})

	t.Run("ListPagination", func(t *testing.T) {
		s := newStore(t)
		tenant := randomTenant()
		base := time.Now().Add(-2 * time.Hour)
		var want []docstore.Record
		for i := range 11 {
			at := base.Add(time.Duration(i/2) * time.Second) // pairs of ties
			want = append(want, createAvailable(t, s, sampleRecord(tenant, at)))
		}
		// Pending records between them are pages' members like any other.
		for i := range 4 {
			rec := sampleRecord(tenant, base.Add(time.Duration(i)*time.Second))
			mustCreate(t, s, rec)
			want = append(want, rec)
		}
		sortNewestFirst(want)

		for _, limit := range []int{1, 3, 4, 11, 15, 16} {
			var got []docstore.Record
			var after *docstore.ListPosition
			for page := 0; ; page++ {
				if page > len(want)+1 {
					t.Fatalf("limit %d: more pages than records", limit)
				}
				recs, err := s.List(t.Context(), tenant, after, limit)
				if err != nil {
					t.Fatalf("limit %d: List page %d: %v", limit, page, err)
				}
				if len(recs) > limit {
					t.Fatalf("limit %d: page %d has %d records", limit, page, len(recs))
				}
				if remaining := len(want) - len(got); len(recs) != min(limit, remaining) {
					t.Fatalf("limit %d: page %d has %d records, want %d (%d not listed yet)",
						limit, page, len(recs), min(limit, remaining), remaining)
				}
				if len(recs) == 0 {
					break
				}
				got = append(got, recs...)
				last := recs[len(recs)-1]
				after = &docstore.ListPosition{CreatedAt: last.CreatedAt, ID: last.ID}
			}
			assertListed(t, fmt.Sprintf("pages of %d", limit), got, want)
		}
	})

	t.Run("ListAfterDeletedPosition", func(t *testing.T) {
		s := newStore(t)
		tenant := randomTenant()
		base := time.Now().Add(-3 * time.Hour)
		var want []docstore.Record
		for i := range 5 {
			want = append(want, createAvailable(t, s, sampleRecord(tenant, base.Add(time.Duration(i)*time.Minute))))
		}
		sortNewestFirst(want)
		page, err := s.List(t.Context(), tenant, nil, 2)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		assertListed(t, "first page", page, want[:2])
		// The record the cursor points at goes away between two pages.
		if err := s.Delete(t.Context(), want[1].ID); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		page, err = s.List(t.Context(), tenant, &docstore.ListPosition{CreatedAt: want[1].CreatedAt, ID: want[1].ID}, 10)
		if err != nil {
			t.Fatalf("List after a deleted record: %v", err)
		}
		assertListed(t, "page after a deleted record", page, want[2:])
	})

	t.Run("ListUnknownTenantIsEmpty", func(t *testing.T) {
		s := newStore(t)
		got, err := s.List(t.Context(), randomTenant(), nil, 10)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if len(got) != 0 {
			t.Fatalf("List of a tenant with no documents: got %d records", len(got))
		}
	})

	t.Run("DeleteIdempotent", func(t *testing.T) {
		s := newStore(t)
		tenant := randomTenant()
		rec := createAvailable(t, s, sampleRecord(tenant, time.Now()))
		if err := s.Delete(t.Context(), rec.ID); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		_, err := s.Get(t.Context(), rec.ID)
		wantKind(t, "Get after Delete", err, docstore.KindNotFound)
		got, err := s.List(t.Context(), tenant, nil, 10)
		if err != nil {
			t.Fatalf("List after Delete: %v", err)
		}
		assertListed(t, "List after Delete", got, nil)
		if err := s.Delete(t.Context(), rec.ID); err != nil {
			t.Fatalf("second Delete: %v", err)
		}
		if err := s.Delete(t.Context(), docstore.NewID()); err != nil {
			t.Fatalf("Delete of a record that never existed: %v", err)
		}
		// The id is free again.
		mustCreate(t, s, rec)
	})
}

// sampleRecord returns a pending record of tenant created at `at`, with
// every field set, as the Service creates one before storing the blob.
func sampleRecord(tenant docstore.Tenant, at time.Time) docstore.Record {
	id := docstore.NewID()
	wrapped := make([]byte, 184)
	for i := range wrapped {
		wrapped[i] = byte(i*7 + 1)
	}
	wrapped[0], wrapped[1] = 0, 0xff // not valid UTF-8, leading zero
	return docstore.Record{
		Document:      docstore.Document{ID: id, Descriptor: docstore.Descriptor{Filename: "Passport scan (" + string(id[:8]) + ").pdf", ContentType: "application/pdf"}, Status: docstore.StatusPending, CreatedAt: at, Metadata: map[string]string{"source": "storetest"}},
		Tenant:        tenant,
		WrappedKey:    wrapped,
		KeyID:         "arn:aws:kms:eu-west-1:111122223333:key/" + string(docstore.NewID()),
		FormatVersion: 1,
		SegmentSize:   64 << 10,
		ExpiresAt:     at.Add(24 * time.Hour),
	}
}

// createAvailable creates rec pending, marks it available, and returns the
// record as it should now read.
func createAvailable(t *testing.T, s docstore.MetadataStore, rec docstore.Record) docstore.Record {
	t.Helper()
	mustCreate(t, s, rec)
	size, sum, blob := int64(len(rec.Filename)), strings.Repeat(string(rec.ID[:2]), 32), docstore.NewID()
	if _, err := s.MarkAvailable(t.Context(), rec.ID, size, sum, blob, time.Time{}); err != nil {
		t.Fatalf("MarkAvailable %s: %v", rec.ID, err)
	}
	rec.Status, rec.Size, rec.SHA256, rec.BlobID, rec.ExpiresAt = docstore.StatusAvailable, size, sum, blob, time.Time{}
	return rec
}

func mustCreate(t *testing.T, s docstore.MetadataStore, rec docstore.Record) {
	t.Helper()
	if err := s.Create(t.Context(), rec); err != nil {
		t.Fatalf("Create %s: %v", rec.ID, err)
	}
	t.Cleanup(func() { s.Delete(context.Background(), rec.ID) })
}

func mustGetRecord(t *testing.T, s docstore.MetadataStore, id docstore.ID) docstore.Record {
	t.Helper()
	rec, err := s.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get %s: %v", id, err)
	}
	return rec
}

// sortNewestFirst sorts records in listing order: CreatedAt descending
// (at microsecond precision, the least a store keeps), then ID descending.
func sortNewestFirst(recs []docstore.Record) {
	slices.SortFunc(recs, func(a, b docstore.Record) int {
		if c := b.CreatedAt.Truncate(time.Microsecond).Compare(a.CreatedAt.Truncate(time.Microsecond)); c != 0 {
			return c
		}
		return strings.Compare(string(b.ID), string(a.ID))
	})
}

// assertListed checks that got holds exactly want's ids, in want's order.
func assertListed(t *testing.T, what string, got, want []docstore.Record) {
	t.Helper()
	ids := func(recs []docstore.Record) []docstore.ID {
		out := make([]docstore.ID, len(recs))
		for i, r := range recs {
			out[i] = r.ID
		}
		return out
	}
	if g, w := ids(got), ids(want); !slices.Equal(g, w) {
		t.Fatalf("%s: got ids\n\t%v\nwant (newest first, ties by id descending)\n\t%v", what, g, w)
	}
}

// assertRecord compares every field of a record. Times must be equal to the
// microsecond (CreatedAt) or the second (ExpiresAt, an epoch-seconds TTL in
// DynamoDB) and come back in UTC; an empty metadata map may come back nil.
func assertRecord(t *testing.T, what string, got, want docstore.Record) {
	t.Helper()
	var diffs []string
	diff := func(field string, g, w any) {
		diffs = append(diffs, fmt.Sprintf("%s: got %v, want %v", field, g, w))
	}
	if got.ID != want.ID {
		diff("ID", got.ID, want.ID)
	}
	if got.Filename != want.Filename {
		diff("Filename", got.Filename, want.Filename)
	}
	if got.ContentType != want.ContentType {
		diff("ContentType", got.ContentType, want.ContentType)
	}
	if got.Size != want.Size {
		diff("Size", got.Size, want.Size)
	}
	if got.SHA256 != want.SHA256 {
		diff("SHA256", got.SHA256, want.SHA256)
	}
	if got.Status != want.Status {
		diff("Status", got.Status, want.Status)
	}
	if got.Failure != want.Failure {
		diff("Failure", got.Failure, want.Failure)
	}
	if got.BlobID != want.BlobID {
		diff("BlobID", got.BlobID, want.BlobID)
	}
	if g, w := got.CreatedAt.Truncate(time.Microsecond), want.CreatedAt.Truncate(time.Microsecond); !g.Equal(w) {
		diff("CreatedAt (to the µs)", got.CreatedAt.Format(time.RFC3339Nano), want.CreatedAt.Format(time.RFC3339Nano))
	}
	if loc := got.CreatedAt.Location(); loc != time.UTC {
		diff("CreatedAt's location", loc, time.UTC)
	}
	if !maps.Equal(got.Metadata, want.Metadata) {
		diff("Metadata", got.Metadata, want.Metadata)
	}
	if got.Tenant != want.Tenant {
		diff("Tenant", got.Tenant, want.Tenant)
	}
	if !bytes.Equal(got.WrappedKey, want.WrappedKey) {
		diff("WrappedKey", fmt.Sprintf("%x", got.WrappedKey), fmt.Sprintf("%x", want.WrappedKey))
	}
	if got.KeyID != want.KeyID {
		diff("KeyID", got.KeyID, want.KeyID)
	}
	if got.FormatVersion != want.FormatVersion {
		diff("FormatVersion", got.FormatVersion, want.FormatVersion)
	}
	if got.SegmentSize != want.SegmentSize {
		diff("SegmentSize", got.SegmentSize, want.SegmentSize)
	}
	if got.UploadID != want.UploadID {
		diff("UploadID", got.UploadID, want.UploadID)
	}
	if got.PartSize != want.PartSize {
		diff("PartSize", got.PartSize, want.PartSize)
	}
	if got.ExpiresAt.IsZero() != want.ExpiresAt.IsZero() ||
		!got.ExpiresAt.Truncate(time.Second).Equal(want.ExpiresAt.Truncate(time.Second)) {
		diff("ExpiresAt (to the second)", got.ExpiresAt, want.ExpiresAt)
	}
	if !got.ExpiresAt.IsZero() && got.ExpiresAt.Location() != time.UTC {
		diff("ExpiresAt's location", got.ExpiresAt.Location(), time.UTC)
	}
	if len(diffs) > 0 {
		t.Fatalf("%s: record %s differs:\n\t%s", what, want.ID, strings.Join(diffs, "\n\t"))
	}
}
