package client

import (
	"context"
	"fmt"
	"iter"
	"net/url"
	"strconv"

	"github.com/imagodocs/imago/internal/api"
)

// Page is one page of the caller's documents, newest first; its
// NextCursor is empty on the last page.
type Page = api.Page

// maxPageSize is the API's largest page (GET /documents?limit=).
const maxPageSize = api.MaxListLimit

// ListPage returns one page of up to limit documents (the API's default
// when limit is 0) after cursor (the first page when empty).
func (c *Client) ListPage(ctx context.Context, limit int, cursor string) (Page, error) {
	return c.listPage(ctx, false, limit, cursor)
}

// ListTrashPage is ListPage of the caller's trash: the documents deleted
// but not yet purged, each with its DeletedAt and PurgeAt. A server
// without a deletion delay has an empty trash.
func (c *Client) ListTrashPage(ctx context.Context, limit int, cursor string) (Page, error) {
	return c.listPage(ctx, true, limit, cursor)
}

func (c *Client) listPage(ctx context.Context, trash bool, limit int, cursor string) (Page, error) {
	q := url.Values{}
	if trash {
		q.Set("trash", "true")
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(min(limit, maxPageSize)))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	path := "/documents"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var p Page
	if _, err := c.call(ctx, request{method: "GET", url: path}, &p); err != nil {
		if trash {
			return Page{}, fmt.Errorf("list the trash: %w", err)
		}
		return Page{}, fmt.Errorf("list: %w", err)
	}
	return p, nil
}

// List yields the caller's documents, newest first, up to limit of them
// (all when limit is 0), fetching pages as it goes. It stops at the first
// error, which it yields.
func (c *Client) List(ctx context.Context, limit int) iter.Seq2[Document, error] {
	return c.list(ctx, false, limit)
}

// ListTrash is List of the caller's trash (ListTrashPage).
func (c *Client) ListTrash(ctx context.Context, limit int) iter.Seq2[Document, error] {
	return c.list(ctx, true, limit)
}

func (c *Client) list(ctx context.Context, trash bool, limit int) iter.Seq2[Document, error] {
	return func(yield func(Document, error) bool) {
		cursor, seen := "", 0
		for {
			want := maxPageSize
			if limit > 0 {
				want = min(limit-seen, maxPageSize)
			}
			p, err := c.listPage(ctx, trash, want, cursor)
			if err != nil {
				yield(Document{}, err)
				return
			}
			for _, d := range p.Documents {
				if limit > 0 && seen >= limit {
					return
				}
				seen++
				if !yield(d, nil) {
					return
				}
			}
			if p.NextCursor == "" || (limit > 0 && seen >= limit) || len(p.Documents) == 0 {
				return
			}
			cursor = p.NextCursor
		}
	}
}
