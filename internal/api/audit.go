package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
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

// AuditBreak is where VerifyAudit found a chain broken: the first record
// that does not hold, and why.
type AuditBreak struct {
	Record AuditRecord
	// Why is "changed" (its hash is not its content's), "removed before
	// it" (its chain skips a sequence number), or "out of order" (its prev
	// is not the hash of the record before it).
	Why string
}

func (b *AuditBreak) Error() string {
	return fmt.Sprintf("audit record %s (chain %s, seq %d): %s", b.Record.ID, b.Record.Chain, b.Record.Seq, b.Why)
}

// VerifyAudit checks the chains of records (in any order): every record's
// hash, every chain's sequence from 1 without a gap, every prev the hash
// of the record before. It returns the first record that breaks, by chain
// id then seq, or nil. (A chain's last records, or a whole chain, removed
// leave no trace in the chains themselves.)
func VerifyAudit(records []AuditRecord) *AuditBreak {
	byChain := map[string][]AuditRecord{}
	for _, r := range records {
		byChain[r.Chain] = append(byChain[r.Chain], r)
	}
	chains := make([]string, 0, len(byChain))
	for c := range byChain {
		chains = append(chains, c)
	}
	sort.Strings(chains)
	for _, c := range chains {
		recs := byChain[c]
		sort.SliceStable(recs, func(i, j int) bool { return recs[i].Seq < recs[j].Seq })
		prev, seq := "", int64(0)
		for _, r := range recs {
			switch {
			case AuditHash(r) != r.Hash:
				return &AuditBreak{r, "changed"}
			case r.Seq != seq+1:
				return &AuditBreak{r, "removed before it"}
			case r.Prev != prev:
				return &AuditBreak{r, "out of order"}
			}
			prev, seq = r.Hash, r.Seq
		}
	}
	return nil
}
