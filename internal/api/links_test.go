package api_test

import (
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/imagodocs/imago/"

// TestLinks checks what the packages that must stay light link, as `go
// list -deps` sees them: the contract links only the standard library, the
// client only the contract of the server's code, and reading the
// configuration (which the load driver does) neither the Redis client nor
// the Lambda runtime.
func TestLinks(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list dependencies: %v", err)
	}
	// deps lists the packages pkg links that are not the standard library's.
	deps := func(t *testing.T, pkg string) []string {
		cmd := exec.Command(goBin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "../../"+pkg)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, stderr.String())
		}
		list := strings.Fields(string(out))
		if !slices.Contains(list, module+pkg) {
			t.Fatalf("go list -deps %s does not list the package itself: %q", pkg, list)
		}
		return list
	}
	t.Run("api links only the standard library", func(t *testing.T) {
		if got := deps(t, "internal/api"); !slices.Equal(got, []string{module + "internal/api"}) {
			t.Errorf("internal/api links %q", got)
		}
	})
	t.Run("client links no server package", func(t *testing.T) {
		for _, dep := range deps(t, "internal/client") {
			if strings.HasPrefix(dep, module) && dep != module+"internal/api" && dep != module+"internal/client" {
				t.Errorf("internal/client links %s", dep)
			}
		}
	})
	for _, pkg := range []string{"internal/config", "cmd/imago-load"} {
		t.Run(pkg+" links neither Redis nor Lambda", func(t *testing.T) {
			for _, dep := range deps(t, pkg) {
				for _, banned := range []string{"github.com/redis/go-redis", "github.com/aws/aws-lambda-go", module + "internal/apigw", module + "internal/rediscache"} {
					if dep == banned || strings.HasPrefix(dep, banned+"/") {
						t.Errorf("%s links %s", pkg, dep)
					}
				}
			}
		})
	}
}
