// Package client is a Go client of Imago's HTTP API, used by the imago
// command's put and get. It takes documents of any size: small ones
// inline, large ones through a presigned upload, and it downloads a
// document too large for one response in Range parts, as the API asks.
package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/imagodocs/imago/internal/docstore"
)

// Client talks to one Imago endpoint.
type Client struct {
	BaseURL string // e.g. http://127.0.0.1:8080
	Token   string // bearer token, if the endpoint wants one
	HTTP    *http.Client
	// InlineLimit is the largest document sent inline; larger ones go
	// through POST /documents/uploads. It is also the first Range size
	// tried when a whole download is refused as too large.
	InlineLimit int64
}

// New returns a Client with the API's default inline limit.
func New(baseURL, token string) *Client {
	return &Client{BaseURL: strings.TrimSuffix(baseURL, "/"), Token: token,
		HTTP: &http.Client{Timeout: 10 * time.Minute}, InlineLimit: 4 << 20}
}

// APIError is an error answered by the API.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, header http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return nil, err
	}
	if sr, ok := body.(*io.SectionReader); ok {
		req.ContentLength = sr.Size() // not chunked: API Gateway wants a length
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(raw, &e) != nil || e.Error.Code == "" {
			e.Error.Message = strings.TrimSpace(string(raw))
		}
		return nil, &APIError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
	}
	return resp, nil
}

func decode[T any](resp *http.Response) (T, error) {
	defer resp.Body.Close()
	var v T
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return v, fmt.Errorf("decode response: %w", err)
	}
	return v, nil
}

// Put uploads the file at path with its content type and metadata, and
// returns the document's metadata once it is available.
func (c *Client) Put(ctx context.Context, path, contentType string, metadata map[string]string) (docstore.Document, error) {
	f, err := os.Open(path)
	if err != nil {
		return docstore.Document{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return docstore.Document{}, err
	}
	name := filepath.Base(path)
	if fi.Size() <= c.InlineLimit {
		h := http.Header{"Content-Type": {contentType}}
		for k, v := range metadata {
			h.Set("X-Imago-Meta-"+k, v)
		}
		resp, err := c.do(ctx, "POST", "/documents?filename="+url.QueryEscape(name), io.NewSectionReader(f, 0, fi.Size()), h)
		var apiErr *APIError
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusRequestEntityTooLarge {
			if err != nil {
				return docstore.Document{}, err
			}
			return decode[docstore.Document](resp)
		}
		// The server's inline limit is lower than ours: go through S3.
	}
	reqBody, _ := json.Marshal(map[string]any{"filename": name, "content_type": contentType, "size": fi.Size(), "metadata": metadata})
	resp, err := c.do(ctx, "POST", "/documents/uploads", bytes.NewReader(reqBody), http.Header{"Content-Type": {"application/json"}})
	if err != nil {
		return docstore.Document{}, err
	}
	up, err := decode[docstore.CreatedUpload](resp)
	if err != nil {
		return docstore.Document{}, err
	}
	put, err := http.NewRequestWithContext(ctx, up.Method, up.UploadURL, io.NewSectionReader(f, 0, fi.Size()))
	if err != nil {
		return docstore.Document{}, err
	}
	put.ContentLength = fi.Size()
	for k, v := range up.Headers {
		put.Header.Set(k, v)
	}
	presp, err := c.HTTP.Do(put)
	if err != nil {
		return docstore.Document{}, fmt.Errorf("upload to the presigned URL: %w", err)
	}
	io.Copy(io.Discard, presp.Body)
	presp.Body.Close()
	if presp.StatusCode >= 300 {
		return docstore.Document{}, fmt.Errorf("upload to the presigned URL: %s", presp.Status)
	}
	// The ingest runs on the storage event: wait for it.
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 2*time.Second) {
		d, err := c.Get(ctx, string(up.ID))
		if err != nil || d.Status == docstore.StatusAvailable {
			return d, err
		}
		select {
		case <-ctx.Done():
			return d, ctx.Err()
		case <-time.After(delay):
		}
	}
}

// Get returns a document's metadata.
func (c *Client) Get(ctx context.Context, id string) (docstore.Document, error) {
	resp, err := c.do(ctx, "GET", "/documents/"+url.PathEscape(id), nil, nil)
	if err != nil {
		return docstore.Document{}, err
	}
	return decode[docstore.Document](resp)
}

// Download writes a document to w and checks it against its SHA-256. A
// document the API refuses to send whole (413) is fetched in Range parts,
// halving the part size whenever a part is refused too.
func (c *Client) Download(ctx context.Context, id string, w io.Writer) (docstore.Document, error) {
	d, err := c.Get(ctx, id)
	if err != nil {
		return d, err
	}
	sum := sha256.New()
	out := io.MultiWriter(w, sum)
	path := "/documents/" + url.PathEscape(id) + "/content"
	resp, err := c.do(ctx, "GET", path, nil, nil)
	var apiErr *APIError
	switch {
	case err == nil:
		_, err = io.Copy(out, resp.Body)
		resp.Body.Close()
		if err != nil {
			return d, err
		}
	case errors.As(err, &apiErr) && apiErr.Status == http.StatusRequestEntityTooLarge:
		part := c.InlineLimit
		for off := int64(0); off < d.Size; {
			end := min(off+part, d.Size) - 1
			resp, err := c.do(ctx, "GET", path, nil, http.Header{"Range": {"bytes=" + strconv.FormatInt(off, 10) + "-" + strconv.FormatInt(end, 10)}})
			if errors.As(err, &apiErr) && apiErr.Status == http.StatusRequestEntityTooLarge && part > 1 {
				part /= 2
				continue
			}
			if err != nil {
				return d, err
			}
			n, err := io.Copy(out, resp.Body)
			resp.Body.Close()
			if err != nil {
				return d, err
			}
			if resp.StatusCode != http.StatusPartialContent || n != end-off+1 {
				return d, fmt.Errorf("range %d-%d: %s with %d bytes", off, end, resp.Status, n)
			}
			off += n
		}
	default:
		return d, err
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != d.SHA256 {
		return d, fmt.Errorf("document %s: downloaded bytes have SHA-256 %s, the document's is %s", id, got, d.SHA256)
	}
	return d, nil
}
