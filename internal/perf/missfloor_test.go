//go:build linux

package perf

import (
	"context"
	"crypto/rand"
	"io"
	"os"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/imagodocs/imago/internal/backends/awsbackends"
	"github.com/imagodocs/imago/internal/config"
	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/s3store"
	"github.com/imagodocs/imago/internal/testenv"
)

// BenchmarkMissFloor1MiB measures, with plain SDK clients on the local
// servers, the calls a 1 MiB miss cannot do without, each on its own and
// as the read path chains them: the record's GetItem (the blob's key, size
// and wrapped data key are in it), the KMS Decrypt of the data key, the S3
// GetObject of the sealed blob, then the GetItem followed by the GetObject
// (the miss as it is: the object is fetched once the record is read), and
// the two at once (a miss that fetched the blob by the document id while
// the record is read). BenchmarkMiss1MiB's ratio cannot go below the
// sequential pair's over the GetObject alone: scripts/bench prints both.
func BenchmarkMissFloor1MiB(b *testing.B) {
	env := testenv.Require(b, testenv.AWSVars...)
	ctx := context.Background()
	cfg, err := config.FromEnv(func(k string) string {
		if k == "IMAGO_REDIS_URL" {
			return ""
		}
		return os.Getenv(k)
	})
	if err != nil {
		b.Fatal(err)
	}
	set, err := awsbackends.Open(ctx, cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer set.Close()
	origin := set.Backends
	origin.Cache = nil
	origin.Audit = nil // the miss alone, as BenchmarkMiss1MiB measures it
	svc := docstore.NewService(origin, docstore.Config{}, nil)
	doc := make([]byte, 1<<20)
	rand.Read(doc)
	created, err := svc.Upload(ctx, docstore.UploadRequest{Tenant: "bench", Filename: "doc.bin",
		ContentType: "application/octet-stream", Body: doc})
	if err != nil {
		b.Fatal(err)
	}
	defer svc.Delete(ctx, "bench", created.ID)
	rec, err := origin.Meta.Get(ctx, created.ID)
	if err != nil {
		b.Fatal(err)
	}

	awsCfg := testenv.AWSConfig(b, "S3", "DYNAMODB", "KMS")
	ddb := dynamodb.NewFromConfig(awsCfg)
	kc := kms.NewFromConfig(awsCfg)
	s3c := s3.NewFromConfig(awsCfg, func(o *s3.Options) { o.UsePathStyle = true })
	getItem := func(b *testing.B) {
		_, err := ddb.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(env["IMAGO_TABLE"]), ConsistentRead: aws.Bool(true),
			Key: map[string]types.AttributeValue{"id": &types.AttributeValueMemberS{Value: string(rec.ID)}}})
		if err != nil {
			b.Fatal(err)
		}
	}
	getObject := func(b *testing.B) {
		out, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(env["IMAGO_BUCKET"]),
			Key: aws.String(s3store.KeyPrefix + string(rec.Blob()))})
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, out.Body)
		out.Body.Close()
		if err != nil || n <= int64(len(doc)) {
			b.Fatalf("get object: %d bytes, %v", n, err)
		}
	}
	b.Run("baseline=s3-get-object", func(b *testing.B) {
		for b.Loop() {
			getObject(b)
		}
	})
	b.Run("dynamodb-get-item", func(b *testing.B) {
		for b.Loop() {
			getItem(b)
		}
	})
	b.Run("kms-decrypt", func(b *testing.B) {
		for b.Loop() {
			if _, err := kc.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: rec.WrappedKey, KeyId: aws.String(rec.KeyID),
				EncryptionContext: docstore.ContextFor(rec.Tenant, rec.ID)}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("get-item-then-s3-get", func(b *testing.B) {
		for b.Loop() {
			getItem(b)
			getObject(b)
		}
	})
	b.Run("get-item-with-s3-get", func(b *testing.B) {
		for b.Loop() {
			var wg sync.WaitGroup
			wg.Go(func() { getItem(b) })
			getObject(b)
			wg.Wait()
		}
	})
}
