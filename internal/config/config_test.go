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
	c, err := FromEnv(env(map[string]string{"IMAGO_TABLE": "t", "IMAGO_BUCKET": "b", "IMAGO_KMS_KEY_ID": "alias/k", "IMAGO_AUDIT_TABLE": "a",
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

func TestRedisClusterURL(t *testing.T) {
	for raw, ok := range map[string]bool{
		"rediss://cache.example.com:6379?cluster=true":                     true,
		"redis://127.0.0.1:7000?cluster=true&addr=127.0.0.1:7001":          true,
		"redis://127.0.0.1:6379/0?cluster=false":                           true,
		"redis://127.0.0.1:6379/2":                                         true,
		"redis://127.0.0.1:6379?cluster=yes":                               false,
		"redis://127.0.0.1:6379?cluster=true&cluster=false":                false,
		"redis://127.0.0.1:6379/3?cluster=true":                            false,
		"rediss://user:hunter2@cache.example.com:6379?cluster=maybe&x=%zz": false,
	} {
		_, err := FromEnv(func(k string) string { return map[string]string{"IMAGO_REDIS_URL": raw}[k] })
		if (err == nil) != ok {
			t.Errorf("IMAGO_REDIS_URL=%s: error %v, want ok=%v", raw, err, ok)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the error repeats the password: %v", err)
		}
	}
}

func TestParseDurationTakesGoFormAndWholeDays(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"30s": 30 * time.Second, "90m": 90 * time.Minute, "720h": 720 * time.Hour,
		"1d": 24 * time.Hour, "30d": 30 * 24 * time.Hour, " 7d ": 7 * 24 * time.Hour,
	} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"d", "1.5d", "-1d", "x", "5", "99999999999999999d"} {
		if got, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, got)
		}
	}
	cfg, err := FromEnv(func(k string) string {
		if k == "IMAGO_CACHE_TTL" {
			return "1d"
		}
		return ""
	})
	if err != nil || cfg.CacheTTL != 24*time.Hour {
		t.Fatalf("IMAGO_CACHE_TTL=1d: %v, %v", cfg.CacheTTL, err)
	}
}

// The policy's and the audit trail's settings: durations with days, off
// values, and the audit table that the AWS backends need unless recording
// is off.
func TestPolicyAndAuditSettings(t *testing.T) {
	aws := map[string]string{"IMAGO_TABLE": "t", "IMAGO_BUCKET": "b", "IMAGO_KMS_KEY_ID": "alias/k"}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range aws {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	c, err := FromEnv(env(with(map[string]string{"IMAGO_AUDIT_TABLE": "audit", "IMAGO_RETENTION": "30d", "IMAGO_DELETION_DELAY": "72h", "IMAGO_LINK_MAX_TTL": "2h"})))
	if err != nil || c.Retention != 30*24*time.Hour || c.DeletionDelay != 72*time.Hour || c.AuditOff || c.AuditTable != "audit" || c.LinkMaxTTL != 2*time.Hour {
		t.Fatalf("%+v %v", c, err)
	}
	if c, err := FromEnv(env(with(map[string]string{"IMAGO_AUDIT": "off", "IMAGO_RETENTION": "0", "IMAGO_DELETION_DELAY": ""}))); err != nil || !c.AuditOff || c.Retention != 0 || c.DeletionDelay != 0 {
		t.Fatalf("audit off, no retention, no delay: %+v %v", c, err)
	}
	if _, err := FromEnv(env(aws)); err == nil || !strings.Contains(err.Error(), "IMAGO_AUDIT_TABLE") {
		t.Fatalf("the AWS backends, recording on, no audit table: %v", err)
	}
	for name, bad := range map[string]map[string]string{
		"IMAGO_AUDIT":          {"IMAGO_AUDIT": "maybe"},
		"IMAGO_RETENTION":      {"IMAGO_RETENTION": "-1h"},
		"IMAGO_DELETION_DELAY": {"IMAGO_DELETION_DELAY": "soon"},
		"IMAGO_LINK_MAX_TTL":   {"IMAGO_LINK_MAX_TTL": "30s"},
	} {
		if _, err := FromEnv(env(bad)); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v, want an error naming it", name, err)
		}
	}
}
