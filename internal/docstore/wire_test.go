package docstore_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/imagodocs/imago/internal/docstore"
)

// TestWireJSON pins the JSON the API answers for the domain types: the
// bytes are the API (docs/openapi.yaml), whatever type carries them.
func TestWireJSON(t *testing.T) {
	at := time.Date(2026, 12, 6, 23, 0, 0, 123456789, time.UTC)
	doc := docstore.Document{ID: "3f1e2d4c-0000-4000-8000-000000000001",
		Descriptor: docstore.Descriptor{Filename: "a <b> & c.pdf", ContentType: "application/pdf", Size: 42, SHA256: "ab"},
		Status:     docstore.StatusAvailable, CreatedAt: at, Metadata: map[string]string{"k": "v"}}
	failed := doc
	failed.Status, failed.Failure, failed.Metadata = docstore.StatusFailed, "the staged object is 3 bytes", nil
	trashed := doc
	trashed.Expires, trashed.LegalHold = time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), true
	trashed.DeletedAt, trashed.PurgeAt = time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 14, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		v    any
		want string
	}{
		{"document", doc, `{"id":"3f1e2d4c-0000-4000-8000-000000000001","filename":"a \u003cb\u003e \u0026 c.pdf","content_type":"application/pdf","size":42,"sha256":"ab","status":"available","created_at":"2026-12-06T23:00:00.123456789Z","metadata":{"k":"v"},"legal_hold":false}`},
		{"failed document", failed, `{"id":"3f1e2d4c-0000-4000-8000-000000000001","filename":"a \u003cb\u003e \u0026 c.pdf","content_type":"application/pdf","size":42,"sha256":"ab","status":"failed","created_at":"2026-12-06T23:00:00.123456789Z","metadata":null,"failure":"the staged object is 3 bytes","legal_hold":false}`},
		{"page", docstore.Page{Documents: []docstore.Document{failed}, NextCursor: "c1"}, `{"documents":[{"id":"3f1e2d4c-0000-4000-8000-000000000001","filename":"a \u003cb\u003e \u0026 c.pdf","content_type":"application/pdf","size":42,"sha256":"ab","status":"failed","created_at":"2026-12-06T23:00:00.123456789Z","metadata":null,"failure":"the staged object is 3 bytes","legal_hold":false}],"next_cursor":"c1"}`},
		{"document in the trash, held, expiring", trashed, `{"id":"3f1e2d4c-0000-4000-8000-000000000001","filename":"a \u003cb\u003e \u0026 c.pdf","content_type":"application/pdf","size":42,"sha256":"ab","status":"available","created_at":"2026-12-06T23:00:00.123456789Z","metadata":{"k":"v"},"expires_at":"2027-01-01T00:00:00Z","legal_hold":true,"deleted_at":"2026-12-07T00:00:00Z","purge_at":"2026-12-14T00:00:00Z"}`},
		{"empty page", docstore.Page{Documents: []docstore.Document{}}, `{"documents":[]}`},
		{"nil page", docstore.Page{}, `{"documents":null}`},
		{"presigned upload", docstore.CreatedUpload{ID: doc.ID, UploadURL: "http://s3/x?sig", Method: "PUT", Headers: map[string]string{"Content-Type": "application/pdf"}, ExpiresAt: at},
			`{"id":"3f1e2d4c-0000-4000-8000-000000000001","upload_url":"http://s3/x?sig","method":"PUT","headers":{"Content-Type":"application/pdf"},"expires_at":"2026-12-06T23:00:00.123456789Z"}`},
		{"upload in parts", docstore.CreatedUpload{ID: doc.ID, Method: "multipart", PartSize: 16 << 20, PartCount: 3, ExpiresAt: at},
			`{"id":"3f1e2d4c-0000-4000-8000-000000000001","method":"multipart","part_size":16777216,"part_count":3,"expires_at":"2026-12-06T23:00:00.123456789Z"}`},
		{"presigned part", docstore.PresignedPart{Number: 2, URL: "http://s3/p", Method: "PUT", ExpiresAt: at},
			`{"number":2,"url":"http://s3/p","method":"PUT","headers":null,"expires_at":"2026-12-06T23:00:00.123456789Z"}`},
		{"part", docstore.Part{Number: 1, Size: 5 << 20, ETag: `"e"`}, `{"number":1,"size":5242880,"etag":"\"e\""}`},
	} {
		got, err := json.Marshal(c.v)
		if err != nil || string(got) != c.want {
			t.Errorf("%s: %s, %v\nwant %s", c.name, got, err, c.want)
			continue
		}
		// And back: a caller decoding the answer gets the same value.
		back := reflect.New(reflect.TypeOf(c.v))
		if err := json.Unmarshal(got, back.Interface()); err != nil || !reflect.DeepEqual(back.Elem().Interface(), c.v) {
			t.Errorf("%s: decodes to %+v, %v; want %+v", c.name, back.Elem().Interface(), err, c.v)
		}
	}
}
