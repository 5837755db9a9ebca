package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"os"
	"path/filepath"
	"strings"

	"github.com/imagodocs/imago/internal/client"
	"github.com/imagodocs/imago/internal/config"
)

func newClient(getenv func(string) string) *client.Client {
	base := getenv("IMAGO_URL")
	if base == "" {
		addr := getenv("IMAGO_ADDR")
		if addr == "" {
			addr = config.DefaultAddr
		}
		base = "http://" + addr
	}
	return client.New(base, getenv("IMAGO_TOKEN"))
}

// metaFlags collects repeated -meta k=v flags.
type metaFlags map[string]string

func (m metaFlags) String() string { return fmt.Sprint(map[string]string(m)) }

func (m metaFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return errors.New("want key=value")
	}
	m[k] = val
	return nil
}

func runPut(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("put", flag.ContinueOnError)
	fs.SetOutput(stderr)
	contentType := fs.String("type", "", "content type (default: from the file name's extension)")
	meta := metaFlags{}
	fs.Var(meta, "meta", "custom metadata key=value (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: imago put [-type T] [-meta k=v]... FILE")
	}
	path := fs.Arg(0)
	if *contentType == "" {
		*contentType = mime.TypeByExtension(filepath.Ext(path))
	}
	d, err := newClient(getenv).Put(ctx, path, *contentType, meta)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(d)
}

func runGet(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "write to this file (default: the document's filename in this folder; - for stdout)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: imago get [-o FILE] ID")
	}
	c := newClient(getenv)
	id := fs.Arg(0)
	if *out == "-" {
		_, err := c.Download(ctx, id, stdout)
		return err
	}
	target := *out
	if target == "" {
		d, err := c.Get(ctx, id)
		if err != nil {
			return err
		}
		target = filepath.Base(d.Filename)
		if target == "" || target == "." || target == "/" {
			target = id
		}
	}
	// Write beside the target and rename once the SHA-256 checked out, so
	// a failed download never leaves a truncated file under its name.
	tmp, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".*.part")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	d, err := c.Download(ctx, id, tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "%s: %d bytes, sha256 %s\n", target, d.Size, d.SHA256)
	return nil
}
