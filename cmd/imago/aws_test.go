package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/redis/go-redis/v9"

	"github.com/imagodocs/imago/internal/localfront"
	"github.com/imagodocs/imago/internal/s3store"
	"github.com/imagodocs/imago/internal/testenv"
)

// awsVars are what `imago serve` on the local AWS servers and Redis needs.
var awsVars = append([]string{"IMAGO_REDIS_URL"}, testenv.AWSVars...)

// TestServeOnAWSAndRedis drives `imago serve` on the local S3, DynamoDB,
// KMS and Redis servers as a user would, and proves that a cache hit
// touches neither S3 nor DynamoDB by removing both behind its back.
func TestServeOnAWSAndRedis(t *testing.T) {
	env := testenv.Require(t, awsVars...)
	awsCfg := testenv.AWSConfig(t)
	opt, err := redis.ParseURL(env["IMAGO_REDIS_URL"])
	if err != nil {
		t.Fatal(err)
	}
	// Redis is reached through a proxy, so the test can stop it.
	proxy := testenv.NewProxy(t, opt.Addr)
	env["IMAGO_REDIS_URL"] = "redis://" + proxy.Addr + "/0"
	env["IMAGO_ADDR"] = "127.0.0.1:0"
	env["IMAGO_REDIS_TIMEOUT"] = "200ms"
	env["IMAGO_DATA_DIR"] = t.TempDir() // its cursor.key: imago serve on AWS keeps the cursor secret there
	testenv.AddCredentials(env)
	srv := startServer(t, env)
	ctx := context.Background()
	raw := redis.NewClient(opt)
	defer raw.Close()
	s3c, ddb := s3store.NewClient(awsCfg), dynamodb.NewFromConfig(awsCfg)

	upload := func(doc []byte) string {
		resp, err := http.Post(srv.url+"/documents?filename=x.bin", "application/octet-stream", bytes.NewReader(doc))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var md struct{ ID string }
		json.NewDecoder(resp.Body).Decode(&md)
		if resp.StatusCode != 201 {
			t.Fatalf("upload: %d", resp.StatusCode)
		}
		return md.ID
	}
	download := func(id string, want []byte) string {
		t.Helper()
		resp, body := get(t, srv.url+"/documents/"+id+"/content")
		if resp.StatusCode != 200 || !bytes.Equal(body, want) {
			t.Fatalf("download %s: %d, identical %v", id, resp.StatusCode, bytes.Equal(body, want))
		}
		return resp.Header.Get("X-Imago-Cache")
	}

	doc := make([]byte, 3_000_000)
	rand.Read(doc)
	id := upload(doc)
	// Remove the S3 object and the DynamoDB item behind the service's back.
	if _, err := s3c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(env["IMAGO_BUCKET"]), Key: aws.String("blobs/" + id)}); err != nil {
		t.Fatal(err)
	}
	if _, err := ddb.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(env["IMAGO_TABLE"]),
		Key: map[string]ddbtypes.AttributeValue{"id": &ddbtypes.AttributeValueMemberS{Value: id}}}); err != nil {
		t.Fatal(err)
	}
	if got := download(id, doc); got != "hit" {
		t.Fatalf("download right after upload: X-Imago-Cache %q", got)
	}
	raw.Del(ctx, testenv.CacheEntryKey(id))
	if resp, _ := get(t, srv.url+"/documents/"+id+"/content"); resp.StatusCode != 404 {
		t.Fatalf("with cache, object and item gone: %d", resp.StatusCode)
	}

	other := make([]byte, 500_000)
	rand.Read(other)
	id2 := upload(other)
	raw.Del(ctx, testenv.CacheEntryKey(id2))
	for _, want := range []string{"miss", "hit"} {
		if got := download(id2, other); got != want {
			t.Fatalf("after the cache key was deleted: %q, want %q", got, want)
		}
	}

	proxy.Stop() // Redis stopped
	for i := 0; i < 5; i++ {
		start := time.Now()
		if got := download(id2, other); got != "miss" {
			t.Fatalf("with Redis stopped: %q", got)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Fatalf("with Redis stopped a download took %v", took)
		}
	}
	if resp, body := get(t, srv.url+"/health"); resp.StatusCode != 200 {
		t.Fatalf("health: %d %s", resp.StatusCode, body)
	}
}

// TestServeIngestsS3Events checks the local stand-in for S3's trigger:
// an ObjectCreated event posted to imago serve makes the upload function
// ingest the staged object of a presigned upload.
func TestServeIngestsS3Events(t *testing.T) {
	env := testenv.Require(t, awsVars...)
	testenv.AWSConfig(t)
	env["IMAGO_ADDR"] = "127.0.0.1:0"
	env["IMAGO_DATA_DIR"] = t.TempDir() // its cursor.key
	testenv.AddCredentials(env)
	srv := startServer(t, env)
	doc := make([]byte, 6_000_000)
	rand.Read(doc)

	up := createUpload(t, srv.url, len(doc))
	if status := send(t, up.Method, up.UploadURL, doc, up.Headers); status != 200 {
		t.Fatalf("presigned PUT: %d", status)
	}
	status, err := postS3Event(srv.url, env["IMAGO_BUCKET"], "Put", up.ID, int64(len(doc)))
	if err != nil {
		t.Fatal(err)
	}
	if status != 204 {
		t.Fatalf("S3 event: %d", status)
	}
	_, body := get(t, srv.url+"/documents/"+up.ID)
	sum := sha256.Sum256(doc)
	if !strings.Contains(string(body), `"status":"available"`) || !strings.Contains(string(body), fmt.Sprintf("%x", sum)) {
		t.Fatalf("after the event: %s", body)
	}
	if resp, _ := get(t, srv.url+"/documents/"+up.ID+"/content"); resp.StatusCode != 413 {
		t.Fatalf("whole GET of a 6 MB document: %d", resp.StatusCode)
	}
	got := getInRanges(t, srv.url, up.ID, len(doc), 4<<20)
	if sha256.Sum256(got) != sum {
		t.Fatal("the document assembled from ranges differs")
	}
}

// postS3Event hands `imago serve` at serveURL the S3 notification that the
// staged object of document id (size bytes) was created by eventName
// ("Put" or "CompleteMultipartUpload"), as the relay would, and returns
// the status the endpoint answered.
func postS3Event(serveURL, bucket, eventName, id string, size int64) (int, error) {
	event := fmt.Sprintf(`{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","eventName":"ObjectCreated:%s",
		"s3":{"bucket":{"name":%q},"object":{"key":"staging/%s","size":%d}}}]}`, eventName, bucket, id, size)
	ev, err := http.Post(serveURL+localfront.S3EventsPath, "application/json", strings.NewReader(event))
	if err != nil {
		return 0, err
	}
	ev.Body.Close()
	return ev.StatusCode, nil
}
