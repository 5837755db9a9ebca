package localstaging

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
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
	"time"

	"github.com/imagodocs/imago/internal/api"
	"github.com/imagodocs/imago/internal/docstore"
)

var _ docstore.MultipartStaging = (*Area)(nil)

// Uploads in parts, as S3 multipart uploads: each upload is a folder
// .multipart/<name>.<upload id> of the staging folder holding one file per
// received part, named <number>-<MD5 hex> (the MD5 is the part's ETag, as
// S3's is). Parts are PUT to `imago serve` at URLs signed like single PUTs
// (binding the key, upload id, part number, exact length and expiry), and
// completing the upload concatenates them, streaming, into the staged
// object. A part is written to a temporary file first and renamed into its
// upload's folder under partsMu, so a part never lands in an upload that
// was aborted or completed meanwhile.
//
// Completing claims the upload by renaming its folder to
// <name>.<upload id>.completing, with the list of the parts to assemble,
// in order, written beside them first (manifestName): a process killed
// while it assembles leaves everything its successor needs to finish
// (Recover), and an abort (DELETE) removes the claimed folder too.

const (
	multipartDir = ".multipart"
	// completingSuffix marks the folder of an upload being completed.
	completingSuffix = ".completing"
	// manifestName is the file, in an upload's folder, that lists the part
	// files its completion assembles, one a line, in order. It is not a
	// part: part files are named <number>-<etag>.
	manifestName = ".assembly"
)

// partQuery is the query parameter that tells a part's PUT from a single PUT.
const partQuery = "partNumber"

func (s *Area) uploadDir(op docstore.Op, key, uploadID string) (string, error) {
	p, err := s.path(op, key)
	if err != nil {
		return "", err
	}
	if len(uploadID) != 32 || strings.Trim(uploadID, "0123456789abcdef") != "" {
		return "", docstore.E(op, docstore.KindNotFound, fmt.Sprintf("no upload %q", uploadID))
	}
	return filepath.Join(s.dir, multipartDir, filepath.Base(p)+"."+uploadID), nil
}

func noSuchUpload(op docstore.Op, key string) error {
	return docstore.E(op, docstore.KindNotFound, fmt.Sprintf("no upload in progress for %s", key))
}

// CreateMultipart starts an upload in parts of the object at key.
func (s *Area) CreateMultipart(ctx context.Context, key, contentType string) (string, error) {
	const op = "localstaging.CreateMultipart"
	var b [16]byte
	rand.Read(b[:])
	uploadID := hex.EncodeToString(b[:])
	dir, err := s.uploadDir(op, key, uploadID)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", docstore.E(op, fmt.Errorf("create upload folder: %w", err))
	}
	return uploadID, nil
}

func (s *Area) partSignature(key, uploadID string, number int, size, expires int64) string {
	m := hmac.New(sha256.New, s.key)
	fmt.Fprintf(m, "PART\n%s\n%s\n%d\n%d\n%d", key, uploadID, number, size, expires)
	return hex.EncodeToString(m.Sum(nil))
}

// PresignPart signs a PUT of part number of the upload, exactly size bytes.
func (s *Area) PresignPart(ctx context.Context, key, uploadID string, number int, size int64, ttl time.Duration) (docstore.PresignedUpload, error) {
	const op = "localstaging.PresignPart"
	if _, err := s.uploadDir(op, key, uploadID); err != nil {
		return docstore.PresignedUpload{}, err
	}
	base := s.baseURL
	if base == "" {
		return docstore.PresignedUpload{}, docstore.E(op, docstore.KindUnavailable, "uploads in parts need `imago serve` (or the S3 backend)")
	}
	expires := s.now().Add(ttl).Unix()
	q := url.Values{
		partQuery:   {strconv.Itoa(number)},
		"uploadId":  {uploadID},
		"expires":   {strconv.FormatInt(expires, 10)},
		"size":      {strconv.FormatInt(size, 10)},
		"signature": {s.partSignature(key, uploadID, number, size, expires)},
	}
	return docstore.PresignedUpload{
		URL:       base + Path + url.PathEscape(key) + "?" + q.Encode(),
		Method:    api.MethodPut,
		Headers:   map[string]string{},
		ExpiresAt: time.Unix(expires, 0).UTC(),
	}, nil
}

// IsPart reports whether a PUT's query is a part's (ReceivePart) rather
// than a single PUT's (Receive).
func (s *Area) IsPart(query url.Values) bool { return query.Has(partQuery) }

// ReceivePart checks a presigned part PUT and stores its body as that part
// of the upload, replacing an earlier PUT of the same part; it returns the
// part's ETag (quoted, as S3's).
func (s *Area) ReceivePart(key string, query url.Values, body io.Reader, length int64) (string, error) {
	const op = "localstaging.ReceivePart"
	uploadID := query.Get("uploadId")
	number, err0 := strconv.Atoi(query.Get(partQuery))
	expires, err1 := strconv.ParseInt(query.Get("expires"), 10, 64)
	size, err2 := strconv.ParseInt(query.Get("size"), 10, 64)
	want := s.partSignature(key, uploadID, number, size, expires)
	if err0 != nil || err1 != nil || err2 != nil || !hmac.Equal([]byte(want), []byte(query.Get("signature"))) {
		return "", docstore.E(op, docstore.KindUnauthenticated, "the part URL's signature does not match (key, upload, part number or length differ from what was signed)")
	}
	if s.now().Unix() > expires {
		return "", docstore.E(op, docstore.KindUnauthenticated, "the part URL has expired")
	}
	if length != size {
		return "", docstore.E(op, docstore.KindInvalid, fmt.Sprintf("the part must be exactly %d bytes, as signed", size))
	}
	dir, err := s.uploadDir(op, key, uploadID)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(dir); err != nil {
		return "", noSuchUpload(op, key)
	}
	tmp, err := os.CreateTemp(s.dir, ".part.*.tmp")
	if err != nil {
		return "", docstore.E(op, fmt.Errorf("create temp file: %w", err))
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	sum := md5.New()
	n, err := io.Copy(io.MultiWriter(tmp, sum), io.LimitReader(body, size+1))
	if err == nil && n != size {
		err = docstore.E(op, docstore.KindInvalid, fmt.Sprintf("the part was %d bytes, %d were signed", n, size))
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", docstore.E(op, fmt.Errorf("stage part %d of %s: %w", number, key, err))
	}
	etag := hex.EncodeToString(sum.Sum(nil))

	s.partsMu.Lock()
	defer s.partsMu.Unlock()
	existing, err := os.ReadDir(dir)
	if err != nil {
		// Aborted or completed while the part was on its way.
		return "", noSuchUpload(op, key)
	}
	prefix := partName(number, "")
	for _, e := range existing {
		if strings.HasPrefix(e.Name(), prefix) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return "", docstore.E(op, fmt.Errorf("replace part %d of %s: %w", number, key, err))
			}
		}
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, partName(number, etag))); err != nil {
		return "", docstore.E(op, fmt.Errorf("store part %d of %s: %w", number, key, err))
	}
	return `"` + etag + `"`, nil
}

func partName(number int, etag string) string { return fmt.Sprintf("%05d-%s", number, etag) }

// listParts reads an upload's folder; the caller holds partsMu.
func listParts(op docstore.Op, key, dir string) ([]docstore.Part, error) {
	entries, err := os.ReadDir(dir) // sorted by name: by part number
	if errors.Is(err, fs.ErrNotExist) {
		return nil, noSuchUpload(op, key)
	}
	if err != nil {
		return nil, docstore.E(op, fmt.Errorf("list parts of %s: %w", key, err))
	}
	parts := make([]docstore.Part, 0, len(entries))
	for _, e := range entries {
		num, etag, ok := strings.Cut(e.Name(), "-")
		n, err := strconv.Atoi(num)
		if !ok || err != nil {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return nil, docstore.E(op, fmt.Errorf("list parts of %s: %w", key, err))
		}
		parts = append(parts, docstore.Part{Number: n, Size: fi.Size(), ETag: `"` + etag + `"`})
	}
	return parts, nil
}

// ListParts returns the parts received so far, by ascending number.
func (s *Area) ListParts(ctx context.Context, key, uploadID string) ([]docstore.Part, error) {
	const op = "localstaging.ListParts"
	dir, err := s.uploadDir(op, key, uploadID)
	if err != nil {
		return nil, err
	}
	s.partsMu.Lock()
	defer s.partsMu.Unlock()
	return listParts(op, key, dir)
}

// CompleteMultipart concatenates the named parts, in order, into the
// staged object at key, streaming, and removes the upload. It checks the
// parts as S3 does: each received with that ETag, ascending, every one but
// the last at least 5 MiB.
func (s *Area) CompleteMultipart(ctx context.Context, key, uploadID string, parts []docstore.Part) error {
	const op = "localstaging.CompleteMultipart"
	dir, err := s.uploadDir(op, key, uploadID)
	if err != nil {
		return err
	}
	final, err := s.path(op, key)
	if err != nil {
		return err
	}
	// Claim the upload: once its folder is renamed, no part lands in it and
	// a second completion finds no upload.
	claimed := dir + completingSuffix
	files, err := func() ([]string, error) {
		s.partsMu.Lock()
		defer s.partsMu.Unlock()
		received, err := listParts(op, key, dir)
		if err != nil {
			return nil, err
		}
		byNumber := make(map[int]docstore.Part, len(received))
		for _, p := range received {
			byNumber[p.Number] = p
		}
		if len(parts) == 0 {
			return nil, docstore.E(op, docstore.KindInvalid, "no parts given")
		}
		files := make([]string, len(parts))
		for i, p := range parts {
			got, ok := byNumber[p.Number]
			switch {
			case !ok || strings.Trim(got.ETag, `"`) != strings.Trim(p.ETag, `"`):
				return nil, docstore.E(op, docstore.KindInvalid, fmt.Sprintf("part %d was not uploaded with that etag", p.Number))
			case i > 0 && p.Number <= parts[i-1].Number:
				return nil, docstore.E(op, docstore.KindInvalid, "parts must be listed by ascending number")
			case i < len(parts)-1 && got.Size < docstore.MinPartSize:
				return nil, docstore.E(op, docstore.KindInvalid, fmt.Sprintf("part %d is %d bytes, under the %d-byte minimum of all parts but the last", p.Number, got.Size, docstore.MinPartSize))
			}
			files[i] = partName(p.Number, strings.Trim(got.ETag, `"`))
		}
		if err := s.writeManifest(dir, files); err != nil {
			return nil, docstore.E(op, fmt.Errorf("claim upload of %s: %w", key, err))
		}
		if err := os.Rename(dir, claimed); err != nil {
			return nil, docstore.E(op, fmt.Errorf("claim upload of %s: %w", key, err))
		}
		for i, name := range files {
			files[i] = filepath.Join(claimed, name)
		}
		return files, nil
	}()
	if err != nil {
		return err
	}
	if err := s.assemble(ctx, final, files, s.pauseDir); err != nil {
		// Give the upload back, so that the client may complete it again.
		s.partsMu.Lock()
		os.Rename(claimed, dir)
		s.partsMu.Unlock()
		return docstore.E(op, fmt.Errorf("assemble %s: %w", key, err))
	}
	if err := os.RemoveAll(claimed); err != nil {
		return docstore.E(op, fmt.Errorf("remove the parts of %s: %w", key, err))
	}
	return nil
}

// writeManifest writes, atomically, the list of the part files a
// completion of the upload in dir assembles; the caller holds partsMu.
func (s *Area) writeManifest(dir string, files []string) error {
	tmp, err := os.CreateTemp(s.dir, ".manifest.*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	_, err = tmp.WriteString(strings.Join(files, "\n") + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, manifestName))
	}
	return err
}

// finishAssembly assembles, into the staged object name, the claimed
// upload folder a killed process left, from its manifest.
func (s *Area) finishAssembly(claimed, name string) error {
	final, err := s.path("localstaging.Recover", s.prefix+name[:max(strings.LastIndexByte(name, '.'), 0)])
	if err != nil {
		return err
	}
	list, err := os.ReadFile(filepath.Join(claimed, manifestName))
	if err != nil {
		return err
	}
	var files []string
	for _, f := range strings.Fields(string(list)) {
		if filepath.Base(f) != f || strings.HasPrefix(f, ".") {
			return fmt.Errorf("manifest of %s names %q", claimed, f)
		}
		files = append(files, filepath.Join(claimed, f))
	}
	if len(files) == 0 {
		return fmt.Errorf("manifest of %s is empty", claimed)
	}
	return s.assemble(context.Background(), final, files, "")
}

// assemble writes the concatenation of files atomically to final. With
// pauseDir set (PauseAssemblies), it pauses once the first file is
// written. It runs to its end whatever ctx (the completion's request)
// does: the upload is claimed, and its parts are the assembly's.
func (s *Area) assemble(ctx context.Context, final string, files []string, pauseDir string) error {
	tmp, err := os.CreateTemp(s.dir, ".put.*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename, a no-op
	err = func() error {
		defer tmp.Close()
		for i, name := range files {
			f, err := os.Open(name)
			if err != nil {
				return err
			}
			_, err = io.Copy(tmp, f)
			f.Close()
			if err != nil {
				return err
			}
			if i == 0 && pauseDir != "" {
				pause(ctx, pauseDir, filepath.Base(final))
			}
		}
		if err := tmp.Sync(); err != nil {
			return err
		}
		return tmp.Close()
	}()
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), final)
}

// AbortMultipart removes the upload and every part received.
func (s *Area) AbortMultipart(ctx context.Context, key, uploadID string) error {
	const op = "localstaging.AbortMultipart"
	dir, err := s.uploadDir(op, key, uploadID)
	if docstore.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	s.partsMu.Lock()
	defer s.partsMu.Unlock()
	// The upload, and its parts being assembled if it is being completed:
	// that completion then fails, or its staged object is left to its
	// ingest, which finds the document gone.
	for _, d := range []string{dir, dir + completingSuffix} {
		if err := os.RemoveAll(d); err != nil {
			return docstore.E(op, fmt.Errorf("abort upload of %s: %w", key, err))
		}
	}
	return nil
}

// PauseAssemblies makes every later completion of an upload in parts, once
// the first part is written to the assembled file, create a file named
// after the staged object in dir and wait until that file is removed (for
// ever, if it never is). If the completion's request ends meanwhile (its
// client went away), it says so with a second file, that name plus
// ".cancelled". Tests only.
func (s *Area) PauseAssemblies(dir string) { s.pauseDir = dir }

func pause(ctx context.Context, dir, name string) {
	marker := filepath.Join(dir, name)
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		return
	}
	told := false
	for {
		if _, err := os.Stat(marker); errors.Is(err, fs.ErrNotExist) {
			return
		}
		if ctx.Err() != nil && !told {
			told = os.WriteFile(marker+".cancelled", nil, 0o600) == nil
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Key is the staging key of document id.
func (s *Area) Key(id string) string { return s.prefix + id }
