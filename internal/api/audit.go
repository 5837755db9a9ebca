package api

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
)

// AuditRecord is one record of the audit trail: the answer of GET /audit
// holds them. Hash and Prev chain the records of one Chain, Seq 1, 2, 3…:
// each record's Hash is AuditHash of the record, which covers its Prev, the
// Hash of the record before it in its chain ("" for the first), so that a
// record changed, removed or moved breaks its chain (imago audit verify).
type AuditRecord struct {
	ID         string `json:"id"`
	Time       string `json:"time"` // RFC 3339, milliseconds, UTC (AuditTimeLayout)
	Tenant     string `json:"tenant"`
	Actor      string `json:"actor"`
	Action     string `json:"action"`
	DocumentID string `json:"document_id,omitempty"`
	LinkID     string `json:"link_id,omitempty"`
	Status     int    `json:"status"`
	RequestID  string `json:"request_id,omitempty"`
	SourceIP   string `json:"source_ip,omitempty"`
	UserAgent  string `json:"user_agent,omitempty"`
	Bytes      *int64 `json:"bytes,omitempty"` // content answers only
	Cache      string `json:"cache,omitempty"` // "hit" | "miss", content answers only
	Range      string `json:"range,omitempty"` // the Range header as asked
	Chain      string `json:"chain"`
	Seq        int64  `json:"seq"`
	Prev       string `json:"prev"`
	Hash       string `json:"hash"`
}

// AuditTimeLayout is the form of AuditRecord.Time.
const AuditTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// AuditHash is the hash of r: the hex SHA-256 of r's JSON without its Hash
// (every other field, Prev and Seq included, in this type's field order).
func AuditHash(r AuditRecord) string {
	r.Hash = ""
	b, _ := json.Marshal(r) // a struct of strings and numbers always encodes
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// AuditPage is the answer of GET /audit: the caller's tenant's records,
// newest first.
type AuditPage struct {
	Records    []AuditRecord `json:"records"`
	NextCursor string        `json:"next_cursor,omitempty"`
}

// The actions of audit records.
const (
	ActionUpload     = "upload"
	ActionIngest     = "ingest"
	ActionStat       = "stat"
	ActionRead       = "read"
	ActionList       = "list"
	ActionDelete     = "delete"
	ActionRestore    = "restore"
	ActionPurge      = "purge"
	ActionExpire     = "expire"
	ActionHold       = "hold"
	ActionRelease    = "release"
	ActionRetention  = "retention"
	ActionLinkCreate = "link.create"
	ActionLinkRevoke = "link.revoke"
	ActionLinkRead   = "link.read"
)

// AuditActions are every action, for validating a filter.
var AuditActions = []string{ActionUpload, ActionIngest, ActionStat, ActionRead, ActionList, ActionDelete,
	ActionRestore, ActionPurge, ActionExpire, ActionHold, ActionRelease, ActionRetention,
	ActionLinkCreate, ActionLinkRevoke, ActionLinkRead}

// ActorSystem is the actor of what Imago does by itself (an expiry, a
// purge at its time, an ingest); a share link's reads have the actor
// ActorLinkPrefix and the link's id.
const (
	ActorSystem     = "system"
	ActorLinkPrefix = "link:"
)

// Audit listing limits (GET /audit?limit=).
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 1000
)

// What VerifyAudit finds wrong with a record (AuditBreak.Why).
const (
	// AuditChanged: the record's hash is not the hash of its contents.
	AuditChanged = "changed"
	// AuditRemovedBefore: the record's seq skips one or more after the
	// previous record of its chain: those were removed.
	AuditRemovedBefore = "removed before it"
	// AuditOutOfOrder: the record's prev is not the hash of the record
	// before it in its chain (or not empty for the first), or its seq is
	// not after that record's.
	AuditOutOfOrder = "out of order"
)

// AuditBreak is where VerifyAudit found a chain broken: the first record
// that does not hold, why (AuditChanged, AuditRemovedBefore,
// AuditOutOfOrder), and the detail.
type AuditBreak struct {
	Record AuditRecord
	Why    string
	Detail string
}

func (b *AuditBreak) Error() string {
	return fmt.Sprintf("audit record %s (chain %s, seq %d) %s: %s", b.Record.ID, b.Record.Chain, b.Record.Seq, b.Why, b.Detail)
}

// VerifyAudit checks that records, in any order, form intact chains:
// grouped by Chain and sorted by Seq, each record's Hash is AuditHash of
// it, Seq runs 1, 2, 3… with no gap, and each Prev is the Hash of the
// record before it ("" for the first). It returns the first record, by
// chain id then seq (ties by id, whatever the order listed), that breaks
// this, or nil.
//
// What chains cannot show: the removal of a chain's last records (nothing
// after them points back), or of a whole chain. A record changed and its
// hash computed again is found at the next record of its chain, whose prev
// no longer matches — unless it was the last.
func VerifyAudit(records []AuditRecord) *AuditBreak {
	chains := map[string][]AuditRecord{}
	for _, r := range records {
		chains[r.Chain] = append(chains[r.Chain], r)
	}
	ids := make([]string, 0, len(chains))
	for id := range chains {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		chain := chains[id]
		slices.SortFunc(chain, func(a, b AuditRecord) int {
			return cmp.Or(cmp.Compare(a.Seq, b.Seq), cmp.Compare(a.ID, b.ID))
		})
		var prevSeq int64
		prevHash := ""
		for _, r := range chain {
			fail := func(why, detail string) *AuditBreak { return &AuditBreak{Record: r, Why: why, Detail: detail} }
			switch {
			case AuditHash(r) != r.Hash:
				return fail(AuditChanged, "its hash is not the hash of its contents")
			case r.Seq > prevSeq+1 && prevSeq == 0:
				return fail(AuditRemovedBefore, fmt.Sprintf("its chain begins at seq %d, not 1", r.Seq))
			case r.Seq > prevSeq+1:
				return fail(AuditRemovedBefore, fmt.Sprintf("seq %d follows seq %d", r.Seq, prevSeq))
			case r.Seq < prevSeq+1 && prevSeq == 0:
				return fail(AuditOutOfOrder, fmt.Sprintf("seq %d is not a place in a chain", r.Seq))
			case r.Seq < prevSeq+1:
				return fail(AuditOutOfOrder, fmt.Sprintf("a second record at seq %d", r.Seq))
			case r.Prev != prevHash && prevSeq == 0:
				return fail(AuditOutOfOrder, "the first record of its chain has a prev")
			case r.Prev != prevHash:
				return fail(AuditOutOfOrder, fmt.Sprintf("its prev is not the hash of seq %d", prevSeq))
			}
			prevSeq, prevHash = r.Seq, r.Hash
		}
	}
	return nil
}
