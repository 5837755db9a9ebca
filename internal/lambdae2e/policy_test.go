//go:build linux

package lambdae2e

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	streamtypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/imagodocs/imago/internal/s3store"
	"github.com/imagodocs/imago/internal/testenv"
)

// TestLambdaE2E_RetentionTrashHold drives a document's policy through the
// functions under the runtime emulator, with a deletion delay: retention
// at upload, PATCH, the trash, restore, the legal hold, purge; and the
// metadata function's handling of DynamoDB Local's own stream record of
// the item's removal, marked as a TTL deletion.
func TestLambdaE2E_RetentionTrashHold(t *testing.T) {
	t.Parallel()
	vals := requireEnv(t)
	up := startFunction(t, fnUpload)
	down := startFunction(t, fnDownload, "IMAGO_DELETION_DELAY=1h")
	meta := startFunction(t, fnMetadata, "IMAGO_DELETION_DELAY=1h")
	tenant := "e2e-policy-" + randomHex(8)
	call := func(f *function, what, route, id string, headers map[string]string, body string, status int) reply {
		t.Helper()
		r := apiRequest{sample: "", route: route, id: id, sub: tenant, headers: headers, body: []byte(body)}
		return f.call(t, apiEvent(t, r)).expect(t, what, status)
	}
	jsonCT := map[string]string{"content-type": "application/json"}

	doc := randomBytes(300_000)
	r := up.call(t, apiEvent(t, apiRequest{sample: "upload", route: "POST /documents", sub: tenant,
		headers: map[string]string{"content-type": "application/pdf", "x-imago-expires-in": "7200"}, body: doc, binary: true})).expect(t, "upload with X-Imago-Expires-In", 201)
	var d document
	r.decode(t, "upload", &d)
	if time.Until(d.ExpiresAt) > 2*time.Hour || time.Until(d.ExpiresAt) < 119*time.Minute || d.LegalHold {
		t.Fatalf("an upload with an expiry: %+v", d)
	}
	up.call(t, apiEvent(t, apiRequest{sample: "upload", route: "POST /documents", sub: tenant,
		headers: map[string]string{"content-type": "text/plain", "x-imago-expires-in": "0"}, body: []byte("x")})).expectError(t, "X-Imago-Expires-In: 0", 400, "invalid")

	later := time.Now().Add(3 * time.Hour).UTC().Truncate(time.Second)
	call(meta, "PATCH", "PATCH /documents/{id}", d.ID, jsonCT, fmt.Sprintf(`{"expires_at":%q}`, later.Format(time.RFC3339)), 200).decode(t, "PATCH", &d)
	if !d.ExpiresAt.Equal(later) {
		t.Fatalf("PATCH: expires_at %v, want %v", d.ExpiresAt, later)
	}
	call(meta, "PATCH, in the past", "PATCH /documents/{id}", d.ID, jsonCT, `{"expires_at":"2001-01-01T00:00:00Z"}`, 400)

	// The trash: DELETE, gone for readers (a hit included), listed there,
	// restored whole.
	call(down, "content (a hit)", "GET /documents/{id}/content", d.ID, nil, "", 200)
	call(meta, "DELETE", "DELETE /documents/{id}", d.ID, nil, "", 204)
	call(down, "content in the trash", "GET /documents/{id}/content", d.ID, nil, "", 404)
	call(meta, "metadata in the trash", "GET /documents/{id}", d.ID, nil, "", 404)
	var trash struct {
		Documents []document `json:"documents"`
	}
	meta.call(t, apiEvent(t, apiRequest{route: "GET /documents", sub: tenant, query: map[string][]string{"trash": {"true"}}})).expect(t, "GET ?trash=true", 200).decode(t, "trash", &trash)
	if len(trash.Documents) != 1 || trash.Documents[0].ID != d.ID || trash.Documents[0].DeletedAt.IsZero() || trash.Documents[0].PurgeAt.IsZero() {
		t.Fatalf("the trash: %+v", trash.Documents)
	}
	call(meta, "restore", "POST /documents/{id}/restore", d.ID, nil, "", 200)
	r = call(down, "content restored", "GET /documents/{id}/content", d.ID, nil, "", 200)
	if !bytes.Equal(r.body, doc) {
		t.Fatal("a restored document's bytes differ")
	}
	call(meta, "restore, not in the trash", "POST /documents/{id}/restore", d.ID, nil, "", 409)

	// The hold.
	call(meta, "hold", "PUT /documents/{id}/legal-hold", d.ID, nil, "", 204)
	call(meta, "hold, again", "PUT /documents/{id}/legal-hold", d.ID, nil, "", 204)
	call(meta, "DELETE, held", "DELETE /documents/{id}", d.ID, nil, "", 409)
	meta.call(t, apiEvent(t, apiRequest{route: "DELETE /documents/{id}", id: d.ID, sub: tenant, query: map[string][]string{"purge": {"true"}}})).expect(t, "purge, held", 409)
	call(meta, "release", "DELETE /documents/{id}/legal-hold", d.ID, nil, "", 204)

	// The item's removal, as DynamoDB's TTL does it, and the stream's
	// record of it handed to the metadata function.
	awsCfg := testenv.AWSConfig(t)
	table := vals["IMAGO_TABLE"]
	tail := testenv.TailStream(t, table)
	ctx := context.Background()
	if _, err := dynamodb.NewFromConfig(awsCfg).DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(table),
		Key: map[string]ddbtypes.AttributeValue{"id": &ddbtypes.AttributeValueMemberS{Value: d.ID}}}); err != nil {
		t.Fatal(err)
	}
	removal := tail.Find(t, func(r streamtypes.Record) bool {
		return testenv.RecordKey(r) == d.ID && r.EventName == streamtypes.OperationTypeRemove
	})
	for range 2 { // a redelivery finds nothing left
		meta.invoke(t, testenv.LambdaStreamEvent(t, []streamtypes.Record{removal}, true))
	}
	c := s3store.NewClient(awsCfg)
	out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(vals["IMAGO_BUCKET"]), Prefix: aws.String(s3store.KeyPrefix + d.ID)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Contents) != 0 {
		t.Fatalf("the blob of a document DynamoDB removed is still stored: %v", aws.ToString(out.Contents[0].Key))
	}
	call(down, "content after the removal", "GET /documents/{id}/content", d.ID, nil, "", 404)
}
