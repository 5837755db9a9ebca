package docstore

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/imagodocs/imago/internal/api"
	"github.com/imagodocs/imago/internal/linktoken"
)

// Share links (docs/design.md, "Share links"): a link hands one document to
// whoever holds its URL, for a bounded time and number of answers, until
// its owner revokes it. The link itself is a record of the LinkStore; its
// token (package linktoken) is derived from it and the deployment's link
// secret, never stored, and names the link, the document, the tenant and
// the expiry. Reading through a link is linkread.go.

// LinkID identifies a share link: linktoken.IDSize random bytes,
// base64url without padding.
type LinkID string

// NewLinkID returns a random link id.
func NewLinkID() LinkID {
	var b [linktoken.IDSize]byte
	rand.Read(b[:])
	return linkIDOf(b)
}

func linkIDOf(b [linktoken.IDSize]byte) LinkID {
	return LinkID(base64.RawURLEncoding.EncodeToString(b[:]))
}

// bytes is id as the token holds it; ok false for a string no link has.
func (id LinkID) bytes() (b [linktoken.IDSize]byte, ok bool) {
	raw, err := base64.RawURLEncoding.Strict().DecodeString(string(id))
	if err != nil || len(raw) != linktoken.IDSize {
		return b, false
	}
	copy(b[:], raw)
	return b, true
}

// Link is a share link as the LinkStore keeps it.
type Link struct {
	ID       LinkID
	Document ID
	Tenant   Tenant
	// SHA256 is the document's when the link was made: a link serves
	// those bytes and no others (a document id given again, after a
	// delete, to an upload with the same Idempotency-Key, is not the
	// document the link was made for).
	SHA256      string
	CreatedAt   time.Time
	ExpiresAt   time.Time // whole seconds, as the token states it
	MaxUses     int64     // 0: no limit but the expiry
	Uses        int64
	Disposition string    // api.DispositionInline or api.DispositionAttachment
	RevokedAt   time.Time // zero while not revoked
}

// Gone tells why l answers no more at now ("" while it is live).
func (l Link) Gone(now time.Time) string {
	switch {
	case !l.RevokedAt.IsZero():
		return "revoked"
	case !now.Before(l.ExpiresAt):
		return "expired"
	case l.MaxUses > 0 && l.Uses >= l.MaxUses:
		return "used up"
	}
	return ""
}

// LinkRequest is a request to create a link: the body of POST
// /documents/{id}/links, every field optional.
type LinkRequest = api.CreateLink

// CreateLink makes a share link of tenant's document id, which must be
// available.
func (s *Service) CreateLink(ctx context.Context, tenant Tenant, id ID, req LinkRequest) (Link, error) {
	const op = "docstore.CreateLink"
	if err := s.linksConfigured(op); err != nil {
		return Link{}, err
	}
	ttl, err := s.linkTTL(op, req.ExpiresIn)
	if err != nil {
		return Link{}, err
	}
	l := Link{ID: NewLinkID(), Document: id, Tenant: tenant, Disposition: api.DispositionInline}
	switch req.Disposition {
	case "", api.DispositionInline:
	case api.DispositionAttachment:
		l.Disposition = api.DispositionAttachment
	default:
		return Link{}, E(op, KindInvalid, `disposition must be "inline" or "attachment"`)
	}
	if req.MaxUses != nil {
		if *req.MaxUses < 1 {
			return Link{}, E(op, KindInvalid, "max_uses must be a whole number of at least 1 (omit it for no limit)")
		}
		l.MaxUses = *req.MaxUses
	}
	rec, err := s.available(ctx, op, tenant, id)
	if err != nil {
		return Link{}, err
	}
	now := s.now()
	l.SHA256, l.CreatedAt = rec.SHA256, now
	l.ExpiresAt = time.Unix(now.Add(ttl).Unix(), 0).UTC()
	if err := s.links.CreateLink(ctx, l); err != nil {
		return Link{}, E(op, fmt.Errorf("create link of %s: %w", id, err))
	}
	return l, nil
}

// linkTTL is the lifetime asked for in whole seconds (nil: the default).
func (s *Service) linkTTL(op Op, expiresIn *int64) (time.Duration, error) {
	longest := s.cfg.LinkMaxTTL
	if expiresIn == nil {
		return min(api.DefaultLinkTTL*time.Second, longest), nil
	}
	if *expiresIn < api.MinLinkTTL || *expiresIn > int64(longest/time.Second) {
		return 0, E(op, KindInvalid, fmt.Sprintf("expires_in must be a whole number of seconds from %d to %d", api.MinLinkTTL, int64(longest/time.Second)))
	}
	return time.Duration(*expiresIn) * time.Second, nil
}

func (s *Service) linksConfigured(op Op) error {
	if s.links == nil {
		return E(op, KindInternal, "share links are not configured", fmt.Errorf("no LinkStore"))
	}
	return nil
}

// Links returns the live links of tenant's document id (not expired, used
// up or revoked), newest first.
func (s *Service) Links(ctx context.Context, tenant Tenant, id ID) ([]Link, error) {
	const op = "docstore.Links"
	if err := s.linksConfigured(op); err != nil {
		return nil, err
	}
	if _, err := s.record(ctx, op, tenant, id); err != nil {
		return nil, err
	}
	all, err := s.links.Links(ctx, id)
	if err != nil {
		return nil, E(op, fmt.Errorf("list links of %s: %w", id, err))
	}
	now := s.now()
	live := make([]Link, 0, len(all))
	for _, l := range all {
		if l.Tenant == tenant && l.Gone(now) == "" {
			live = append(live, l)
		}
	}
	return live, nil
}

// RevokeLink revokes link linkID of tenant's document id: from then on it
// answers 410. A link already gone is revoked all the same (no error).
func (s *Service) RevokeLink(ctx context.Context, tenant Tenant, id ID, linkID LinkID) error {
	const op = "docstore.RevokeLink"
	if err := s.linksConfigured(op); err != nil {
		return err
	}
	if _, err := s.record(ctx, op, tenant, id); err != nil {
		return err
	}
	unknown := E(op, KindNotFound, fmt.Sprintf("link %s of document %s not found", truncate(string(linkID), 32), id))
	if _, ok := linkID.bytes(); !ok {
		return unknown
	}
	l, err := s.links.Link(ctx, linkID)
	if IsNotFound(err) || (err == nil && (l.Document != id || l.Tenant != tenant)) {
		return unknown
	}
	if err != nil {
		return E(op, fmt.Errorf("read link %s: %w", linkID, err))
	}
	if err := s.links.RevokeLink(ctx, linkID, s.now()); err != nil {
		if IsNotFound(err) {
			return unknown // removed with its document meanwhile
		}
		return E(op, fmt.Errorf("revoke link %s: %w", linkID, err))
	}
	return nil
}

// LinkToken is the token of l: the last segment of its URL.
func (s *Service) LinkToken(l Link) string {
	id, _ := l.ID.bytes()
	return s.linkKeys.Encode(s.linkKeys.New(id, uuid.MustParse(string(l.Document)), l.ExpiresAt, string(l.Tenant)))
}
