package dynamostore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/imagodocs/imago/internal/api"
	"github.com/imagodocs/imago/internal/docstore"
)

// AuditStore keeps the audit trail in its own DynamoDB table
// (IMAGO_AUDIT_TABLE), one item per record:
//
//	partition key  chain_key  S  the tenant's hash (32 hex) "/" the chain
//	sort key       seq        N  the record's place in its chain
//	GSI tenant-time
//	  partition    tenant     S
//	  sort         time_key   S  the record's time (api.AuditTimeLayout) "#" id
//	  projection   ALL
//
// and every field of api.AuditRecord as an attribute of its JSON name. An
// append is a PutItem conditioned on the place being free; nothing updates
// or deletes an item (the functions' roles may not). The table's stream
// (NEW_IMAGE) is for a SIEM to keep its own copy.
type AuditStore struct {
	client DynamoAPI
	table  string
}

var _ docstore.AuditLog = (*AuditStore)(nil)

// AuditIndexName is the audit table's index of a tenant's records by time.
const AuditIndexName = "tenant-time"

// NewAuditStore returns the AuditStore on table through client.
func NewAuditStore(client DynamoAPI, table string) *AuditStore {
	return &AuditStore{client: client, table: table}
}

var auditEncoder = attributevalue.NewEncoder(func(o *attributevalue.EncoderOptions) { o.TagKey = "json" })
var auditDecoder = attributevalue.NewDecoder(func(o *attributevalue.DecoderOptions) { o.TagKey = "json" })

// chainKey is the partition of tenant's chain: the tenant's hash, so that
// no tenant name can make another tenant's key.
func chainKey(tenant docstore.Tenant, chain string) string {
	sum := sha256.Sum256([]byte(tenant))
	return hex.EncodeToString(sum[:16]) + "/" + chain
}

func timeKey(time, id string) string { return time + "#" + id }

// Append stores rec unless its chain's place is taken.
func (a *AuditStore) Append(ctx context.Context, tenant docstore.Tenant, rec api.AuditRecord) error {
	const op = "dynamostore.Append"
	av, err := auditEncoder.Encode(rec)
	if err != nil {
		return docstore.E(op, docstore.KindInternal, err)
	}
	item := av.(*types.AttributeValueMemberM).Value
	item["chain_key"] = str(chainKey(tenant, rec.Chain))
	item["time_key"] = str(timeKey(rec.Time, rec.ID))
	item["tenant"] = str(string(tenant))
	_, err = a.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                aws.String(a.table),
		Item:                     item,
		ConditionExpression:      aws.String("attribute_not_exists(#k)"),
		ExpressionAttributeNames: map[string]string{"#k": "chain_key"},
	})
	if err != nil {
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			return docstore.E(op, docstore.KindConflict, fmt.Sprintf("audit chain %s has a record at %d", rec.Chain, rec.Seq), err)
		}
		return docstore.E(op, kindOf(err), fmt.Errorf("put audit record %s: %w", rec.ID, err))
	}
	return nil
}

// Record returns the record at seq of tenant's chain.
func (a *AuditStore) Record(ctx context.Context, tenant docstore.Tenant, chain string, seq int64) (api.AuditRecord, error) {
	const op = "dynamostore.Record"
	out, err := a.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(a.table),
		Key:            map[string]types.AttributeValue{"chain_key": str(chainKey(tenant, chain)), "seq": num(seq)},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return api.AuditRecord{}, docstore.E(op, kindOf(err), fmt.Errorf("get audit record %s/%d: %w", chain, seq, err))
	}
	if len(out.Item) == 0 {
		return api.AuditRecord{}, docstore.E(op, docstore.KindNotFound, fmt.Sprintf("audit chain %s has no record at %d", chain, seq))
	}
	return decodeAudit(out.Item)
}

func decodeAudit(item map[string]types.AttributeValue) (api.AuditRecord, error) {
	var rec api.AuditRecord
	if err := auditDecoder.Decode(&types.AttributeValueMemberM{Value: item}, &rec); err != nil {
		return api.AuditRecord{}, docstore.E("dynamostore.decodeAudit", docstore.KindInternal, fmt.Errorf("audit item: %w", err))
	}
	return rec, nil
}

// Query returns up to limit of tenant's records q selects, newest first: a
// Query of tenant-time, its time bounds in the key condition, the document
// and action as filters.
func (a *AuditStore) Query(ctx context.Context, tenant docstore.Tenant, q docstore.AuditQuery, after *docstore.ListPosition, limit int) ([]api.AuditRecord, error) {
	const op = "dynamostore.Query"
	names := map[string]string{"#tenant": "tenant"}
	values := map[string]types.AttributeValue{":tenant": str(string(tenant))}
	// The upper bound: Until (exclusive: a record at Until has a longer
	// key than Until alone), or the last record of the previous page
	// (inclusive, that record skipped below), whichever is lower.
	upper := ""
	if !q.Until.IsZero() {
		upper = q.Until.UTC().Format(api.AuditTimeLayout)
	}
	skip := ""
	if after != nil {
		at := timeKey(after.CreatedAt.UTC().Format(api.AuditTimeLayout), string(after.ID))
		if upper == "" || at < upper {
			upper, skip = at, string(after.ID)
		}
	}
	cond := "#tenant = :tenant"
	switch {
	case !q.Since.IsZero() && upper != "":
		cond += " AND #tk BETWEEN :since AND :upper"
	case !q.Since.IsZero():
		cond += " AND #tk >= :since"
	case upper != "":
		cond += " AND #tk <= :upper"
	}
	if !q.Since.IsZero() {
		names["#tk"], values[":since"] = "time_key", str(q.Since.UTC().Format(api.AuditTimeLayout))
	}
	if upper != "" {
		names["#tk"], values[":upper"] = "time_key", str(upper)
	}
	var filters []string
	if q.Document != "" {
		names["#doc"], values[":doc"] = "document_id", str(string(q.Document))
		filters = append(filters, "#doc = :doc")
	}
	if q.Action != "" {
		names["#action"], values[":action"] = "action", str(q.Action)
		filters = append(filters, "#action = :action")
	}
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(a.table),
		IndexName:                 aws.String(AuditIndexName),
		KeyConditionExpression:    aws.String(cond),
		ExpressionAttributeNames:  names,
		ExpressionAttributeValues: values,
		ScanIndexForward:          aws.Bool(false),
	}
	if len(filters) > 0 {
		f := filters[0]
		if len(filters) == 2 {
			f += " AND " + filters[1]
		}
		in.FilterExpression = aws.String(f)
	}
	var out []api.AuditRecord
	for len(out) < limit {
		in.Limit = aws.Int32(int32(min(limit-len(out)+1, 1000)))
		res, err := a.client.Query(ctx, in)
		if err != nil {
			return nil, docstore.E(op, kindOf(err), fmt.Errorf("query %s of %s: %w", AuditIndexName, tenant, err))
		}
		for _, item := range res.Items {
			rec, err := decodeAudit(item)
			if err != nil {
				return nil, err
			}
			if rec.ID == skip || len(out) == limit {
				continue
			}
			out = append(out, rec)
		}
		if len(res.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = res.LastEvaluatedKey
	}
	return out, nil
}
