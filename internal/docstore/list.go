package docstore

import (
	"cmp"
	"context"
	"fmt"

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
// deleted.
func (s *Service) List(ctx context.Context, tenant Tenant, limit int, cursor string) (Page, error) {
	const op = "docstore.List"
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
	// One more than asked tells whether there is a next page, so the last
	// page carries no cursor.
	recs, err := s.meta.List(ctx, tenant, after, limit+1)
	if err != nil {
		return Page{}, E(op, fmt.Errorf("list %s: %w", tenant, err))
	}
	page := Page{Documents: make([]Document, 0, min(len(recs), limit))}
	for i, r := range recs {
		if i == limit {
			last := recs[limit-1]
			page.NextCursor = EncodeCursor(s.cfg.CursorKey, tenant, ListPosition{CreatedAt: last.CreatedAt, ID: last.ID})
			break
		}
		page.Documents = append(page.Documents, r.Document)
	}
	return page, nil
}
