package docstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/imagodocs/imago/internal/api"
)

// The audit trail (docs/design.md, "Audit trail"): one record per request
// that names a document, a link or a hold, stored before the request is
// answered, in chains that make an edit, a removal or a reordering of a
// stored record evident (api.AuditHash).
//
// Chains. Every writer — a process: a Lambda execution environment, an
// `imago serve` — appends to chains of its own, per tenant: writer id (random,
// per process) and shard. A chain has one appender at a time (its mutex), so
// it never forks, and its next sequence number and previous hash live in
// memory: an append is one conditional write (AuditLog.Append, refused if
// the chain already has that sequence number), no read. A busy tenant is
// not one queue: a writer spreads its concurrent requests over
// AuditShards chains, and every writer has its own. A Lambda execution
// environment answers one request at a time; its one chain per tenant is
// as parallel as the environments are.
//
// Limits (docs/design.md says them too): a chain proves the order and the
// integrity of what it holds; it cannot by itself show that its last
// records were removed (nothing comes after them to point back), nor that
// a whole chain was. Whoever can write the store can rewrite a chain's tail
// consistently; the functions cannot (PutItem only, conditioned on the
// record not existing), and the audit table's stream lets a SIEM keep its
// own copy of every record as it is written.

// AuditEntry is what a request's record says; the Auditor places it in a
// chain.
type AuditEntry struct {
	Tenant    Tenant
	Actor     string
	Action    string
	Document  ID
	Link      LinkID
	Status    int
	RequestID string
	SourceIP  string
	UserAgent string
	Bytes     *int64
	Cache     string
	Range     string
}

// AuditQuery filters a tenant's records.
type AuditQuery struct {
	Document     ID
	Action       string
	Since, Until time.Time // Since inclusive, Until exclusive; zero: unbounded
}

// AuditLog stores audit records, each under its tenant.
type AuditLog interface {
	// Append stores rec, unless tenant's chain rec.Chain already has a
	// record at rec.Seq: KindConflict then. A record is never changed or
	// removed once stored.
	Append(ctx context.Context, tenant Tenant, rec api.AuditRecord) error
	// Record returns the record at seq of tenant's chain; KindNotFound if
	// there is none.
	Record(ctx context.Context, tenant Tenant, chain string, seq int64) (api.AuditRecord, error)
	// Query returns up to limit of tenant's records that q selects, newest
	// first (time, then id, descending), after the position after.
	Query(ctx context.Context, tenant Tenant, q AuditQuery, after *ListPosition, limit int) ([]api.AuditRecord, error)
}

// AuditShards is how many chains per tenant a writer appends to at once.
const AuditShards = 16

// auditor places entries in chains and appends them.
type auditor struct {
	log    AuditLog
	writer string
	now    func() time.Time
	mu     sync.Mutex
	chains map[Tenant]*[AuditShards]*chain
	// next spreads a tenant's requests over its shards.
	next map[Tenant]uint32
}

// chain is one chain's state: its id, the last record appended.
type chain struct {
	mu   sync.Mutex
	id   string
	seq  int64
	prev string
}

func newAuditor(log AuditLog, now func() time.Time) *auditor {
	b := make([]byte, 8)
	rand.Read(b)
	return &auditor{log: log, writer: hex.EncodeToString(b), now: now,
		chains: map[Tenant]*[AuditShards]*chain{}, next: map[Tenant]uint32{}}
}

// chainFor picks the chain of tenant an append goes to: the first one
// free, else the next in turn.
func (a *auditor) chainFor(tenant Tenant) *chain {
	a.mu.Lock()
	cs := a.chains[tenant]
	if cs == nil {
		cs = &[AuditShards]*chain{}
		for i := range cs {
			cs[i] = &chain{id: fmt.Sprintf("%s-%02d", a.writer, i)}
		}
		a.chains[tenant] = cs
	}
	for _, c := range cs {
		if c.mu.TryLock() {
			a.mu.Unlock()
			return c
		}
	}
	c := cs[a.next[tenant]%AuditShards]
	a.next[tenant]++
	a.mu.Unlock()
	c.mu.Lock() // every shard busy: wait for this one's turn
	return c
}

// appendAttempts bounds the appends of one record that find their place
// taken (each adopts the stored record as its predecessor).
const appendAttempts = 4

// append stores e as the next record of one of its tenant's chains.
func (a *auditor) append(ctx context.Context, e AuditEntry) (api.AuditRecord, error) {
	const op = "docstore.Audit"
	c := a.chainFor(e.Tenant)
	defer c.mu.Unlock()
	rec := api.AuditRecord{ID: newAuditID(), Time: a.now().UTC().Format(api.AuditTimeLayout),
		Tenant: string(e.Tenant), Actor: e.Actor, Action: e.Action, DocumentID: string(e.Document), LinkID: string(e.Link),
		Status: e.Status, RequestID: e.RequestID, SourceIP: e.SourceIP, UserAgent: e.UserAgent,
		Bytes: e.Bytes, Cache: e.Cache, Range: e.Range, Chain: c.id}
	for attempt := 0; ; attempt++ {
		rec.Seq, rec.Prev = c.seq+1, c.prev
		rec.Hash = api.AuditHash(rec)
		err := a.log.Append(ctx, e.Tenant, rec)
		if err == nil {
			c.seq, c.prev = rec.Seq, rec.Hash
			return rec, nil
		}
		if KindOf(err) != KindConflict || attempt+1 == appendAttempts {
			return api.AuditRecord{}, E(op, fmt.Errorf("append to audit chain %s: %w", c.id, err))
		}
		// An earlier append whose answer was lost did store its record:
		// it is this chain's last; the record goes after it.
		stored, err := a.log.Record(ctx, e.Tenant, c.id, rec.Seq)
		if err != nil {
			return api.AuditRecord{}, E(op, fmt.Errorf("read audit chain %s at %d: %w", c.id, rec.Seq, err))
		}
		c.seq, c.prev = stored.Seq, stored.Hash
	}
}

// Auditing reports whether requests are recorded (IMAGO_AUDIT on, and a
// store for the records).
func (s *Service) Auditing() bool { return s.audit != nil && !s.cfg.AuditOff }

// Audit stores e's record, before its request is answered: an error means
// the request must not be answered but with 503 (KindUnavailable), and
// must serve no byte of a document. With recording off it does nothing.
func (s *Service) Audit(ctx context.Context, e AuditEntry) error {
	if !s.Auditing() || e.Tenant == "" {
		return nil
	}
	if _, err := s.audit.append(ctx, e); err != nil {
		return E("docstore.Audit", KindUnavailable, "the audit trail is unavailable; retry later", err)
	}
	return nil
}

// AuditPage answers GET /audit: tenant's records that q selects, newest
// first, a page of limit (0: the default) after cursor.
func (s *Service) AuditPage(ctx context.Context, tenant Tenant, q AuditQuery, limit int, cursor string) (api.AuditPage, error) {
	const op = "docstore.AuditPage"
	if tenant == "" {
		return api.AuditPage{}, E(op, KindUnauthenticated, "no caller identity")
	}
	if s.audit == nil {
		return api.AuditPage{}, E(op, KindUnavailable, "no audit trail is configured")
	}
	if limit == 0 {
		limit = api.DefaultAuditLimit
	}
	if limit < 1 || limit > api.MaxAuditLimit {
		return api.AuditPage{}, E(op, KindInvalid, fmt.Sprintf("limit must be between 1 and %d", api.MaxAuditLimit))
	}
	var after *ListPosition
	if cursor != "" {
		pos, err := DecodeCursor(s.cfg.CursorKey, tenant, cursor)
		if err != nil {
			return api.AuditPage{}, err
		}
		after = &pos
	}
	recs, err := s.audit.log.Query(ctx, tenant, q, after, limit+1)
	if err != nil {
		return api.AuditPage{}, E(op, fmt.Errorf("query the audit trail of %s: %w", tenant, err))
	}
	page := api.AuditPage{Records: recs}
	if len(recs) > limit {
		page.Records = recs[:limit]
		last := recs[limit-1]
		at, _ := time.Parse(api.AuditTimeLayout, last.Time)
		page.NextCursor = EncodeCursor(s.cfg.CursorKey, tenant, ListPosition{CreatedAt: at, ID: ID(last.ID)})
	}
	if page.Records == nil {
		page.Records = []api.AuditRecord{}
	}
	return page, nil
}

// auditSystem records what Imago did by itself to rec's document: an
// ingest's outcome, an expiry, a purge at its time. status is the HTTP
// status the outcome would have (200 done, 422 an ingest that failed).
func (s *Service) auditSystem(ctx context.Context, rec Record, action string, status int) error {
	return s.Audit(ctx, AuditEntry{Tenant: rec.Tenant, Actor: api.ActorSystem, Action: action, Document: rec.ID, Status: status})
}

// removalAction is the audit action of rec's removal by its policy: a purge
// when it left the trash at its purge time, else an expiry.
func removalAction(rec Record) string {
	if rec.Trashed() && (rec.Expires.IsZero() || !rec.PurgeAt.After(rec.Expires)) {
		return api.ActionPurge
	}
	return api.ActionExpire
}

// newAuditID is a record's id: a version 7 UUID, which sorts as its time
// and, within one millisecond of one process, as its order, so that a
// trail listed newest first (time, then id, descending) keeps one
// process's records of one millisecond in the order they were made.
func newAuditID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}
