package app_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"testing"

	"github.com/imagodocs/imago/internal/app"
	"github.com/imagodocs/imago/internal/backends/awsbackends"
)

// A Lambda function's start (FromEnv) has only the AWS backends: without
// IMAGO_TABLE it refuses, naming the variable, and writes nothing where
// embedded backends would have kept their files.
func TestFromEnvWithoutTableRefuses(t *testing.T) {
	dataDir := t.TempDir()
	env := map[string]string{"IMAGO_DATA_DIR": dataDir}
	a, err := app.FromEnv(context.Background(), func(k string) string { return env[k] }, slog.New(slog.DiscardHandler))
	if err == nil {
		a.Close()
		t.Fatal("FromEnv built an App without IMAGO_TABLE")
	}
	if !errors.Is(err, awsbackends.ErrNoTable) {
		t.Errorf("error %v, want awsbackends.ErrNoTable", err)
	}
	if entries, _ := os.ReadDir(dataDir); len(entries) > 0 {
		t.Errorf("FromEnv left %d files in IMAGO_DATA_DIR", len(entries))
	}
}
