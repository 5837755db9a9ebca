package dynamostore

import (
	"context"
	"encoding/hex"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/testenv"
)

// layoutRecords are records of every shape an item takes: pending with
// an expiry, available (listed), failed, uploaded in parts (a zero part
// size included), without a wrapped key, with empty but non-nil metadata,
// with times in another zone and below the microsecond.
func layoutRecords() map[string]docstore.Record {
	created := time.Date(2025, 3, 4, 5, 6, 7, 891234567, time.FixedZone("CET", 3600))
	base := func() docstore.Record {
		return docstore.Record{
			Document:   docstore.Document{ID: docstore.NewID(), Descriptor: docstore.Descriptor{Filename: "passport scan.pdf", ContentType: "application/pdf"}, Status: docstore.StatusPending, CreatedAt: created, Metadata: map[string]string{"case": "4711", "country": "FR"}},
			Tenant:     docstore.Tenant("layout-" + string(docstore.NewID())),
			WrappedKey: []byte{1, 2, 3, 0, 255}, KeyID: "arn:aws:kms:us-east-1:111122223333:key/x",
			FormatVersion: 1, SegmentSize: 65536,
			ExpiresAt: time.Unix(1_900_000_000, 0).In(time.FixedZone("X", -7200)),
		}
	}
	recs := map[string]docstore.Record{}
	recs["pending"] = base()

	r := base()
	r.Status, r.Size, r.SHA256, r.BlobID, r.ExpiresAt = docstore.StatusAvailable, 2816341, strings.Repeat("ab", 32), docstore.NewID(), time.Time{}
	recs["available"] = r

	r = base()
	r.Status, r.Failure = docstore.StatusFailed, "the staged object is 12 bytes, 13 were announced"
	recs["failed"] = r

	r = base()
	r.UploadID, r.PartSize = "2~abcdefghijklmnop", 16<<20
	recs["in parts"] = r

	r = base()
	r.UploadID, r.PartSize = "2~zero-part-size", 0
	recs["in parts, part size 0"] = r

	r = base()
	r.WrappedKey, r.KeyID, r.FormatVersion, r.SegmentSize = nil, "", 0, 0
	recs["no key"] = r

	r = base()
	r.Metadata, r.Filename, r.ContentType = map[string]string{}, "", ""
	recs["empty metadata and names"] = r

	r = base()
	r.Metadata = nil
	r.CreatedAt = time.Date(2026, 12, 1, 23, 59, 59, 999, time.UTC)
	recs["nil metadata"] = r
	return recs
}

// currentItem is the item of rec as it is written now: the hand-written
// mapping's, with two deliberate changes since: tenant_listed on every
// document (pending and failed ones are listed too), not only on
// available ones; and the version every change of the item counts
// (a new item's is 1).
func currentItem(rec docstore.Record) map[string]types.AttributeValue {
	item := handEncode(rec)
	item[attrTenantListed] = str(string(rec.Tenant))
	item[attrVersion] = num(1)
	return item
}

// encode writes exactly the items the hand-written mapping wrote (but for
// currentItem's change), and decode reads them back as it did.
func TestDynamoStore_EncodeMatchesHandMapping(t *testing.T) {
	for name, rec := range layoutRecords() {
		got, err := encode(rec)
		if err != nil {
			t.Fatalf("%s: encode: %v", name, err)
		}
		if g, w := render(got), render(currentItem(rec)); g != w {
			t.Errorf("%s: item\n got  %s\n want %s", name, g, w)
		}
		want, err := handDecode(handEncode(rec))
		if err != nil {
			t.Fatalf("%s: handDecode: %v", name, err)
		}
		back, err := decode(handEncode(rec))
		if err != nil {
			t.Fatalf("%s: decode of an item the hand mapping wrote: %v", name, err)
		}
		if !reflect.DeepEqual(back, want) {
			t.Errorf("%s: decoded\n got  %#v\n want %#v", name, back, want)
		}
	}
}

// The items on the real server: what Create writes is, attribute for
// attribute, what the hand-written mapping wrote (names, types, what is
// omitted, the TTL attribute, the index keys) but for currentItem's
// change; and an item written with that layout by an older deployment
// reads back through Get.
func TestDynamoStore_LayoutMatchesStoredItems(t *testing.T) {
	table := testenv.Require(t, "IMAGO_TABLE")["IMAGO_TABLE"]
	client := dynamodb.NewFromConfig(testenv.AWSConfig(t, "DYNAMODB"))
	s := New(client, table)
	ctx := t.Context()
	for name, rec := range layoutRecords() {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			t.Cleanup(func() { s.Delete(context.Background(), rec.ID) })
			if err := s.Create(ctx, rec); err != nil {
				t.Fatalf("Create: %v", err)
			}
			out, err := client.GetItem(ctx, &dynamodb.GetItemInput{
				TableName: aws.String(table), Key: s.key(rec.ID), ConsistentRead: aws.Bool(true),
			})
			if err != nil {
				t.Fatalf("GetItem: %v", err)
			}
			if g, w := render(out.Item), render(currentItem(rec)); g != w {
				t.Errorf("stored item\n got  %s\n want %s", g, w)
			}

			// The same record as an older deployment wrote it.
			old := rec
			old.ID = docstore.NewID()
			t.Cleanup(func() { s.Delete(context.Background(), old.ID) })
			if _, err := client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: handEncode(old)}); err != nil {
				t.Fatalf("PutItem of the hand-mapped item: %v", err)
			}
			got, err := s.Get(ctx, old.ID)
			if err != nil {
				t.Fatalf("Get of the hand-mapped item: %v", err)
			}
			want, _ := handDecode(handEncode(old))
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Get of the hand-mapped item\n got  %#v\n want %#v", got, want)
			}
		})
	}
}

// A pending item an older deployment wrote has no tenant_listed, so it is
// not in the listing index: finishing it, whichever way, puts it there.
func TestDynamoStore_OlderPendingItemIsListedOnceFinished(t *testing.T) {
	table := testenv.Require(t, "IMAGO_TABLE")["IMAGO_TABLE"]
	client := dynamodb.NewFromConfig(testenv.AWSConfig(t, "DYNAMODB"))
	s := New(client, table)
	ctx := t.Context()
	for _, status := range []docstore.Status{docstore.StatusFailed, docstore.StatusAvailable} {
		t.Run(string(status), func(t *testing.T) {
			rec := layoutRecords()["pending"]
			t.Cleanup(func() { s.Delete(context.Background(), rec.ID) })
			if _, err := client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: handEncode(rec)}); err != nil {
				t.Fatalf("PutItem of the hand-mapped item: %v", err)
			}
			if got, err := s.List(ctx, rec.Tenant, nil, 10); err != nil || len(got) != 0 {
				t.Fatalf("List before the item is finished: %v %v, want nothing (the older layout is not indexed)", got, err)
			}
			var err error
			if status == docstore.StatusFailed {
				_, err = s.MarkFailed(ctx, rec.ID, "the staged object is 1 byte, 2 were announced")
			} else {
				_, err = s.MarkAvailable(ctx, rec.ID, 2, strings.Repeat("cd", 32), docstore.NewID(), time.Time{})
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.List(ctx, rec.Tenant, nil, 10)
			if err != nil || len(got) != 1 || got[0].ID != rec.ID || got[0].Status != status {
				t.Fatalf("List once finished: %+v %v, want the one %s record", got, err, status)
			}
		})
	}
}

// render is a canonical text of an item: every attribute with its type,
// maps by sorted key, so that two items compare by what DynamoDB stores.
func render(item map[string]types.AttributeValue) string {
	keys := make([]string, 0, len(item))
	for k := range item {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString("{")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s: %s", k, renderValue(item[k]))
	}
	b.WriteString("}")
	return b.String()
}

func renderValue(av types.AttributeValue) string {
	switch v := av.(type) {
	case *types.AttributeValueMemberS:
		return fmt.Sprintf("S %q", v.Value)
	case *types.AttributeValueMemberN:
		return "N " + v.Value
	case *types.AttributeValueMemberB:
		return "B " + hex.EncodeToString(v.Value)
	case *types.AttributeValueMemberM:
		return "M " + render(v.Value)
	case *types.AttributeValueMemberNULL:
		return "NULL"
	}
	return fmt.Sprintf("%T", av)
}

// BenchmarkItem compares the attributevalue mapping with the hand-written
// one it replaced, on a typical available record, both ways:
//
//	go test -run '^$' -bench BenchmarkItem -benchmem ./internal/dynamostore/
func BenchmarkItem(b *testing.B) {
	rec := layoutRecords()["available"]
	rec.WrappedKey = make([]byte, 184) // a KMS ciphertext blob of a 256-bit key
	item := handEncode(rec)
	b.Run("encode/attributevalue", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := encode(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode/hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			handEncode(rec)
		}
	})
	b.Run("decode/attributevalue", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decode(item); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode/hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := handDecode(item); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGetItemRoundTrip is what the mapping's cost compares with: one
// consistent Get of that record from the local DynamoDB server.
func BenchmarkGetItemRoundTrip(b *testing.B) {
	table := testenv.Require(b, "IMAGO_TABLE")["IMAGO_TABLE"]
	s := New(dynamodb.NewFromConfig(testenv.AWSConfig(b, "DYNAMODB")), table)
	rec := layoutRecords()["available"]
	rec.WrappedKey = make([]byte, 184)
	if err := s.Create(b.Context(), rec); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Delete(context.Background(), rec.ID) })
	for b.Loop() {
		if _, err := s.Get(b.Context(), rec.ID); err != nil {
			b.Fatal(err)
		}
	}
}
