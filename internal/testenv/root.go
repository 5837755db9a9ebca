package testenv

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
)

// RepoRoot is the repository's root: the folder of the go.mod of module
// github.com/imagodocs/imago above the working directory (a test runs in
// its package's folder), for the files a test reads or builds from there.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/imagodocs/imago\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod of github.com/imagodocs/imago above the working directory")
		}
		dir = parent
	}
}
