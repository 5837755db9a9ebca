package storetest

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/api"
	"github.com/imagodocs/imago/internal/docstore"
)

// TestLinkStore runs the LinkStore contract against the stores newStore
// returns (the same store every time, or a fresh one).
func TestLinkStore(t *testing.T, newStore func(t *testing.T) docstore.LinkStore) {
	t.Run("CreateGetRoundTrip", func(t *testing.T) {
		s := newStore(t)
		for _, maxUses := range []int64{0, 1, 1 << 40} {
			l := sampleLink(docstore.NewID(), time.Now())
			l.MaxUses = maxUses
			l.Disposition = api.DispositionAttachment
			mustCreateLink(t, s, l)
			assertLink(t, "Link after CreateLink", mustLink(t, s, l.ID), l)
		}
	})

	t.Run("CreateExistingIsConflict", func(t *testing.T) {
		s := newStore(t)
		l := sampleLink(docstore.NewID(), time.Now())
		mustCreateLink(t, s, l)
		other := sampleLink(docstore.NewID(), time.Now())
		other.ID = l.ID
		if err := s.CreateLink(t.Context(), other); docstore.KindOf(err) != docstore.KindConflict {
			t.Fatalf("second CreateLink of %s: %v, want a conflict", l.ID, err)
		}
		assertLink(t, "Link after the refused create", mustLink(t, s, l.ID), l)
	})

	t.Run("MissingIsNotFound", func(t *testing.T) {
		s := newStore(t)
		id := docstore.NewLinkID()
		if _, err := s.Link(t.Context(), id); !docstore.IsNotFound(err) {
			t.Fatalf("Link of a missing link: %v", err)
		}
		if _, err := s.UseLink(t.Context(), id, docstore.NewID(), time.Now()); !docstore.IsNotFound(err) {
			t.Fatalf("UseLink of a missing link: %v", err)
		}
		if err := s.RevokeLink(t.Context(), id, time.Now()); !docstore.IsNotFound(err) {
			t.Fatalf("RevokeLink of a missing link: %v", err)
		}
		if err := s.UnuseLink(t.Context(), id); err != nil {
			t.Fatalf("UnuseLink of a missing link: %v", err)
		}
		if err := s.DeleteLinks(t.Context(), docstore.NewID()); err != nil {
			t.Fatalf("DeleteLinks of a document without links: %v", err)
		}
	})

	t.Run("LinksNewestFirstOfOneDocument", func(t *testing.T) {
		s := newStore(t)
		doc, other := docstore.NewID(), docstore.NewID()
		base := time.Now()
		var want []docstore.LinkID
		for i := range 5 {
			l := sampleLink(doc, base.Add(time.Duration(i)*time.Millisecond))
			mustCreateLink(t, s, l)
			want = append([]docstore.LinkID{l.ID}, want...)
		}
		mustCreateLink(t, s, sampleLink(other, base))
		got, err := s.Links(t.Context(), doc)
		if err != nil {
			t.Fatal(err)
		}
		if ids := linkIDs(got); strings.Join(ids, ",") != strings.Join(asStrings(want), ",") {
			t.Fatalf("Links = %v, want %v (newest first, this document's only)", ids, want)
		}
	})

	t.Run("UseCountsAndStopsAtMaxUses", func(t *testing.T) {
		s := newStore(t)
		l := sampleLink(docstore.NewID(), time.Now())
		l.MaxUses = 2
		mustCreateLink(t, s, l)
		now := time.Now()
		for want := int64(1); want <= 2; want++ {
			got, err := s.UseLink(t.Context(), l.ID, l.Document, now)
			if err != nil || got.Uses != want {
				t.Fatalf("use %d: uses %d, %v", want, got.Uses, err)
			}
		}
		if _, err := s.UseLink(t.Context(), l.ID, l.Document, now); docstore.KindOf(err) != docstore.KindGone {
			t.Fatalf("a third use of a 2-use link: %v, want gone", err)
		}
		if got := mustLink(t, s, l.ID); got.Uses != 2 {
			t.Fatalf("after the refused use: uses %d, want 2", got.Uses)
		}
		// A use given back is a use again.
		if err := s.UnuseLink(t.Context(), l.ID); err != nil {
			t.Fatal(err)
		}
		if got, err := s.UseLink(t.Context(), l.ID, l.Document, now); err != nil || got.Uses != 2 {
			t.Fatalf("use after a give-back: uses %d, %v", got.Uses, err)
		}
	})

	t.Run("UnuseNeverGoesBelowZero", func(t *testing.T) {
		s := newStore(t)
		l := sampleLink(docstore.NewID(), time.Now())
		mustCreateLink(t, s, l)
		for range 2 {
			if err := s.UnuseLink(t.Context(), l.ID); err != nil {
				t.Fatal(err)
			}
		}
		if got := mustLink(t, s, l.ID); got.Uses != 0 {
			t.Fatalf("uses %d after giving back uses never counted", got.Uses)
		}
	})

	t.Run("UseOfAnotherDocumentIsNotFound", func(t *testing.T) {
		s := newStore(t)
		l := sampleLink(docstore.NewID(), time.Now())
		mustCreateLink(t, s, l)
		if _, err := s.UseLink(t.Context(), l.ID, docstore.NewID(), time.Now()); !docstore.IsNotFound(err) {
			t.Fatalf("UseLink naming another document: %v, want not found", err)
		}
		if got := mustLink(t, s, l.ID); got.Uses != 0 {
			t.Fatalf("a refused use counted: uses %d", got.Uses)
		}
	})

	t.Run("ExpiredIsGone", func(t *testing.T) {
		s := newStore(t)
		l := sampleLink(docstore.NewID(), time.Now())
		mustCreateLink(t, s, l)
		if _, err := s.UseLink(t.Context(), l.ID, l.Document, l.ExpiresAt); docstore.KindOf(err) != docstore.KindGone {
			t.Fatalf("a use at the expiry: %v, want gone", err)
		}
		if _, err := s.UseLink(t.Context(), l.ID, l.Document, l.ExpiresAt.Add(-time.Second)); err != nil {
			t.Fatalf("a use a second before the expiry: %v", err)
		}
	})

	t.Run("RevokeIsGoneAndIdempotent", func(t *testing.T) {
		s := newStore(t)
		l := sampleLink(docstore.NewID(), time.Now())
		mustCreateLink(t, s, l)
		at := time.Now().UTC().Truncate(time.Millisecond)
		if err := s.RevokeLink(t.Context(), l.ID, at); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeLink(t.Context(), l.ID, at.Add(time.Hour)); err != nil {
			t.Fatalf("revoking a revoked link: %v", err)
		}
		got := mustLink(t, s, l.ID)
		if !got.RevokedAt.Equal(at) {
			t.Fatalf("revoked at %v, want the first revocation's %v", got.RevokedAt, at)
		}
		if _, err := s.UseLink(t.Context(), l.ID, l.Document, time.Now()); docstore.KindOf(err) != docstore.KindGone || !strings.Contains(docstore.PublicMessage(err), "revoked") {
			t.Fatalf("use of a revoked link: %v, want gone, saying revoked", err)
		}
	})

	t.Run("DeleteLinksRemovesEveryLinkOfTheDocument", func(t *testing.T) {
		s := newStore(t)
		doc, other := docstore.NewID(), docstore.NewID()
		var ids []docstore.LinkID
		for range 3 {
			l := sampleLink(doc, time.Now())
			mustCreateLink(t, s, l)
			ids = append(ids, l.ID)
		}
		kept := sampleLink(other, time.Now())
		mustCreateLink(t, s, kept)
		if err := s.DeleteLinks(t.Context(), doc); err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			if _, err := s.Link(t.Context(), id); !docstore.IsNotFound(err) {
				t.Fatalf("link %s after DeleteLinks: %v", id, err)
			}
		}
		if got, err := s.Links(t.Context(), doc); err != nil || len(got) != 0 {
			t.Fatalf("Links after DeleteLinks: %v %v", linkIDs(got), err)
		}
		mustLink(t, s, kept.ID)
	})

	t.Run("RacingUsesOfTheLastUseSucceedOnce", func(t *testing.T) {
		// Many bounded rounds: in each, 8 uses race for a link with one
		// use left (or two, then exactly two win).
		s := newStore(t)
		rounds := 20
		if testing.Short() {
			rounds = 5
		}
		for round := range rounds {
			left := int64(1 + round%2)
			l := sampleLink(docstore.NewID(), time.Now())
			l.MaxUses = 3
			l.Uses = 3 - left
			mustCreateLink(t, s, l)
			var wins, gone atomic.Int64
			var wg sync.WaitGroup
			start := make(chan struct{})
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					_, err := s.UseLink(context.Background(), l.ID, l.Document, time.Now())
					switch {
					case err == nil:
						wins.Add(1)
					case docstore.KindOf(err) == docstore.KindGone:
						gone.Add(1)
					default:
						t.Errorf("round %d: UseLink: %v", round, err)
					}
				}()
			}
			close(start)
			wg.Wait()
			if wins.Load() != left || gone.Load() != 8-left {
				t.Fatalf("round %d: %d uses succeeded and %d were gone, with %d use(s) left", round, wins.Load(), gone.Load(), left)
			}
			if got := mustLink(t, s, l.ID); got.Uses != 3 {
				t.Fatalf("round %d: uses %d, want 3", round, got.Uses)
			}
		}
	})
}

func sampleLink(doc docstore.ID, created time.Time) docstore.Link {
	created = created.UTC().Truncate(time.Microsecond)
	return docstore.Link{ID: docstore.NewLinkID(), Document: doc, Tenant: randomTenant(),
		SHA256: strings.Repeat("5e", 32), CreatedAt: created, ExpiresAt: created.Add(time.Hour).Truncate(time.Second),
		Disposition: api.DispositionInline}
}

func mustCreateLink(t *testing.T, s docstore.LinkStore, l docstore.Link) {
	t.Helper()
	if err := s.CreateLink(t.Context(), l); err != nil {
		t.Fatalf("CreateLink %s: %v", l.ID, err)
	}
	t.Cleanup(func() { s.DeleteLinks(context.Background(), l.Document) })
}

func mustLink(t *testing.T, s docstore.LinkStore, id docstore.LinkID) docstore.Link {
	t.Helper()
	l, err := s.Link(t.Context(), id)
	if err != nil {
		t.Fatalf("Link %s: %v", id, err)
	}
	return l
}

func assertLink(t *testing.T, what string, got, want docstore.Link) {
	t.Helper()
	if got.ID != want.ID || got.Document != want.Document || got.Tenant != want.Tenant || got.SHA256 != want.SHA256 ||
		!got.CreatedAt.Equal(want.CreatedAt) || !got.ExpiresAt.Equal(want.ExpiresAt) || got.MaxUses != want.MaxUses ||
		got.Uses != want.Uses || got.Disposition != want.Disposition || !got.RevokedAt.Equal(want.RevokedAt) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func linkIDs(links []docstore.Link) []string {
	ids := make([]string, len(links))
	for i, l := range links {
		ids[i] = string(l.ID)
	}
	return ids
}

func asStrings(ids []docstore.LinkID) []string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = string(id)
	}
	return s
}
