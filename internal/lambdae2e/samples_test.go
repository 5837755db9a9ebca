//go:build linux

package lambdae2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/imagodocs/imago/internal/apigw"
)

// TestLambdaE2E_SampleEvents sends every sample event of events/, unchanged,
// to the function template.yaml routes it to, as `make invoke` and
// `sam local invoke` do: each must get the answer its route gives a
// request of that shape. The samples name a document that does not exist;
// the table stream's sample (a TTL removal of it) goes to the metadata
// function, which finds nothing left to remove and succeeds.
func TestLambdaE2E_SampleEvents(t *testing.T) {
	t.Parallel()
	requireEnv(t)
	files, _ := filepath.Glob(filepath.Join(repoRoot(t), "events", "*.json"))
	if len(files) == 0 {
		t.Skip("no sample events in events/")
	}
	sort.Strings(files)
	fns := map[string]*function{}
	fn := func(name string) *function {
		if fns[name] == nil {
			fns[name] = startFunction(t, name)
		}
		return fns[name]
	}
	// What each route answers a well-formed sample about an unknown document.
	want := map[string]int{
		"GET /health":                 200,
		"HEAD /health":                200,
		"POST /documents":             201,
		"POST /documents/uploads":     201,
		"GET /documents":              200,
		"GET /documents/{id}":         404,
		"GET /documents/{id}/content": 404,
		"DELETE /documents/{id}":      404, // with ?purge=true too

		"PATCH /documents/{id}":             404,
		"POST /documents/{id}/restore":      404,
		"PUT /documents/{id}/legal-hold":    404,
		"DELETE /documents/{id}/legal-hold": 404,

		"POST /documents/{id}/parts":    404,
		"GET /documents/{id}/parts":     404,
		"POST /documents/{id}/complete": 404,

		"POST /documents/{id}/links":             404,
		"GET /documents/{id}/links":              404,
		"DELETE /documents/{id}/links/{link_id}": 404,
		// The sample's token is made under env.json's secret, not this
		// run's: a foreign token, as an unknown link answers.
		"GET /links/{token}": 404,
		// The caller's trail, filtered to reads of the unknown document.
		"GET /audit": 200,
	}
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".json")
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var probe struct {
			RouteKey string `json:"routeKey"`
			Records  []struct {
				EventSource string `json:"eventSource"`
			} `json:"Records"`
			RequestContext struct {
				Authorizer struct {
					JWT struct {
						Claims map[string]string `json:"claims"`
					} `json:"jwt"`
				} `json:"authorizer"`
			} `json:"requestContext"`
		}
		if err := json.Unmarshal(raw, &probe); err != nil {
			t.Errorf("events/%s.json: %v", name, err)
			continue
		}
		if len(probe.Records) > 0 {
			target := map[string]string{"aws:s3": fnUpload, "aws:dynamodb": fnMetadata}[probe.Records[0].EventSource]
			if target == "" {
				t.Errorf("events/%s.json: records of %q, neither S3's nor the table stream's", name, probe.Records[0].EventSource)
				continue
			}
			if out := fn(target).invoke(t, raw); len(bytes.TrimSpace(out)) != 0 && string(out) != "null" {
				t.Errorf("events/%s.json: the %s function answered %q", name, target, out)
			}
			t.Logf("events/%s.json: %s records -> %s function", name, probe.Records[0].EventSource, target)
			continue
		}
		var route apigw.Route
		for _, r := range apigw.Routes {
			if r.Key() == probe.RouteKey {
				route = r
			}
		}
		if route.Function == "" {
			t.Errorf("events/%s.json: routeKey %q is no route of the API", name, probe.RouteKey)
			continue
		}
		r := fn(string(route.Function)).call(t, raw)
		if r.StatusCode != want[route.Key()] {
			t.Errorf("events/%s.json (%s, %s function): status %d, want %d: %s", name, route.Key(), route.Function, r.StatusCode, want[route.Key()], r)
			continue
		}
		t.Logf("events/%s.json: %s -> %s function -> %d", name, route.Key(), route.Function, r.StatusCode)
		// What a sample created goes again.
		if r.StatusCode == 201 {
			var created struct {
				ID string `json:"id"`
			}
			json.Unmarshal(r.body, &created)
			sub := probe.RequestContext.Authorizer.JWT.Claims["sub"]
			if created.ID == "" || sub == "" {
				t.Errorf("events/%s.json: 201 without an id (%s) or a sample without a sub", name, r)
				continue
			}
			fn(fnMetadata).call(t, apiEvent(t, apiRequest{sample: "delete", route: "DELETE /documents/{id}", id: created.ID, sub: sub})).
				expect(t, "DELETE of what events/"+name+".json created", 204)
		}
	}
}
