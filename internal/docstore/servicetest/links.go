package servicetest

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/api"
	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/linktoken"
)

// linkRig is one family's backends with a Service on them whose clock the
// test moves.
type linkRig struct {
	set    *Set
	svc    *docstore.Service
	clock  atomic.Int64 // seconds added to the real time
	tenant docstore.Tenant
}

func newLinkRig(t *testing.T, h Harness, cfg docstore.Config) *linkRig {
	r := &linkRig{set: h.Open(t), tenant: docstore.Tenant("links-" + string(docstore.NewID()))}
	cfg.Now = func() time.Time { return time.Now().Add(time.Duration(r.clock.Load()) * time.Second) }
	if cfg.LinkKey == nil {
		cfg.LinkKey = bytes.Repeat([]byte{7}, linktoken.SecretSize)
	}
	r.svc = docstore.NewService(r.set.Backends, cfg, nil)
	return r
}

func (r *linkRig) upload(t *testing.T, doc []byte) docstore.Document {
	t.Helper()
	d, err := r.svc.Upload(context.Background(), docstore.UploadRequest{Tenant: r.tenant, Filename: "passport.pdf", ContentType: "application/pdf", Body: doc})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (r *linkRig) share(t *testing.T, id docstore.ID, req docstore.LinkRequest) (docstore.Link, string) {
	t.Helper()
	l, err := r.svc.CreateLink(context.Background(), r.tenant, id, req)
	if err != nil {
		t.Fatalf("CreateLink: %v", err)
	}
	return l, r.svc.LinkToken(l)
}

func (r *linkRig) read(token, rng, inm string) (*docstore.LinkContent, error) {
	return r.svc.ReadLink(context.Background(), docstore.LinkReadRequest{Token: token, Range: rng, IfNoneMatch: inm})
}

func (r *linkRig) uses(t *testing.T, l docstore.Link) int64 {
	t.Helper()
	got, err := r.set.Links.Link(context.Background(), l.ID)
	if err != nil {
		t.Fatal(err)
	}
	return got.Uses
}

func wantKind(t *testing.T, what string, err error, kind docstore.Kind) {
	t.Helper()
	if docstore.KindOf(err) != kind || err == nil {
		t.Fatalf("%s: %v, want %s", what, err, kind)
	}
}

func ptr[T any](v T) *T { return &v }

// testShareLinks runs the behaviour of share links on every family: what
// a link answers, what counts as a use, and what makes it 404 or 410.
func testShareLinks(t *testing.T, h Harness) {
	r := newLinkRig(t, h, docstore.Config{})
	doc := randomDoc(2_500_000)
	d := r.upload(t, doc)

	l, token := r.share(t, d.ID, docstore.LinkRequest{})
	if l.Disposition != api.DispositionInline || l.MaxUses != 0 || l.Uses != 0 ||
		time.Until(l.ExpiresAt) < 59*time.Minute || time.Until(l.ExpiresAt) > time.Hour {
		t.Fatalf("default link: %+v", l)
	}
	if len(token) != linktoken.EncodedLen {
		t.Fatalf("token of %d characters", len(token))
	}

	// The whole document, from the cache (uploads write through).
	c, err := r.read(token, "", "")
	if err != nil || !bytes.Equal(c.Body, doc) || !c.CacheHit || c.Link.Uses != 1 || c.Filename != "passport.pdf" {
		t.Fatalf("whole read: %v (hit %v)", err, c != nil && c.CacheHit)
	}
	// A range, each a use; a cold document from the origin.
	evictEntry(t, r.set.Cache, d.ID)
	c, err = r.read(token, "bytes=1000-1999", "")
	if err != nil || !bytes.Equal(c.Body, doc[1000:2000]) || c.Range == nil || c.CacheHit || c.Link.Uses != 2 {
		t.Fatalf("range read: %v", err)
	}
	// A 304 is no use, nor is an error.
	c, err = r.read(token, "", c.ETag())
	if err != nil || !c.NotModified || r.uses(t, l) != 2 {
		t.Fatalf("If-None-Match: %v (uses %d)", err, r.uses(t, l))
	}
	_, err = r.read(token, "bytes=99999999-", "")
	wantKind(t, "an unsatisfiable range", err, docstore.KindBadRange)
	if n := r.uses(t, l); n != 2 {
		t.Fatalf("uses %d after a 416, want 2", n)
	}

	// Listed, with the live ones only.
	links, err := r.svc.Links(context.Background(), r.tenant, d.ID)
	if err != nil || len(links) != 1 || links[0].ID != l.ID || links[0].Uses != 2 {
		t.Fatalf("Links: %+v %v", links, err)
	}
	if r.svc.LinkToken(links[0]) != token {
		t.Fatal("a listed link's token is not the one it was made with")
	}

	// Revoked: 410 at once, though the document is in the cache.
	if _, err := r.read(token, "", ""); err != nil {
		t.Fatal(err)
	}
	if err := r.svc.RevokeLink(context.Background(), r.tenant, d.ID, l.ID); err != nil {
		t.Fatal(err)
	}
	_, err = r.read(token, "", "")
	wantKind(t, "a revoked link", err, docstore.KindGone)
	_, err = r.read(token, "", `"`+d.SHA256+`"`)
	wantKind(t, "a revoked link revalidated", err, docstore.KindGone)
	if err := r.svc.RevokeLink(context.Background(), r.tenant, d.ID, l.ID); err != nil {
		t.Fatalf("revoking twice: %v", err)
	}
	if links, _ := r.svc.Links(context.Background(), r.tenant, d.ID); len(links) != 0 {
		t.Fatalf("a revoked link is listed: %+v", links)
	}

	// Used up.
	once, onceToken := r.share(t, d.ID, docstore.LinkRequest{MaxUses: ptr[int64](1), Disposition: api.DispositionAttachment})
	if c, err := r.read(onceToken, "", ""); err != nil || c.Link.Disposition != api.DispositionAttachment {
		t.Fatalf("the one use: %v", err)
	}
	_, err = r.read(onceToken, "", "")
	wantKind(t, "a used-up link", err, docstore.KindGone)
	if n := r.uses(t, once); n != 1 {
		t.Fatalf("a used-up link counted %d uses", n)
	}

	// Expired: 410 from the token itself.
	short, shortToken := r.share(t, d.ID, docstore.LinkRequest{ExpiresIn: ptr[int64](60)})
	if _, err := r.read(shortToken, "", ""); err != nil {
		t.Fatal(err)
	}
	r.clock.Store(61)
	expired, err := r.read(shortToken, "", "")
	wantKind(t, "an expired link", err, docstore.KindGone)
	// The refusal names the link, for its owner's trail.
	if expired == nil || expired.Link.ID != short.ID || expired.Link.Tenant != r.tenant || expired.Content != nil {
		t.Fatalf("an expired link's refusal names %+v", expired)
	}
	if n := r.uses(t, short); n != 1 {
		t.Fatalf("an expired link counted %d uses", n)
	}
	r.clock.Store(0)

	// Not the caller's, not a token: 404.
	_, err = r.svc.CreateLink(context.Background(), "someone-else", d.ID, docstore.LinkRequest{})
	wantKind(t, "a link of another tenant's document", err, docstore.KindNotFound)
	err = r.svc.RevokeLink(context.Background(), "someone-else", d.ID, l.ID)
	wantKind(t, "revoking another tenant's link", err, docstore.KindNotFound)
	err = r.svc.RevokeLink(context.Background(), r.tenant, d.ID, docstore.NewLinkID())
	wantKind(t, "revoking an unknown link", err, docstore.KindNotFound)
	live, liveToken := r.share(t, d.ID, docstore.LinkRequest{})
	tampered := []byte(liveToken)
	tampered[40] ^= 1
	for name, bad := range map[string]string{"tampered": string(tampered), "truncated": liveToken[:90], "garbage": "not-a-token"} {
		_, err := r.read(bad, "", "")
		wantKind(t, name+" token", err, docstore.KindNotFound)
	}
	foreign := newLinkRig(t, h, docstore.Config{LinkKey: bytes.Repeat([]byte{8}, linktoken.SecretSize)})
	_, err = foreign.read(liveToken, "", "")
	wantKind(t, "a token of another deployment", err, docstore.KindNotFound)

	// Over the response limit (of a Service with a lower one, on the
	// same backends): 413 and no use; a range of it is one.
	tight := docstore.NewService(r.set.Backends, docstore.Config{MaxInlineBytes: 2 << 20, LinkKey: bytes.Repeat([]byte{7}, linktoken.SecretSize)}, nil)
	bl, bigToken := r.share(t, d.ID, docstore.LinkRequest{})
	_, err = tight.ReadLink(context.Background(), docstore.LinkReadRequest{Token: bigToken})
	wantKind(t, "a document over the response limit", err, docstore.KindTooLarge)
	if c, err := tight.ReadLink(context.Background(), docstore.LinkReadRequest{Token: bigToken, Range: "bytes=0-1048575"}); err != nil || len(c.Body) != 1<<20 || r.uses(t, bl) != 1 {
		t.Fatalf("a range of a large document: %v, uses %d", err, r.uses(t, bl))
	}

	// A pending document cannot be shared.
	up, err := r.svc.CreateUpload(context.Background(), docstore.CreateUploadRequest{Tenant: r.tenant, Filename: "later.bin", Size: 10})
	if err == nil {
		_, err = r.svc.CreateLink(context.Background(), r.tenant, up.ID, docstore.LinkRequest{})
		wantKind(t, "a link of a pending document", err, docstore.KindConflict)
	}

	// Deleted: 404, though it was in the cache, and its links go.
	if _, err := r.read(liveToken, "", ""); err != nil {
		t.Fatal(err)
	}
	if err := r.svc.Delete(context.Background(), r.tenant, d.ID); err != nil {
		t.Fatal(err)
	}
	_, err = r.read(liveToken, "", "")
	wantKind(t, "a link of a deleted document", err, docstore.KindNotFound)
	if _, err := r.set.Links.Link(context.Background(), live.ID); !docstore.IsNotFound(err) {
		t.Fatalf("a link of a deleted document is still stored: %v", err)
	}
}

// testShareLinkRefusesBadRequests checks the values a link is made with.
func testShareLinkRefusesBadRequests(t *testing.T, h Harness) {
	r := newLinkRig(t, h, docstore.Config{LinkMaxTTL: 2 * time.Hour})
	d := r.upload(t, randomDoc(100))
	for name, req := range map[string]docstore.LinkRequest{
		"expires_in under a minute":  {ExpiresIn: ptr[int64](59)},
		"expires_in over the most":   {ExpiresIn: ptr[int64](7201)},
		"expires_in zero":            {ExpiresIn: ptr[int64](0)},
		"max_uses zero":              {MaxUses: ptr[int64](0)},
		"max_uses negative":          {MaxUses: ptr[int64](-1)},
		"an unknown disposition":     {Disposition: "download"},
		"a disposition in uppercase": {Disposition: "INLINE"},
	} {
		_, err := r.svc.CreateLink(context.Background(), r.tenant, d.ID, req)
		wantKind(t, name, err, docstore.KindInvalid)
	}
	l, _ := r.share(t, d.ID, docstore.LinkRequest{ExpiresIn: ptr[int64](7200)})
	if got := time.Until(l.ExpiresAt); got < 7190*time.Second || got > 7200*time.Second {
		t.Fatalf("a link of the longest lifetime expires in %v", got)
	}
	// An omitted lifetime is the default, or the longest when shorter.
	short := newLinkRig(t, h, docstore.Config{LinkMaxTTL: 10 * time.Minute})
	sd := short.upload(t, randomDoc(100))
	l, _ = short.share(t, sd.ID, docstore.LinkRequest{})
	if got := time.Until(l.ExpiresAt); got > 10*time.Minute || got < 9*time.Minute {
		t.Fatalf("a default link under a 10m longest lifetime expires in %v", got)
	}
}

// testShareLinkServesOnlyTheDocumentItWasMadeFor: a document id given
// again (an upload with the same Idempotency-Key after a delete) is another
// document, which a link left behind must not serve.
func testShareLinkServesOnlyTheDocumentItWasMadeFor(t *testing.T, h Harness) {
	r := newLinkRig(t, h, docstore.Config{})
	ctx := context.Background()
	first, err := r.svc.Upload(ctx, docstore.UploadRequest{Tenant: r.tenant, Body: randomDoc(1000), IdempotencyKey: "same-key"})
	if err != nil {
		t.Fatal(err)
	}
	_, token := r.share(t, first.ID, docstore.LinkRequest{})
	// The record goes, as a delete's does, but the link stays
	// behind (as one made while the delete ran would).
	if err := r.set.Cache.Delete(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	if err := r.set.Meta.Delete(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	second, err := r.svc.Upload(ctx, docstore.UploadRequest{Tenant: r.tenant, Body: randomDoc(1000), IdempotencyKey: "same-key"})
	if err != nil || second.ID != first.ID {
		t.Fatalf("second upload: %v (id %s, first %s)", err, second.ID, first.ID)
	}
	evictEntry(t, r.set.Cache, second.ID)
	for _, cached := range []bool{false, true} {
		_, err = r.read(token, "", "")
		wantKind(t, "the old link on the new document (cached "+map[bool]string{false: "no", true: "yes"}[cached]+")", err, docstore.KindNotFound)
		r.svc.Download(ctx, docstore.DownloadRequest{Tenant: r.tenant, ID: second.ID}) // fills the cache
	}
}

// testShareLinkLastUseRace: many clients on a link with one use left, in
// many bounded rounds, hot and cold: exactly one gets the document.
func testShareLinkLastUseRace(t *testing.T, h Harness) {
	r := newLinkRig(t, h, docstore.Config{})
	doc := randomDoc(200_000)
	d := r.upload(t, doc)
	rounds := h.Rounds
	for round := range rounds {
		if round%2 == 1 {
			evictEntry(t, r.set.Cache, d.ID)
		}
		_, token := r.share(t, d.ID, docstore.LinkRequest{MaxUses: ptr[int64](1)})
		var served, gone atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				c, err := r.read(token, "", "")
				switch {
				case err == nil && bytes.Equal(c.Body, doc):
					served.Add(1)
				case docstore.KindOf(err) == docstore.KindGone:
					gone.Add(1)
				default:
					t.Errorf("round %d: %v", round, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if served.Load() != 1 || gone.Load() != 7 {
			t.Fatalf("round %d: the document was served %d times, %d were gone", round, served.Load(), gone.Load())
		}
	}
}
