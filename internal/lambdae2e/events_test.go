//go:build linux

package lambdae2e

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Events are built from the sample events in events/ (the ones `make
// invoke` and `sam local invoke` send), with the parts that differ per
// request replaced; without that folder, from the built-in samples below,
// of the same shape: AWS's own example of an HTTP API payload 2.0 event
// with a JWT authorizer, and of an S3 notification.

// apiRequest is what differs between two API Gateway events.
type apiRequest struct {
	sample  string            // events/<sample>.json, the template
	route   string            // the route key, e.g. "GET /documents/{id}"
	id      string            // the {id} path parameter
	params  map[string]string // the route's other path parameters ({link_id}, {token})
	query   url.Values        // the query string
	headers map[string]string // request headers, lower-case names
	body    []byte
	binary  bool   // body travels base64-encoded, as API Gateway sends binary media
	sub     string // the JWT's sub claim; "" sends no authorizer context at all
}

// builtinAPIEvent is the shape of AWS's sample HTTP API event (payload 2.0,
// JWT authorizer), used when events/ has no sample for a route.
const builtinAPIEvent = `{
  "version": "2.0",
  "routeKey": "$default",
  "rawPath": "/",
  "rawQueryString": "",
  "headers": {
    "accept": "*/*",
    "authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJlMmUifQ.c2ln",
    "host": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com",
    "user-agent": "imago-lambdae2e",
    "x-amzn-trace-id": "Root=1-00000000-000000000000000000000000",
    "x-forwarded-for": "192.0.2.1",
    "x-forwarded-port": "443",
    "x-forwarded-proto": "https"
  },
  "requestContext": {
    "accountId": "123456789012",
    "apiId": "a1b2c3d4e5",
    "authorizer": {
      "jwt": {
        "claims": {
          "iss": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example",
          "sub": "e2e",
          "scope": "imago/documents",
          "token_use": "access"
        },
        "scopes": ["imago/documents"]
      }
    },
    "domainName": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com",
    "domainPrefix": "a1b2c3d4e5",
    "http": {
      "method": "GET",
      "path": "/",
      "protocol": "HTTP/1.1",
      "sourceIp": "192.0.2.1",
      "userAgent": "imago-lambdae2e"
    },
    "requestId": "e2e",
    "routeKey": "$default",
    "stage": "$default",
    "time": "01/Jan/2026:00:00:00 +0000",
    "timeEpoch": 1767225600000
  },
  "isBase64Encoded": false
}`

// builtinS3Event is the shape of the notification S3 sends Lambda.
const builtinS3Event = `{
  "Records": [
    {
      "eventVersion": "2.1",
      "eventSource": "aws:s3",
      "awsRegion": "us-east-1",
      "eventTime": "2026-01-01T00:00:00.000Z",
      "eventName": "ObjectCreated:Put",
      "userIdentity": {"principalId": "AWS:AROAEXAMPLE:client"},
      "requestParameters": {"sourceIPAddress": "192.0.2.1"},
      "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "e2e"},
      "s3": {
        "s3SchemaVersion": "1.0",
        "configurationId": "staged-object",
        "bucket": {"name": "bucket", "ownerIdentity": {"principalId": "EXAMPLE"}, "arn": "arn:aws:s3:::bucket"},
        "object": {"key": "staging/x", "size": 1, "eTag": "0123456789abcdef0123456789abcdef", "sequencer": "0A1B2C3D4E5F678901"}
      }
    }
  ]
}`

// sample returns events/<name>.json, or builtin when the repository has no
// such sample. A sample that exists but is not JSON fails the test.
func sample(t testing.TB, name, builtin string) map[string]any {
	t.Helper()
	path := filepath.Join(repoRoot(t), "events", name+".json")
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		raw = []byte(builtin)
	} else if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatalf("%s: not a JSON object: %v", path, err)
	}
	return ev
}

// transportHeaders are the sample's headers that every request keeps:
// those API Gateway and the client add whatever the request.
var transportHeaders = map[string]bool{
	"accept": true, "host": true, "user-agent": true, "x-amzn-trace-id": true,
	"x-forwarded-for": true, "x-forwarded-port": true, "x-forwarded-proto": true,
}

// apiEvent builds the API Gateway HTTP API event of r.
func apiEvent(t testing.TB, r apiRequest) []byte {
	t.Helper()
	ev := sample(t, r.sample, builtinAPIEvent)
	if rk, _ := ev["routeKey"].(string); rk != r.route && rk != "$default" {
		t.Errorf("events/%s.json has routeKey %q; it is used here for %q", r.sample, rk, r.route)
	}
	method, path, ok := strings.Cut(r.route, " ")
	if !ok {
		t.Fatalf("bad route %q", r.route)
	}
	path = strings.ReplaceAll(path, "{id}", r.id)
	for name, v := range r.params {
		path = strings.ReplaceAll(path, "{"+name+"}", v)
	}

	ev["version"] = "2.0"
	ev["routeKey"] = r.route
	ev["rawPath"] = path
	ev["rawQueryString"] = r.query.Encode()
	if len(r.query) > 0 {
		qs := map[string]any{}
		for k, vs := range r.query {
			qs[k] = strings.Join(vs, ",") // API Gateway joins repeated parameters
		}
		ev["queryStringParameters"] = qs
	} else {
		delete(ev, "queryStringParameters")
	}
	params := map[string]any{}
	if r.id != "" {
		params["id"] = r.id
	}
	for name, v := range r.params {
		params[name] = v
	}
	if len(params) > 0 {
		ev["pathParameters"] = params
	} else {
		delete(ev, "pathParameters")
	}

	old, _ := ev["headers"].(map[string]any)
	headers := map[string]any{}
	for k, v := range old {
		if transportHeaders[strings.ToLower(k)] || (r.sub != "" && strings.EqualFold(k, "authorization")) {
			headers[strings.ToLower(k)] = v
		}
	}
	if r.sub != "" && headers["authorization"] == nil {
		headers["authorization"] = "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJlMmUifQ.c2ln"
	}
	for k, v := range r.headers {
		headers[strings.ToLower(k)] = v
	}
	headers["content-length"] = strconv.Itoa(len(r.body))
	ev["headers"] = headers

	switch {
	case len(r.body) == 0:
		delete(ev, "body")
		ev["isBase64Encoded"] = false
	case r.binary:
		ev["body"] = base64.StdEncoding.EncodeToString(r.body)
		ev["isBase64Encoded"] = true
	default:
		ev["body"] = string(r.body)
		ev["isBase64Encoded"] = false
	}

	rc, _ := ev["requestContext"].(map[string]any)
	if rc == nil {
		rc = map[string]any{}
		ev["requestContext"] = rc
	}
	rc["routeKey"] = r.route
	httpCtx, _ := rc["http"].(map[string]any)
	if httpCtx == nil {
		httpCtx = map[string]any{"protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "imago-lambdae2e"}
		rc["http"] = httpCtx
	}
	httpCtx["method"] = method
	httpCtx["path"] = path
	now := time.Now().UTC()
	rc["requestId"] = randomHex(8)
	rc["time"] = now.Format("02/Jan/2006:15:04:05 -0700")
	rc["timeEpoch"] = now.UnixMilli()
	if r.sub == "" {
		delete(rc, "authorizer")
	} else {
		claims := jwtClaims(rc)
		claims["sub"] = r.sub
		if _, ok := claims["username"]; ok {
			claims["username"] = r.sub
		}
	}

	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// jwtClaims returns requestContext.authorizer.jwt.claims, creating what is missing.
func jwtClaims(rc map[string]any) map[string]any {
	auth, _ := rc["authorizer"].(map[string]any)
	if auth == nil {
		auth = map[string]any{}
		rc["authorizer"] = auth
	}
	jwt, _ := auth["jwt"].(map[string]any)
	if jwt == nil {
		jwt = map[string]any{"scopes": []any{"imago/documents"}}
		auth["jwt"] = jwt
	}
	claims, _ := jwt["claims"].(map[string]any)
	if claims == nil {
		claims = map[string]any{}
		jwt["claims"] = claims
	}
	return claims
}

// s3Object is one record of an S3 notification.
type s3Object struct {
	event  string // e.g. "ObjectCreated:Put"
	bucket string
	key    string // the object key, decoded: it is encoded here as S3 encodes it
	size   int64
}

// s3Event builds the notification S3 sends Lambda for objs.
func s3Event(t testing.TB, objs ...s3Object) []byte {
	t.Helper()
	ev := sample(t, "s3-object-created", builtinS3Event)
	recs, _ := ev["Records"].([]any)
	if len(recs) == 0 {
		t.Fatal("events/s3-object-created.json has no Records")
	}
	tmpl, err := json.Marshal(recs[0])
	if err != nil {
		t.Fatal(err)
	}
	var out []any
	for _, o := range objs {
		var rec map[string]any
		if err := json.Unmarshal(tmpl, &rec); err != nil {
			t.Fatal(err)
		}
		rec["eventName"] = o.event
		rec["eventTime"] = time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
		s3, _ := rec["s3"].(map[string]any)
		bucket, _ := s3["bucket"].(map[string]any)
		object, _ := s3["object"].(map[string]any)
		if s3 == nil || bucket == nil || object == nil {
			t.Fatal("the S3 event sample has no s3.bucket or s3.object")
		}
		bucket["name"] = o.bucket
		bucket["arn"] = "arn:aws:s3:::" + o.bucket
		object["key"] = s3EncodeKey(o.key)
		object["size"] = o.size
		object["sequencer"] = strings.ToUpper(randomHex(9))
		out = append(out, rec)
	}
	ev["Records"] = out
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// s3EncodeKey encodes an object key as S3 writes it into notifications:
// URL form encoding ('+' for a space, %XX for the rest), slashes kept.
func s3EncodeKey(key string) string {
	return strings.ReplaceAll(url.QueryEscape(key), "%2F", "/")
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
