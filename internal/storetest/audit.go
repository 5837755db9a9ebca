package storetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/imagodocs/imago/internal/api"
	"github.com/imagodocs/imago/internal/docstore"
)

// TestAuditLog runs the AuditLog contract against the stores newStore
// returns.
func TestAuditLog(t *testing.T, newStore func(t *testing.T) docstore.AuditLog) {
	base := time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)
	record := func(tenant docstore.Tenant, chain string, seq int64, at time.Time, action string, doc docstore.ID) api.AuditRecord {
		r := api.AuditRecord{ID: uuid.NewString(), Time: at.Format(api.AuditTimeLayout), Tenant: string(tenant),
			Actor: "someone", Action: action, DocumentID: string(doc), Status: 200, Chain: chain, Seq: seq}
		r.Hash = api.AuditHash(r)
		return r
	}

	t.Run("AppendRecordRoundTrip", func(t *testing.T) {
		s := newStore(t)
		tenant := randomTenant()
		n := int64(4096)
		r := record(tenant, "w-00", 1, base, api.ActionRead, docstore.NewID())
		r.Bytes, r.Cache, r.Range, r.LinkID, r.SourceIP, r.UserAgent, r.RequestID = &n, "hit", "bytes=0-4095", "lnk", "192.0.2.1", "curl/8", "req-1"
		r.Hash = api.AuditHash(r)
		if err := s.Append(t.Context(), tenant, r); err != nil {
			t.Fatal(err)
		}
		got, err := s.Record(t.Context(), tenant, "w-00", 1)
		if err != nil || api.AuditHash(got) != r.Hash || got.Hash != r.Hash || *got.Bytes != n {
			t.Fatalf("Record: %+v %v", got, err)
		}
		if _, err := s.Record(t.Context(), tenant, "w-00", 2); !docstore.IsNotFound(err) {
			t.Fatalf("Record of an empty place: %v", err)
		}
		if _, err := s.Record(t.Context(), randomTenant(), "w-00", 1); !docstore.IsNotFound(err) {
			t.Fatalf("Record of another tenant's chain of the same name: %v", err)
		}
	})

	t.Run("APlaceTakenIsAConflict", func(t *testing.T) {
		s := newStore(t)
		tenant := randomTenant()
		first := record(tenant, "w-01", 1, base, api.ActionStat, "")
		if err := s.Append(t.Context(), tenant, first); err != nil {
			t.Fatal(err)
		}
		if err := s.Append(t.Context(), tenant, record(tenant, "w-01", 1, base, api.ActionRead, "")); docstore.KindOf(err) != docstore.KindConflict {
			t.Fatalf("a second record at the same place: %v, want a conflict", err)
		}
		got, _ := s.Record(t.Context(), tenant, "w-01", 1)
		if got.ID != first.ID {
			t.Fatalf("the place holds %s, want the first record %s", got.ID, first.ID)
		}
	})

	t.Run("RacingAppendsToOnePlaceOneWins", func(t *testing.T) {
		s := newStore(t)
		tenant := randomTenant()
		for round := range 5 {
			var wins int
			var mu sync.Mutex
			var wg sync.WaitGroup
			for range 6 {
				wg.Go(func() {
					err := s.Append(context.Background(), tenant, record(tenant, "race", int64(round+1), base, api.ActionRead, ""))
					mu.Lock()
					defer mu.Unlock()
					if err == nil {
						wins++
					} else if docstore.KindOf(err) != docstore.KindConflict {
						t.Errorf("round %d: %v", round, err)
					}
				})
			}
			wg.Wait()
			if wins != 1 {
				t.Fatalf("round %d: %d appends to one place succeeded", round, wins)
			}
		}
	})

	t.Run("QueryNewestFirstFilteredAndPaged", func(t *testing.T) {
		s := newStore(t)
		tenant, other := randomTenant(), randomTenant()
		doc := docstore.NewID()
		var all []api.AuditRecord
		for i := range 12 {
			action, d := api.ActionRead, doc
			if i%3 == 0 {
				action, d = api.ActionList, ""
			}
			r := record(tenant, fmt.Sprintf("c-%d", i%2), int64(i/2+1), base.Add(time.Duration(i)*time.Second), action, d)
			if err := s.Append(t.Context(), tenant, r); err != nil {
				t.Fatal(err)
			}
			all = append(all, r)
		}
		if err := s.Append(t.Context(), other, record(other, "c-0", 1, base, api.ActionRead, doc)); err != nil {
			t.Fatal(err)
		}
		ids := func(recs []api.AuditRecord) []string {
			out := make([]string, len(recs))
			for i, r := range recs {
				out[i] = r.ID
			}
			return out
		}
		want := func(keep func(i int, r api.AuditRecord) bool) []string {
			var out []string
			for i := len(all) - 1; i >= 0; i-- {
				if keep(i, all[i]) {
					out = append(out, all[i].ID)
				}
			}
			return out
		}
		check := func(name string, q docstore.AuditQuery, keep func(i int, r api.AuditRecord) bool) {
			t.Helper()
			got, err := s.Query(t.Context(), tenant, q, nil, 100)
			if err != nil {
				t.Fatal(err)
			}
			if w := want(keep); !slices.Equal(ids(got), w) {
				t.Fatalf("%s: %v, want %v", name, ids(got), w)
			}
		}
		check("all", docstore.AuditQuery{}, func(int, api.AuditRecord) bool { return true })
		check("a document", docstore.AuditQuery{Document: doc}, func(_ int, r api.AuditRecord) bool { return r.DocumentID == string(doc) })
		check("an action", docstore.AuditQuery{Action: api.ActionList}, func(_ int, r api.AuditRecord) bool { return r.Action == api.ActionList })
		check("since, until", docstore.AuditQuery{Since: base.Add(3 * time.Second), Until: base.Add(8 * time.Second)},
			func(i int, _ api.AuditRecord) bool { return i >= 3 && i < 8 })
		check("until", docstore.AuditQuery{Until: base.Add(2 * time.Second)}, func(i int, _ api.AuditRecord) bool { return i < 2 })
		check("both filters and since", docstore.AuditQuery{Document: doc, Action: api.ActionRead, Since: base.Add(6 * time.Second)},
			func(i int, r api.AuditRecord) bool { return i >= 6 && r.Action == api.ActionRead })
		// Pages of 5, each after the last of the one before.
		var paged []string
		var after *docstore.ListPosition
		for {
			page, err := s.Query(t.Context(), tenant, docstore.AuditQuery{}, after, 5)
			if err != nil {
				t.Fatal(err)
			}
			paged = append(paged, ids(page)...)
			if len(page) < 5 {
				break
			}
			last := page[len(page)-1]
			at, _ := time.Parse(api.AuditTimeLayout, last.Time)
			after = &docstore.ListPosition{CreatedAt: at, ID: docstore.ID(last.ID)}
		}
		if w := want(func(int, api.AuditRecord) bool { return true }); !slices.Equal(paged, w) {
			t.Fatalf("paged: %v, want %v", paged, w)
		}
	})
}
