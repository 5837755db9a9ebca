//go:build linux

package perf

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/imagodocs/imago/internal/testenv"
)

const (
	bigSize  = 1 << 30 // the document of the memory benchmarks
	partSize = 4 << 20 // Range parts, as `imago get` asks for them
)

// event reads events/NAME.json and applies edit to it.
func event(b *testing.B, name string, edit func(map[string]any)) []byte {
	b.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "events", name+".json"))
	if err != nil {
		b.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(raw, &ev); err != nil {
		b.Fatal(err)
	}
	edit(ev)
	out, _ := json.Marshal(ev)
	return out
}

// apiReply is a function's API Gateway answer.
type apiReply struct {
	StatusCode      int               `json:"statusCode"`
	Headers         map[string]string `json:"headers"`
	Body            string            `json:"body"`
	IsBase64Encoded bool              `json:"isBase64Encoded"`
}

func call(b *testing.B, f *testenv.Emulated, what string, ev []byte, status int) apiReply {
	b.Helper()
	out, err := f.Invoke(ev)
	if err != nil {
		b.Fatalf("%s: %v", what, err)
	}
	var r apiReply
	if err := json.Unmarshal(out, &r); err != nil || r.StatusCode != status {
		b.Fatalf("%s: want %d, got %.400s", what, status, out)
	}
	return r
}

// createdUpload is the answer of POST /documents/uploads.
type createdUpload struct {
	ID        string            `json:"id"`
	Method    string            `json:"method"`
	UploadURL string            `json:"upload_url"`
	Headers   map[string]string `json:"headers"`
	PartSize  int64             `json:"part_size"`
	PartCount int               `json:"part_count"`
}

// BenchmarkLambdaMemory1GiB is the upload function ingesting a 1 GiB staged
// object (presigned PUT to the local S3, then the S3 event) and the download
// function serving it in 4 MiB Range parts, each a bootstrap under the
// emulator, as deployed. It reports each bootstrap's peak resident memory
// (ingest-peak-MiB, ranged-get-peak-MiB). Run it with -benchtime 1x.
func BenchmarkLambdaMemory1GiB(b *testing.B) {
	for b.Loop() {
		// One presigned PUT, whatever the multipart threshold: the ingest of a
		// completed multipart upload is the same, and a single PUT needs no client.
		up := start(b, "upload", 2048, "IMAGO_MULTIPART_THRESHOLD=2GiB")
		defer up.Stop()
		doc := newPatternReader(bigSize)
		ev := event(b, "create-upload", func(ev map[string]any) {
			ev["body"] = fmt.Sprintf(`{"filename":"big.bin","content_type":"application/octet-stream","size":%d}`, bigSize)
		})
		var cu createdUpload
		if err := json.Unmarshal([]byte(call(b, up, "create upload", ev, 201).Body), &cu); err != nil || cu.UploadURL == "" {
			b.Fatalf("create upload: %+v %v", cu, err)
		}
		putPresigned(b, cu.UploadURL, cu.Headers, doc, bigSize)
		s3ev := event(b, "s3-object-created", func(ev map[string]any) {
			rec := ev["Records"].([]any)[0].(map[string]any)
			s3 := rec["s3"].(map[string]any)
			s3["bucket"].(map[string]any)["name"] = os.Getenv("IMAGO_BUCKET")
			s3["object"].(map[string]any)["key"] = "staging/" + cu.ID
			s3["object"].(map[string]any)["size"] = bigSize
		})
		if out, err := up.Invoke(s3ev); err != nil || (len(bytes.TrimSpace(out)) != 0 && string(out) != "null") {
			b.Fatalf("ingest: %v %.300s", err, out)
		}
		ingestPeak, err := testenv.PeakRSS(up.BootstrapPID())
		if err != nil {
			b.Fatal(err)
		}

		dn := start(b, "download", 1024)
		defer dn.Stop()
		for off := int64(0); off < bigSize; off += partSize {
			ev := event(b, "download-range", func(ev map[string]any) {
				ev["rawPath"] = "/documents/" + cu.ID + "/content"
				ev["pathParameters"] = map[string]any{"id": cu.ID}
				ev["headers"].(map[string]any)["range"] = fmt.Sprintf("bytes=%d-%d", off, off+partSize-1)
				ev["requestContext"].(map[string]any)["authorizer"] = createAuthorizer(b)
			})
			r := call(b, dn, "range", ev, 206)
			body, err := base64.StdEncoding.DecodeString(r.Body)
			if err != nil || !r.IsBase64Encoded || !bytes.Equal(body, doc.at(off, partSize)) {
				b.Fatalf("range at %d: %d bytes, %v: not the bytes uploaded", off, len(body), err)
			}
		}
		getPeak, err := testenv.PeakRSS(dn.BootstrapPID())
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(mib(ingestPeak), "ingest-peak-MiB")
		b.ReportMetric(mib(getPeak), "ranged-get-peak-MiB")

		md := start(b, "metadata", 1024)
		defer md.Stop()
		call(b, md, "delete", event(b, "delete", func(ev map[string]any) {
			ev["rawPath"] = "/documents/" + cu.ID
			ev["pathParameters"] = map[string]any{"id": cu.ID}
			ev["requestContext"].(map[string]any)["authorizer"] = createAuthorizer(b)
		}), 204)
	}
}

// createAuthorizer is the authorizer of events/create-upload.json: the
// same caller for every event of a benchmark.
func createAuthorizer(b *testing.B) any {
	var ev map[string]any
	json.Unmarshal(event(b, "create-upload", func(map[string]any) {}), &ev)
	return ev["requestContext"].(map[string]any)["authorizer"]
}

func putPresigned(b *testing.B, url string, headers map[string]string, body io.Reader, size int64) {
	b.Helper()
	req, err := http.NewRequest(http.MethodPut, url, body)
	if err != nil {
		b.Fatal(err)
	}
	req.ContentLength = size
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatalf("PUT %d bytes: %v", size, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(resp.Body)
		b.Fatalf("PUT: %s %.300s", resp.Status, msg)
	}
}

// BenchmarkServeMemory1GiB is `imago serve` on the embedded backends, tried
// as a new user would: a 1 GiB document uploaded the way
// POST /documents/uploads says (one presigned PUT, or parts four at a time),
// then read back in 4 MiB Range parts, four at a time, every byte checked.
// It reports the server's peak resident memory during each
// (serve-ingest-peak-MiB, serve-ranged-get-peak-MiB). Run it with -benchtime 1x.
func BenchmarkServeMemory1GiB(b *testing.B) {
	bin := filepath.Join(binaries(b), "imago")
	for b.Loop() {
		addr, err := freeAddr()
		if err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command(bin, "serve")
		cmd.Env = append(os.Environ(), "IMAGO_TABLE=", "IMAGO_REDIS_URL=", "IMAGO_DATA_DIR="+b.TempDir(), "IMAGO_ADDR="+addr, "IMAGO_LOG_LEVEL=warn")
		logPath := filepath.Join(b.TempDir(), "serve.log")
		logFile, err := os.Create(logPath)
		if err != nil {
			b.Fatal(err)
		}
		defer logFile.Close()
		cmd.Stderr = logFile
		defer func() {
			if b.Failed() {
				out, _ := os.ReadFile(logPath)
				b.Logf("imago serve's log (last 3000 bytes):\n%s", out[max(0, len(out)-3000):])
			}
		}()
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		defer func() { cmd.Process.Kill(); cmd.Wait() }()
		base := "http://" + addr
		waitHealthy(b, base)
		if err := testenv.ResetPeakRSS(cmd.Process.Pid); err != nil {
			b.Fatal(err)
		}

		doc := newPatternReader(bigSize)
		id := uploadBig(b, base, doc)
		ingestPeak, err := testenv.PeakRSS(cmd.Process.Pid)
		if err != nil {
			b.Fatal(err)
		}
		if err := testenv.ResetPeakRSS(cmd.Process.Pid); err != nil {
			b.Fatal(err)
		}
		var g errgroup.Group
		g.SetLimit(4)
		for off := int64(0); off < bigSize; off += partSize {
			g.Go(func() error {
				req, _ := http.NewRequest(http.MethodGet, base+"/documents/"+id+"/content", nil)
				req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+partSize-1))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				got, err := io.ReadAll(resp.Body)
				if err != nil || resp.StatusCode != 206 || !bytes.Equal(got, doc.at(off, partSize)) {
					return fmt.Errorf("range at %d: %s, %d bytes, %v: not the bytes uploaded", off, resp.Status, len(got), err)
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
		getPeak, err := testenv.PeakRSS(cmd.Process.Pid)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(mib(ingestPeak), "serve-ingest-peak-MiB")
		b.ReportMetric(mib(getPeak), "serve-ranged-get-peak-MiB")
	}
}

// uploadBig uploads size bytes of doc as POST /documents/uploads directs
// and waits until the document is available; it returns its id.
func uploadBig(b *testing.B, base string, doc *patternReader) string {
	b.Helper()
	resp, err := http.Post(base+"/documents/uploads", "application/json",
		strings.NewReader(fmt.Sprintf(`{"filename":"big.bin","content_type":"application/octet-stream","size":%d}`, doc.size)))
	if err != nil {
		b.Fatal(err)
	}
	var cu createdUpload
	err = json.NewDecoder(resp.Body).Decode(&cu)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 201 {
		b.Fatalf("create upload: %s %+v %v", resp.Status, cu, err)
	}
	switch cu.Method {
	case "multipart":
		uploadParts(b, base, cu, doc)
	default:
		putPresigned(b, cu.UploadURL, cu.Headers, doc, doc.size)
	}
	deadline := time.Now().Add(20 * time.Minute)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/documents/" + cu.ID)
		if err != nil {
			b.Fatal(err)
		}
		var md struct {
			Status string `json:"status"`
		}
		json.NewDecoder(resp.Body).Decode(&md)
		resp.Body.Close()
		if md.Status == "available" {
			return cu.ID
		}
		if md.Status != "pending" {
			b.Fatalf("document %s is %q", cu.ID, md.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.Fatalf("document %s still pending after 20 minutes", cu.ID)
	return ""
}

// uploadParts sends a multipart upload's parts four at a time and completes it.
func uploadParts(b *testing.B, base string, cu createdUpload, doc *patternReader) {
	b.Helper()
	numbers := make([]int, cu.PartCount)
	for i := range numbers {
		numbers[i] = i + 1
	}
	body, _ := json.Marshal(map[string]any{"numbers": numbers})
	resp, err := http.Post(base+"/documents/"+cu.ID+"/parts", "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	var presigned struct {
		Parts []struct {
			Number  int               `json:"number"`
			URL     string            `json:"url"`
			Headers map[string]string `json:"headers"`
		} `json:"parts"`
	}
	err = json.NewDecoder(resp.Body).Decode(&presigned)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || len(presigned.Parts) != cu.PartCount {
		b.Fatalf("presign parts: %s %v", resp.Status, err)
	}
	etags := make([]string, cu.PartCount)
	var g errgroup.Group
	g.SetLimit(4)
	for _, p := range presigned.Parts {
		g.Go(func() error {
			off := int64(p.Number-1) * cu.PartSize
			n := min(cu.PartSize, doc.size-off)
			req, _ := http.NewRequestWithContext(context.Background(), http.MethodPut, p.URL, bytes.NewReader(doc.at(off, int(n))))
			for k, v := range p.Headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode/100 != 2 {
				return fmt.Errorf("part %d: %s", p.Number, resp.Status)
			}
			etags[p.Number-1] = resp.Header.Get("ETag")
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	type part struct {
		Number int    `json:"number"`
		ETag   string `json:"etag"`
	}
	parts := make([]part, len(etags))
	for i, e := range etags {
		parts[i] = part{i + 1, e}
	}
	body, _ = json.Marshal(map[string]any{"parts": parts})
	resp, err = http.Post(base+"/documents/"+cu.ID+"/complete", "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 {
		b.Fatalf("complete: %s", resp.Status)
	}
}

func waitHealthy(b *testing.B, base string) {
	b.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(base + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Fatal("imago serve did not answer /health within 30s")
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
