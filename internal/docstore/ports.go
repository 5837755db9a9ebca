package docstore

import (
	"context"
	"io"
	"time"

	"github.com/imagodocs/imago/internal/api"
)

// The interfaces below are what the Service consumes. Each backend package
// implements one of them; storetest holds one contract suite per interface.

// BlobStore keeps sealed blobs (package envelope), addressed by blob id
// (Record.Blob: the document id, or an ingest attempt's own id).
type BlobStore interface {
	// Put stores exactly size bytes read from r as the blob of id,
	// replacing any previous one. A failed Put leaves no partial blob
	// visible to Get.
	Put(ctx context.Context, id ID, r io.Reader, size int64) error
	// Get returns the bytes [offset, offset+length) of the blob; length < 0
	// means to the end. A missing blob is a KindNotFound error.
	Get(ctx context.Context, id ID, offset, length int64) (BlobReader, error)
	// Delete removes the blob; deleting a missing blob is not an error.
	Delete(ctx context.Context, id ID) error
}

// BlobReader reads the part of a blob that BlobStore.Get asked for, and
// tells the size of the whole blob, so that a reader of a part can tell a
// blob that grew or shrank from the one its record describes.
type BlobReader interface {
	io.ReadCloser
	// Size is the length of the whole blob read.
	Size() int64
}

// ListPosition is where a listing resumes: after the document created at
// CreatedAt with id ID (listings run newest first, ties broken by id).
type ListPosition struct {
	CreatedAt time.Time
	ID        ID
}

// MetadataStore keeps Records.
type MetadataStore interface {
	// Create stores a new record; KindConflict if the id exists.
	Create(ctx context.Context, rec Record) error
	// Get returns the record of id (a strongly consistent read);
	// KindNotFound if there is none.
	Get(ctx context.Context, id ID) (Record, error)
	// MarkAvailable turns a pending record available and records its size,
	// SHA-256 and the id its blob is stored under (Record.BlobID), clearing
	// ExpiresAt and making removeAt (the document's expiry, zero: none) the
	// time the store may remove the record (Record.RemoveAt), in one
	// conditional write: of racing calls exactly one succeeds. KindNotFound
	// if the record is gone, KindConflict if it is not pending.
	MarkAvailable(ctx context.Context, id ID, size int64, sha256 string, blob ID, removeAt time.Time) (Record, error)
	// MarkFailed turns a pending record failed with a reason a caller may
	// see (Document.Failure), keeping ExpiresAt so the store removes it in
	// time, in one conditional write. KindNotFound if the record is gone,
	// KindConflict if it is not pending.
	MarkFailed(ctx context.Context, id ID, reason string) (Record, error)
	// List returns up to limit records of tenant, whatever their status
	// (pending, available or failed: a caller must be able to find a
	// document to delete it), newest first (CreatedAt descending, then ID
	// descending), starting after `after` when it is non-nil.
	List(ctx context.Context, tenant Tenant, after *ListPosition, limit int) ([]Record, error)
	// Delete removes the record; deleting a missing record is not an error.
	Delete(ctx context.Context, id ID) error
	// DeleteVersion removes the record if its Version is version:
	// KindConflict if it changed, KindNotFound if it is gone.
	DeleteVersion(ctx context.Context, id ID, version int64) error
	// SetPolicy writes p as the policy of the available record id, and
	// its removal time (Policy.RemoveAt), if its Version is version, and
	// returns the record as it is after: KindConflict if the record
	// changed or is not available, KindNotFound if it is gone. A record in
	// the trash (p.DeletedAt set) leaves the tenant's listing for its
	// trash listing (ListTrash), and comes back when restored.
	SetPolicy(ctx context.Context, id ID, p Policy, version int64) (Record, error)
	// ListTrash is List of the tenant's documents in the trash.
	ListTrash(ctx context.Context, tenant Tenant, after *ListPosition, limit int) ([]Record, error)
}

// EncryptionContext is the set of non-secret pairs a data key is bound to,
// as KMS encryption contexts are: unwrapping needs exactly the same pairs.
type EncryptionContext map[string]string

// ContextFor is the encryption context of a document's data key.
func ContextFor(tenant Tenant, id ID) EncryptionContext {
	return EncryptionContext{"imago:document": string(id), "imago:tenant": string(tenant)}
}

// DataKey is a fresh data key: Plaintext is used once and forgotten, Wrapped
// is stored with the document's metadata.
type DataKey struct {
	Plaintext []byte // 32 bytes
	Wrapped   []byte
	KeyID     string // the key that wrapped it
}

// KeyService generates and unwraps per-document data keys.
type KeyService interface {
	// GenerateDataKey returns a new AES-256 data key bound to ec.
	GenerateDataKey(ctx context.Context, ec EncryptionContext) (DataKey, error)
	// Decrypt unwraps a data key; it fails unless keyID's key wrapped it
	// under exactly ec.
	Decrypt(ctx context.Context, keyID string, wrapped []byte, ec EncryptionContext) ([]byte, error)
}

// CachedDocument is a cache entry: enough to answer a download, including
// the tenant check, without any other backend.
type CachedDocument struct {
	Tenant Tenant
	Descriptor
	Body []byte
	// Expires is when the entry stops answering: the document's expiry,
	// unless a legal hold keeps it (zero: never). A change of the
	// document's policy forgets the entry.
	Expires time.Time
}

// Claim is the right to fill one id's entry: a token naming the fill lock
// its holder took (Cache.Claim). NoClaim is none.
type Claim string

// NoClaim is the Claim of a caller that holds no fill lock.
const NoClaim Claim = ""

// Cache is the tier of decrypted documents. Cache errors never fail a
// download or an upload: the Service logs them and goes to the origin,
// filling nothing. They do fail a delete, which must not answer before the
// cache has forgotten the document.
//
// A delete always wins: a fill that read the origin before a Delete may
// come after it, and must not make the document readable again, even if
// the cache loses its state meanwhile (a restart, a failover, an eviction).
// So an entry is written only by Fill, and only while the claim it carries
// still holds id's fill lock: Fill compares the lock with its claim and
// writes the entry in one atomic step, for every process sharing the cache.
// Delete removes the lock, and a cache that loses its state loses the lock
// with it: every event that could let a deleted document back makes the
// fill's condition false, never true. The Service, for its part, claims
// before it reads the record whose document it fills, so a claim taken
// after a delete removed the record finds no document to fill with.
//
// Delete also leaves a tombstone refusing fills of id for TombstoneTTL, in
// depth: it is one more reason to refuse, never a reason to accept.
type Cache interface {
	// Get returns the entry of id and slides its TTL; (nil, nil) on a miss.
	// The entry is read-only: an in-process cache returns its own copy.
	Get(ctx context.Context, id ID) (*CachedDocument, error)
	// Claim returns the entry of id and slides its TTL, as Get does; on a
	// miss it tries, in the same step, to take id's fill lock, which lives
	// a short while unless released. It returns (nil, claim, nil) when it
	// took the lock: the caller then calls Fill or Release with the claim.
	// It returns (nil, NoClaim, nil) when another holder has the lock: its
	// fill may come.
	Claim(ctx context.Context, id ID) (*CachedDocument, Claim, error)
	// Fill stores doc as the entry of id with the cache's TTL and releases
	// the fill lock, provided claim still holds the lock; it stores nothing
	// and returns nil when the lock is gone (released, expired, taken by
	// another holder, removed by Delete, lost with the cache's state), when
	// id has a tombstone, when doc is larger than the cache keeps, or when
	// ctx's deadline has passed. It releases the lock if claim holds it.
	// The cache keeps nothing of doc's memory: the caller may reuse it.
	Fill(ctx context.Context, id ID, claim Claim, doc *CachedDocument) error
	// Release frees id's fill lock if claim still holds it, and leaves a
	// lock taken by anyone else alone.
	Release(ctx context.Context, id ID, claim Claim) error
	// Delete removes the entry and the fill lock of id and leaves a
	// tombstone refusing fills of id for at least TombstoneTTL; a missing
	// entry is not an error. When Delete returns nil, no Get or Claim of
	// id, in any process, returns an entry filled under a claim taken
	// before it.
	Delete(ctx context.Context, id ID) error
}

// FillDeadline bounds a fill: the Service's Fill of an entry comes at most
// this long after it claimed the right to (the record read follows the
// claim), and is refused after that (ctx carries the deadline).
const FillDeadline = 30 * time.Second

// TombstoneTTL is how long a Cache refuses fills of a deleted id: a fill
// that began before the delete ends within FillDeadline, and the margin
// covers a command in flight when its deadline passes.
const TombstoneTTL = 2 * FillDeadline

// PresignedUpload is how a client sends a large document straight to the
// staging area: an HTTP request it makes itself, valid until ExpiresAt.
type PresignedUpload struct {
	URL       string
	Method    string
	Headers   map[string]string // headers the client must send as given
	ExpiresAt time.Time
}

// Staging is the area large documents are uploaded to, in plaintext, by
// presigned URL, before the ingest encrypts them into the BlobStore and
// deletes them. Objects are addressed by their full key (prefix included),
// as storage events name them.
type Staging interface {
	// PresignPut returns a request that uploads exactly size bytes of
	// contentType to key, valid for ttl.
	PresignPut(ctx context.Context, key, contentType string, size int64, ttl time.Duration) (PresignedUpload, error)
	// Open reads the staged object at key and reports its size;
	// KindNotFound if it is not there.
	Open(ctx context.Context, key string) (io.ReadCloser, int64, error)
	// Delete removes the staged object; a missing one is not an error.
	Delete(ctx context.Context, key string) error
}

// Part is one part of a multipart upload: as received (GET
// /documents/{id}/parts) or as the client names it to complete the upload
// (Size unused then). It is the API's.
type Part = api.Part

// MultipartStaging is a staging area that takes uploads in parts, as S3
// multipart uploads (see multipart.go). Keys are staging keys, as for
// Staging; a Staging that also implements it gets uploads in parts.
type MultipartStaging interface {
	// CreateMultipart starts a multipart upload of an object of
	// contentType at key and returns its upload id.
	CreateMultipart(ctx context.Context, key, contentType string) (uploadID string, err error)
	// PresignPart returns a request that uploads part number of the upload,
	// exactly size bytes, valid for ttl. Its response carries the part's
	// ETag header.
	PresignPart(ctx context.Context, key, uploadID string, number int, size int64, ttl time.Duration) (PresignedUpload, error)
	// ListParts returns every part received so far, by ascending number;
	// KindNotFound if there is no such upload (completed or aborted).
	ListParts(ctx context.Context, key, uploadID string) ([]Part, error)
	// CompleteMultipart assembles the parts, in the given order, into the
	// object at key; KindNotFound if there is no such upload, KindInvalid
	// if a part is missing or does not match.
	CompleteMultipart(ctx context.Context, key, uploadID string, parts []Part) error
	// AbortMultipart discards the upload and every part received; an
	// unknown upload is not an error.
	AbortMultipart(ctx context.Context, key, uploadID string) error
}

// StagedItem is one thing a staging area holds: a staged object, or an
// upload in parts in progress.
type StagedItem struct {
	// Key is the staging key (prefix included) of the staged object, or of
	// the object the upload in parts will create.
	Key string
	// UploadID is set on an upload in parts in progress; empty for a
	// staged object.
	UploadID string
	// Modified is when the item last changed: a staged object's arrival,
	// an upload's last part.
	Modified time.Time
}

// StagingInventory is a staging area that can list what it holds, so that
// a reconciliation (Service.Reconcile) finds the staged bytes that nothing
// will ingest or remove any more. The local staging area implements it;
// the S3 one has the bucket's lifecycle rule on the staging prefix as its
// backstop instead.
type StagingInventory interface {
	// Inventory lists every staged object and every upload in parts in
	// progress, in no particular order.
	Inventory(ctx context.Context) ([]StagedItem, error)
}

// LinkStore keeps share links (links.go), beside the documents' records.
// Every change of a link is one conditional write: racing uses of a link
// with one use left succeed exactly once.
type LinkStore interface {
	// CreateLink stores a new link; KindConflict if its id exists.
	CreateLink(ctx context.Context, l Link) error
	// Link returns the link of id; KindNotFound if there is none.
	Link(ctx context.Context, id LinkID) (Link, error)
	// Links returns every link of document doc, whatever its state,
	// newest first.
	Links(ctx context.Context, doc ID) ([]Link, error)
	// UseLink counts one use of link id of document doc, in one
	// conditional write, and returns the link as it is after it. It fails
	// with KindNotFound when there is no such link of doc, and KindGone
	// when the link is revoked, expired at now, or has no use left.
	UseLink(ctx context.Context, id LinkID, doc ID, now time.Time) (Link, error)
	// UnuseLink gives back a use that UseLink counted for an answer that
	// was not given after all; it never takes Uses below zero.
	UnuseLink(ctx context.Context, id LinkID) error
	// RevokeLink marks link id revoked at now, unless it already is;
	// KindNotFound if there is no such link.
	RevokeLink(ctx context.Context, id LinkID, now time.Time) error
	// DeleteLinks removes every link of document doc.
	DeleteLinks(ctx context.Context, doc ID) error
}
