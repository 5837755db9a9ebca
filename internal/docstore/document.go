package docstore

import (
	"time"

	"github.com/google/uuid"
)

// ID identifies a document: a UUID in its canonical lower-case form.
type ID string

// ParseID validates s as a document id.
func ParseID(s string) (ID, error) {
	u, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return "", Errorf("docstore.ParseID", KindInvalid, "document id %q is not a UUID", truncate(s, 64))
	}
	return ID(u.String()), nil
}

// NewID returns a random (version 4) id.
func NewID() ID { return ID(uuid.NewString()) }

// idempotencyNamespace scopes the name-based ids derived from
// Idempotency-Key headers.
var idempotencyNamespace = uuid.MustParse("5b0cf1d2-8f0e-4a51-9d6c-1e4f6a8c0b7e")

// IDForIdempotencyKey derives a document id from a tenant and the caller's
// Idempotency-Key, so that a retried upload lands on the same id and the
// metadata store's conditional create detects the repeat. The tenant is part
// of the name: two tenants using the same key get different ids.
func IDForIdempotencyKey(tenant Tenant, key string) ID {
	name := make([]byte, 0, len(tenant)+1+len(key))
	name = append(name, tenant...)
	name = append(name, 0)
	name = append(name, key...)
	return ID(uuid.NewSHA1(idempotencyNamespace, name).String())
}

// Tenant is the caller's identity; every document belongs to exactly one.
type Tenant string

// Status is a document's lifecycle state.
type Status string

const (
	StatusPending   Status = "pending"   // metadata recorded, content not yet (fully) stored
	StatusAvailable Status = "available" // content stored and readable
)

// Document is the metadata every route returns. It never holds key material.
type Document struct {
	ID          ID                `json:"id"`
	Filename    string            `json:"filename"`
	ContentType string            `json:"content_type"`
	Size        int64             `json:"size"`
	SHA256      string            `json:"sha256"`
	Status      Status            `json:"status"`
	CreatedAt   time.Time         `json:"created_at"`
	Metadata    map[string]string `json:"metadata"`
}

// Record is what the metadata store keeps for a document: the public
// metadata plus the owner and the envelope parameters needed to read the
// blob. The data key is only ever stored wrapped.
type Record struct {
	Document
	Tenant Tenant

	// WrappedKey is the data key as the key service returned it (a KMS
	// ciphertext blob, or the local key service's sealed form).
	WrappedKey []byte
	// KeyID names the key-service key that wrapped WrappedKey, so a
	// document stays readable after the configured key changes.
	KeyID string
	// FormatVersion and SegmentSize describe the blob (package envelope).
	FormatVersion int
	SegmentSize   int

	// ExpiresAt, when set, is when a still-pending record may be removed
	// by the store (a DynamoDB TTL attribute, say). Zero for available ones.
	ExpiresAt time.Time

	// UploadID and PartSize are set on a document uploaded in parts (see
	// multipart.go): the staging area's multipart upload id, needed to
	// presign, list, complete or abort its parts, and the size of every
	// part but the last.
	UploadID string
	PartSize int64
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
