package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/imagodocs/imago/internal/docstore"
)

// Share links live in the documents' table, one item each (see the package
// comment's schema):
//
//	id             S   "link#" and the link id: never a document id (a UUID)
//	link_document  S   the document: partition key of link-index
//	created_key    S   as a document's: link-index's sort key, newest first
//	tenant, sha256, disposition                    S
//	created_at     S   RFC 3339 with nanoseconds
//	expires_at     N   epoch seconds: the table's TTL attribute, so that
//	                   DynamoDB removes a link once it has expired
//	uses           N
//	max_uses       N   absent when unlimited
//	revoked_at     S   absent until revoked
//
// A link item has no tenant_listed, so it is never in the documents'
// listing index, and a document's Get never reads one.

var _ docstore.LinkStore = (*Store)(nil)

// LinkIndexName is the index of a document's links.
const LinkIndexName = "link-index"

const (
	linkKeyPrefix    = "link#"
	attrLinkDocument = "link_document"
	attrUses         = "uses"
	attrMaxUses      = "max_uses"
	attrDisposition  = "disposition"
	attrRevokedAt    = "revoked_at"
)

// linkItem is a Link as it is stored.
type linkItem struct {
	ID          string          `dynamodbav:"id"`
	Document    docstore.ID     `dynamodbav:"link_document"`
	CreatedKey  string          `dynamodbav:"created_key"`
	Tenant      docstore.Tenant `dynamodbav:"tenant"`
	SHA256      string          `dynamodbav:"sha256"`
	CreatedAt   time.Time       `dynamodbav:"created_at"`
	ExpiresAt   time.Time       `dynamodbav:"expires_at,unixtime"`
	Uses        int64           `dynamodbav:"uses"`
	MaxUses     int64           `dynamodbav:"max_uses,omitempty"`
	Disposition string          `dynamodbav:"disposition"`
	RevokedAt   time.Time       `dynamodbav:"revoked_at,omitempty"`
}

func (s *Store) linkKey(id docstore.LinkID) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrID: str(linkKeyPrefix + string(id))}
}

func decodeLink(av map[string]types.AttributeValue) (docstore.Link, error) {
	var it linkItem
	if err := decoder.Decode(&types.AttributeValueMemberM{Value: av}, &it); err != nil {
		return docstore.Link{}, err
	}
	if len(it.ID) <= len(linkKeyPrefix) || it.ID[:len(linkKeyPrefix)] != linkKeyPrefix {
		return docstore.Link{}, fmt.Errorf("item %q is not a link", it.ID)
	}
	return docstore.Link{ID: docstore.LinkID(it.ID[len(linkKeyPrefix):]), Document: it.Document, Tenant: it.Tenant,
		SHA256: it.SHA256, CreatedAt: it.CreatedAt.UTC(), ExpiresAt: it.ExpiresAt.UTC(), MaxUses: it.MaxUses,
		Uses: it.Uses, Disposition: it.Disposition, RevokedAt: it.RevokedAt.UTC()}, nil
}

// CreateLink stores l unless its id exists.
func (s *Store) CreateLink(ctx context.Context, l docstore.Link) error {
	const op = "dynamostore.CreateLink"
	created := l.CreatedAt.UTC()
	av, err := encoder.Encode(linkItem{ID: linkKeyPrefix + string(l.ID), Document: l.Document,
		CreatedKey: fmt.Sprintf("%019d#%s", max(created.UnixNano(), 0), l.ID), Tenant: l.Tenant, SHA256: l.SHA256,
		CreatedAt: created, ExpiresAt: l.ExpiresAt.UTC(), Uses: l.Uses, MaxUses: l.MaxUses,
		Disposition: l.Disposition, RevokedAt: l.RevokedAt})
	if err != nil {
		return docstore.E(op, docstore.KindInternal, fmt.Errorf("encode link %s: %w", l.ID, err))
	}
	_, err = s.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                aws.String(s.table),
		Item:                     av.(*types.AttributeValueMemberM).Value,
		ConditionExpression:      aws.String("attribute_not_exists(#id)"),
		ExpressionAttributeNames: map[string]string{"#id": attrID},
	})
	if err != nil {
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			return docstore.E(op, docstore.KindConflict, fmt.Sprintf("link %s already exists", l.ID), err)
		}
		return docstore.E(op, kindOf(err), fmt.Errorf("put link %s: %w", l.ID, err))
	}
	return nil
}

// Link returns link id, read consistently.
func (s *Store) Link(ctx context.Context, id docstore.LinkID) (docstore.Link, error) {
	const op = "dynamostore.Link"
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.table), Key: s.linkKey(id), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return docstore.Link{}, docstore.E(op, kindOf(err), fmt.Errorf("get link %s: %w", id, err))
	}
	if len(out.Item) == 0 {
		return docstore.Link{}, linkNotFound(op, id)
	}
	l, err := decodeLink(out.Item)
	if err != nil {
		return docstore.Link{}, docstore.E(op, docstore.KindInternal, fmt.Errorf("link item %s: %w", id, err))
	}
	return l, nil
}

func linkNotFound(op docstore.Op, id docstore.LinkID) error {
	return docstore.E(op, docstore.KindNotFound, fmt.Sprintf("link %s not found", id))
}

// Links returns every link of doc, newest first: a Query of link-index,
// which DynamoDB updates asynchronously (a link made a moment ago may take
// a moment to be listed; DynamoDB Local lists it at once).
func (s *Store) Links(ctx context.Context, doc docstore.ID) ([]docstore.Link, error) {
	const op = "dynamostore.Links"
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		IndexName:                 aws.String(LinkIndexName),
		KeyConditionExpression:    aws.String("#doc = :doc"),
		ExpressionAttributeNames:  map[string]string{"#doc": attrLinkDocument},
		ExpressionAttributeValues: map[string]types.AttributeValue{":doc": str(string(doc))},
		ScanIndexForward:          aws.Bool(false),
	}
	var links []docstore.Link
	for {
		out, err := s.client.Query(ctx, in)
		if err != nil {
			return nil, docstore.E(op, kindOf(err), fmt.Errorf("query %s of %s: %w", LinkIndexName, doc, err))
		}
		for _, item := range out.Items {
			l, err := decodeLink(item)
			if err != nil {
				return nil, docstore.E(op, docstore.KindInternal, fmt.Errorf("listed link: %w", err))
			}
			links = append(links, l)
		}
		if len(out.LastEvaluatedKey) == 0 {
			return links, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// UseLink counts one use of link id of doc: one UpdateItem whose condition
// is that the link is of doc, not revoked, not expired at now and has a
// use left, so that of racing uses exactly as many succeed as it had left.
func (s *Store) UseLink(ctx context.Context, id docstore.LinkID, doc docstore.ID, now time.Time) (docstore.Link, error) {
	const op = "dynamostore.UseLink"
	out, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(s.table),
		Key:       s.linkKey(id),
		ConditionExpression: aws.String("#doc = :doc AND attribute_not_exists(#revoked) AND #expires > :now" +
			" AND (attribute_not_exists(#max) OR #uses < #max)"),
		UpdateExpression: aws.String("SET #uses = #uses + :one"),
		ExpressionAttributeNames: map[string]string{"#doc": attrLinkDocument, "#revoked": attrRevokedAt,
			"#expires": attrExpiresAt, "#max": attrMaxUses, "#uses": attrUses},
		ExpressionAttributeValues: map[string]types.AttributeValue{":doc": str(string(doc)),
			":now": num(now.Unix()), ":one": num(1)},
		ReturnValues:                        types.ReturnValueAllNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err != nil {
		var ccf *types.ConditionalCheckFailedException
		if !errors.As(err, &ccf) {
			return docstore.Link{}, docstore.E(op, kindOf(err), fmt.Errorf("use link %s: %w", id, err))
		}
		old, err := s.oldLink(ctx, op, id, ccf.Item)
		if err != nil {
			return docstore.Link{}, err
		}
		if old.Document != doc {
			return docstore.Link{}, linkNotFound(op, id)
		}
		return docstore.Link{}, docstore.LinkGone(op, old, now)
	}
	l, err := decodeLink(out.Attributes)
	if err != nil {
		return docstore.Link{}, docstore.E(op, docstore.KindInternal, fmt.Errorf("link item %s: %w", id, err))
	}
	return l, nil
}

// oldLink is the link a failed condition found: the item DynamoDB returned
// with the failure when it did (DynamoDB Local may not), else read now;
// KindNotFound when there is none.
func (s *Store) oldLink(ctx context.Context, op docstore.Op, id docstore.LinkID, item map[string]types.AttributeValue) (docstore.Link, error) {
	if len(item) == 0 {
		return s.Link(ctx, id)
	}
	l, err := decodeLink(item)
	if err != nil {
		return docstore.Link{}, docstore.E(op, docstore.KindInternal, fmt.Errorf("link item %s: %w", id, err))
	}
	return l, nil
}

// UnuseLink gives back one use of link id, never below zero.
func (s *Store) UnuseLink(ctx context.Context, id docstore.LinkID) error {
	const op = "dynamostore.UnuseLink"
	_, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       s.linkKey(id),
		ConditionExpression:       aws.String("#uses > :zero"),
		UpdateExpression:          aws.String("SET #uses = #uses - :one"),
		ExpressionAttributeNames:  map[string]string{"#uses": attrUses},
		ExpressionAttributeValues: map[string]types.AttributeValue{":zero": num(0), ":one": num(1)},
	})
	var ccf *types.ConditionalCheckFailedException
	if err != nil && !errors.As(err, &ccf) { // a failed condition: nothing to give back
		return docstore.E(op, kindOf(err), fmt.Errorf("give back a use of link %s: %w", id, err))
	}
	return nil
}

// RevokeLink marks link id revoked at now unless it already is.
func (s *Store) RevokeLink(ctx context.Context, id docstore.LinkID, now time.Time) error {
	const op = "dynamostore.RevokeLink"
	_, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                           aws.String(s.table),
		Key:                                 s.linkKey(id),
		ConditionExpression:                 aws.String("attribute_exists(#id) AND attribute_not_exists(#revoked)"),
		UpdateExpression:                    aws.String("SET #revoked = :now"),
		ExpressionAttributeNames:            map[string]string{"#id": attrID, "#revoked": attrRevokedAt},
		ExpressionAttributeValues:           map[string]types.AttributeValue{":now": str(now.UTC().Format(time.RFC3339Nano))},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	})
	if err == nil {
		return nil
	}
	var ccf *types.ConditionalCheckFailedException
	if !errors.As(err, &ccf) {
		return docstore.E(op, kindOf(err), fmt.Errorf("revoke link %s: %w", id, err))
	}
	_, err = s.oldLink(ctx, op, id, ccf.Item) // revoked already, or missing
	return err
}

// DeleteLinks removes every link of doc.
func (s *Store) DeleteLinks(ctx context.Context, doc docstore.ID) error {
	const op = "dynamostore.DeleteLinks"
	links, err := s.Links(ctx, doc)
	if err != nil {
		return err
	}
	for _, l := range links {
		if _, err := s.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(s.table), Key: s.linkKey(l.ID)}); err != nil {
			return docstore.E(op, kindOf(err), fmt.Errorf("delete link %s: %w", l.ID, err))
		}
	}
	return nil
}
