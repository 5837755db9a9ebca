package client

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/imagodocs/imago/internal/api"
)

// Link is a share link as the API answers it: its URL hands the document
// to anyone, without a token, until it expires, is used up or revoked.
type Link = api.Link

// The dispositions of a share link's answers: shown by a browser, or
// saved.
const (
	DispositionInline     = api.DispositionInline
	DispositionAttachment = api.DispositionAttachment
)

// ShareOptions describe a share link to create. The zero value asks for
// the server's defaults: an hour (or its longest lifetime, if shorter),
// unlimited uses until then, inline.
type ShareOptions struct {
	// ExpiresIn is the link's lifetime, a whole number of seconds (the
	// server takes at least api.MinLinkTTL, at most its own longest);
	// zero for the server's default.
	ExpiresIn time.Duration
	// MaxUses is how many answers the link gives; zero for no limit but
	// its expiry.
	MaxUses int64
	// Disposition is DispositionInline or DispositionAttachment;
	// empty for the server's default (inline).
	Disposition string
}

func linksPath(id string) string { return docPath(id) + "/links" }

// Share creates a share link to document id.
//
// Unlike the other calls, Share is not retried once its request may have
// reached the server (see request.notIdempotent): each POST that does
// creates another link, and a retry after an answer lost on the way back
// would leave a live link nobody was told of.
func (c *Client) Share(ctx context.Context, id string, opt ShareOptions) (Link, error) {
	var body api.CreateLink
	switch {
	case opt.ExpiresIn < 0 || opt.ExpiresIn%time.Second != 0:
		return Link{}, fmt.Errorf("share %s: the lifetime %v is not a whole number of seconds", id, opt.ExpiresIn)
	case opt.ExpiresIn > 0:
		secs := int64(opt.ExpiresIn / time.Second)
		body.ExpiresIn = &secs
	}
	switch {
	case opt.MaxUses < 0:
		return Link{}, fmt.Errorf("share %s: max uses %d is below 1", id, opt.MaxUses)
	case opt.MaxUses > 0:
		body.MaxUses = &opt.MaxUses
	}
	body.Disposition = opt.Disposition
	req := jsonRequest("POST", linksPath(id), body)
	req.notIdempotent = true
	var l Link
	if _, err := c.call(ctx, req, &l); err != nil {
		return Link{}, fmt.Errorf("share %s: %w", id, err)
	}
	return l, nil
}

// Links returns the live share links of document id (not expired, used
// up or revoked), newest first.
func (c *Client) Links(ctx context.Context, id string) ([]Link, error) {
	var ls api.Links
	if _, err := c.call(ctx, request{method: "GET", url: linksPath(id)}, &ls); err != nil {
		return nil, fmt.Errorf("links of %s: %w", id, err)
	}
	return ls.Links, nil
}

// Unshare revokes share link linkID of document id: from then on it
// answers 410. Revoking a link already expired, used up or revoked
// succeeds (so a retried DELETE does too); an unknown link is not found.
func (c *Client) Unshare(ctx context.Context, id, linkID string) error {
	req := request{method: "DELETE", url: linksPath(id) + "/" + url.PathEscape(linkID)}
	if _, err := c.call(ctx, req, nil); err != nil {
		return fmt.Errorf("unshare %s of %s: %w", linkID, id, err)
	}
	return nil
}
