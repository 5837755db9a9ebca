package awsbackends_test

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	streamtypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/imagodocs/imago/internal/apigw"
	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/dynamostore"
	"github.com/imagodocs/imago/internal/linktoken"
	"github.com/imagodocs/imago/internal/testenv"
)

// TestStreamRemovesAnExpiredDocument: a document expires; DynamoDB removes
// its item (here a DeleteItem, as DynamoDB Local runs no TTL), and the
// REMOVE record DynamoDB Local's own stream holds, marked as AWS marks a
// TTL deletion, is handed to the metadata function as Lambda would hand it:
// the blob, the links and the cache entry go, a redelivery finds nothing
// to do, and the stream's other records (the API's own writes and deletes,
// a share link's item) are ignored.
func TestStreamRemovesAnExpiredDocument(t *testing.T) {
	cfg := awsConfig(t, true)
	set := open(t, cfg)
	ctx := context.Background()
	var skew atomic.Int64
	svc := docstore.NewService(set.Backends, docstore.Config{LinkKey: bytes.Repeat([]byte{5}, linktoken.SecretSize),
		Now: func() time.Time { return time.Now().Add(time.Duration(skew.Load()) * time.Second) }}, nil)
	fn := apigw.NewMetadataFunction(svc, apigw.Options{}, dynamostore.DecodeStreamImage)
	tenant := docstore.Tenant("stream-" + string(docstore.NewID()))
	raw := dynamodb.NewFromConfig(testenv.AWSConfig(t, "DYNAMODB"))
	tail := testenv.TailStream(t, cfg.Table)

	doc := []byte("an identity document that expires")
	d, err := svc.Upload(ctx, docstore.UploadRequest{Tenant: tenant, Body: doc, ExpiresIn: aws.Int64(60)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateLink(ctx, tenant, d.ID, docstore.LinkRequest{}); err != nil {
		t.Fatal(err)
	}
	kept, err := svc.Upload(ctx, docstore.UploadRequest{Tenant: tenant, Body: doc})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("document %s, kept %s", d.ID, kept.ID)
	rec, err := set.Meta.Get(ctx, d.ID)
	if err != nil || rec.RemoveAt().IsZero() {
		t.Fatalf("the record's TTL: %v %v", rec.RemoveAt(), err)
	}

	// The stream's record of the upload's own write: not a removal.
	write := tail.Find(t, func(r streamtypes.Record) bool {
		return testenv.RecordKey(r) == string(d.ID) && r.EventName == streamtypes.OperationTypeModify
	})
	if _, err := fn.Invoke(ctx, testenv.LambdaStreamEvent(t, []streamtypes.Record{write}, false)); err != nil {
		t.Fatal(err)
	}

	skew.Store(61)
	for _, id := range []docstore.ID{d.ID, kept.ID} {
		if _, err := raw.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(cfg.Table),
			Key: map[string]ddbtypes.AttributeValue{"id": &ddbtypes.AttributeValueMemberS{Value: string(id)}}}); err != nil {
			t.Fatal(err)
		}
	}
	removal := tail.Find(t, func(r streamtypes.Record) bool {
		return testenv.RecordKey(r) == string(d.ID) && r.EventName == streamtypes.OperationTypeRemove
	})
	userDelete := tail.Find(t, func(r streamtypes.Record) bool {
		return testenv.RecordKey(r) == string(kept.ID) && r.EventName == streamtypes.OperationTypeRemove
	})
	// A user's delete (not DynamoDB's TTL) is the API's: ignored here.
	if _, err := fn.Invoke(ctx, testenv.LambdaStreamEvent(t, []streamtypes.Record{userDelete}, false)); err != nil {
		t.Fatal(err)
	}
	if _, err := set.Blobs.Get(ctx, kept.ID, 0, -1); err != nil {
		t.Fatalf("a user delete's stream record removed the blob: %v", err)
	}
	for attempt := range 2 { // the second is a redelivery
		if _, err := fn.Invoke(ctx, testenv.LambdaStreamEvent(t, []streamtypes.Record{removal}, true)); err != nil {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
	}
	if _, err := set.Blobs.Get(ctx, rec.Blob(), 0, -1); !docstore.IsNotFound(err) {
		t.Fatalf("the blob after the TTL removal: %v", err)
	}
	if links, err := set.Links.Links(ctx, d.ID); err != nil || len(links) != 0 {
		t.Fatalf("the links after the TTL removal: %d %v", len(links), err)
	}
	if got, err := set.Cache.Get(ctx, d.ID); err != nil || got != nil {
		t.Fatalf("the cache entry after the TTL removal: %v %v", got, err)
	}
	set.Blobs.Delete(ctx, kept.ID)
}
