package localfront

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/imagodocs/imago/internal/apigw"
)

// payloadRecorder is a function that keeps every payload it got.
type payloadRecorder struct{ got [][]byte }

func (p *payloadRecorder) Invoke(_ context.Context, payload []byte) ([]byte, error) {
	p.got = append(p.got, payload)
	return []byte("null"), nil
}

// The S3 events endpoint takes S3 event notifications and nothing else:
// an API Gateway event posted there (its claims naming any tenant) would
// otherwise reach the upload function's API side as that tenant.
func TestS3EventsTakesOnlyS3Notifications(t *testing.T) {
	upload := &payloadRecorder{}
	f := New(map[apigw.Function]Invoker{apigw.Upload: upload}, "sub", map[string]string{"secret-b": "bob"}, nil)
	f.EnableS3Events()
	post := func(body string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		f.ServeHTTP(w, httptest.NewRequest("POST", S3EventsPath, strings.NewReader(body)))
		return w
	}
	apiEvent := `"version":"2.0","routeKey":"POST /documents","rawPath":"/documents",
		"headers":{"content-type":"text/plain"},"body":"aGVsbG8=","isBase64Encoded":true,
		"requestContext":{"http":{"method":"POST","path":"/documents"},"routeKey":"POST /documents",
			"authorizer":{"jwt":{"claims":{"sub":"bob"}}}}`
	record := `{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"staging/0b9b8f5e-2f4c-4f7a-9a57-6f3f0d1f2a3b","size":5}}}`
	for name, body := range map[string]string{
		"API Gateway event":              "{" + apiEvent + "}",
		"empty Records":                  `{"Records":[],` + apiEvent + "}",
		"null Records":                   `{"Records":null,` + apiEvent + "}",
		"Records not a list":             `{"Records":{"eventSource":"aws:s3"},` + apiEvent + "}",
		"a record of another source":     `{"Records":[{"eventSource":"aws:sqs","s3":{"object":{"key":"k"}}}],` + apiEvent + "}",
		"a record without a key":         `{"Records":[{"eventSource":"aws:s3","s3":{"object":{}}}],` + apiEvent + "}",
		"one good record, one bad":       `{"Records":[` + record + `,{"eventSource":"aws:s3"}]}`,
		"a JSON array":                   `[` + record + `]`,
		"null":                           `null`,
		"not JSON":                       `Records`,
		"empty":                          ``,
		"the S3 test event (no Records)": `{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-27T10:00:00Z","Bucket":"b"}`,
	} {
		w := post(body)
		if w.Code != http.StatusBadRequest || errorCode(t, w.Body.Bytes()) != "invalid" || w.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %s, want 400 invalid", name, w.Code, w.Body.String())
		}
		if len(upload.got) != 0 {
			t.Fatalf("%s reached the upload function: %s", name, upload.got[0])
		}
	}

	// A notification with an API Gateway event's members beside its
	// records, under any spelling of "Records" the JSON decoder matches:
	// only the records reach the function.
	for _, key := range []string{"Records", "records", `Rec\u006frds`} {
		upload.got = nil
		w := post(`{"` + key + `":[` + record + `],` + apiEvent + `}`)
		if w.Code != http.StatusNoContent || len(upload.got) != 1 {
			t.Fatalf("%q: %d %s, %d invocations", key, w.Code, w.Body.String(), len(upload.got))
		}
		var members map[string]json.RawMessage
		if err := json.Unmarshal(upload.got[0], &members); err != nil {
			t.Fatal(err)
		}
		if len(members) != 1 || members["Records"] == nil {
			t.Fatalf("%q: the function got %s, want the records alone", key, upload.got[0])
		}
		var ev struct {
			Records []struct {
				EventSource string
				S3          struct{ Object struct{ Key string } }
			}
		}
		json.Unmarshal(upload.got[0], &ev)
		if len(ev.Records) != 1 || ev.Records[0].EventSource != "aws:s3" || ev.Records[0].S3.Object.Key != "staging/0b9b8f5e-2f4c-4f7a-9a57-6f3f0d1f2a3b" {
			t.Fatalf("%q: the function got %s", key, upload.got[0])
		}
	}
}
