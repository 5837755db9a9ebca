package config

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// CursorKeySize is the size of the secret that authenticates listing
// cursors (docstore.CursorKeySize).
const CursorKeySize = 32

// CursorKeyFile is the file, in the data folder, that holds the cursor
// secret when IMAGO_CURSOR_SECRET is not set.
const CursorKeyFile = "cursor.key"

// CursorSecret is the deployment's secret that authenticates listing
// cursors: IMAGO_CURSOR_SECRET when set; otherwise (the embedded backends,
// `imago serve`) the 32 bytes of <IMAGO_DATA_DIR>/cursor.key, which it
// creates, readable by its owner only, on first use. FromEnv has already
// refused a Lambda function on the AWS backends without the variable.
func (c Config) CursorSecret() ([]byte, error) {
	if c.CursorKey != nil {
		return c.CursorKey, nil
	}
	path := filepath.Join(c.DataDir, CursorKeyFile)
	key, err := loadOrCreateKey(path)
	if err != nil {
		return nil, fmt.Errorf("cursor secret %s (or set IMAGO_CURSOR_SECRET): %w", path, err)
	}
	return key, nil
}

// LinkKeySize is the size of the secret that authenticates share links
// (linktoken.SecretSize).
const LinkKeySize = 32

// LinkKeyFile is the file, in the data folder, that holds the share link
// secret when IMAGO_LINK_SECRET is not set.
const LinkKeyFile = "link.key"

// LinkSecret is the deployment's secret that authenticates share links:
// IMAGO_LINK_SECRET when set; otherwise the 32 bytes of
// <IMAGO_DATA_DIR>/link.key, created on first use as CursorSecret's file
// is. FromEnv has already refused a Lambda function on the AWS backends
// without the variable.
func (c Config) LinkSecret() ([]byte, error) {
	if c.LinkKey != nil {
		return c.LinkKey, nil
	}
	path := filepath.Join(c.DataDir, LinkKeyFile)
	key, err := loadOrCreateKey(path)
	if err != nil {
		return nil, fmt.Errorf("share link secret %s (or set IMAGO_LINK_SECRET): %w", path, err)
	}
	return key, nil
}

// loadOrCreateKey reads a CursorKeySize-byte key from path, or creates the
// file with fresh random bytes. The file appears whole or not at all: the
// key is written and synced to a temporary file that is then linked into
// place, and link fails when another process won the race, whose key is
// then the one read. A reader never sees a short or empty key file.
func loadOrCreateKey(path string) ([]byte, error) {
	key, err := readKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	key = make([]byte, CursorKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp") // mode 0600
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(key)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readKey(path)
		}
		return nil, err
	}
	if d, err := os.Open(dir); err == nil { // make the new name durable
		d.Sync()
		d.Close()
	}
	return key, nil
}

func readKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(key) != CursorKeySize {
		return nil, fmt.Errorf("the file holds %d bytes, not a %d-byte key", len(key), CursorKeySize)
	}
	return key, nil
}
