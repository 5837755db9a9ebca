package docstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/imagodocs/imago/internal/linktoken"
)

// LinkReadRequest is one request of GET /links/{token}.
type LinkReadRequest struct {
	Token       string
	Range       string // the Range header, if any
	IfNoneMatch string // the If-None-Match header, if any
}

// LinkContent is a link's answer: the content, exactly as the owner's
// download answers it, and the link as it stands after this use. With a
// refusal of a link that is gone (expired, used up, revoked) ReadLink
// returns the link alone (Content nil), so that the refusal is recorded in
// its owner's trail.
type LinkContent struct {
	*Content
	Link Link
}

// ReadLink answers a share link: the document its token names, read as
// Download reads it (the cache tier first), counting one use of the link
// for each answer with a body (200 or 206).
//
// The token is checked before anything is read: a malformed, tampered or
// foreign one is KindNotFound, an expired one KindGone. The use is counted
// by the LinkStore in one conditional write, so of racing requests on a
// link with one use left exactly one gets the document; that write runs
// while the document is read, so that a link answered from a hot cache
// waits for the slower of the two, not for both. A read that then fails
// (a Range that cannot be satisfied, a document over the response limit,
// a backend down) gives its use back. A request with If-None-Match, which
// may be answered 304 and so use nothing, asks the link only once it knows
// its answer. A deleted document answers KindNotFound whatever its links
// say: delete wins, as for its owner.
func (s *Service) ReadLink(ctx context.Context, req LinkReadRequest) (*LinkContent, error) {
	const op = "docstore.ReadLink"
	if err := s.linksConfigured(op); err != nil {
		return nil, err
	}
	unknown := E(op, KindNotFound, "link not found")
	claims, err := s.linkKeys.Decode(req.Token)
	if err != nil {
		return nil, unknown
	}
	now := s.now()
	if !now.Before(claims.Expires) {
		gone := E(op, KindGone, fmt.Sprintf("the link expired at %s", claims.Expires.Format(time.RFC3339)))
		// Its owner's trail records the refusal: the link's record says
		// whose it is, when it is still there (and recording is on).
		if s.Auditing() {
			if l, err := s.links.Link(ctx, linkIDOf(claims.Link)); err == nil && l.Document == ID(uuid.UUID(claims.Document).String()) {
				return &LinkContent{Link: l}, gone
			}
		}
		return nil, gone
	}
	lr := &linkRead{s: s, op: op, claims: claims, link: linkIDOf(claims.Link),
		id: ID(uuid.UUID(claims.Document).String()), now: now}
	if req.IfNoneMatch == "" {
		lr.startUse(ctx)
	}
	c := &Content{ID: lr.id}
	body, hit, readErr := s.reader.read(ctx, readRequest{
		op: op, owns: lr.owns, id: lr.id, now: now,
		whole: req.Range == "", conditional: req.IfNoneMatch != "",
		record: lr.record,
		negotiate: func(d Descriptor) (ByteRange, bool, error) {
			c.Descriptor = d
			r, err := s.negotiate(op, c, DownloadRequest{Range: req.Range, IfNoneMatch: req.IfNoneMatch})
			return r, !c.NotModified, err
		},
	})
	l, err := lr.settle(ctx, readErr, c.NotModified)
	if err != nil {
		if gone, ok := goneLinkOf(err); ok {
			return &LinkContent{Link: gone}, err // the refusal names the link's owner
		}
		return nil, err
	}
	if l.SHA256 != c.SHA256 {
		// The id names another document than the one linked (see
		// Link.SHA256): the linked one is gone.
		lr.giveBack(ctx)
		return nil, unknown
	}
	c.Body, c.CacheHit = body, hit
	return &LinkContent{Content: c, Link: l}, nil
}

// linkRead is one ReadLink in progress: the token's claims and the use of
// the link, counted while the document is read.
type linkRead struct {
	s      *Service
	op     Op
	claims linktoken.Claims
	link   LinkID
	id     ID
	now    time.Time
	// use delivers the result of UseLink started by startUse; nil when
	// none was.
	use     chan linkUse
	counted bool // a use of this request was counted
}

type linkUse struct {
	l   Link
	err error
}

// startUse counts the use while the document is read.
func (lr *linkRead) startUse(ctx context.Context) {
	lr.use = make(chan linkUse, 1)
	go func() {
		l, err := lr.s.links.UseLink(ctx, lr.link, lr.id, lr.now)
		lr.use <- linkUse{l, err}
	}()
}

// owns tells whether t is the tenant the token was made for.
func (lr *linkRead) owns(t Tenant) bool { return lr.s.linkKeys.BoundTo(lr.claims, string(t)) }

// record reads the linked document's record, refusing one of another
// tenant or not available as a missing link.
func (lr *linkRead) record(ctx context.Context) (Record, error) {
	rec, err := lr.s.meta.Get(ctx, lr.id)
	switch {
	case IsNotFound(err) || (err == nil && (!lr.owns(rec.Tenant) || rec.Status != StatusAvailable || rec.Gone(lr.now))):
		return Record{}, E(lr.op, KindNotFound, "link not found")
	case err != nil:
		return Record{}, E(lr.op, fmt.Errorf("get record %s: %w", lr.id, err))
	}
	return rec, nil
}

// settle ends the link's side of the read, whose error was readErr: it
// returns the link as this answer leaves it, or the answer's error. A use
// counted for an answer that is an error is given back; a request that
// counted none yet (If-None-Match) counts one now, unless it is a 304,
// which only needs the link live.
func (lr *linkRead) settle(ctx context.Context, readErr error, notModified bool) (Link, error) {
	var u linkUse
	switch {
	case lr.use != nil:
		u = <-lr.use
		lr.counted = u.err == nil
	case readErr != nil:
		return Link{}, lr.readError(readErr)
	case notModified:
		u.l, u.err = lr.s.links.Link(ctx, lr.link)
		if u.err == nil && u.l.Document != lr.id {
			u.err = E(lr.op, KindNotFound, "no such link of this document")
		}
		if u.err == nil && u.l.Gone(lr.now) != "" {
			u.err = LinkGone(lr.op, u.l, lr.now)
		}
	default:
		u.l, u.err = lr.s.links.UseLink(ctx, lr.link, lr.id, lr.now)
		lr.counted = u.err == nil
	}
	switch {
	case IsNotFound(readErr):
		lr.giveBack(ctx)
		return Link{}, lr.readError(readErr)
	case u.err != nil:
		return Link{}, lr.useError(u.err)
	case readErr != nil:
		lr.giveBack(ctx)
		return Link{}, lr.readError(readErr)
	}
	return u.l, nil
}

// giveBack returns the use this request counted, if it counted one. It
// outlives the request's cancellation: a client that went away still had
// no answer.
func (lr *linkRead) giveBack(ctx context.Context) {
	if !lr.counted {
		return
	}
	lr.counted = false
	if err := lr.s.links.UnuseLink(context.WithoutCancel(ctx), lr.link); err != nil {
		lr.s.log.ErrorContext(ctx, "give back a link's use", "link", lr.link, "error", err.Error())
	}
}

// readError is the answer to a read that failed: a missing document is a
// missing link.
func (lr *linkRead) readError(err error) error {
	if IsNotFound(err) {
		return E(lr.op, KindNotFound, "link not found")
	}
	return err
}

// useError is the answer to a use the LinkStore refused: a missing link,
// or one gone, whose error says why (LinkGone).
func (lr *linkRead) useError(err error) error {
	switch KindOf(err) {
	case KindNotFound:
		return E(lr.op, KindNotFound, "link not found")
	case KindGone:
		return E(lr.op, err)
	}
	return E(lr.op, fmt.Errorf("use link %s: %w", lr.link, err))
}

// LinkGone is the error a LinkStore's UseLink returns for link l, found
// but not live at now.
func LinkGone(op Op, l Link, now time.Time) error {
	why := l.Gone(now)
	if why == "" {
		why = "used up" // it was, when the store's condition failed
	}
	return &goneLink{link: l, err: E(op, KindGone, "the link is "+why)}
}

// goneLink is LinkGone's error: the refusal, and the link refused, so that
// its refusal can be recorded in its owner's trail.
type goneLink struct {
	link Link
	err  error
}

func (g *goneLink) Error() string { return g.err.Error() }
func (g *goneLink) Unwrap() error { return g.err }

// goneLinkOf is the link a refusal names, if it names one.
func goneLinkOf(err error) (Link, bool) {
	var g *goneLink
	if errors.As(err, &g) {
		return g.link, true
	}
	return Link{}, false
}
