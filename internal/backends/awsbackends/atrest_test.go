package awsbackends_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/s3store"
	"github.com/imagodocs/imago/internal/testenv"
)

// TestAWSAtRest looks at what an upload leaves in S3, DynamoDB and KMS
// with the services' own APIs, as an auditor would.
func TestAWSAtRest(t *testing.T) {
	cfg := awsConfig(t, false)
	ctx := context.Background()
	set := open(t, cfg)
	svc := docstore.NewService(set.Backends, docstore.Config{}, nil)
	awsCfg := testenv.AWSConfig(t)
	s3c, ddb, kmsc := s3store.NewClient(awsCfg), dynamodb.NewFromConfig(awsCfg), kms.NewFromConfig(awsCfg)

	tenant := docstore.Tenant("audit-" + string(docstore.NewID()))
	doc := randomDoc(3_000_000)
	d, err := svc.Upload(ctx, docstore.UploadRequest{Tenant: tenant, Filename: "passport.jpg", Body: doc})
	if err != nil {
		t.Fatal(err)
	}
	other, err := svc.Upload(ctx, docstore.UploadRequest{Tenant: tenant, Body: []byte("another document")})
	if err != nil {
		t.Fatal(err)
	}

	obj, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: &cfg.Bucket, Key: aws.String("blobs/" + string(d.ID))})
	if err != nil {
		t.Fatal(err)
	}
	blob, _ := io.ReadAll(obj.Body)
	obj.Body.Close()
	testenv.AssertNoPlaintext(t, "the S3 object", blob, doc)

	item, err := ddb.GetItem(ctx, &dynamodb.GetItemInput{TableName: &cfg.Table, ConsistentRead: aws.Bool(true),
		Key: map[string]ddbtypes.AttributeValue{"id": &ddbtypes.AttributeValueMemberS{Value: string(d.ID)}}})
	if err != nil || item.Item == nil {
		t.Fatalf("GetItem: %v", err)
	}
	wrapped, ok := item.Item["wrapped_key"].(*ddbtypes.AttributeValueMemberB)
	if !ok || len(wrapped.Value) < 32 {
		t.Fatalf("item has no wrapped key: %v", item.Item["wrapped_key"])
	}
	keyID := item.Item["key_id"].(*ddbtypes.AttributeValueMemberS).Value
	plain, err := kmsc.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: wrapped.Value, KeyId: &keyID,
		EncryptionContext: docstore.ContextFor(tenant, d.ID)})
	if err != nil || len(plain.Plaintext) != 32 {
		t.Fatalf("KMS Decrypt under the document's context: %v", err)
	}
	for name, av := range item.Item {
		var raw []byte
		switch v := av.(type) {
		case *ddbtypes.AttributeValueMemberB:
			raw = v.Value
		case *ddbtypes.AttributeValueMemberS:
			raw = []byte(v.Value)
		}
		if bytes.Contains(raw, plain.Plaintext) {
			t.Fatalf("item attribute %s holds the plaintext data key", name)
		}
	}
	_, err = kmsc.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: wrapped.Value, KeyId: &keyID,
		EncryptionContext: docstore.ContextFor(tenant, other.ID)})
	var invalid *kmstypes.InvalidCiphertextException
	if !errors.As(err, &invalid) {
		t.Fatalf("KMS Decrypt under another document's context: %v, want InvalidCiphertextException", err)
	}

	if err := svc.Delete(ctx, tenant, d.ID); err != nil {
		t.Fatal(err)
	}
	item, err = ddb.GetItem(ctx, &dynamodb.GetItemInput{TableName: &cfg.Table, ConsistentRead: aws.Bool(true),
		Key: map[string]ddbtypes.AttributeValue{"id": &ddbtypes.AttributeValueMemberS{Value: string(d.ID)}}})
	if err != nil || item.Item != nil {
		t.Fatalf("item after delete: %v %v", item.Item, err)
	}
	if _, err := s3c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &cfg.Bucket, Key: aws.String("blobs/" + string(d.ID))}); err == nil {
		t.Fatal("S3 object still there after delete")
	}
}
