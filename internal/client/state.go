package client

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// DefaultStateDir is where the state of interrupted uploads is kept when
// Options.StateDir is empty: os.UserCacheDir()/imago/uploads, or the
// temporary folder when there is no cache folder.
func DefaultStateDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "imago", "uploads")
}

// uploadState is what an interrupted multipart upload needs to resume:
// which document it is and how the file was cut. Which parts the server
// holds is asked of the server (GET /documents/{id}/parts), never kept.
type uploadState struct {
	Server    string `json:"server"`
	Path      string `json:"path"`
	Size      int64  `json:"size"`
	ModTime   int64  `json:"mod_time_ns"`
	ID        string `json:"id"`
	PartSize  int64  `json:"part_size"`
	PartCount int    `json:"part_count"`
}

// uploadStateFile names the state of the upload of the file at absPath to
// this client's server.
func (c *Client) uploadStateFile(absPath string) string {
	if c.opt.StateDir == "-" {
		return ""
	}
	sum := sha256.Sum256([]byte(c.base + "\x00" + absPath))
	return filepath.Join(c.opt.StateDir, hex.EncodeToString(sum[:16])+".json")
}

// readJSON reads a state file; a missing or unreadable one is no state.
func readJSON(path string, v any) bool {
	if path == "" {
		return false
	}
	raw, err := os.ReadFile(path)
	return err == nil && json.Unmarshal(raw, v) == nil
}

// writeJSON replaces a state file whole (write beside it, then rename),
// so that a crash leaves the old state or the new one, never half of one.
func writeJSON(path string, v any) error {
	if path == "" {
		return nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("state folder: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}
