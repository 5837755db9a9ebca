package docstore

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/imagodocs/imago/internal/api"
)

// Page is one page of a listing. Its JSON is api.Page's (see wire.go).
type Page struct {
	Documents  []Document
	NextCursor string
}

// Listing limits (the API's).
const (
	DefaultListLimit = api.DefaultListLimit
	MaxListLimit     = api.MaxListLimit
)

// List returns the tenant's documents, newest first: available ones, and
// pending and failed ones too, each with its status (and a failed one with
// its failure), so that an upload that never finished can be found and
// deleted. Documents expired or in the trash are not listed (ListTrash
// lists the trash).
func (s *Service) List(ctx context.Context, tenant Tenant, limit int, cursor string) (Page, error) {
	return s.list(ctx, "docstore.List", tenant, limit, cursor, s.meta.List,
		func(d Document, now time.Time) bool { return !d.Gone(now) })
}

// ListTrash returns the tenant's documents in the trash, newest first,
// each with its DeletedAt and PurgeAt; without a deletion delay configured,
// none.
func (s *Service) ListTrash(ctx context.Context, tenant Tenant, limit int, cursor string) (Page, error) {
	if s.cfg.DeletionDelay <= 0 && tenant != "" {
		if _, err := s.list(ctx, "docstore.ListTrash", tenant, limit, cursor, nil, nil); err != nil {
			return Page{}, err // the same checks of limit and cursor
		}
		return Page{Documents: []Document{}}, nil
	}
	return s.list(ctx, "docstore.ListTrash", tenant, limit, cursor, s.meta.ListTrash,
		func(d Document, now time.Time) bool {
			return d.Trashed() && !d.Expired(now) && (d.LegalHold || now.Before(d.PurgeAt))
		})
}

// lister is MetadataStore.List or ListTrash.
type lister func(ctx context.Context, tenant Tenant, after *ListPosition, limit int) ([]Record, error)

// list pages through fetch, keeping the records keep accepts at now (the
// store's index may still hold documents that expired a moment ago). A nil
// fetch checks the request and lists nothing.
func (s *Service) list(ctx context.Context, op Op, tenant Tenant, limit int, cursor string, fetch lister, keep func(Document, time.Time) bool) (Page, error) {
	if tenant == "" {
		return Page{}, E(op, KindUnauthenticated, "no caller identity")
	}
	limit = cmp.Or(limit, DefaultListLimit)
	if limit < 1 || limit > MaxListLimit {
		return Page{}, E(op, KindInvalid, fmt.Sprintf("limit must be between 1 and %d", MaxListLimit))
	}
	var after *ListPosition
	if cursor != "" {
		pos, err := DecodeCursor(s.cfg.CursorKey, tenant, cursor)
		if err != nil {
			return Page{}, err
		}
		after = &pos
	}
	page := Page{Documents: make([]Document, 0, limit)}
	if fetch == nil {
		return page, nil
	}
	now := s.now()
	for {
		// One more than asked tells whether there is a next page, so the
		// last page carries no cursor.
		want := limit + 1 - len(page.Documents)
		recs, err := fetch(ctx, tenant, after, want)
		if err != nil {
			return Page{}, E(op, fmt.Errorf("list %s: %w", tenant, err))
		}
		for _, r := range recs {
			if !keep(r.Document, now) {
				continue
			}
			if len(page.Documents) == limit {
				last := page.Documents[limit-1]
				page.NextCursor = EncodeCursor(s.cfg.CursorKey, tenant, ListPosition{CreatedAt: last.CreatedAt, ID: last.ID})
				return page, nil
			}
			page.Documents = append(page.Documents, r.Document)
		}
		if len(recs) < want {
			return page, nil // the index ends here
		}
		last := recs[len(recs)-1]
		after = &ListPosition{CreatedAt: last.CreatedAt, ID: last.ID}
	}
}
