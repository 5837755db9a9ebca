// Package localstaging plays S3's part for the presigned uploads of
// `imago serve` on the embedded backends: Area is the staging folder and
// the signer of its upload URLs (single PUTs and parts, under Path), and
// what stores the PUTs they sign. The HTTP side, which takes those PUTs
// and announces each staged object to the upload function with the
// ObjectCreated event S3 would send, is the local gateway's
// (localfront.Receiver). `imago serve` builds both once it listens, so the
// URLs point at it from the start; nothing in a Lambda function links this
// package.
package localstaging

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/imagodocs/imago/internal/api"
	"github.com/imagodocs/imago/internal/docstore"
)

var (
	_ docstore.Staging          = (*Area)(nil)
	_ docstore.StagingInventory = (*Area)(nil)
)

// Path is where `imago serve` takes the presigned PUTs of an Area, single
// ones and parts: the URLs it signs point there, and its receiver
// (localfront.Receiver) serves it.
const Path = "/_local/staging/"

// Area is the embedded stand-in for the S3 staging prefix: presigned
// uploads are PUT to `imago serve` itself, at URLs signed (HMAC-SHA256)
// like S3's, binding the key, content type, exact length and expiry. Its
// receiver verifies them, stores the bytes, then hands the upload function
// an S3-shaped ObjectCreated event, as S3 would.
type Area struct {
	dir     string
	prefix  string
	key     []byte
	baseURL string // where the presigned URLs point; "" signs none
	now     func() time.Time

	// partsMu orders the changes of uploads in parts (multipart.go).
	partsMu sync.Mutex
	// pauseDir, when set, pauses assemblies for tests (PauseAssemblies).
	pauseDir string
}

// New keeps staged uploads under dir, for keys under prefix, signing URLs
// with key that point at baseURL (the `imago serve` that receives them:
// the area is built once it listens). With baseURL "" there is no server
// to receive PUTs, and presigning fails as unavailable.
func New(dir, prefix string, key []byte, baseURL string) (*Area, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("localstaging: create %s: %w", dir, err)
	}
	return &Area{dir: dir, prefix: prefix, key: key, baseURL: strings.TrimSuffix(baseURL, "/"), now: time.Now}, nil
}

// path maps a staging key to its file, refusing anything that is not one
// plain name under the prefix (names starting with a dot are the staging
// area's own: temporary files, uploads in parts).
func (s *Area) path(op docstore.Op, key string) (string, error) {
	name, ok := strings.CutPrefix(key, s.prefix)
	if !ok || name == "" || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
		return "", docstore.E(op, docstore.KindInvalid, fmt.Sprintf("key %q is not a staging key", key))
	}
	return filepath.Join(s.dir, name), nil
}

func (s *Area) signature(key, contentType string, size, expires int64) string {
	m := hmac.New(sha256.New, s.key)
	fmt.Fprintf(m, "PUT\n%s\n%s\n%d\n%d", key, contentType, size, expires)
	return hex.EncodeToString(m.Sum(nil))
}

// PresignPut signs a PUT of exactly size bytes of contentType to key.
func (s *Area) PresignPut(ctx context.Context, key, contentType string, size int64, ttl time.Duration) (docstore.PresignedUpload, error) {
	const op = "localstaging.PresignPut"
	if _, err := s.path(op, key); err != nil {
		return docstore.PresignedUpload{}, err
	}
	base := s.baseURL
	if base == "" {
		return docstore.PresignedUpload{}, docstore.E(op, docstore.KindUnavailable, "presigned uploads need `imago serve` (or the S3 backend)")
	}
	expires := s.now().Add(ttl).Unix()
	q := url.Values{
		"expires":   {strconv.FormatInt(expires, 10)},
		"size":      {strconv.FormatInt(size, 10)},
		"signature": {s.signature(key, contentType, size, expires)},
	}
	return docstore.PresignedUpload{
		URL:       base + Path + url.PathEscape(key) + "?" + q.Encode(),
		Method:    api.MethodPut,
		Headers:   map[string]string{"Content-Type": contentType},
		ExpiresAt: time.Unix(expires, 0).UTC(),
	}, nil
}

// Receive checks a presigned PUT (its key, Content-Type header, query and
// length) and stores its body, atomically, as the staged object.
func (s *Area) Receive(key, contentType string, query url.Values, body io.Reader, length int64) error {
	const op = "localstaging.Receive"
	final, err := s.path(op, key)
	if err != nil {
		return err
	}
	expires, err1 := strconv.ParseInt(query.Get("expires"), 10, 64)
	size, err2 := strconv.ParseInt(query.Get("size"), 10, 64)
	want := s.signature(key, contentType, size, expires)
	if err1 != nil || err2 != nil || !hmac.Equal([]byte(want), []byte(query.Get("signature"))) {
		return docstore.E(op, docstore.KindUnauthenticated, "the upload URL's signature does not match (key, Content-Type or length differ from what was signed)")
	}
	if s.now().Unix() > expires {
		return docstore.E(op, docstore.KindUnauthenticated, "the upload URL has expired")
	}
	if length != size {
		return docstore.E(op, docstore.KindInvalid, fmt.Sprintf("the body must be exactly %d bytes, as signed", size))
	}
	tmp, err := os.CreateTemp(s.dir, ".put.*.tmp")
	if err != nil {
		return docstore.E(op, fmt.Errorf("create temp file: %w", err))
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	n, err := io.Copy(tmp, io.LimitReader(body, size+1))
	if err == nil && n != size {
		err = docstore.E(op, docstore.KindInvalid, fmt.Sprintf("the body was %d bytes, %d were signed", n, size))
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), final)
	}
	if err != nil {
		return docstore.E(op, fmt.Errorf("stage %s: %w", key, err))
	}
	return nil
}

// Recover puts the staging folder back in order after a process that was
// killed: it removes half-received PUTs and parts (temporary files), and
// finishes every assembly of an upload in parts that was under way (the
// client's completion was accepted: its parts are all there, and the list
// of them, in order, beside them), so that the staged object is there for
// the reconciliation to ingest. An assembly that cannot be finished has
// its parts removed; its document stays pending until it expires. What is
// staged in full (objects, uploads in progress) stays: the reconciliation
// (docstore.Service.Reconcile) ingests or removes it once it knows the
// documents. It is for startup, while no PUT is being received.
func (s *Area) Recover() (RecoverReport, error) {
	var rep RecoverReport
	var errs []error
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return rep, fmt.Errorf("localstaging: recover %s: %w", s.dir, err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if err := os.Remove(filepath.Join(s.dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		rep.Removed++
	}
	uploads, err := os.ReadDir(filepath.Join(s.dir, multipartDir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, e := range uploads {
		name, ok := strings.CutSuffix(e.Name(), completingSuffix)
		if !e.IsDir() || !ok {
			continue
		}
		claimed := filepath.Join(s.dir, multipartDir, e.Name())
		if err := s.finishAssembly(claimed, name); err != nil {
			rep.Abandoned++
		} else {
			rep.Assembled++
		}
		if err := os.RemoveAll(claimed); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return rep, fmt.Errorf("localstaging: recover %s: %w", s.dir, err)
	}
	return rep, nil
}

// RecoverReport says what Recover did.
type RecoverReport struct {
	Removed   int // temporary files of PUTs and parts cut short
	Assembled int // interrupted assemblies finished
	Abandoned int // interrupted assemblies that could not be, their parts removed
}

// Inventory lists every staged object and every upload in parts, in
// progress or being completed (an upload whose completion failed and could
// not be given back is one: its abort removes it).
func (s *Area) Inventory(ctx context.Context) ([]docstore.StagedItem, error) {
	const op = "localstaging.Inventory"
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, docstore.E(op, fmt.Errorf("list %s: %w", s.dir, err))
	}
	var items []docstore.StagedItem
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // ingested meanwhile
		}
		if err != nil {
			return nil, docstore.E(op, err)
		}
		items = append(items, docstore.StagedItem{Key: s.prefix + e.Name(), Modified: fi.ModTime()})
	}
	uploads, err := os.ReadDir(filepath.Join(s.dir, multipartDir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, docstore.E(op, fmt.Errorf("list uploads in parts: %w", err))
	}
	for _, e := range uploads {
		name := strings.TrimSuffix(e.Name(), completingSuffix)
		dot := strings.LastIndexByte(name, '.')
		if !e.IsDir() || dot <= 0 {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, docstore.E(op, err)
		}
		items = append(items, docstore.StagedItem{Key: s.prefix + name[:dot], UploadID: name[dot+1:], Modified: fi.ModTime()})
	}
	return items, nil
}

// Open reads the staged object at key.
func (s *Area) Open(ctx context.Context, key string) (io.ReadCloser, int64, error) {
	const op = "localstaging.Open"
	p, err := s.path(op, key)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, docstore.E(op, docstore.KindNotFound, fmt.Errorf("staged %s: %w", key, err))
	}
	if err != nil {
		return nil, 0, docstore.E(op, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, docstore.E(op, err)
	}
	return f, fi.Size(), nil
}

// Delete removes the staged object at key.
func (s *Area) Delete(ctx context.Context, key string) error {
	const op = "localstaging.Delete"
	p, err := s.path(op, key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return docstore.E(op, err)
	}
	return nil
}
