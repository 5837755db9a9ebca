package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/imagodocs/imago/internal/docstore"
)

// A document's policy lives in its item: expires, legal_hold, deleted_at
// and purge_at (absent when unset), version (N, every change's condition),
// and the TTL attribute expires_at, which is the policy's removal time
// (docstore.Record.RemoveAt): the earlier of the expiry and the purge, and
// absent while the document is held. A document in the trash has
// tenant_trash instead of tenant_listed, so that it leaves the tenant's
// listing (tenant-index) for the trash's (trash-index).

// TrashIndexName is the index of a tenant's documents in the trash.
const TrashIndexName = "trash-index"

// bumpVersion adds the version's increment to an update expression: items
// written before versions count from 0.
func bumpVersion(update string) string {
	const bump = "#version = if_not_exists(#version, :zero) + :one"
	if strings.HasPrefix(update, "SET ") {
		set, rest, _ := strings.Cut(update[len("SET "):], " REMOVE ")
		out := "SET " + set + ", " + bump
		if rest != "" {
			out += " REMOVE " + rest
		}
		return out
	}
	return "SET " + bump + " " + update
}

// versionIs is the condition that the item is at version (an item without
// one is at 0).
func versionIs(version int64, values map[string]types.AttributeValue) string {
	if version == 0 {
		return "attribute_not_exists(#version)"
	}
	values[":version"] = num(version)
	return "#version = :version"
}

// SetPolicy writes p as the policy of the available item id, if it is at
// version, in one conditional update.
func (s *Store) SetPolicy(ctx context.Context, id docstore.ID, p docstore.Policy, version int64) (docstore.Record, error) {
	const op = "dynamostore.SetPolicy"
	names := map[string]string{"#id": attrID, "#status": attrStatus, "#version": attrVersion, "#tenant": attrTenant,
		"#tenant_listed": attrTenantListed, "#tenant_trash": attrTenantTrash, "#expires_at": attrExpiresAt,
		"#expires": attrExpires, "#legal_hold": attrLegalHold, "#deleted_at": attrDeletedAt, "#purge_at": attrPurgeAt}
	values := map[string]types.AttributeValue{":available": str(string(docstore.StatusAvailable)), ":zero": num(0), ":one": num(1)}
	var set, remove []string
	setTime := func(name string, t time.Time) {
		if t.IsZero() {
			remove = append(remove, name)
			return
		}
		values[":"+name[1:]] = str(t.UTC().Format(time.RFC3339Nano))
		set = append(set, name+" = :"+name[1:])
	}
	setTime("#expires", p.Expires)
	setTime("#deleted_at", p.DeletedAt)
	setTime("#purge_at", p.PurgeAt)
	if p.LegalHold {
		values[":hold"] = &types.AttributeValueMemberBOOL{Value: true}
		set = append(set, "#legal_hold = :hold")
	} else {
		remove = append(remove, "#legal_hold")
	}
	if at := p.RemoveAt(); at.IsZero() {
		remove = append(remove, "#expires_at")
	} else {
		values[":ttl"] = num(at.Unix())
		set = append(set, "#expires_at = :ttl")
	}
	if p.DeletedAt.IsZero() {
		set = append(set, "#tenant_listed = #tenant")
		remove = append(remove, "#tenant_trash")
	} else {
		set = append(set, "#tenant_trash = #tenant")
		remove = append(remove, "#tenant_listed")
	}
	update := bumpVersion("SET " + strings.Join(set, ", ") + " REMOVE " + strings.Join(remove, ", "))
	cond := "attribute_exists(#id) AND #status = :available AND " + versionIs(version, values)
	out, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           aws.String(s.table),
		Key:                                 s.key(id),
		ConditionExpression:                 aws.String(cond),
		UpdateExpression:                    aws.String(update),
		ExpressionAttributeNames:            names,
		ExpressionAttributeValues:           values,
		ReturnValues:                        types.ReturnValueAllNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err != nil {
		return docstore.Record{}, s.conditionFailed(ctx, op, id, err, fmt.Sprintf("document %s changed", id))
	}
	rec, err := decode(out.Attributes)
	if err != nil {
		return docstore.Record{}, docstore.E(op, docstore.KindInternal, fmt.Errorf("item %s: %w", id, err))
	}
	return rec, nil
}

// conditionFailed classifies err, of a conditional write of item id: a
// failed condition is KindConflict (saying conflict) when the item exists,
// KindNotFound when it does not; any other error is the write's.
func (s *Store) conditionFailed(ctx context.Context, op docstore.Op, id docstore.ID, err error, conflict string) error {
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		return docstore.E(op, kindOf(err), fmt.Errorf("update %s: %w", id, err))
	}
	if len(ccf.Item) == 0 { // DynamoDB Local may not return the old item: look
		if _, gerr := s.Get(ctx, id); docstore.IsNotFound(gerr) {
			return docstore.E(op, docstore.KindNotFound, fmt.Sprintf("document %s not found", id), err)
		} else if gerr != nil {
			return docstore.E(op, gerr)
		}
	}
	return docstore.E(op, docstore.KindConflict, conflict, err)
}

// DeleteVersion removes item id if it is at version.
func (s *Store) DeleteVersion(ctx context.Context, id docstore.ID, version int64) error {
	const op = "dynamostore.DeleteVersion"
	values := map[string]types.AttributeValue{}
	cond := "attribute_exists(#id) AND " + versionIs(version, values)
	in := &dynamodb.DeleteItemInput{
		TableName:                           aws.String(s.table),
		Key:                                 s.key(id),
		ConditionExpression:                 aws.String(cond),
		ExpressionAttributeNames:            map[string]string{"#id": attrID, "#version": attrVersion},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}
	if len(values) > 0 {
		in.ExpressionAttributeValues = values
	}
	if _, err := s.client.DeleteItem(ctx, in); err != nil {
		return s.conditionFailed(ctx, op, id, err, fmt.Sprintf("document %s changed", id))
	}
	return nil
}

// ListTrash returns up to limit of tenant's documents in the trash, newest
// first: a Query of trash-index.
func (s *Store) ListTrash(ctx context.Context, tenant docstore.Tenant, after *docstore.ListPosition, limit int) ([]docstore.Record, error) {
	return s.query(ctx, "dynamostore.ListTrash", TrashIndexName, attrTenantTrash, tenant, after, limit)
}
