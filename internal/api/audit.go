package api

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
