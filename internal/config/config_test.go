package config

import (
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	c, err := FromEnv(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.UsesAWS() || c.CacheTTL != 5*time.Minute || c.CacheMaxBytes != 8<<20 || c.MaxInlineBytes != 4<<20 ||
		c.StagingPrefix != "staging/" || c.TenantClaim != "sub" || c.DataDir != "./.imago" || c.Addr != "127.0.0.1:8080" || c.CacheKey != nil {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1048576": 1 << 20, "1MiB": 1 << 20, "512KiB": 512 << 10, "2gib": 2 << 30, "10B": 10, " 3 MiB ": 3 << 20} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "MiB", "-1", "1.5MiB", "1MB", "9999999999TiB"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}

func TestEveryProblemIsReported(t *testing.T) {
	_, err := FromEnv(env(map[string]string{
		"IMAGO_TABLE": "t", "IMAGO_CACHE_TTL": "soon", "IMAGO_CACHE_MAX_BYTES": "lots",
		"IMAGO_CACHE_KEY": "c2hvcnQ=", "IMAGO_REDIS_URL": "http://x", "IMAGO_MAX_INLINE_BYTES": "8MiB",
		"IMAGO_STAGING_PREFIX": "blobs/",
	}))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, name := range []string{"IMAGO_BUCKET", "IMAGO_KMS_KEY_ID", "IMAGO_CACHE_TTL", "IMAGO_CACHE_MAX_BYTES",
		"IMAGO_CACHE_KEY", "IMAGO_REDIS_URL", "IMAGO_MAX_INLINE_BYTES", "IMAGO_STAGING_PREFIX"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("the error does not name %s: %v", name, err)
		}
	}
}

func TestAWSAndCacheKey(t *testing.T) {
	c, err := FromEnv(env(map[string]string{"IMAGO_TABLE": "t", "IMAGO_BUCKET": "b", "IMAGO_KMS_KEY_ID": "alias/k",
		"IMAGO_CACHE_KEY": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "IMAGO_REDIS_URL": "rediss://cache:6379"}))
	if err != nil {
		t.Fatal(err)
	}
	if !c.UsesAWS() || len(c.CacheKey) != 32 || c.CacheKey[31] != 31 {
		t.Fatalf("%+v", c)
	}
}

func TestMultipartThreshold(t *testing.T) {
	c, err := FromEnv(env(nil))
	if err != nil || c.MultipartThreshold != 64<<20 {
		t.Fatalf("default IMAGO_MULTIPART_THRESHOLD: %d, %v; want 64 MiB", c.MultipartThreshold, err)
	}
	if c, err = FromEnv(env(map[string]string{"IMAGO_MULTIPART_THRESHOLD": "6MiB"})); err != nil || c.MultipartThreshold != 6<<20 {
		t.Fatalf("IMAGO_MULTIPART_THRESHOLD=6MiB: %d, %v", c.MultipartThreshold, err)
	}
	for _, bad := range []string{"0", "6GiB", "big"} {
		if _, err := FromEnv(env(map[string]string{"IMAGO_MULTIPART_THRESHOLD": bad})); err == nil || !strings.Contains(err.Error(), "IMAGO_MULTIPART_THRESHOLD") {
			t.Errorf("IMAGO_MULTIPART_THRESHOLD=%s: %v", bad, err)
		}
	}
}
