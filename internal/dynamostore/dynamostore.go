// Package dynamostore keeps document Records in a DynamoDB table.
//
// # Schema
//
// The table (declared in template.yaml, provisioned by scripts/testenv for
// the tests) is:
//
//	partition key  id             S   the document id
//	GSI tenant-index
//	  partition    tenant_listed  S   the owner, on every document
//	  sort         created_key    S   19-digit zero-padded unix nanoseconds "#" id
//	  projection   ALL
//	TTL attribute  expires_at     N   epoch seconds, only on pending documents
//
// Each item holds every Record field as its own attribute: tenant, filename,
// content_type, size (N), sha256, status, created_at (RFC 3339 with
// nanoseconds, UTC), metadata (M of S, absent when empty), and the envelope
// parameters wrapped_key (B), key_id, format_version (N), segment_size (N),
// blob_id (S, the id the blob is stored under when it is not the document
// id; absent otherwise) and failure (S, on failed documents only);
// a document uploaded in parts also has upload_id and part_size (N).
// The struct tags of item (item.go) are this layout, mapped by the SDK's
// attributevalue package.
// The data key is only ever stored wrapped: without KMS and the exact
// encryption context, the item gives nothing away, and deleting it makes
// every copy of the blob unreadable.
//
// # Why this shape
//
// Listing a tenant's documents newest first is one Query on tenant-index
// with ScanIndexForward=false: created_key sorts as a string exactly as
// (CreatedAt, ID) does, newest first and ties broken by id descending, and
// is unique, so a listing position maps to an ExclusiveStartKey. Every
// document is in the index, pending and failed ones too: a caller must be
// able to find an upload that never finished in order to delete it. (Items
// written before that have tenant_listed only once available; a pending
// one gets it when MarkAvailable or MarkFailed finishes it, and one never
// finished expires by TTL within a day.) MarkAvailable removes expires_at
// in the same conditional update that flips the status, so an abandoned
// upload (a presigned URL never used) is removed by DynamoDB's TTL while an
// available document never is.
//
// CreatedAt is kept to the microsecond: Create truncates it, so the
// position a caller builds from a listed record (whatever precision its
// cursor keeps down to the microsecond) names exactly that record's key.
//
// Get is a strongly consistent read. List reads a global secondary index,
// which DynamoDB updates asynchronously: a document marked available a
// moment ago may take a moment to be listed (DynamoDB Local updates it at
// once).
//
// Errors: a failed create condition is KindConflict; a missing item
// KindNotFound; throttling (ProvisionedThroughputExceeded, RequestLimit,
// Throttling), 5xx, timeouts and network failures KindUnavailable; anything
// else — a missing table, a validation error — KindInternal.
package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/imagodocs/imago/internal/docstore"
)

// DynamoAPI is the part of the DynamoDB client that Store uses;
// *dynamodb.Client implements it.
type DynamoAPI interface {
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
}

var (
	_ DynamoAPI              = (*dynamodb.Client)(nil)
	_ docstore.MetadataStore = (*Store)(nil)
)

// Attribute and index names of the schema.
const (
	IndexName = "tenant-index"

	attrID            = "id"
	attrTenant        = "tenant"
	attrTenantListed  = "tenant_listed"
	attrCreatedKey    = "created_key"
	attrCreatedAt     = "created_at"
	attrExpiresAt     = "expires_at"
	attrFilename      = "filename"
	attrContentType   = "content_type"
	attrSize          = "size"
	attrSHA256        = "sha256"
	attrStatus        = "status"
	attrMetadata      = "metadata"
	attrWrappedKey    = "wrapped_key"
	attrKeyID         = "key_id"
	attrFormatVersion = "format_version"
	attrSegmentSize   = "segment_size"
	attrBlobID        = "blob_id"
	attrFailure       = "failure"

	// Only on documents uploaded in parts.
	attrUploadID = "upload_id"
	attrPartSize = "part_size"

	// A document's policy (policy.go).
	attrExpires     = "expires"
	attrLegalHold   = "legal_hold"
	attrDeletedAt   = "deleted_at"
	attrPurgeAt     = "purge_at"
	attrTenantTrash = "tenant_trash"
	attrVersion     = "version"
)

// Store is a docstore.MetadataStore on a DynamoDB table.
type Store struct {
	client DynamoAPI
	table  string
}

// New returns a Store on table through client.
func New(client DynamoAPI, table string) *Store {
	return &Store{client: client, table: table}
}

func (s *Store) key(id docstore.ID) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrID: str(string(id))}
}

// Create stores rec unless its id exists.
func (s *Store) Create(ctx context.Context, rec docstore.Record) error {
	const op = "dynamostore.Create"
	if rec.ID == "" || rec.Tenant == "" {
		return docstore.E(op, docstore.KindInvalid, "a record needs an id and a tenant")
	}
	item, err := encode(rec)
	if err != nil {
		return docstore.E(op, docstore.KindInvalid, fmt.Errorf("record %s: %w", rec.ID, err))
	}
	_, err = s.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                aws.String(s.table),
		Item:                     item,
		ConditionExpression:      aws.String("attribute_not_exists(#id)"),
		ExpressionAttributeNames: map[string]string{"#id": attrID},
	})
	if err != nil {
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			return docstore.E(op, docstore.KindConflict, fmt.Sprintf("document %s already exists", rec.ID), err)
		}
		return docstore.E(op, kindOf(err), fmt.Errorf("put %s: %w", rec.ID, err))
	}
	return nil
}

// Get returns the record of id, read consistently.
func (s *Store) Get(ctx context.Context, id docstore.ID) (docstore.Record, error) {
	const op = "dynamostore.Get"
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(s.table),
		Key:            s.key(id),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return docstore.Record{}, docstore.E(op, kindOf(err), fmt.Errorf("get %s: %w", id, err))
	}
	if len(out.Item) == 0 {
		return docstore.Record{}, docstore.E(op, docstore.KindNotFound, fmt.Sprintf("document %s not found", id))
	}
	rec, err := decode(out.Item)
	if err != nil {
		return docstore.Record{}, docstore.E(op, docstore.KindInternal, fmt.Errorf("item %s: %w", id, err))
	}
	return rec, nil
}

// MarkAvailable flips a pending record to available, records its size,
// SHA-256 and blob id, puts it in the listing index and sets its TTL
// attribute to removeAt (the document's expiry; zero removes it), in one
// conditional update.
func (s *Store) MarkAvailable(ctx context.Context, id docstore.ID, size int64, sha256 string, blob docstore.ID, removeAt time.Time) (docstore.Record, error) {
	values := map[string]types.AttributeValue{
		":new":    str(string(docstore.StatusAvailable)),
		":size":   num(size),
		":sha256": str(sha256),
		":blob":   str(string(blob)),
	}
	update := "SET #status = :new, #size = :size, #sha256 = :sha256, #blob_id = :blob, #tenant_listed = #tenant"
	if removeAt.IsZero() {
		update += " REMOVE #expires_at"
	} else {
		update += ", #expires_at = :ttl"
		values[":ttl"] = num(removeAt.Unix())
	}
	return s.finish(ctx, "dynamostore.MarkAvailable", id, update,
		map[string]string{"#size": attrSize, "#sha256": attrSHA256, "#blob_id": attrBlobID,
			"#tenant_listed": attrTenantListed, "#tenant": attrTenant, "#expires_at": attrExpiresAt},
		values)
}

// MarkFailed flips a pending record to failed with reason, and puts it in
// the listing index (an item written before pending ones were listed is
// not), in one conditional update; the expiry stays, so DynamoDB's TTL
// removes it.
func (s *Store) MarkFailed(ctx context.Context, id docstore.ID, reason string) (docstore.Record, error) {
	return s.finish(ctx, "dynamostore.MarkFailed", id, "SET #status = :new, #failure = :failure, #tenant_listed = #tenant",
		map[string]string{"#failure": attrFailure, "#tenant_listed": attrTenantListed, "#tenant": attrTenant},
		map[string]types.AttributeValue{":new": str(string(docstore.StatusFailed)), ":failure": str(reason)})
}

// finish applies update to a pending record, conditionally on it being
// pending (:new is the status it sets).
func (s *Store) finish(ctx context.Context, op docstore.Op, id docstore.ID, update string, names map[string]string, values map[string]types.AttributeValue) (docstore.Record, error) {
	names["#id"], names["#status"], names["#version"] = attrID, attrStatus, attrVersion
	values[":pending"] = str(string(docstore.StatusPending))
	values[":zero"], values[":one"] = num(0), num(1)
	update = bumpVersion(update)
	out, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           aws.String(s.table),
		Key:                                 s.key(id),
		ConditionExpression:                 aws.String("attribute_exists(#id) AND #status = :pending"),
		UpdateExpression:                    aws.String(update),
		ExpressionAttributeNames:            names,
		ExpressionAttributeValues:           values,
		ReturnValues:                        types.ReturnValueAllNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err != nil {
		return docstore.Record{}, s.conditionFailed(ctx, op, id, err, fmt.Sprintf("document %s is not pending", id))
	}
	rec, err := decode(out.Attributes)
	if err != nil {
		return docstore.Record{}, docstore.E(op, docstore.KindInternal, fmt.Errorf("item %s: %w", id, err))
	}
	return rec, nil
}

// List returns up to limit records of tenant not in the trash, whatever
// their status, newest first, after the position `after` when it is set.
func (s *Store) List(ctx context.Context, tenant docstore.Tenant, after *docstore.ListPosition, limit int) ([]docstore.Record, error) {
	return s.query(ctx, "dynamostore.List", IndexName, attrTenantListed, tenant, after, limit)
}

// query lists up to limit records of tenant from index, whose partition
// key is partition and sort key created_key, newest first, after `after`.
func (s *Store) query(ctx context.Context, op docstore.Op, index, partition string, tenant docstore.Tenant, after *docstore.ListPosition, limit int) ([]docstore.Record, error) {
	if limit <= 0 || tenant == "" {
		return nil, nil
	}
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		IndexName:                 aws.String(index),
		KeyConditionExpression:    aws.String("#partition = :tenant"),
		ExpressionAttributeNames:  map[string]string{"#partition": partition},
		ExpressionAttributeValues: map[string]types.AttributeValue{":tenant": str(string(tenant))},
		ScanIndexForward:          aws.Bool(false),
	}
	if after != nil {
		in.ExclusiveStartKey = map[string]types.AttributeValue{
			attrID:         str(string(after.ID)),
			partition:      str(string(tenant)),
			attrCreatedKey: str(createdKey(after.CreatedAt, after.ID)),
		}
	}
	recs := make([]docstore.Record, 0, min(limit, 100))
	// A Query with a Limit may stop short of it (at 1 MB read, say) and
	// still have more: go on until the page is full or the index ends.
	for len(recs) < limit {
		in.Limit = aws.Int32(int32(min(limit-len(recs), 1000)))
		out, err := s.client.Query(ctx, in)
		if err != nil {
			return nil, docstore.E(op, kindOf(err), fmt.Errorf("query %s of %s: %w", index, tenant, err))
		}
		for _, item := range out.Items {
			rec, err := decode(item)
			if err != nil {
				return nil, docstore.E(op, docstore.KindInternal, fmt.Errorf("listed item: %w", err))
			}
			recs = append(recs, rec)
		}
		if len(out.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	return recs, nil
}

// Delete removes the record of id; a missing one is not an error.
func (s *Store) Delete(ctx context.Context, id docstore.ID) error {
	const op = "dynamostore.Delete"
	_, err := s.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(s.table), Key: s.key(id)})
	if err != nil {
		return docstore.E(op, kindOf(err), fmt.Errorf("delete %s: %w", id, err))
	}
	return nil
}

// createdKey is the index sort key of a record: descending order of it is
// newest first, then id descending.
func createdKey(t time.Time, id docstore.ID) string {
	return fmt.Sprintf("%019d#%s", max(t.UnixNano(), 0), id)
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}
