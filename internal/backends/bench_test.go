package backends_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/aws/aws-lambda-go/events"
	"github.com/redis/go-redis/v9"

	"github.com/imagodocs/imago/internal/apigw"
	"github.com/imagodocs/imago/internal/backends/awsbackends"
	"github.com/imagodocs/imago/internal/config"
	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/rediscache"
	"github.com/imagodocs/imago/internal/testenv"
)

// BenchmarkCacheHit1MiB compares a 1 MiB cache hit through the download
// function's whole Lambda path — event JSON in, response JSON out, as
// lambda.Start(h.Respond) runs it (functions/download) — with
// a plain go-redis GET of the same 1 MiB, in the same run. scripts/bench
// prints the ratio (the goal is at most 3×).
func BenchmarkCacheHit1MiB(b *testing.B) {
	redisURL := testenv.Require(b, "IMAGO_REDIS_URL")["IMAGO_REDIS_URL"]
	ctx := context.Background()
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		b.Fatal(err)
	}
	doc := randomDoc(1 << 20)

	b.Run("baseline=raw-redis-get", func(b *testing.B) {
		raw := redis.NewClient(opt)
		defer raw.Close()
		key := "imago:bench:raw:" + string(docstore.NewID())
		if err := raw.Set(ctx, key, doc, time.Minute).Err(); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(doc)))
		for b.Loop() {
			if v, err := raw.Get(ctx, key).Bytes(); err != nil || len(v) != len(doc) {
				b.Fatal(err)
			}
		}
	})

	for _, sealed := range []bool{false, true} {
		name := "handler-hit"
		if sealed {
			name = "handler-hit-sealed"
		}
		b.Run(name, func(b *testing.B) {
			client, err := rediscache.NewClient(redisURL, rediscache.ClientOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer client.Close()
			var key []byte
			if sealed {
				key = randomDoc(32)
			}
			cache := rediscache.New(client, rediscache.Options{TTL: time.Minute, MaxBytes: 8 << 20, SealKey: key})
			id := docstore.NewID()
			_, claim, err := cache.Claim(ctx, id)
			if err != nil || claim == docstore.NoClaim {
				b.Fatalf("Claim: %q %v", claim, err)
			}
			if err := cache.Fill(ctx, id, claim, &docstore.CachedDocument{Tenant: "bench", Descriptor: docstore.Descriptor{Filename: "doc.pdf", ContentType: "application/pdf", Size: int64(len(doc)), SHA256: "00"}, Body: doc}); err != nil {
				b.Fatal(err)
			}
			// A hit touches no other backend: none is given.
			svc := docstore.NewService(docstore.Backends{Cache: cache}, docstore.Config{}, nil)
			h := apigw.New(svc, apigw.Download, apigw.Options{})
			payload := downloadEvent(id, "bench")
			b.SetBytes(int64(len(doc)))
			for b.Loop() {
				out, err := h.Respond(ctx, payload) // as lambda.Start(h.Respond) calls it
				if err != nil || len(out.Bytes()) < len(doc) {
					b.Fatalf("invoke: %v", err)
				}
				out.Close() // as the runtime does once it has sent the response
			}
		})
	}
}

// BenchmarkMiss1MiB compares a 1 MiB download that misses — with no cache
// at all, so every request reads the DynamoDB item, unwraps the data key
// with KMS and reads the sealed blob from S3, on the local servers —
// through the download function's Lambda path, with a raw SDK GetObject of
// the same sealed object, in the same run. scripts/bench prints the ratio.
func BenchmarkMiss1MiB(b *testing.B) {
	env := testenv.Require(b, testenv.AWSVars...)
	awsCfg := testenv.AWSConfig(b, "S3", "DYNAMODB", "KMS")
	cfg, err := config.FromEnv(func(k string) string {
		if k == "IMAGO_REDIS_URL" {
			return ""
		}
		return os.Getenv(k)
	})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	set, err := awsbackends.Open(ctx, cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer set.Close()
	origin := set.Backends
	origin.Cache = nil // every download is a miss
	origin.Audit = nil // the miss alone: BenchmarkCacheHit1MiBAudited measures what a record costs
	svc := docstore.NewService(origin, docstore.Config{}, nil)
	doc := randomDoc(1 << 20)
	created, err := svc.Upload(ctx, docstore.UploadRequest{Tenant: "bench", Filename: "doc.bin",
		ContentType: "application/octet-stream", Body: doc})
	if err != nil {
		b.Fatal(err)
	}
	defer svc.Delete(ctx, "bench", created.ID)

	// The sealed object, found by listing: whatever key the blob store gives it.
	s3c := s3.NewFromConfig(awsCfg, func(o *s3.Options) { o.UsePathStyle = true })
	listed, err := s3c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(env["IMAGO_BUCKET"])})
	if err != nil {
		b.Fatal(err)
	}
	var blobKey string
	for _, o := range listed.Contents {
		if strings.Contains(aws.ToString(o.Key), string(created.ID)) && !strings.HasPrefix(aws.ToString(o.Key), cfg.StagingPrefix) {
			blobKey = aws.ToString(o.Key)
		}
	}
	if blobKey == "" {
		b.Fatalf("no object of %s in the bucket", created.ID)
	}

	// getObject reads the sealed blob whole with a plain SDK client.
	getObject := func(b *testing.B) {
		out, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(env["IMAGO_BUCKET"]), Key: aws.String(blobKey)})
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, out.Body)
		out.Body.Close()
		if err != nil || n < int64(len(doc)) {
			b.Fatalf("get object: %d bytes, %v", n, err)
		}
	}
	b.Run("baseline=s3-get-object", func(b *testing.B) {
		b.SetBytes(int64(len(doc)))
		for b.Loop() {
			getObject(b)
		}
	})
	// The floor: what a miss that reads the record before the blob cannot
	// do without, the record's GetItem then the blob's GetObject, with plain
	// SDK clients, measured beside the handler (ratio miss-1MiB-vs-floor).
	ddb := dynamodb.NewFromConfig(awsCfg)
	// floor reads the record then the blob, each after its latency.
	floor := func(dynamoLatency, s3Latency time.Duration) func(b *testing.B) {
		return func(b *testing.B) {
			b.SetBytes(int64(len(doc)))
			for b.Loop() {
				time.Sleep(dynamoLatency)
				if _, err := ddb.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(env["IMAGO_TABLE"]), ConsistentRead: aws.Bool(true),
					Key: map[string]ddbtypes.AttributeValue{"id": &ddbtypes.AttributeValueMemberS{Value: string(created.ID)}}}); err != nil {
					b.Fatal(err)
				}
				time.Sleep(s3Latency)
				getObject(b)
			}
		}
	}
	b.Run("floor=get-item-then-s3-get", floor(0, 0))
	handlerMiss := func(svc *docstore.Service) func(b *testing.B) {
		return func(b *testing.B) {
			h := apigw.New(svc, apigw.Download, apigw.Options{})
			payload := downloadEvent(created.ID, "bench")
			b.SetBytes(int64(len(doc)))
			for b.Loop() {
				resp, err := h.Respond(ctx, payload)
				if err != nil {
					b.Fatal(err)
				}
				if out := resp.Bytes(); len(out) < len(doc) || !bytes.Contains(out[:64], []byte(`"statusCode":200`)) {
					b.Fatalf("invoke: %d bytes: %.200s", len(out), out)
				}
				resp.Close()
			}
		}
	}
	b.Run("handler-miss", handlerMiss(svc))

	// The same two with the latency of a deployment's calls added before
	// each (benchLatency), which the local servers on this machine lack:
	// there the servers and the handler share two cores, and calls made at
	// once gain little. This is what a miss that fetches the blob while it
	// reads the record saves on AWS, where S3's first byte is the slowest.
	b.Run("floor=get-item-then-s3-get-latency", floor(benchLatency.dynamodb, benchLatency.s3))
	b.Run("handler-miss-latency", handlerMiss(docstore.NewService(withLatency(origin), docstore.Config{}, nil)))
}

// benchLatency is what BenchmarkMiss1MiB's -latency cases add before each
// call: a model of calls within one AWS region from a Lambda function (a
// DynamoDB GetItem and a KMS Decrypt take a few milliseconds, an S3
// GetObject's first byte longer), not a measurement.
var benchLatency = struct{ dynamodb, kms, s3 time.Duration }{
	dynamodb: 3 * time.Millisecond, kms: 3 * time.Millisecond, s3: 10 * time.Millisecond}

// withLatency returns b with benchLatency added before every origin call a
// miss makes.
func withLatency(b docstore.Backends) docstore.Backends {
	b.Blobs = rttBlobs{b.Blobs, benchLatency.s3}
	b.Meta = rttMeta{b.Meta, benchLatency.dynamodb}
	b.Keys = rttKeys{b.Keys, benchLatency.kms}
	return b
}

type rttBlobs struct {
	docstore.BlobStore
	rtt time.Duration
}

func (r rttBlobs) Get(ctx context.Context, id docstore.ID, off, n int64) (docstore.BlobReader, error) {
	time.Sleep(r.rtt)
	return r.BlobStore.Get(ctx, id, off, n)
}

type rttMeta struct {
	docstore.MetadataStore
	rtt time.Duration
}

func (r rttMeta) Get(ctx context.Context, id docstore.ID) (docstore.Record, error) {
	time.Sleep(r.rtt)
	return r.MetadataStore.Get(ctx, id)
}

type rttKeys struct {
	docstore.KeyService
	rtt time.Duration
}

func (r rttKeys) Decrypt(ctx context.Context, keyID string, wrapped []byte, ec docstore.EncryptionContext) ([]byte, error) {
	time.Sleep(r.rtt)
	return r.KeyService.Decrypt(ctx, keyID, wrapped, ec)
}

// downloadEvent is the API Gateway event of GET /documents/{id}/content by tenant.
func downloadEvent(id docstore.ID, tenant string) []byte {
	ev := events.APIGatewayV2HTTPRequest{Version: "2.0", RouteKey: "GET /documents/{id}/content",
		RawPath: "/documents/" + string(id) + "/content", PathParameters: map[string]string{"id": string(id)},
		Headers: map[string]string{"accept": "*/*", "user-agent": "bench"}}
	ev.RequestContext.HTTP.Method = "GET"
	ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
		JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: map[string]string{"sub": tenant}}}
	payload, _ := json.Marshal(ev)
	return payload
}

func randomDoc(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
