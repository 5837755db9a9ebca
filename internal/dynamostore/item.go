package dynamostore

import (
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/imagodocs/imago/internal/docstore"
)

// item is a Record as it is stored: one attribute per field, named by its
// tag (the schema in the package comment). The tags are the wire layout of
// every item already written, so a change to one is a migration:
// TestDynamoStore_LayoutMatchesStoredItems holds them to it.
//
// Attributes without omitempty are always written, empty strings and
// zeros included; those with it only when set.
type item struct {
	ID     docstore.ID     `dynamodbav:"id"`
	Tenant docstore.Tenant `dynamodbav:"tenant"`
	// TenantListed is the tenant: the partition key of the listing index.
	// Items written before pending and failed documents were listed have
	// it on available ones only.
	TenantListed docstore.Tenant `dynamodbav:"tenant_listed,omitempty"`
	CreatedKey   string          `dynamodbav:"created_key"`
	CreatedAt    time.Time       `dynamodbav:"created_at"` // RFC 3339 with nanoseconds, UTC
	// ExpiresAt is the TTL attribute: epoch seconds, only while pending or
	// failed (omitted when zero: the encoder's OmitEmptyTime).
	ExpiresAt   time.Time       `dynamodbav:"expires_at,omitempty,unixtime"`
	Filename    string          `dynamodbav:"filename"`
	ContentType string          `dynamodbav:"content_type"`
	Size        int64           `dynamodbav:"size"`
	SHA256      string          `dynamodbav:"sha256"`
	Status      docstore.Status `dynamodbav:"status"`
	Metadata    metadata        `dynamodbav:"metadata,omitempty"` // nil when empty
	// WrappedKey is never nil here: a nil slice would be written as NULL,
	// and the attribute has always been B (empty when there is no key).
	WrappedKey    []byte      `dynamodbav:"wrapped_key"`
	KeyID         string      `dynamodbav:"key_id"`
	FormatVersion int         `dynamodbav:"format_version"`
	SegmentSize   int         `dynamodbav:"segment_size"`
	BlobID        docstore.ID `dynamodbav:"blob_id,omitempty"`
	Failure       string      `dynamodbav:"failure,omitempty"`
	UploadID      string      `dynamodbav:"upload_id,omitempty"`
	// PartSize is written exactly when UploadID is, zero included.
	PartSize *int64 `dynamodbav:"part_size,omitempty"`

	// The document's policy: its expiry, its legal hold, and while it is
	// in the trash when it went there and when it is purged; TenantTrash
	// (the partition key of the trash's index) replaces TenantListed then.
	Expires     time.Time       `dynamodbav:"expires,omitempty"`
	LegalHold   bool            `dynamodbav:"legal_hold,omitempty"`
	DeletedAt   time.Time       `dynamodbav:"deleted_at,omitempty"`
	PurgeAt     time.Time       `dynamodbav:"purge_at,omitempty"`
	TenantTrash docstore.Tenant `dynamodbav:"tenant_trash,omitempty"`
	// Version counts the item's changes (docstore.Record.Version); items
	// written before it have none, which is version 0.
	Version int64 `dynamodbav:"version,omitempty"`
}

// metadata is an M of S. attributevalue would read an N into a string;
// a value that is not S is a malformed item, as any other wrong type.
type metadata map[string]string

func (m *metadata) UnmarshalDynamoDBAttributeValue(av types.AttributeValue) error {
	mv, ok := av.(*types.AttributeValueMemberM)
	if !ok {
		return fmt.Errorf("attribute %s is %T, want M", attrMetadata, av)
	}
	*m = make(metadata, len(mv.Value))
	for k, v := range mv.Value {
		s, ok := v.(*types.AttributeValueMemberS)
		if !ok {
			return fmt.Errorf("attribute %s: value of %q is %T, want S", attrMetadata, k, v)
		}
		(*m)[k] = s.Value
	}
	return nil
}

// requiredAttrs are the attributes an item cannot be read without.
var requiredAttrs = []string{attrID, attrTenant, attrStatus, attrCreatedAt}

var (
	encoder = attributevalue.NewEncoder(func(o *attributevalue.EncoderOptions) { o.OmitEmptyTime = true })
	decoder = attributevalue.NewDecoder()
)

// encode is the item of rec. It fails only on metadata that
// docstore.ValidateMetadata refuses (an empty key).
func encode(rec docstore.Record) (map[string]types.AttributeValue, error) {
	created := rec.CreatedAt.UTC().Truncate(time.Microsecond)
	it := item{
		ID: rec.ID, Tenant: rec.Tenant,
		CreatedKey: createdKey(created, rec.ID), CreatedAt: created,
		ExpiresAt: rec.RemoveAt(),
		Expires:   rec.Expires.UTC(), LegalHold: rec.LegalHold, DeletedAt: rec.DeletedAt.UTC(), PurgeAt: rec.PurgeAt.UTC(),
		Version:  max(rec.Version, 1),
		Filename: rec.Filename, ContentType: rec.ContentType, Size: rec.Size, SHA256: rec.SHA256,
		Status: rec.Status, WrappedKey: rec.WrappedKey, KeyID: rec.KeyID,
		FormatVersion: rec.FormatVersion, SegmentSize: rec.SegmentSize,
		BlobID: rec.BlobID, Failure: rec.Failure, UploadID: rec.UploadID,
		TenantListed: rec.Tenant,
	}
	if rec.Trashed() {
		it.TenantListed, it.TenantTrash = "", rec.Tenant
	}
	if len(rec.Metadata) > 0 {
		it.Metadata = rec.Metadata
	}
	if it.WrappedKey == nil {
		it.WrappedKey = []byte{}
	}
	if rec.UploadID != "" {
		it.PartSize = &rec.PartSize
	}
	av, err := encoder.Encode(it)
	if err != nil {
		return nil, err
	}
	return av.(*types.AttributeValueMemberM).Value, nil
}

// decode is the record of an item.
func decode(av map[string]types.AttributeValue) (docstore.Record, error) {
	for _, name := range requiredAttrs {
		if _, ok := av[name]; !ok {
			return docstore.Record{}, fmt.Errorf("attribute %s: missing", name)
		}
	}
	var it item
	if err := decoder.Decode(&types.AttributeValueMemberM{Value: av}, &it); err != nil {
		return docstore.Record{}, err
	}
	rec := docstore.Record{
		Document: docstore.Document{
			ID:         it.ID,
			Descriptor: docstore.Descriptor{Filename: it.Filename, ContentType: it.ContentType, Size: it.Size, SHA256: it.SHA256},
			Status:     it.Status, CreatedAt: it.CreatedAt.UTC(), Metadata: it.Metadata, Failure: it.Failure,
			Expires: utcOrZero(it.Expires), LegalHold: it.LegalHold, DeletedAt: utcOrZero(it.DeletedAt), PurgeAt: utcOrZero(it.PurgeAt),
		},
		Tenant: it.Tenant, Version: it.Version, WrappedKey: it.WrappedKey, KeyID: it.KeyID,
		FormatVersion: it.FormatVersion, SegmentSize: it.SegmentSize,
		BlobID: it.BlobID, UploadID: it.UploadID,
	}
	if rec.Metadata == nil {
		rec.Metadata = map[string]string{}
	}
	// The TTL attribute is a pending or failed upload's ExpiresAt; on an
	// available document it is the policy's removal time, which the record
	// computes (Record.RemoveAt).
	if !it.ExpiresAt.IsZero() && it.Status != docstore.StatusAvailable {
		rec.ExpiresAt = it.ExpiresAt.UTC()
	}
	if it.PartSize != nil {
		rec.PartSize = *it.PartSize
	}
	return rec, nil
}

// utcOrZero is t in UTC; the zero time stays zero.
func utcOrZero(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}
