package loadtest

import (
	"math/rand/v2"
	"sync"
	"time"
)

// doc is what the driver knows of one document the service acknowledged:
// enough to regenerate every byte (seed and size) and to check every
// metadata field, plus where it is in its life.
type doc struct {
	id          string
	tenant      int
	seed        uint64
	size        int64
	sha256      string
	filename    string
	contentType string
	metadata    map[string]string

	// Guarded by the registry's mutex.
	addedAt    time.Time // registered, once its upload was acknowledged
	deleteSent time.Time // a DELETE was sent (zero: none)
	deletedAt  time.Time // the DELETE answered 204 (zero: not yet)
}

// registry holds every acknowledged document of both tenants. A document
// stays in live while a DELETE of it is in flight, so that reads race the
// delete; it moves to deleted once the DELETE has answered 204.
type registry struct {
	mu      sync.Mutex
	live    [2][]*doc
	index   [2]map[string]int // id → position in live
	deleted [2][]*doc
	byID    [2]map[string]*doc // every document, live or deleted
}

func newRegistry() *registry {
	return &registry{index: [2]map[string]int{{}, {}}, byID: [2]map[string]*doc{{}, {}}}
}

func (r *registry) add(d *doc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d.addedAt = time.Now()
	r.byID[d.tenant][d.id] = d
	r.index[d.tenant][d.id] = len(r.live[d.tenant])
	r.live[d.tenant] = append(r.live[d.tenant], d)
}

func (r *registry) liveCount(tenant int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.live[tenant])
}

// pickLive returns a random live document of tenant (nil if none), which
// may be in the middle of being deleted.
func (r *registry) pickLive(rng *rand.Rand, tenant int) *doc {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.live[tenant]
	if len(l) == 0 {
		return nil
	}
	return l[rng.IntN(len(l))]
}

// claimForDelete picks a live document nobody is deleting and marks its
// DELETE as sent.
func (r *registry) claimForDelete(rng *rand.Rand, tenant int) *doc {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.live[tenant]
	for range 4 {
		if len(l) == 0 {
			return nil
		}
		if d := l[rng.IntN(len(l))]; d.deleteSent.IsZero() {
			d.deleteSent = time.Now()
			return d
		}
	}
	return nil
}

// unclaim undoes claimForDelete after a DELETE that failed: the document
// was not deleted.
func (r *registry) unclaim(d *doc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d.deleteSent = time.Time{}
}

// markDeleted records that d's DELETE answered 204 and moves it out of
// live.
func (r *registry) markDeleted(d *doc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	d.deletedAt = time.Now()
	i, ok := r.index[d.tenant][d.id]
	if !ok {
		return
	}
	l := r.live[d.tenant]
	last := len(l) - 1
	l[i] = l[last]
	r.index[d.tenant][l[i].id] = i
	r.live[d.tenant] = l[:last]
	delete(r.index[d.tenant], d.id)
	r.deleted[d.tenant] = append(r.deleted[d.tenant], d)
}

// pickDeleted returns one of the most recently deleted documents of
// tenant, or nil.
func (r *registry) pickDeleted(rng *rand.Rand, tenant int) *doc {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.deleted[tenant]
	if len(l) == 0 {
		return nil
	}
	recent := min(len(l), 64)
	return l[len(l)-1-rng.IntN(recent)]
}

// deleteState reports, at this moment, whether a DELETE of d was sent and
// whether it has answered.
func (r *registry) deleteState(d *doc) (sent, done time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return d.deleteSent, d.deletedAt
}

// known returns the document id of tenant, live or deleted, with its
// delete state at this moment; nil if the driver never uploaded it.
func (r *registry) known(tenant int, id string) (d *doc, deleteSent, deletedAt time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d = r.byID[tenant][id]; d == nil {
		return nil, time.Time{}, time.Time{}
	}
	return d, d.deleteSent, d.deletedAt
}

// addedSince reports whether d was registered at t or later.
func (r *registry) addedSince(d *doc, t time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !d.addedAt.Before(t)
}

// snapshot returns copies of the live and deleted lists, for the final
// sweep.
func (r *registry) snapshot() (live, deleted []*doc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for t := range 2 {
		live = append(live, r.live[t]...)
		deleted = append(deleted, r.deleted[t]...)
	}
	return live, deleted
}
