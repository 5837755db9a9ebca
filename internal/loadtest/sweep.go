package loadtest

import (
	"context"
	"math/rand/v2"
	"net/http"
	"sync"
)

// sweepContentMax bounds how many live documents the final sweep
// downloads whole (every one's metadata is read).
const sweepContentMax = 300

// sweep checks, once the clients have stopped, every document the run
// knows: each live one must still be there with its metadata (and, for a
// sample, its bytes); each deleted one must still be 404.
func (r *run) sweep(ctx context.Context) {
	live, deleted := r.reg.snapshot()
	work := make(chan func(*client))
	var wg sync.WaitGroup
	for i := range r.opt.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &client{run: r, rng: rand.New(rand.NewPCG(uint64(i), 0x5eed))}
			for f := range work {
				f(c)
			}
		}()
	}
	for i, d := range live {
		if sent, _ := r.reg.deleteState(d); !sent.IsZero() {
			continue // a DELETE whose outcome is unknown
		}
		work <- func(c *client) {
			c.tenant = d.tenant
			rq := request{op: "sweep-metadata", method: "GET", target: "/documents/" + d.id, tenant: d.tenant}
			a := c.do(ctx, rq)
			if !c.readable(rq, a, d, http.StatusOK) {
				return
			}
			c.checkMetadata(rq, a, d)
			if i < sweepContentMax && d.size <= r.opt.MaxInlineBytes {
				rq := request{op: "sweep-content", method: "GET", target: "/documents/" + d.id + "/content", tenant: d.tenant}
				a := c.do(ctx, rq)
				if c.readable(rq, a, d, http.StatusOK) && hexSHA256(a.body) != d.sha256 {
					c.report(kindMismatch, "sweep: content of %s: sha256 %s, want %s", d.id, hexSHA256(a.body), d.sha256)
				}
			}
		}
	}
	for _, d := range deleted {
		work <- func(c *client) { c.checkGone(ctx, d, "in the final sweep") }
	}
	close(work)
	wg.Wait()
}
