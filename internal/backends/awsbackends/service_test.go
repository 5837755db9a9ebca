package awsbackends_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/imagodocs/imago/internal/backends"
	"github.com/imagodocs/imago/internal/backends/awsbackends"
	"github.com/imagodocs/imago/internal/config"
	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/docstore/servicetest"
	"github.com/imagodocs/imago/internal/s3store"
	"github.com/imagodocs/imago/internal/testenv"
)

// TestService runs the Service's behaviour suite on the AWS family with
// the in-process cache: S3, DynamoDB and KMS on the local servers.
func TestService(t *testing.T) { servicetest.Run(t, harness(false)) }

// TestServiceWithRedis runs it with Redis, as the Lambda functions do:
// the family's cache on one node, and the cache-tier behaviours on the
// node and on the cluster.
func TestServiceWithRedis(t *testing.T) { servicetest.Run(t, harness(true)) }

func harness(withRedis bool) servicetest.Harness {
	// A round of a race costs seconds of S3, DynamoDB and KMS here.
	return servicetest.Harness{Rounds: 8, Redis: withRedis, Open: func(t *testing.T) *servicetest.Set {
		cfg := awsConfig(t, withRedis)
		set := open(t, cfg)
		r := &s3Raw{c: s3store.NewClient(testenv.AWSConfig(t)), bucket: cfg.Bucket}
		// The bucket is shared with other runs: no listing of it says
		// anything about this test's objects.
		return &servicetest.Set{Backends: set.Backends, StagingPrefix: cfg.StagingPrefix, Raw: servicetest.Raw{
			Stage:     func(t *testing.T, key string, body []byte) { r.put(t, key, body) },
			Staged:    r.staged,
			ReadBlob:  r.readBlob,
			WriteBlob: func(t *testing.T, id docstore.ID, b []byte) { r.put(t, s3store.KeyPrefix+string(id), b) },
		}}
	}}
}

// awsConfig reads the local servers' configuration (scripts/testenv env).
// withRedis keeps IMAGO_REDIS_URL; otherwise the cache is in-process.
func awsConfig(t *testing.T, withRedis bool) config.Config {
	t.Helper()
	vars := testenv.AWSVars
	if withRedis {
		vars = append(vars[:len(vars):len(vars)], "IMAGO_REDIS_URL")
	}
	env := testenv.Require(t, vars...)
	testenv.AWSConfig(t) // checks that every endpoint is on loopback
	cfg, err := config.FromEnv(func(k string) string {
		if k == "IMAGO_REDIS_URL" && !withRedis {
			return ""
		}
		if v, ok := env[k]; ok {
			return v
		}
		return os.Getenv(k)
	})
	if err != nil {
		t.Fatal(err)
	}
	// The local servers on a loaded test machine can be silent for
	// longer than a healthy AWS service ever is: these tests are not
	// about timeouts (faults_test.go is, with its own).
	cfg.AWSTimeout = time.Minute
	return cfg
}

// open builds the AWS family cfg selects, released when t ends.
func open(t *testing.T, cfg config.Config) *backends.Set {
	t.Helper()
	set, err := awsbackends.Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { set.Close() })
	return set
}

func randomDoc(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// s3Raw reaches the bucket behind the Service's back.
type s3Raw struct {
	c      *s3.Client
	bucket string
}

func (r *s3Raw) put(t *testing.T, key string, body []byte) {
	t.Helper()
	if _, err := r.c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: &r.bucket, Key: &key, Body: bytes.NewReader(body)}); err != nil {
		t.Fatalf("PutObject %s: %v", key, err)
	}
	t.Cleanup(func() { r.c.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: &r.bucket, Key: &key}) })
}

func (r *s3Raw) staged(t *testing.T, key string) bool {
	_, err := r.c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &r.bucket, Key: &key})
	return err == nil
}

func (r *s3Raw) readBlob(t *testing.T, id docstore.ID) []byte {
	t.Helper()
	out, err := r.c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &r.bucket, Key: aws.String(s3store.KeyPrefix + string(id))})
	if err != nil {
		t.Fatalf("GetObject blob %s: %v", id, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
