package localfront

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/imagodocs/imago/internal/apigw"
)

func errorCode(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("not the JSON error shape: %s", body)
	}
	return e.Error.Code
}

func TestUndecodableQueryIsRefused(t *testing.T) {
	f, recs := front(t, nil)
	for _, target := range []string{"/documents?cursor=%%%%", "/documents?limit=1&cursor=%zz", "/documents?%=x"} {
		recs[apigw.Metadata].got = events.APIGatewayV2HTTPRequest{}
		w := httptest.NewRecorder()
		f.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
		if w.Code != http.StatusBadRequest || errorCode(t, w.Body.Bytes()) != "invalid" {
			t.Errorf("GET %s: %d %s, want 400 invalid", target, w.Code, w.Body.String())
		}
		if recs[apigw.Metadata].got.RouteKey != "" {
			t.Errorf("GET %s reached the function with query %v", target, recs[apigw.Metadata].got.QueryStringParameters)
		}
	}
	// A well-formed one still reaches it whole.
	f.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/documents?cursor=a%2Bb&limit=2", nil))
	if q := recs[apigw.Metadata].got.QueryStringParameters; q["cursor"] != "a+b" || q["limit"] != "2" {
		t.Errorf("query: %v", q)
	}
}

func TestMethodNotAllowedCarriesAllow(t *testing.T) {
	f, _ := front(t, nil)
	for target, want := range map[string]string{
		"/documents": "GET, POST",
		"/documents/0b9b8f5e-2f4c-4f7a-9a57-6f3f0d1f2a3b/content": "GET",
		"/health": "GET, HEAD",
	} {
		w := httptest.NewRecorder()
		f.ServeHTTP(w, httptest.NewRequest("PATCH", target, nil))
		if w.Code != http.StatusMethodNotAllowed || errorCode(t, w.Body.Bytes()) != "method_not_allowed" {
			t.Errorf("PATCH %s: %d %s", target, w.Code, w.Body.String())
		}
		if got := w.Header().Get("Allow"); got != want {
			t.Errorf("PATCH %s: Allow %q, want %q", target, got, want)
		}
	}
}
