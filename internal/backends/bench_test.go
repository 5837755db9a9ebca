package backends_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/redis/go-redis/v9"

	"github.com/imagodocs/imago/internal/apigw"
	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/rediscache"
	"github.com/imagodocs/imago/internal/testenv"
)

// BenchmarkCacheHit1MiB compares a 1 MiB cache hit through the download
// function's whole Lambda path — event JSON in, response JSON out — with
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
			if err := cache.Set(ctx, id, &docstore.CachedDocument{Tenant: "bench", Filename: "doc.pdf",
				ContentType: "application/pdf", Size: int64(len(doc)), SHA256: "00", Body: doc}); err != nil {
				b.Fatal(err)
			}
			// A hit touches no other backend: none is given.
			svc := docstore.NewService(docstore.Backends{Cache: cache}, docstore.Config{}, nil)
			h := apigw.New(svc, apigw.Download, apigw.Options{})
			ev := events.APIGatewayV2HTTPRequest{Version: "2.0", RouteKey: "GET /documents/{id}/content",
				RawPath: "/documents/" + string(id) + "/content", PathParameters: map[string]string{"id": string(id)},
				Headers: map[string]string{"accept": "*/*", "user-agent": "bench"}}
			ev.RequestContext.HTTP.Method = "GET"
			ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
				JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{Claims: map[string]string{"sub": "bench"}}}
			payload, _ := json.Marshal(ev)
			b.SetBytes(int64(len(doc)))
			for b.Loop() {
				out, err := h.Invoke(ctx, payload)
				if err != nil || len(out) < len(doc) {
					b.Fatalf("invoke: %v, %d bytes", err, len(out))
				}
			}
		})
	}
}
