package client

import (
	"context"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/api"
)

// putDoc uploads a small document to f and returns its id.
func putDoc(t *testing.T, c *Client) string {
	t.Helper()
	path, _ := randomFile(t, 100)
	d, err := c.Put(context.Background(), path, PutOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d.ID
}

func TestShareListAndUnshare(t *testing.T) {
	f := newFakeAPI(t)
	c := testClient(t, f, Options{})
	ctx := context.Background()
	id := putDoc(t, c)

	plain, err := c.Share(ctx, id, ShareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if plain.DocumentID != id || !strings.HasPrefix(plain.URL, f.srv.URL+api.LinksPath) || plain.MaxUses != nil ||
		plain.Disposition != api.DispositionInline || plain.ExpiresAt.Sub(plain.CreatedAt) != api.DefaultLinkTTL*time.Second {
		t.Fatalf("share with the defaults: %+v", plain)
	}
	bounded, err := c.Share(ctx, id, ShareOptions{ExpiresIn: 2 * time.Hour, MaxUses: 3, Disposition: api.DispositionAttachment})
	if err != nil {
		t.Fatal(err)
	}
	if bounded.MaxUses == nil || *bounded.MaxUses != 3 || bounded.Disposition != api.DispositionAttachment ||
		bounded.ExpiresAt.Sub(bounded.CreatedAt) != 2*time.Hour {
		t.Fatalf("share with options: %+v", bounded)
	}
	// The defaults are the server's: nothing is sent for them.
	want := []string{`{}`, `{"expires_in":7200,"max_uses":3,"disposition":"attachment"}`}
	if got := f.posted(); !slices.Equal(got, want) {
		t.Fatalf("POST bodies %q, want %q", got, want)
	}

	ls, err := c.Links(ctx, id)
	if err != nil || len(ls) != 2 || ls[0].ID != bounded.ID || ls[1].ID != plain.ID {
		t.Fatalf("links: %v %+v, want %s then %s", err, ls, bounded.ID, plain.ID)
	}
	if err := c.Unshare(ctx, id, bounded.ID); err != nil {
		t.Fatal(err)
	}
	if ls, err := c.Links(ctx, id); err != nil || len(ls) != 1 || ls[0].ID != plain.ID {
		t.Fatalf("links after unshare: %v %+v", err, ls)
	}

	// Not found, each kind: exit 3 for the CLI.
	const unknown = "00000000-0000-4000-8000-000000000000"
	if err := c.Unshare(ctx, id, unknown); !IsNotFound(err) {
		t.Fatalf("unshare of an unknown link: %v", err)
	}
	if _, err := c.Share(ctx, unknown, ShareOptions{}); !IsNotFound(err) {
		t.Fatalf("share of an unknown document: %v", err)
	}
	if _, err := c.Links(ctx, unknown); !IsNotFound(err) {
		t.Fatalf("links of an unknown document: %v", err)
	}
	if err := c.Unshare(ctx, unknown, plain.ID); !IsNotFound(err) {
		t.Fatalf("unshare on an unknown document: %v", err)
	}
	// A link the server refuses is its 400, not retried.
	if _, err := c.Share(ctx, id, ShareOptions{ExpiresIn: time.Second}); !isStatus(err, http.StatusBadRequest) {
		t.Fatalf("share for 1s: %v", err)
	}
}

func TestShareRefusesOptionsItCannotSend(t *testing.T) {
	f := newFakeAPI(t)
	c := testClient(t, f, Options{})
	for _, opt := range []ShareOptions{{ExpiresIn: 1500 * time.Millisecond}, {ExpiresIn: -time.Hour}, {MaxUses: -1}} {
		if _, err := c.Share(context.Background(), "id", opt); err == nil {
			t.Errorf("share %+v: no error", opt)
		}
	}
	if n := f.count("POST /documents/{id}/links"); n != 0 {
		t.Fatalf("%d POSTs sent", n)
	}
}

// TestShareIsRetriedOnlyWhenTheServerDidNotAct: a 503, and a connection
// that could not be made, are retried; a connection dropped once the
// request was sent is not, since the link may exist.
func TestShareIsRetriedOnlyWhenTheServerDidNotAct(t *testing.T) {
	recordSleeps(t)
	f := newFakeAPI(t)
	var failDials atomic.Int64
	dialer := &net.Dialer{}
	transport := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if failDials.Add(-1) >= 0 {
			return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
		}
		return dialer.DialContext(ctx, network, addr)
	}}
	t.Cleanup(transport.CloseIdleConnections)
	c := testClient(t, f, Options{HTTP: &http.Client{Transport: transport}})
	ctx := context.Background()
	id := putDoc(t, c)
	transport.CloseIdleConnections() // the next request dials

	failDials.Store(2)
	f.setHook(failTimes(1, http.StatusServiceUnavailable, "1", func(r *http.Request) bool { return r.Method == "POST" }))
	l, err := c.Share(ctx, id, ShareOptions{})
	if err != nil {
		t.Fatalf("after two refused connections and a 503: %v", err)
	}
	if n := f.count("POST /documents/{id}/links"); n != 2 {
		t.Fatalf("POST reached the server %d times, want 2 (a 503, then 201)", n)
	}

	f.setHook(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != "POST" {
			return false
		}
		conn, _, err := w.(http.Hijacker).Hijack() // the request is in; no answer comes
		if err == nil {
			conn.Close()
		}
		return true
	})
	if _, err := c.Share(ctx, id, ShareOptions{}); err == nil {
		t.Fatal("share through a dropped connection succeeded")
	}
	if n := f.count("POST /documents/{id}/links"); n != 3 {
		t.Fatalf("POST reached the server %d times, want 3: the dropped one was retried", n)
	}
	f.setHook(nil)
	if ls, err := c.Links(ctx, id); err != nil || len(ls) != 1 || ls[0].ID != l.ID {
		t.Fatalf("links: %v %+v, want just %s", err, ls, l.ID)
	}
}
