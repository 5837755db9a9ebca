// Package api is the wire contract of Imago's HTTP API: the JSON bodies
// its routes take and answer, the error codes, the upload methods and the
// limits both sides must agree on. The JSON field names here ARE the API
// (docs/openapi.yaml describes the same shapes): renaming one is a
// breaking change for every client.
//
// It imports only the standard library, so that a client links it without
// the server: the server (docstore, apigw, the local gateway) and the Go
// client (internal/client) both use these definitions, and a field added
// here is added on both sides at once.
//
// The server's domain types stay in docstore (docstore.Document with its
// typed ID and Status, embedded in the store's Record); they marshal
// through the types of this package, so each JSON shape is defined once.
package api

import (
	"encoding/json"
	"time"
)

// Status is a document's lifecycle state.
type Status string

// The statuses a document has. StatusFailed is an upload whose ingest
// failed for good; the document's Failure says why.
const (
	StatusPending   Status = "pending"   // recorded, its bytes not yet (fully) stored
	StatusAvailable Status = "available" // stored and readable
	StatusFailed    Status = "failed"    // the ingest of its upload failed
)

// Document is a document's metadata: the answer of GET /documents/{id}, of
// an inline upload and of completing an upload in parts, and each entry of
// a listing.
type Document struct {
	ID          string            `json:"id"`
	Filename    string            `json:"filename"`
	ContentType string            `json:"content_type"`
	Size        int64             `json:"size"`   // of the whole document
	SHA256      string            `json:"sha256"` // of the whole document, hex
	Status      Status            `json:"status"`
	CreatedAt   time.Time         `json:"created_at"`
	Metadata    map[string]string `json:"metadata"`
	Failure     string            `json:"failure,omitempty"` // failed documents only: why
	// ExpiresAt is when the document expires (absent: never).
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// LegalHold is whether a legal hold keeps the document.
	LegalHold bool `json:"legal_hold"`
	// DeletedAt and PurgeAt are on documents in the trash only.
	DeletedAt *time.Time `json:"deleted_at,omitempty"`
	PurgeAt   *time.Time `json:"purge_at,omitempty"`
}

// SetExpiry is the body of PATCH /documents/{id}: a new expiry, or null to
// clear it. ExpiresAt is a json.RawMessage so that null and absent differ.
type SetExpiry struct {
	ExpiresAt json.RawMessage `json:"expires_at"`
}

// Page is the answer of GET /documents: one page of the caller's
// documents, newest first.
type Page struct {
	Documents  []Document `json:"documents"`
	NextCursor string     `json:"next_cursor,omitempty"` // empty on the last page
}

// CreateUpload is the body of POST /documents/uploads. Size is required
// (a pointer, so that a missing size is told from a size of 0); PartSize
// is optional (zero or absent: the server picks one).
type CreateUpload struct {
	Filename    string            `json:"filename"`
	ContentType string            `json:"content_type"`
	Size        *int64            `json:"size"`
	Metadata    map[string]string `json:"metadata"`
	PartSize    *int64            `json:"part_size,omitempty"`
	// ExpiresIn is the document's retention in seconds (absent: the
	// server's IMAGO_RETENTION).
	ExpiresIn *int64 `json:"expires_in,omitempty"`
}

// Upload methods: CreatedUpload.Method.
const (
	// MethodPut is one presigned PUT of the whole document to UploadURL.
	MethodPut = "PUT"
	// MethodMultipart is an upload in parts: the client presigns parts
	// (POST /documents/{id}/parts), PUTs them and completes the upload
	// (POST /documents/{id}/complete).
	MethodMultipart = "multipart"
)

// CreatedUpload is the answer of POST /documents/uploads.
type CreatedUpload struct {
	ID        string            `json:"id"`
	UploadURL string            `json:"upload_url,omitempty"`
	Method    string            `json:"method"` // MethodPut or MethodMultipart
	Headers   map[string]string `json:"headers,omitempty"`
	// PartSize and PartCount describe an upload in parts (Method
	// MethodMultipart), which has no UploadURL.
	PartSize  int64     `json:"part_size,omitempty"`
	PartCount int       `json:"part_count,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
}

// PresignParts is the body of POST /documents/{id}/parts: the numbers
// (1-based) of the parts to presign, at most MaxPartsPerRequest of them.
type PresignParts struct {
	Numbers []int `json:"numbers"`
}

// PresignedPart is a presigned request for one part.
type PresignedPart struct {
	Number    int               `json:"number"`
	URL       string            `json:"url"`
	Method    string            `json:"method"`
	Headers   map[string]string `json:"headers"`
	ExpiresAt time.Time         `json:"expires_at"`
}

// PresignedParts is the answer of POST /documents/{id}/parts.
type PresignedParts struct {
	Parts []PresignedPart `json:"parts"`
}

// Part is one part of an upload in parts as the server holds it.
type Part struct {
	Number int    `json:"number"`
	Size   int64  `json:"size"`
	ETag   string `json:"etag"`
}

// Parts is the answer of GET /documents/{id}/parts.
type Parts struct {
	Parts []Part `json:"parts"`
}

// CompletedPart names one part to complete an upload with: its number and
// the ETag its PUT answered.
type CompletedPart struct {
	Number int    `json:"number"`
	ETag   string `json:"etag"`
}

// Complete is the body of POST /documents/{id}/complete: every part, in
// order.
type Complete struct {
	Parts []CompletedPart `json:"parts"`
}

// CreateLink is the body of POST /documents/{id}/links. Every field is
// optional; pointers tell an absent field from a zero one, which is
// refused.
type CreateLink struct {
	// ExpiresIn is the link's lifetime in whole seconds: at least
	// MinLinkTTL, at most the server's longest (IMAGO_LINK_MAX_TTL);
	// absent, DefaultLinkTTL or the longest if that is shorter.
	ExpiresIn *int64 `json:"expires_in,omitempty"`
	// MaxUses is how many answers (200 or 206) the link gives; absent,
	// unlimited until it expires.
	MaxUses *int64 `json:"max_uses,omitempty"`
	// Disposition is DispositionInline (the default) or
	// DispositionAttachment: the Content-Disposition of the link's answers.
	Disposition string `json:"disposition,omitempty"`
}

// Link is a share link: the answer of POST /documents/{id}/links and each
// entry of GET /documents/{id}/links.
type Link struct {
	ID         string `json:"id"`
	DocumentID string `json:"document_id"`
	// URL is absolute: the API's base URL, then /links/ and the token.
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expires_at"`
	// MaxUses is absent when the link has no limit but its expiry.
	MaxUses     *int64    `json:"max_uses,omitempty"`
	Uses        int64     `json:"uses"`
	Disposition string    `json:"disposition"`
	CreatedAt   time.Time `json:"created_at"`
}

// Links is the answer of GET /documents/{id}/links: the document's live
// links (not expired, used up or revoked), newest first.
type Links struct {
	Links []Link `json:"links"`
}

// The dispositions of a share link's answers.
const (
	DispositionInline     = "inline"
	DispositionAttachment = "attachment"
)

// LinksPath is the path prefix of share links: a link's URL is the API's
// base URL, LinksPath, then its token.
const LinksPath = "/links/"

// Share link lifetimes, in seconds (CreateLink.ExpiresIn).
const (
	MinLinkTTL     = 60
	DefaultLinkTTL = 3600
	// DefaultLinkMaxTTL is the longest lifetime when the server's
	// IMAGO_LINK_MAX_TTL is unset: a week.
	DefaultLinkMaxTTL = 7 * 24 * 3600
)

// Health is the answer of GET /health.
type Health struct {
	Status string `json:"status"` // "ok"
}

// HealthOK is Health.Status of a healthy API.
const HealthOK = "ok"

// ErrorBody is the JSON body of every error answer:
// {"error":{"code":…,"message":…}}, Code one of the Code constants and
// Message safe to show the caller.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of an ErrorBody.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// NewErrorBody is the body of an error answer with code and message.
func NewErrorBody(code, message string) ErrorBody {
	return ErrorBody{Error: ErrorDetail{Code: code, Message: message}}
}

// The error codes of ErrorDetail.Code. All but CodeMethodNotAllowed name
// an error kind of the server (docstore.Kind's String), each answered
// with one status (apigw.Status); CodeMethodNotAllowed is the HTTP
// layer's own (405).
const (
	CodeInternal         = "internal"               // 500, 502
	CodeInvalid          = "invalid"                // 400
	CodeUnauthenticated  = "unauthenticated"        // 401
	CodeNotFound         = "not_found"              // 404
	CodeConflict         = "conflict"               // 409
	CodeGone             = "gone"                   // 410: a share link expired, used up or revoked
	CodeTooLarge         = "too_large"              // 413
	CodeUnsupportedMedia = "unsupported_media_type" // 415
	CodeBadRange         = "range_not_satisfiable"  // 416
	CodeUnavailable      = "unavailable"            // 503: retry later
	CodeMethodNotAllowed = "method_not_allowed"     // 405
)

// HeaderExpiresIn is the header of POST /documents giving the document's
// retention in seconds.
const HeaderExpiresIn = "X-Imago-Expires-In"

// Limits of the API that client and server share.
const (
	// DefaultMaxInlineBytes is the default limit of an inline upload's
	// body (POST /documents) and of one answer's document bytes (a whole
	// download or one Range part); a server may be configured with
	// another (IMAGO_MAX_INLINE_BYTES).
	DefaultMaxInlineBytes = 4 << 20

	// DefaultListLimit is the page size of GET /documents without
	// limit=, MaxListLimit the largest limit= taken.
	DefaultListLimit = 50
	MaxListLimit     = 1000

	// MinPartSize is the smallest part of an upload in parts but the
	// last; MaxPartSize the largest part; MaxParts the most parts one
	// upload may have (S3's limits).
	MinPartSize = 5 << 20
	MaxPartSize = 5 << 30
	MaxParts    = 10_000
	// MaxPartsPerRequest is how many parts one POST /documents/{id}/parts
	// may presign.
	MaxPartsPerRequest = 1000
)
