package dynamostore_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/imagodocs/imago/internal/api"
	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/dynamostore"
	"github.com/imagodocs/imago/internal/storetest"
	"github.com/imagodocs/imago/internal/testenv"
)

// localDynamo returns a client of the local DynamoDB server and the table,
// or skips.
func localDynamo(t *testing.T) (*dynamodb.Client, string) {
	t.Helper()
	table := testenv.Require(t, "IMAGO_TABLE")["IMAGO_TABLE"]
	return dynamodb.NewFromConfig(testenv.AWSConfig(t, "DYNAMODB")), table
}

func TestDynamoStore_Contract(t *testing.T) {
	client, table := localDynamo(t)
	storetest.TestMetadataStore(t, func(t *testing.T) docstore.MetadataStore {
		return dynamostore.New(client, table)
	})
}

func TestDynamoStore_LinkContract(t *testing.T) {
	client, table := localDynamo(t)
	storetest.TestLinkStore(t, func(t *testing.T) docstore.LinkStore {
		return dynamostore.New(client, table)
	})
}

func TestDynamoStore_AuditContract(t *testing.T) {
	client, _ := localDynamo(t)
	table := testenv.Require(t, "IMAGO_AUDIT_TABLE")["IMAGO_AUDIT_TABLE"]
	storetest.TestAuditLog(t, func(t *testing.T) docstore.AuditLog {
		return dynamostore.NewAuditStore(client, table)
	})
}

// TestDynamoStore_ItemLayout checks the items themselves: what the listing
// index and the TTL rely on, and that no plaintext key is ever written.
func TestDynamoStore_ItemLayout(t *testing.T) {
	client, table := localDynamo(t)
	s := dynamostore.New(client, table)
	ctx := t.Context()
	created := time.Date(2025, 3, 4, 5, 6, 7, 891234567, time.FixedZone("CET", 3600))
	rec := docstore.Record{
		Document:   docstore.Document{ID: docstore.NewID(), Descriptor: docstore.Descriptor{Filename: "a.pdf", ContentType: "application/pdf"}, Status: docstore.StatusPending, CreatedAt: created, Metadata: map[string]string{"k": "v"}},
		Tenant:     docstore.Tenant("layout-" + string(docstore.NewID())),
		WrappedKey: []byte{1, 2, 3}, KeyID: "arn:aws:kms:us-east-1:111122223333:key/x",
		FormatVersion: 1, SegmentSize: 65536,
		ExpiresAt: time.Unix(1_900_000_000, 0),
	}
	if err := s.Create(ctx, rec); err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { s.Delete(context.Background(), rec.ID) })

	item := rawItem(t, client, table, rec.ID)
	if got := strAttr(item, "tenant_listed"); got != string(rec.Tenant) {
		t.Errorf("a pending item has tenant_listed %q, want the tenant: it must be listed, to be found and deleted", got)
	}
	if got := numAttr(item, "expires_at"); got != "1900000000" {
		t.Errorf("expires_at = %q, want the epoch seconds 1900000000", got)
	}
	wantKey := "1741061167891234000#" + string(rec.ID) // UTC, kept to the µs
	if got := strAttr(item, "created_key"); got != wantKey {
		t.Errorf("created_key = %q, want %q", got, wantKey)
	}
	if got := strAttr(item, "created_at"); got != "2025-03-04T04:06:07.891234Z" {
		t.Errorf("created_at = %q, want RFC 3339 in UTC", got)
	}
	if b, ok := item["wrapped_key"].(*types.AttributeValueMemberB); !ok || string(b.Value) != "\x01\x02\x03" {
		t.Errorf("wrapped_key = %#v, want B 010203", item["wrapped_key"])
	}
	for name := range item {
		if regexp.MustCompile(`(?i)plain|secret|data_key$`).MatchString(name) {
			t.Errorf("item has attribute %q", name)
		}
	}

	if _, err := s.MarkAvailable(ctx, rec.ID, 99, strings.Repeat("ab", 32), rec.ID, time.Time{}); err != nil {
		t.Fatalf("MarkAvailable: %v", err)
	}
	item = rawItem(t, client, table, rec.ID)
	if got := strAttr(item, "tenant_listed"); got != string(rec.Tenant) {
		t.Errorf("after MarkAvailable tenant_listed = %q, want the tenant", got)
	}
	if _, ok := item["expires_at"]; ok {
		t.Errorf("after MarkAvailable the item still expires")
	}
	if got := strAttr(item, "status"); got != "available" {
		t.Errorf("after MarkAvailable status = %q", got)
	}
	if got := numAttr(item, "size"); got != "99" {
		t.Errorf("after MarkAvailable size = %q", got)
	}
}

func TestDynamoStore_MissingTableIsInternal(t *testing.T) {
	client, _ := localDynamo(t)
	s := dynamostore.New(client, "imago-no-such-table-"+string(docstore.NewID()[:8]))
	_, err := s.Get(t.Context(), docstore.NewID())
	if k := docstore.KindOf(err); k != docstore.KindInternal {
		t.Fatalf("Get from a missing table: a %s error (%v), want internal", k, err)
	}
}

func rawItem(t *testing.T, client *dynamodb.Client, table string, id docstore.ID) map[string]types.AttributeValue {
	t.Helper()
	out, err := client.GetItem(t.Context(), &dynamodb.GetItemInput{
		TableName: aws.String(table), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{"id": &types.AttributeValueMemberS{Value: string(id)}},
	})
	if err != nil || len(out.Item) == 0 {
		t.Fatalf("GetItem %s: %v (%d attributes)", id, err, len(out.Item))
	}
	return out.Item
}

func strAttr(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func numAttr(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberN); ok {
		return v.Value
	}
	return ""
}

// TestDynamoStore_AuditTampering changes, removes and reorders records
// stored in the audit table, as someone with write access to it could
// (the functions cannot), and checks that the chains read back show it,
// naming the first broken record.
func TestDynamoStore_AuditTampering(t *testing.T) {
	client, _ := localDynamo(t)
	table := testenv.Require(t, "IMAGO_AUDIT_TABLE")["IMAGO_AUDIT_TABLE"]
	s := dynamostore.NewAuditStore(client, table)
	ctx := t.Context()
	for _, tamper := range []struct {
		name string
		do   func(t *testing.T, key func(seq int64) map[string]types.AttributeValue)
		at   int64 // the seq VerifyAudit names
		why  string
	}{
		{"change", func(t *testing.T, key func(int64) map[string]types.AttributeValue) {
			update(t, client, table, key(3), "SET #s = :v", map[string]string{"#s": "status"}, map[string]types.AttributeValue{":v": &types.AttributeValueMemberN{Value: "200"}})
		}, 3, "changed"},
		{"remove", func(t *testing.T, key func(int64) map[string]types.AttributeValue) {
			if _, err := client.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(table), Key: key(2)}); err != nil {
				t.Fatal(err)
			}
		}, 3, "removed before it"},
		{"reorder", func(t *testing.T, key func(int64) map[string]types.AttributeValue) {
			// Records 2 and 3 trade places (their seq), each otherwise whole.
			a, b := get(t, client, table, key(2)), get(t, client, table, key(3))
			a["seq"], b["seq"] = b["seq"], a["seq"]
			for _, it := range []map[string]types.AttributeValue{a, b} {
				if _, err := client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: it}); err != nil {
					t.Fatal(err)
				}
			}
		}, 2, "changed"},
	} {
		t.Run(tamper.name, func(t *testing.T) {
			tenant := docstore.Tenant("tamper-" + string(docstore.NewID()))
			svc := docstore.NewService(docstore.Backends{Audit: s}, docstore.Config{}, nil)
			for i := range 4 {
				if err := svc.Audit(ctx, docstore.AuditEntry{Tenant: tenant, Actor: "a", Action: "read", Status: 404 + i}); err != nil {
					t.Fatal(err)
				}
			}
			recs, err := s.Query(ctx, tenant, docstore.AuditQuery{}, nil, 100)
			if err != nil || len(recs) != 4 || api.VerifyAudit(recs) != nil {
				t.Fatalf("before: %d records, %v", len(recs), err)
			}
			chain := recs[0].Chain
			sum := sha256.Sum256([]byte(tenant))
			key := func(seq int64) map[string]types.AttributeValue {
				return map[string]types.AttributeValue{"chain_key": &types.AttributeValueMemberS{Value: hex.EncodeToString(sum[:16]) + "/" + chain},
					"seq": &types.AttributeValueMemberN{Value: strconv.FormatInt(seq, 10)}}
			}
			tamper.do(t, key)
			recs, err = s.Query(ctx, tenant, docstore.AuditQuery{}, nil, 100)
			if err != nil {
				t.Fatal(err)
			}
			b := api.VerifyAudit(recs)
			if b == nil || b.Record.Seq != tamper.at || b.Why != tamper.why {
				t.Fatalf("after a %s: %v, want seq %d %s", tamper.name, b, tamper.at, tamper.why)
			}
		})
	}
}

func update(t *testing.T, c *dynamodb.Client, table string, key map[string]types.AttributeValue, expr string, names map[string]string, values map[string]types.AttributeValue) {
	t.Helper()
	if _, err := c.UpdateItem(t.Context(), &dynamodb.UpdateItemInput{TableName: aws.String(table), Key: key,
		UpdateExpression: aws.String(expr), ExpressionAttributeNames: names, ExpressionAttributeValues: values}); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, c *dynamodb.Client, table string, key map[string]types.AttributeValue) map[string]types.AttributeValue {
	t.Helper()
	out, err := c.GetItem(t.Context(), &dynamodb.GetItemInput{TableName: aws.String(table), Key: key, ConsistentRead: aws.Bool(true)})
	if err != nil || len(out.Item) == 0 {
		t.Fatalf("get %v: %v", key, err)
	}
	return out.Item
}
