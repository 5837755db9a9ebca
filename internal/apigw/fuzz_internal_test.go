package apigw

import (
	"bytes"
	"io"
	"mime/multipart"
	"strings"
	"testing"

	"github.com/imagodocs/imago/internal/docstore"
)

// FuzzParseMultipart: parseMultipart never panics, refuses with a client
// error kind only, and what it accepts is what the standard library reads
// from a complete body: the same file part, name and type, the same text
// parts.
func FuzzParseMultipart(f *testing.F) {
	const head = "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nhello"
	for _, body := range []string{
		head + "\r\n--B--\r\n",
		head + "\r\n--B\r\nContent-Disposition: form-data; name=\"Note\"\r\n\r\nv\r\n--B--",
		head + "\r\n--B",
		head + "\r\n--B\r\n",
		strings.ReplaceAll(head, "\r\n", "\n") + "\n--B--\n",
		"preamble\r\n" + head + "\r\n--B--\r\nepilogue",
		head + "\r\n--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b\"\r\n\r\nx\r\n--B--",
		"--B--\r\n",
	} {
		f.Add([]byte(body), "B")
	}
	const limit = 1 << 10
	f.Fuzz(func(t *testing.T, body []byte, boundary string) {
		up := docstore.UploadRequest{Metadata: map[string]string{}}
		err := parseMultipart(body, boundary, limit, &up)
		if err != nil {
			if k := docstore.KindOf(err); k != docstore.KindInvalid && k != docstore.KindTooLarge {
				t.Fatalf("refused with kind %v: %v", k, err)
			}
			return
		}
		if len(up.Body) > limit {
			t.Fatalf("accepted a %d-byte file over the %d-byte limit", len(up.Body), limit)
		}
		// The reference reading, which must end cleanly at a close delimiter.
		mr := multipart.NewReader(bytes.NewReader(body), boundary)
		files, texts := 0, map[string]string{}
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("accepted a body the standard reader refuses: %v", err)
			}
			data, err := io.ReadAll(p)
			if err != nil {
				t.Fatalf("accepted a body whose part %q the standard reader cannot read: %v", p.FormName(), err)
			}
			if p.FormName() == "file" {
				files++
				if !bytes.Equal(data, up.Body) || p.FileName() != up.Filename || p.Header.Get("Content-Type") != up.ContentType {
					t.Fatalf("file part: got %q %q %q, the standard reader %q %q %q", up.Body, up.Filename, up.ContentType, data, p.FileName(), p.Header.Get("Content-Type"))
				}
				continue
			}
			texts[strings.ToLower(p.FormName())] = string(data)
		}
		if files != 1 {
			t.Fatalf("accepted a body with %d file parts", files)
		}
		if !hasCloseDelimiter(body, boundary) {
			t.Fatalf("accepted a body without its close delimiter")
		}
		for k, v := range texts {
			if got, ok := up.Metadata[k]; !ok || !strings.HasPrefix(v, got) || len(got) < min(len(v), docstore.MaxMetadataValBytes+1) {
				t.Fatalf("text part %q = %q, parsed as %q", k, v, got)
			}
		}
		if len(texts) != len(up.Metadata) {
			t.Fatalf("text parts %v, metadata %v", texts, up.Metadata)
		}
	})
}
