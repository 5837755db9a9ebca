package openapitest

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

const (
	docID   = "3f1c2a4e-1b2c-4d5e-8f90-0123456789ab"
	docHash = "dca9318ecba6ec27cbfd8f7e744664d91159845d51f0e186e2fac1e321d8343c"
	docJSON = `{"id":"` + docID + `","filename":"scan.png","content_type":"image/png","size":300000,` +
		`"sha256":"` + docHash + `","status":"available","created_at":"2026-12-01T21:35:35.957696812Z","metadata":{"country":"FR"},"legal_hold":false}`
	// trashedJSON is the document in the trash, with an expiry.
	trashedJSON = `{"id":"` + docID + `","filename":"scan.png","content_type":"image/png","size":300000,` +
		`"sha256":"` + docHash + `","status":"available","created_at":"2026-12-01T21:35:35.957696812Z","metadata":{"country":"FR"},` +
		`"expires_at":"2036-12-01T00:00:00Z","legal_hold":false,"deleted_at":"2026-12-02T08:00:00Z","purge_at":"2026-12-09T08:00:00Z"}`
)

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func errJSON(code string) []byte {
	return []byte(`{"error":{"code":"` + code + `","message":"something"}}`)
}

// TestCheckCatchesDrift validates well-formed exchanges, then doctored
// copies of them, each of which drifts from the document in one way and
// must be refused, naming what drifted.
func TestCheckCatchesDrift(t *testing.T) {
	s := Repo(t)
	jsonCT := hdr("Content-Type", "application/json")
	content := hdr("Content-Type", "image/png", "Content-Length", "300000", "ETag", `"`+docHash+`"`,
		"X-Imago-Cache", "hit", "Accept-Ranges", "bytes", "Cache-Control", "private, no-cache",
		"X-Content-Type-Options", "nosniff", "Content-Disposition", `attachment; filename="scan.png"; filename*=UTF-8''scan.png`)
	good := map[string]Exchange{
		"metadata": {Method: "GET", Target: "/documents/" + docID, Status: 200, ResponseHeader: jsonCT, ResponseBody: []byte(docJSON)},
		"upload": {Method: "POST", Target: "/documents?filename=a.txt", Header: hdr("Content-Type", "text/plain", "X-Imago-Meta-Case", "7"),
			RequestBody: []byte("hello"), Status: 201, ResponseHeader: hdr("Content-Type", "application/json", "Location", "/documents/"+docID),
			ResponseBody: []byte(docJSON)},
		"content": {Method: "GET", Target: "/documents/" + docID + "/content", Status: 200, ResponseHeader: content, ResponseBody: make([]byte, 300000)},
		"not modified": {Method: "GET", Target: "/documents/" + docID + "/content", Header: hdr("If-None-Match", `"`+docHash+`"`), Status: 304,
			ResponseHeader: hdr("ETag", `"`+docHash+`"`, "X-Imago-Cache", "miss", "Cache-Control", "private, no-cache")},
		"presigned": {Method: "POST", Target: "/documents/uploads", Header: jsonCT, RequestBody: []byte(`{"size":5000000}`), Status: 201,
			ResponseHeader: hdr("Content-Type", "application/json", "Location", "/documents/"+docID),
			ResponseBody:   []byte(`{"id":"` + docID + `","upload_url":"http://127.0.0.1/_local/staging/x?sig=1","method":"PUT","headers":{"Content-Type":"image/tiff"},"expires_at":"2026-12-01T22:00:00Z"}`)},
		"in parts": {Method: "POST", Target: "/documents/uploads", Header: jsonCT, RequestBody: []byte(`{"size":100000000}`), Status: 201,
			ResponseHeader: hdr("Content-Type", "application/json", "Location", "/documents/"+docID),
			ResponseBody:   []byte(`{"id":"` + docID + `","method":"multipart","part_size":16777216,"part_count":6,"expires_at":"2026-12-01T22:00:00Z"}`)},
		"page":             {Method: "GET", Target: "/documents?limit=1", Status: 200, ResponseHeader: jsonCT, ResponseBody: []byte(`{"documents":[` + docJSON + `],"next_cursor":"abc"}`)},
		"not found":        {Method: "GET", Target: "/documents/" + docID, Status: 404, ResponseHeader: jsonCT, ResponseBody: errJSON("not_found")},
		"unavailable":      {Method: "GET", Target: "/documents", Status: 503, ResponseHeader: hdr("Content-Type", "application/json", "Retry-After", "1"), ResponseBody: errJSON("unavailable")},
		"deleted":          {Method: "DELETE", Target: "/documents/" + docID, Status: 204, ResponseHeader: http.Header{}},
		"not allowed":      {Method: "PUT", Target: "/documents/" + docID, Status: 405, ResponseHeader: hdr("Content-Type", "application/json", "Allow", "DELETE, GET, PATCH"), ResponseBody: errJSON("method_not_allowed")},
		"bad range":        {Method: "GET", Target: "/documents/" + docID + "/content", Header: hdr("Range", "bytes=999999-"), Status: 416, ResponseHeader: hdr("Content-Type", "application/json", "Content-Range", "bytes */300000"), ResponseBody: errJSON("range_not_satisfiable")},
		"refused limit":    {Method: "GET", Target: "/documents?limit=0", Status: 400, ResponseHeader: jsonCT, ResponseBody: errJSON("invalid")},
		"health":           {Method: "GET", Target: "/health", Status: 200, ResponseHeader: jsonCT, ResponseBody: []byte(`{"status":"ok"}`)},
		"no such route":    {Method: "GET", Target: "/nowhere", Status: 404, ResponseHeader: jsonCT, ResponseBody: errJSON("not_found")},
		"partial":          {Method: "GET", Target: "/documents/" + docID + "/content", Header: hdr("Range", "bytes=0-9"), Status: 206, ResponseHeader: with(content, "Content-Range", "bytes 0-9/300000", "Content-Length", "10"), ResponseBody: make([]byte, 10)},
		"pending":          {Method: "GET", Target: "/documents/" + docID, Status: 200, ResponseHeader: jsonCT, ResponseBody: []byte(strings.Replace(strings.Replace(docJSON, docHash, "", 1), "available", "pending", 1))},
		"failed ingest":    {Method: "GET", Target: "/documents/" + docID, Status: 200, ResponseHeader: jsonCT, ResponseBody: []byte(strings.Replace(strings.Replace(docJSON, docHash, "", 1), `"available"`, `"failed","failure":"the staged object is not the announced size"`, 1))},
		"uploads as an id": {Method: "GET", Target: "/documents/uploads", Status: 400, ResponseHeader: jsonCT, ResponseBody: errJSON("invalid")},
		"PUT on uploads":   {Method: "PUT", Target: "/documents/uploads", Status: 405, ResponseHeader: hdr("Content-Type", "application/json", "Allow", "DELETE, GET, PATCH, POST"), ResponseBody: errJSON("method_not_allowed")},
		"unauthenticated":  {Method: "GET", Target: "/documents", Status: 401, ResponseHeader: jsonCT, ResponseBody: errJSON("unauthenticated")},

		"expiring upload": {Method: "POST", Target: "/documents?filename=a.txt", Header: hdr("Content-Type", "text/plain", "X-Imago-Expires-In", "86400"),
			RequestBody: []byte("hello"), Status: 201, ResponseHeader: hdr("Content-Type", "application/json", "Location", "/documents/"+docID),
			ResponseBody: []byte(strings.Replace(docJSON, `"legal_hold"`, `"expires_at":"2026-12-02T21:35:35Z","legal_hold"`, 1))},
		"trash": {Method: "GET", Target: "/documents?trash=true", Status: 200, ResponseHeader: jsonCT, ResponseBody: []byte(`{"documents":[` + trashedJSON + `]}`)},
		"set expiry": {Method: "PATCH", Target: "/documents/" + docID, Header: jsonCT, RequestBody: []byte(`{"expires_at":"2036-12-01T00:00:00Z"}`),
			Status: 200, ResponseHeader: jsonCT, ResponseBody: []byte(strings.Replace(docJSON, `"legal_hold"`, `"expires_at":"2036-12-01T00:00:00Z","legal_hold"`, 1))},
		"clear expiry": {Method: "PATCH", Target: "/documents/" + docID, Header: jsonCT, RequestBody: []byte(`{"expires_at":null}`),
			Status: 200, ResponseHeader: jsonCT, ResponseBody: []byte(docJSON)},
		"restored":          {Method: "POST", Target: "/documents/" + docID + "/restore", Status: 200, ResponseHeader: jsonCT, ResponseBody: []byte(docJSON)},
		"held":              {Method: "PUT", Target: "/documents/" + docID + "/legal-hold", Status: 204, ResponseHeader: http.Header{}},
		"released":          {Method: "DELETE", Target: "/documents/" + docID + "/legal-hold", Status: 204, ResponseHeader: http.Header{}},
		"held, not deleted": {Method: "DELETE", Target: "/documents/" + docID, Status: 409, ResponseHeader: jsonCT, ResponseBody: errJSON("conflict")},
		"purged":            {Method: "DELETE", Target: "/documents/" + docID + "?purge=true", Status: 204, ResponseHeader: http.Header{}},
	}
	ctx := context.Background()
	for name, ex := range good {
		if err := s.Check(ctx, ex); err != nil {
			t.Errorf("%s: a well-formed exchange is refused: %v", name, err)
		}
	}

	drifts := []struct {
		name, from string
		doctor     func(ex *Exchange)
		want       string // in the error
	}{
		{"key material in the metadata", "metadata", func(ex *Exchange) {
			ex.ResponseBody = []byte(strings.Replace(docJSON, `"metadata"`, `"wrapped_key":"AQID","metadata"`, 1))
		}, "wrapped_key"},
		{"no created_at", "metadata", func(ex *Exchange) {
			ex.ResponseBody = []byte(strings.Replace(docJSON, `"created_at":"2026-12-01T21:35:35.957696812Z",`, "", 1))
		}, "created_at"},
		{"created_at not RFC 3339", "metadata", func(ex *Exchange) {
			ex.ResponseBody = []byte(strings.Replace(docJSON, "2026-12-01T21:35:35.957696812Z", "1 Dec 2026", 1))
		}, "date-time"},
		{"unknown status", "metadata", func(ex *Exchange) {
			ex.ResponseBody = []byte(strings.Replace(docJSON, "available", "deleted", 1))
		}, "status"},
		{"available without sha256", "metadata", func(ex *Exchange) {
			ex.ResponseBody = []byte(strings.Replace(docJSON, docHash, "", 1))
		}, "sha256"},
		{"a failure on an available document", "metadata", func(ex *Exchange) {
			ex.ResponseBody = []byte(strings.Replace(docJSON, `"metadata"`, `"failure":"x","metadata"`, 1))
		}, "failed"},
		{"metadata value not a string", "metadata", func(ex *Exchange) {
			ex.ResponseBody = []byte(strings.Replace(docJSON, `"FR"`, `7`, 1))
		}, "metadata"},
		{"text/plain for JSON", "metadata", func(ex *Exchange) { ex.ResponseHeader = hdr("Content-Type", "text/plain") }, "Content-Type"},
		{"an undeclared status", "metadata", func(ex *Exchange) { ex.Status = 418 }, "418"},
		{"an undeclared header", "metadata", func(ex *Exchange) { ex.ResponseHeader = with(jsonCT, "X-Debug", "1") }, "X-Debug"},
		{"201 without Location", "upload", func(ex *Exchange) { ex.ResponseHeader = jsonCT }, "Location"},
		{"a bad metadata header answered 201", "upload", func(ex *Exchange) { ex.Header = with(ex.Header, "X-Imago-Meta-Bad!key", "v") }, "Bad!key"},
		{"ETag not the quoted SHA-256", "content", func(ex *Exchange) { ex.ResponseHeader = with(content, "ETag", docHash) }, "ETag"},
		{"X-Imago-Cache not hit or miss", "content", func(ex *Exchange) { ex.ResponseHeader = with(content, "X-Imago-Cache", "warm") }, "X-Imago-Cache"},
		{"no Content-Disposition", "content", func(ex *Exchange) { ex.ResponseHeader = without(content, "Content-Disposition") }, "Content-Disposition"},
		{"an unquoted filename", "content", func(ex *Exchange) {
			ex.ResponseHeader = with(content, "Content-Disposition", `attachment; filename=scan.png`)
		}, "Content-Disposition"},
		{"206 without Content-Range", "partial", func(ex *Exchange) { ex.ResponseHeader = without(ex.ResponseHeader, "Content-Range") }, "Content-Range"},
		{"304 without ETag", "not modified", func(ex *Exchange) { ex.ResponseHeader = without(ex.ResponseHeader, "Etag") }, "ETag"},
		{"304 with an undeclared header", "not modified", func(ex *Exchange) { ex.ResponseHeader = with(ex.ResponseHeader, "Content-Disposition", "attachment") }, "Content-Disposition"},
		{"a multipart answer with an upload_url", "in parts", func(ex *Exchange) {
			ex.ResponseBody = []byte(strings.Replace(string(ex.ResponseBody), `"method"`, `"upload_url":"http://x/","method"`, 1))
		}, "upload_url"},
		{"a presigned answer without headers", "presigned", func(ex *Exchange) {
			ex.ResponseBody = []byte(strings.Replace(string(ex.ResponseBody), `"headers":{"Content-Type":"image/tiff"},`, "", 1))
		}, "headers"},
		{"an empty next_cursor", "page", func(ex *Exchange) {
			ex.ResponseBody = []byte(strings.Replace(string(ex.ResponseBody), `"abc"`, `""`, 1))
		}, "next_cursor"},
		{"404 with another code", "not found", func(ex *Exchange) { ex.ResponseBody = errJSON("missing") }, "code"},
		{"an error with an extra field", "not found", func(ex *Exchange) {
			ex.ResponseBody = []byte(`{"error":{"code":"not_found","message":"x","stack":"main.go:1"}}`)
		}, "stack"},
		{"an error without a message", "not found", func(ex *Exchange) { ex.ResponseBody = []byte(`{"error":{"code":"not_found"}}`) }, "message"},
		{"503 without Retry-After", "unavailable", func(ex *Exchange) { ex.ResponseHeader = jsonCT }, "Retry-After"},
		{"204 with a body", "deleted", func(ex *Exchange) { ex.ResponseBody = []byte("{}") }, "no body"},
		{"405 without Allow", "not allowed", func(ex *Exchange) { ex.ResponseHeader = jsonCT }, "Allow"},
		{"405 with the wrong Allow", "not allowed", func(ex *Exchange) { ex.ResponseHeader = with(ex.ResponseHeader, "Allow", "GET") }, "Allow"},
		{"a method the path has not answered 404", "not allowed", func(ex *Exchange) { ex.Status = 404; ex.ResponseBody = errJSON("not_found") }, "405"},
		{"416 without Content-Range", "bad range", func(ex *Exchange) { ex.ResponseHeader = jsonCT }, "Content-Range"},
		{"a refused limit answered 200", "refused limit", func(ex *Exchange) {
			ex.Status, ex.ResponseBody = 200, []byte(`{"documents":[]}`)
		}, "refuses the request"},
		{"health with more than status", "health", func(ex *Exchange) { ex.ResponseBody = []byte(`{"status":"ok","version":"1"}`) }, "version"},
		{"health answering 401", "health", func(ex *Exchange) { ex.Status, ex.ResponseBody = 401, errJSON("unauthenticated") }, "401"},
		{"an unknown route answered 200", "no such route", func(ex *Exchange) { ex.Status = 200 }, "404"},

		{"no legal_hold", "metadata", func(ex *Exchange) {
			ex.ResponseBody = []byte(strings.Replace(docJSON, `,"legal_hold":false`, "", 1))
		}, "legal_hold"},
		{"legal_hold not a boolean", "metadata", func(ex *Exchange) {
			ex.ResponseBody = []byte(strings.Replace(docJSON, `"legal_hold":false`, `"legal_hold":"no"`, 1))
		}, "legal_hold"},
		{"expires_at null", "metadata", func(ex *Exchange) {
			ex.ResponseBody = []byte(strings.Replace(docJSON, `"legal_hold"`, `"expires_at":null,"legal_hold"`, 1))
		}, "expires_at"},
		{"deleted_at without purge_at", "trash", func(ex *Exchange) {
			ex.ResponseBody = []byte(`{"documents":[` + strings.Replace(trashedJSON, `,"purge_at":"2026-12-09T08:00:00Z"`, "", 1) + `]}`)
		}, "purge_at"},
		{"a restore still in the trash", "restored", func(ex *Exchange) { ex.ResponseBody = []byte(trashedJSON) }, "deleted_at"},
		{"X-Imago-Expires-In 0 answered 201", "expiring upload", func(ex *Exchange) {
			ex.Header = with(ex.Header, "X-Imago-Expires-In", "0")
		}, "refuses the request"},
		{"expires_in 0 answered 201", "presigned", func(ex *Exchange) { ex.RequestBody = []byte(`{"size":5000000,"expires_in":0}`) }, "refuses the request"},
		{"?trash=yes answered 200", "trash", func(ex *Exchange) { ex.Target = "/documents?trash=yes" }, "refuses the request"},
		{"a PATCH without expires_at answered 200", "set expiry", func(ex *Exchange) { ex.RequestBody = []byte(`{}`) }, "refuses the request"},
		{"a held document's DELETE with another code", "held, not deleted", func(ex *Exchange) { ex.ResponseBody = errJSON("gone") }, "code"},
		{"a hold answered with a body", "held", func(ex *Exchange) { ex.ResponseBody = []byte("{}") }, "no body"},
	}
	for _, d := range drifts {
		t.Run(d.name, func(t *testing.T) {
			ex := good[d.from]
			ex.Header, ex.ResponseHeader = ex.Header.Clone(), ex.ResponseHeader.Clone()
			d.doctor(&ex)
			err := s.Check(ctx, ex)
			if err == nil {
				t.Fatalf("a doctored %s exchange (%s) passes", d.from, d.name)
			}
			if !strings.Contains(err.Error(), d.want) {
				t.Fatalf("the error does not name %q: %v", d.want, err)
			}
		})
	}
}

// TestLambdaExchange reads an API Gateway event and a function's answer
// as the HTTP exchange API Gateway makes of them.
func TestLambdaExchange(t *testing.T) {
	event := `{"version":"2.0","routeKey":"GET /documents/{id}/content","rawPath":"/documents/` + docID + `/content",
		"rawQueryString":"","headers":{"range":"bytes=0-9"},"requestContext":{"http":{"method":"GET"}},"isBase64Encoded":false}`
	answer := `{"statusCode":206,"headers":{"content-type":"image/png","content-length":"10","content-range":"bytes 0-9/300000",
		"etag":"\"` + docHash + `\"","x-imago-cache":"hit","accept-ranges":"bytes","cache-control":"private, no-cache",
		"x-content-type-options":"nosniff","content-disposition":"attachment"},"body":"AAAAAAAAAAAAAA==","isBase64Encoded":true}`
	ex, err := LambdaExchange([]byte(event), []byte(answer))
	if err != nil {
		t.Fatal(err)
	}
	if ex.Method != "GET" || ex.Header.Get("Range") != "bytes=0-9" || ex.Status != 206 || len(ex.ResponseBody) != 10 || ex.ResponseHeader.Get("Content-Range") != "bytes 0-9/300000" {
		t.Fatalf("exchange %+v", ex)
	}
	if err := Repo(t).CheckLambda(context.Background(), []byte(event), []byte(answer)); err != nil {
		t.Fatal(err)
	}
	doctored := strings.Replace(answer, `"content-range":"bytes 0-9/300000",`, "", 1)
	if err := Repo(t).CheckLambda(context.Background(), []byte(event), []byte(doctored)); err == nil || !strings.Contains(err.Error(), "Content-Range") {
		t.Fatalf("a 206 without content-range: %v", err)
	}
}

func with(h http.Header, kv ...string) http.Header {
	h = h.Clone()
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func without(h http.Header, name string) http.Header {
	h = h.Clone()
	h.Del(name)
	return h
}
