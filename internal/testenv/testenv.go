// Package testenv connects integration tests to the project's local test
// servers (S3, DynamoDB, KMS and Redis on 127.0.0.1, started by
// scripts/testenv) and decides, in one place, what a test does when they are
// not there.
//
// A test that needs them calls Require (or AWSConfig) first. When a variable
// is unset the test is skipped, so `go test ./...` on a laptop without the
// servers stays green; with IMAGO_REQUIRE_TESTENV=1 (as `make test` and CI
// set it) it fails instead, so a missing server can never pass as a silently
// skipped suite.
//
// Tests must only ever reach servers on this machine: every variable whose
// value is a URL must name a loopback host, or the test fails before sending
// anything. That keeps a stray AWS_ENDPOINT_URL_* (or none at all, which
// would mean real AWS) from turning a test run into traffic to a real
// account.
package testenv

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// RequireVar is the environment variable that turns a skip into a failure.
const RequireVar = "IMAGO_REQUIRE_TESTENV"

const hint = "run `make test`, or `scripts/testenv up && eval \"$(scripts/testenv env)\"`"

// Require returns the values of vars, all of which must be set and
// non-empty. When any is missing the test is skipped, or failed when
// IMAGO_REQUIRE_TESTENV=1. A value that is a URL must point at a loopback
// address.
func Require(t testing.TB, vars ...string) map[string]string {
	t.Helper()
	vals := make(map[string]string, len(vars))
	var missing []string
	for _, v := range vars {
		val := strings.TrimSpace(os.Getenv(v))
		if val == "" {
			missing = append(missing, v)
			continue
		}
		vals[v] = val
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("local test servers not up (%s unset): %s", strings.Join(missing, ", "), hint)
		if Required() {
			t.Fatalf("%s=1: %s", RequireVar, msg)
		} else {
			t.Skip(msg)
		}
		return nil
	}
	for _, v := range vars {
		if err := checkLoopback(vals[v]); err != nil {
			t.Fatalf("testenv: %s: %v", v, err)
			return nil
		}
	}
	return vals
}

// Required reports whether IMAGO_REQUIRE_TESTENV asks for the local servers
// to be mandatory.
func Required() bool {
	switch strings.ToLower(strings.TrimSpace(os.Getenv(RequireVar))) {
	case "1", "true", "yes":
		return true
	}
	return false
}

// AWSConfig returns an aws.Config for the local servers. It requires
// AWS_REGION and the endpoint override of every service in services (for
// example "S3", "DYNAMODB", "KMS": AWS_ENDPOINT_URL_S3 and so on), so that a
// client built from it can only reach 127.0.0.1. Credentials come from the
// environment (scripts/testenv exports them); the EC2 metadata service is
// never asked. The general AWS_ENDPOINT_URL, which would point every service
// at one address, must not be set to anything but a loopback URL either.
func AWSConfig(t testing.TB, services ...string) aws.Config {
	t.Helper()
	vars := []string{"AWS_REGION"}
	for _, s := range services {
		vars = append(vars, "AWS_ENDPOINT_URL_"+strings.ToUpper(s))
	}
	Require(t, vars...)
	if v := os.Getenv("AWS_ENDPOINT_URL"); v != "" {
		if err := checkLoopback(v); err != nil {
			t.Fatalf("testenv: AWS_ENDPOINT_URL: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithEC2IMDSClientEnableState(imds.ClientDisabled),
	)
	if err != nil {
		t.Fatalf("testenv: load AWS config: %v", err)
	}
	return cfg
}

// checkLoopback rejects a URL-looking value whose host is not a loopback
// address. Values that are not URLs (a bucket or table name) pass.
func checkLoopback(val string) error {
	if !strings.Contains(val, "://") {
		return nil
	}
	u, err := url.Parse(val)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %v", val, err)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%q is not a loopback address: tests only talk to servers on this machine", u.Host)
}

// CacheEntryKey is the Redis key docs/design.md ("The cache tier") gives
// the cache entry of a document: `imago:doc:{<id>}`, the braces a Redis
// Cluster hash tag.
func CacheEntryKey(id string) string { return "imago:doc:{" + id + "}" }
