package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/testenv"
)

// shortQueries is a DynamoAPI whose Query returns at most one item per
// call, as a real index may when a page hits the 1 MB read limit; only
// Query is implemented.
type shortQueries struct {
	DynamoAPI
	items   []map[string]types.AttributeValue // newest first
	queries []*dynamodb.QueryInput
}

func (f *shortQueries) Query(_ context.Context, in *dynamodb.QueryInput, _ ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	cp := *in
	f.queries = append(f.queries, &cp)
	start := 0
	if k := in.ExclusiveStartKey; k != nil {
		after := k[attrCreatedKey].(*types.AttributeValueMemberS).Value
		for start < len(f.items) && f.items[start][attrCreatedKey].(*types.AttributeValueMemberS).Value >= after {
			start++
		}
	}
	if start >= len(f.items) {
		return &dynamodb.QueryOutput{}, nil
	}
	item := f.items[start]
	out := &dynamodb.QueryOutput{Items: []map[string]types.AttributeValue{item}}
	if start+1 < len(f.items) || start == 0 { // also a LastEvaluatedKey on the index's last item, as DynamoDB may send
		out.LastEvaluatedKey = map[string]types.AttributeValue{
			attrID: item[attrID], attrTenantListed: item[attrTenantListed], attrCreatedKey: item[attrCreatedKey],
		}
	}
	return out, nil
}

func TestDynamoStore_ListFillsPagesFromShortQueries(t *testing.T) {
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	f := &shortQueries{}
	var ids []docstore.ID
	for i := range 5 {
		rec := docstore.Record{
			Document: docstore.Document{ID: docstore.ID(fmt.Sprintf("id-%d", i)), Status: docstore.StatusAvailable,
				CreatedAt: base.Add(-time.Duration(i) * time.Minute)},
			Tenant: "t",
		}
		item, _ := encode(rec)
		f.items = append(f.items, item)
		ids = append(ids, rec.ID)
	}
	s := New(f, "table")
	recs, err := s.List(t.Context(), "t", nil, 3)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(recs) != 3 || recs[0].ID != ids[0] || recs[2].ID != ids[2] {
		t.Fatalf("first page: %v", recs)
	}
	if len(f.queries) != 3 || aws.ToInt32(f.queries[1].Limit) != 2 || aws.ToInt32(f.queries[2].Limit) != 1 {
		t.Fatalf("%d queries; want 3 with limits 3, 2, 1", len(f.queries))
	}
	if q := f.queries[0]; aws.ToString(q.IndexName) != IndexName || aws.ToBool(q.ScanIndexForward) || q.ExclusiveStartKey != nil {
		t.Fatalf("first query: index %q, forward %v, start %v", aws.ToString(q.IndexName), aws.ToBool(q.ScanIndexForward), q.ExclusiveStartKey)
	}

	f.queries = nil
	last := recs[2]
	recs, err = s.List(t.Context(), "t", &docstore.ListPosition{CreatedAt: last.CreatedAt, ID: last.ID}, 10)
	if err != nil {
		t.Fatalf("List after: %v", err)
	}
	if len(recs) != 2 || recs[0].ID != ids[3] || recs[1].ID != ids[4] {
		t.Fatalf("second page: %v", recs)
	}
	start := f.queries[0].ExclusiveStartKey
	if got := start[attrCreatedKey].(*types.AttributeValueMemberS).Value; got != createdKey(last.CreatedAt, last.ID) {
		t.Fatalf("ExclusiveStartKey created_key %q", got)
	}
	if got := start[attrTenantListed].(*types.AttributeValueMemberS).Value; got != "t" {
		t.Fatalf("ExclusiveStartKey tenant_listed %q", got)
	}
}

func TestDynamoStore_CreatedKeyOrder(t *testing.T) {
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	keys := []string{
		createdKey(base.Add(time.Hour), "a"),
		createdKey(base.Add(time.Microsecond), "b"),
		createdKey(base, "b"),
		createdKey(base, "a"),
		createdKey(time.Unix(9, 0), "z"),
	}
	for i := 1; i < len(keys); i++ {
		if keys[i-1] <= keys[i] {
			t.Errorf("%q sorts after %q; want newest first, then id descending", keys[i], keys[i-1])
		}
	}
	if k := keys[4]; len(k) != 19+1+1 {
		t.Errorf("created key %q is not 19 digits, '#', id", k)
	}
}

func TestDynamoStore_ErrorKinds(t *testing.T) {
	status := testenv.ResponseError
	for _, c := range []struct {
		name string
		err  error
		want docstore.Kind
	}{
		{"throughput", status(400, &types.ProvisionedThroughputExceededException{}), docstore.KindUnavailable},
		{"request limit", status(400, &types.RequestLimitExceeded{}), docstore.KindUnavailable},
		{"throttling", status(400, &smithy.GenericAPIError{Code: "ThrottlingException"}), docstore.KindUnavailable},
		{"internal server error", status(500, &types.InternalServerError{}), docstore.KindUnavailable},
		{"503", status(503, &smithy.GenericAPIError{Code: "ServiceUnavailable"}), docstore.KindUnavailable},
		{"connection reset", &smithyhttp.RequestSendError{Err: &net.OpError{Op: "read", Err: errors.New("connection reset by peer")}}, docstore.KindUnavailable},
		{"deadline", context.DeadlineExceeded, docstore.KindUnavailable},
		{"missing table", status(400, &types.ResourceNotFoundException{}), docstore.KindInternal},
		{"validation", status(400, &smithy.GenericAPIError{Code: "ValidationException"}), docstore.KindInternal},
		{"plain", errors.New("boom"), docstore.KindInternal},
	} {
		if got := kindOf(c.err); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

func TestDynamoStore_DecodeRejectsMalformedItems(t *testing.T) {
	good, _ := encode(docstore.Record{Document: docstore.Document{ID: "x", Status: docstore.StatusPending, CreatedAt: time.Now()}, Tenant: "t"})
	for name, mutate := range map[string]func(map[string]types.AttributeValue){
		"no id":     func(m map[string]types.AttributeValue) { delete(m, attrID) },
		"size as S": func(m map[string]types.AttributeValue) { m[attrSize] = str("12") },
		"bad time":  func(m map[string]types.AttributeValue) { m[attrCreatedAt] = str("yesterday") },
		"metadata N": func(m map[string]types.AttributeValue) {
			m[attrMetadata] = &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{"k": num(1)}}
		},
		"key as S":  func(m map[string]types.AttributeValue) { m[attrWrappedKey] = str("abc") },
		"no status": func(m map[string]types.AttributeValue) { delete(m, attrStatus) },
		"non-integer version": func(m map[string]types.AttributeValue) {
			m[attrFormatVersion] = &types.AttributeValueMemberN{Value: "1e3"}
		},
	} {
		item := make(map[string]types.AttributeValue, len(good))
		for k, v := range good {
			item[k] = v
		}
		mutate(item)
		if _, err := decode(item); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	if _, err := decode(good); err != nil {
		t.Fatalf("good item: %v", err)
	}
}
