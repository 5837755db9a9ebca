package config

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/imagodocs/imago/internal/docstore"
)

var awsLambda = map[string]string{"IMAGO_TABLE": "t", "IMAGO_BUCKET": "b", "IMAGO_KMS_KEY_ID": "alias/k",
	"AWS_LAMBDA_FUNCTION_NAME": "imago-metadata", "IMAGO_AUDIT_TABLE": "a", "IMAGO_LINK_SECRET": base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 32))}

func TestCursorSecretFromTheEnvironment(t *testing.T) {
	if CursorKeySize != docstore.CursorKeySize {
		t.Fatalf("config.CursorKeySize %d, docstore.CursorKeySize %d", CursorKeySize, docstore.CursorKeySize)
	}
	secret := bytes.Repeat([]byte{7}, 32)
	vars := map[string]string{"IMAGO_CURSOR_SECRET": base64.StdEncoding.EncodeToString(secret)}
	for k, v := range awsLambda {
		vars[k] = v
	}
	c, err := FromEnv(env(vars))
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.CursorSecret()
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("CursorSecret = %x, %v; want the variable's %x", got, err, secret)
	}
	for _, bad := range []string{"c2hvcnQ=", "not base64!", base64.StdEncoding.EncodeToString(make([]byte, 33))} {
		if _, err := FromEnv(env(map[string]string{"IMAGO_CURSOR_SECRET": bad})); err == nil || !strings.Contains(err.Error(), "IMAGO_CURSOR_SECRET") {
			t.Errorf("IMAGO_CURSOR_SECRET=%q: %v, want an error naming it", bad, err)
		}
	}
}

func TestCursorSecretIsRequiredInALambdaOnAWS(t *testing.T) {
	_, err := FromEnv(env(awsLambda))
	if err == nil || !strings.Contains(err.Error(), "IMAGO_CURSOR_SECRET") {
		t.Fatalf("a Lambda function on the AWS backends without IMAGO_CURSOR_SECRET: %v, want an error naming it", err)
	}
	// Outside Lambda (imago serve on AWS) and on the embedded backends
	// (even in a Lambda), the data folder holds it.
	for name, vars := range map[string]map[string]string{
		"imago serve on AWS":          {"IMAGO_TABLE": "t", "IMAGO_BUCKET": "b", "IMAGO_KMS_KEY_ID": "alias/k", "IMAGO_AUDIT_TABLE": "a"},
		"embedded, in a Lambda":       {"AWS_LAMBDA_FUNCTION_NAME": "imago-metadata"},
		"embedded, under imago serve": {},
	} {
		vars["IMAGO_DATA_DIR"] = t.TempDir()
		c, err := FromEnv(env(vars))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if key, err := c.CursorSecret(); err != nil || len(key) != 32 {
			t.Errorf("%s: CursorSecret = %x, %v", name, key, err)
		}
	}
}

func TestCursorKeyFileIsCreatedOnceAndKept(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	c, err := FromEnv(env(map[string]string{"IMAGO_DATA_DIR": dir}))
	if err != nil {
		t.Fatal(err)
	}
	first, err := c.CursorSecret()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "cursor.key")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("cursor.key has mode %v, want 0600", fi.Mode().Perm())
	}
	onDisk, _ := os.ReadFile(path)
	if !bytes.Equal(onDisk, first) || bytes.Equal(first, make([]byte, 32)) {
		t.Fatalf("cursor.key holds %x, CursorSecret gave %x", onDisk, first)
	}
	again, err := c.CursorSecret()
	if err != nil || !bytes.Equal(again, first) {
		t.Fatalf("second start: %x, %v; want the same key %x", again, err, first)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".cursor.key.*")); len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}

	if err := os.WriteFile(path, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CursorSecret(); err == nil || !strings.Contains(err.Error(), "cursor.key") {
		t.Errorf("a damaged cursor.key: %v, want an error naming it", err)
	}
}

// Processes starting together (the three functions of `imago serve`, a
// test suite's parallel servers) all end up with the one key on disk, and
// none ever reads a half-written file.
func TestCursorKeyFileCreationRace(t *testing.T) {
	for round := range 50 {
		dir := t.TempDir()
		c := Config{DataDir: dir}
		const n = 8
		keys := make([][]byte, n)
		errs := make([]error, n)
		var start, done sync.WaitGroup
		start.Add(1)
		for i := range n {
			done.Add(1)
			go func() {
				defer done.Done()
				start.Wait()
				keys[i], errs[i] = c.CursorSecret()
			}()
		}
		start.Done()
		done.Wait()
		onDisk, err := os.ReadFile(filepath.Join(dir, "cursor.key"))
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if errs[i] != nil || !bytes.Equal(keys[i], onDisk) {
				t.Fatalf("round %d, starter %d: %x, %v; the file holds %x", round, i, keys[i], errs[i], onDisk)
			}
		}
	}
}
