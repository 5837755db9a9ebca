package openapitest

import (
	"sort"
	"strings"
	"testing"

	"github.com/imagodocs/imago/internal/apigw"
)

// openPaths are the paths whose routes need no caller identity: liveness
// probes, and a share link, whose token is its own credential.
var openPaths = map[string]bool{"/health": true, "/links/{token}": true}

// TestDocumentDescribesEveryRoute holds docs/openapi.yaml to apigw.Routes,
// the routes the functions, template.yaml and `imago serve` are built
// from: the same operations, each tagged with the function that serves it.
func TestDocumentDescribesEveryRoute(t *testing.T) {
	s := Repo(t)
	var inDoc, inCode []string
	for path, item := range s.Doc.Paths.Map() {
		for method, op := range item.Operations() {
			key := method + " " + path
			inDoc = append(inDoc, key)
			if len(op.Tags) != 1 {
				t.Errorf("%s: tags %v, want the one function that serves it", key, op.Tags)
			}
			for _, r := range apigw.Routes {
				if r.Key() == key && (len(op.Tags) != 1 || op.Tags[0] != string(r.Function)) {
					t.Errorf("%s is tagged %v; the %s function serves it", key, op.Tags, r.Function)
				}
			}
			if !openPaths[path] && op.Security != nil && len(*op.Security) == 0 {
				t.Errorf("%s needs no caller identity in the document", key)
			}
		}
	}
	for _, r := range apigw.Routes {
		inCode = append(inCode, r.Key())
	}
	sort.Strings(inDoc)
	sort.Strings(inCode)
	if strings.Join(inDoc, "\n") != strings.Join(inCode, "\n") {
		t.Fatalf("docs/openapi.yaml describes\n  %s\nthe API routes\n  %s", strings.Join(inDoc, "\n  "), strings.Join(inCode, "\n  "))
	}
}
