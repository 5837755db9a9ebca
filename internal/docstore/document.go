package docstore

import (
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/imagodocs/imago/internal/api"
)

// ID identifies a document: a UUID in its canonical lower-case form.
type ID string

// ParseID validates s as a document id.
func ParseID(s string) (ID, error) {
	u, err := uuid.Parse(s)
	if err != nil || len(s) != 36 {
		return "", E("docstore.ParseID", KindInvalid, fmt.Sprintf("document id %q is not a UUID", truncate(s, 64)))
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
	StatusPending   = Status(api.StatusPending)   // metadata recorded, content not yet (fully) stored
	StatusAvailable = Status(api.StatusAvailable) // content stored and readable
	// StatusFailed is a presigned upload whose ingest failed for good (the
	// staged object had the wrong size, could not be read…): Failure says
	// why. Its content answers 409 and DELETE removes it.
	StatusFailed = Status(api.StatusFailed)
)

// Descriptor names, types and identifies a document's bytes: what its
// record, its cache entry (CachedDocument) and a download's answer (Content)
// all carry, and what a download's headers are made of.
type Descriptor struct {
	Filename    string
	ContentType string
	Size        int64  // of the whole document
	SHA256      string // of the whole document, hex
}

// Document is the metadata every route returns. It never holds key material.
// Its JSON is api.Document's (see wire.go).
type Document struct {
	ID ID
	Descriptor
	Status    Status
	CreatedAt time.Time
	Metadata  map[string]string
	Failure   string // failed documents only: why, safe for the caller

	// The document's policy (policy.go). Expires is when its retention
	// ends (zero: never); LegalHold stops its delete, purge and expiry;
	// DeletedAt and PurgeAt are set while it is in the trash.
	Expires            time.Time
	LegalHold          bool
	DeletedAt, PurgeAt time.Time
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

	// BlobID is the id the document's blob is stored under in the
	// BlobStore. An inline upload stores it under the document id; every
	// ingest attempt of a presigned upload under a fresh id of its own, so
	// that racing attempts (two PUTs to one URL, a redelivered event) never
	// overwrite each other's blob: MarkAvailable, conditional on the record
	// being pending, records the winner's, and the losers remove theirs.
	// Empty on pending records and on records older than this field, whose
	// blob is under the document id (see Blob).
	BlobID ID

	// ExpiresAt, when set, is when a still-pending (or failed) record may
	// be removed by the store (a DynamoDB TTL attribute, say). Zero for
	// available ones.
	ExpiresAt time.Time

	// UploadID and PartSize are set on a document uploaded in parts (see
	// multipart.go): the staging area's multipart upload id, needed to
	// presign, list, complete or abort its parts, and the size of every
	// part but the last.
	UploadID string
	PartSize int64

	// Version counts the record's changes: every change of its status or
	// policy is a write conditioned on the version it read, so that of two
	// racing changes (a hold and a delete, a restore and a purge) the
	// second finds the record changed and decides again.
	Version int64
}

// Blob is the id the record's blob is stored under.
func (r Record) Blob() ID {
	if r.BlobID == "" {
		return r.ID
	}
	return r.BlobID
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
