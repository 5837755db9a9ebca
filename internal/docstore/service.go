// Package docstore is Imago's domain: documents, tenants, the Service that
// uploads, downloads, lists and deletes them, the small interfaces it
// consumes (BlobStore, MetadataStore, KeyService, Cache), and the error
// kinds every layer speaks. It imports no backend: package backends wires
// concrete ones in.
package docstore

import (
	"cmp"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"time"

	"github.com/imagodocs/imago/internal/api"
	"github.com/imagodocs/imago/internal/envelope"
	"github.com/imagodocs/imago/internal/linktoken"
)

// Config holds the Service's limits.
type Config struct {
	// MaxInlineBytes is the largest document accepted by Upload and the
	// largest body Download returns in one response.
	MaxInlineBytes int64
	// CacheMaxBytes is the largest document kept in the cache.
	CacheMaxBytes int64
	// SegmentSize is the blob format's segment size for new documents.
	SegmentSize int
	// PendingTTL is how long a pending record may live before the metadata
	// store may expire it (an upload that died half-way).
	PendingTTL time.Duration
	// StagingPrefix is where presigned uploads are staged.
	StagingPrefix string
	// MultipartThreshold is the size over which a presigned upload goes in
	// parts (multipart.go); at most MaxStagedBytes.
	MultipartThreshold int64
	// FillWait bounds how long a miss waits for another instance holding
	// the fill lock before loading the origin itself; FillPoll is the
	// interval at which it looks at the cache meanwhile.
	FillWait, FillPoll time.Duration
	// CursorKey is the deployment's secret that authenticates listing
	// cursors (IMAGO_CURSOR_SECRET). Every instance of a deployment must
	// share it; without one a Service makes a random key of its own.
	CursorKey []byte
	// LinkKey is the deployment's secret that authenticates share links
	// (IMAGO_LINK_SECRET, linktoken.SecretSize bytes). Every instance of a
	// deployment must share it; without one a Service makes a random key
	// of its own, and its links die with it.
	LinkKey []byte
	// LinkMaxTTL is the longest a share link may live
	// (IMAGO_LINK_MAX_TTL).
	LinkMaxTTL time.Duration
	// Retention is the expiry of a document uploaded without one
	// (IMAGO_RETENTION); zero: such a document never expires.
	Retention time.Duration
	// DeletionDelay is how long a deleted document stays in the trash
	// (IMAGO_DELETION_DELAY); zero: a delete purges at once.
	DeletionDelay time.Duration
	// AuditOff turns the recording of requests off (IMAGO_AUDIT=off); what
	// was recorded is still served.
	AuditOff bool
	// IngestHook, when set, runs in Ingest after the attempt's blob is
	// stored and before the record is marked available; an error fails
	// the attempt. Tests use it to pause (or crash) an ingest at that
	// point deterministically; it is nil in production.
	IngestHook func(ctx context.Context, id ID) error
	// FillHook, when set, runs in a download's fill after the origin read
	// and before the cache write. Tests use it to pause a fill at that
	// point deterministically; it is nil in production.
	FillHook func(ctx context.Context, id ID)
	// Now, when set, is the Service's clock (UTC): tests move it to see
	// links expire. It is nil in production (time.Now).
	Now func() time.Time
}

// The defaults of docs/design.md's configuration ("Configuration") that
// are the Service's limits: package config falls back to these when a
// variable is unset, and so does a Service built with a zero Config.
const (
	DefaultMaxInlineBytes = api.DefaultMaxInlineBytes // IMAGO_MAX_INLINE_BYTES
	DefaultCacheMaxBytes  = 8 << 20                   // IMAGO_CACHE_MAX_BYTES
	DefaultCacheTTL       = 5 * time.Minute           // IMAGO_CACHE_TTL: a Cache's entries live this long
	DefaultStagingPrefix  = "staging/"                // IMAGO_STAGING_PREFIX
	DefaultPendingTTL     = 24 * time.Hour
	DefaultFillWait       = 2 * time.Second
	DefaultFillPoll       = 20 * time.Millisecond
	DefaultLinkMaxTTL     = api.DefaultLinkMaxTTL * time.Second // IMAGO_LINK_MAX_TTL
)

func (c *Config) setDefaults() {
	c.MaxInlineBytes = positiveOr(c.MaxInlineBytes, DefaultMaxInlineBytes)
	c.CacheMaxBytes = positiveOr(c.CacheMaxBytes, DefaultCacheMaxBytes)
	c.SegmentSize = positiveOr(c.SegmentSize, envelope.DefaultSegmentSize)
	c.PendingTTL = positiveOr(c.PendingTTL, DefaultPendingTTL)
	if c.MultipartThreshold <= 0 || c.MultipartThreshold > MaxStagedBytes {
		c.MultipartThreshold = DefaultMultipartThreshold
	}
	c.StagingPrefix = cmp.Or(c.StagingPrefix, DefaultStagingPrefix)
	c.FillWait = positiveOr(c.FillWait, DefaultFillWait)
	c.FillPoll = positiveOr(c.FillPoll, DefaultFillPoll)
	if len(c.CursorKey) == 0 {
		c.CursorKey = randomCursorKey()
	}
	if len(c.LinkKey) != linktoken.SecretSize {
		c.LinkKey = make([]byte, linktoken.SecretSize)
		rand.Read(c.LinkKey)
	}
	// A link lives at least api.MinLinkTTL: a shorter longest would refuse
	// every lifetime.
	c.LinkMaxTTL = max(positiveOr(c.LinkMaxTTL, DefaultLinkMaxTTL), api.MinLinkTTL*time.Second)
}

// positiveOr is v, or def when v is not positive (unset, or nonsense).
func positiveOr[T int | int64 | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// Backends are the ports the Service runs on.
type Backends struct {
	Blobs BlobStore
	Meta  MetadataStore
	Keys  KeyService
	Cache Cache
	// Staging is optional: without it there are no presigned uploads.
	Staging Staging
	// Links keeps share links; without it the link routes answer 500.
	Links LinkStore
	// Audit keeps the audit trail (audit.go); without it nothing is
	// recorded and GET /audit answers 503.
	Audit AuditLog
}

// Service implements Imago's operations. It is safe for concurrent use and
// meant to be built once per process (once per Lambda execution environment).
//
// Its read path is three layers: Download (download.go) applies the
// record, the tenant check, ETag, Range and the response limit; the caching
// reader (cachingreader.go) decides, in one read, between the cache, a
// holder's fill and the origin, and fills the cache; the origin (origin.go)
// reads a range of the sealed blob. Uploads and ingests write through the
// origin too: write seals and stores a blob, commit marks its document
// available with it.
type Service struct {
	blobs   BlobStore
	meta    MetadataStore
	keys    KeyService
	staging Staging
	links   LinkStore
	// audit places and appends the audit trail's records; nil without an
	// AuditLog.
	audit *auditor
	// linkKeys authenticate share links' tokens (Config.LinkKey).
	linkKeys *linktoken.Keys
	origin   origin
	reader   *cachingReader
	cfg      Config
	log      *slog.Logger
	now      func() time.Time

	// multipart is staging's uploads in parts; nil when it takes none.
	multipart MultipartStaging
	// inventory is staging's listing of what it holds; nil when it has
	// none (reconcile.go).
	inventory StagingInventory
	// ingesting counts the ingests running in this process, by staging
	// key, so that a reconciliation leaves them alone.
	ingesting inflight
}

// NewService builds a Service. A nil logger discards logs.
func NewService(b Backends, cfg Config, log *slog.Logger) *Service {
	cfg.setDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	linkKeys, err := linktoken.NewKeys(cfg.LinkKey)
	if err != nil {
		panic(err) // setDefaults made it the right size
	}
	s := &Service{blobs: b.Blobs, meta: b.Meta, keys: b.Keys, staging: b.Staging, links: b.Links, linkKeys: linkKeys, cfg: cfg, log: log,
		origin: origin{blobs: b.Blobs, keys: b.Keys, meta: b.Meta, log: log},
		now:    func() time.Time { return time.Now().UTC() }}
	if cfg.Now != nil {
		s.now = func() time.Time { return cfg.Now().UTC() }
	}
	if b.Audit != nil {
		s.audit = newAuditor(b.Audit, s.now)
	}
	s.reader = newCachingReader(b.Cache, func(ctx context.Context, id ID) (Record, error) { return s.meta.Get(ctx, id) },
		s.origin.read, s.origin.prefetch, cfg, log)
	if m, ok := b.Staging.(MultipartStaging); ok {
		s.multipart = m
	}
	if inv, ok := b.Staging.(StagingInventory); ok {
		s.inventory = inv
	}
	return s
}

// Config returns the Service's effective limits.
func (s *Service) Config() Config { return s.cfg }

// Get returns a document's metadata.
func (s *Service) Get(ctx context.Context, tenant Tenant, id ID) (Document, error) {
	rec, err := s.record(ctx, "docstore.Get", tenant, id)
	if err != nil {
		return Document{}, err
	}
	return rec.Document, nil
}

// record reads id's record and checks the caller owns it and may see it.
// Another tenant's document, and one expired or in the trash, is reported
// exactly like a missing one.
func (s *Service) record(ctx context.Context, op Op, tenant Tenant, id ID) (Record, error) {
	rec, err := s.storedRecord(ctx, op, tenant, id)
	if err == nil && rec.Gone(s.now()) {
		return Record{}, notFound(op, id)
	}
	return rec, err
}

// storedRecord reads id's record and checks the caller owns it, whatever
// its policy says.
func (s *Service) storedRecord(ctx context.Context, op Op, tenant Tenant, id ID) (Record, error) {
	if tenant == "" {
		return Record{}, E(op, KindUnauthenticated, "no caller identity")
	}
	rec, err := s.meta.Get(ctx, id)
	if err != nil {
		if IsNotFound(err) {
			return Record{}, notFound(op, id)
		}
		return Record{}, E(op, fmt.Errorf("get record %s: %w", id, err))
	}
	if rec.Tenant != tenant {
		return Record{}, notFound(op, id)
	}
	return rec, nil
}

func notFound(op Op, id ID) error {
	return E(op, KindNotFound, fmt.Sprintf("document %s not found", id))
}
