package samtemplate

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"log/slog"
	"maps"
	"mime"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/awslabs/goformation/v7"
	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/dynamodb"
	"github.com/awslabs/goformation/v7/cloudformation/ec2"
	"github.com/awslabs/goformation/v7/cloudformation/elasticache"
	"github.com/awslabs/goformation/v7/cloudformation/global"
	"github.com/awslabs/goformation/v7/cloudformation/kms"
	"github.com/awslabs/goformation/v7/cloudformation/logs"
	"github.com/awslabs/goformation/v7/cloudformation/s3"
	"github.com/awslabs/goformation/v7/cloudformation/secretsmanager"
	"github.com/awslabs/goformation/v7/cloudformation/serverless"
	"github.com/awslabs/goformation/v7/intrinsics"

	"github.com/imagodocs/imago/internal/apigw"
	"github.com/imagodocs/imago/internal/app"
	"github.com/imagodocs/imago/internal/backends/embedded"
	"github.com/imagodocs/imago/internal/config"
	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/dynamostore"
	"github.com/imagodocs/imago/internal/rediscache"
	"github.com/imagodocs/imago/internal/s3store"
)

// The files under test, relative to this package.
const (
	root         = "../.."
	templatePath = root + "/template.yaml"
)

// Logical ids of the template's resources that the tests look at.
const (
	apiID       = "HttpApi"
	bucketID    = "DocumentsBucket"
	bucketPolID = "DocumentsBucketPolicy"
	tableID     = "DocumentsTable"
	auditID     = "AuditTable"
	keyID       = "DocumentKey"
	aliasID     = "DocumentKeyAlias"
	secretID    = "CacheKeySecret"
	cacheID     = "DocumentCache"
	fnSGID      = "FunctionSecurityGroup"
	cacheSGID   = "CacheSecurityGroup"
	endpointSG  = "EndpointSecurityGroup"
)

// functionIDs maps each apigw.Function to its SAM logical id (docs/design.md,
// "The three functions").
var functionIDs = map[apigw.Function]string{
	apigw.Upload:   "UploadFunction",
	apigw.Download: "DownloadFunction",
	apigw.Metadata: "MetadataFunction",
}

// placeholderID is the document id the sample events use.
const placeholderID = "00000000-0000-4000-8000-000000000000"

// ---------------------------------------------------------------- loading

// Template is template.yaml twice: typed by goformation, and as the plain
// long-form tree (short tags like !Sub turned into {"Fn::Sub": …}).
type Template struct {
	*cloudformation.Template
	Tree map[string]any
}

// unmodelled lists the properties that goformation v7.14.9's schema does
// not know (it rejects unknown properties outright), as dotted paths under
// a resource's Properties: HttpApi's AccessLogSettings (it only has
// AccessLogSetting, the REST Api spelling), Function's LoggingConfig, and
// a table's PointInTimeRecoverySpecification.RecoveryPeriodInDays (newer
// than its schema). They are removed before the typed parse and checked on
// the plain tree instead. (A function event's unknown property, such as a
// DynamoDB event's FilterCriteria, only leaves that event's typed
// properties nil: the stream event is read from the plain tree.)
var unmodelled = map[string][]string{
	"AWS::Serverless::HttpApi":  {"AccessLogSettings"},
	"AWS::Serverless::Function": {"LoggingConfig"},
	"AWS::DynamoDB::Table":      {"PointInTimeRecoverySpecification.RecoveryPeriodInDays"},
}

// deletePath removes the property at a dotted path under m, if it is there.
func deletePath(m map[string]any, path string) {
	first, rest, nested := strings.Cut(path, ".")
	if !nested {
		delete(m, first)
		return
	}
	if inner := asMap(m[first]); inner != nil {
		deletePath(inner, rest)
	}
}

// intrinsicNames are the functions goformation's processor recognises.
var intrinsicNames = []string{
	"Ref", "Fn::GetAtt", "Fn::Sub", "Fn::Join", "Fn::Select", "Fn::Split", "Fn::If",
	"Fn::Equals", "Fn::And", "Fn::Or", "Fn::Not", "Fn::Base64", "Fn::FindInMap",
	"Fn::GetAZs", "Fn::ImportValue", "Fn::Cidr", "Fn::Transform",
}

var (
	loadOnce sync.Once
	loaded   *Template
	loadErr  error
)

// load parses template.yaml once.
//
// goformation's default processing evaluates intrinsic functions, and what
// it cannot evaluate it drops: every Fn::GetAtt and every Ref to a resource
// become null, and Fn::Sub strips them from its string. That would erase
// exactly what these tests check (which table a policy names, which bucket
// an environment variable points at). NoProcess keeps them, but as objects
// where the typed structs expect strings, so unmarshalling fails. Instead
// every intrinsic is replaced by goformation's own string encoding of an
// intrinsic (base64 of its JSON, what cloudformation.Sub and friends
// produce), and longForm decodes them back. A Ref to a list parameter
// becomes a one-element list (the typed fields are []string there), and so
// does an Fn::If with a list in a branch; a Ref to a Number parameter
// becomes its default (the typed fields are ints).
func load(t *testing.T) *Template {
	t.Helper()
	loadOnce.Do(func() { loaded, loadErr = parseTemplate(templatePath) })
	if loadErr != nil {
		t.Fatalf("parse %s: %v", templatePath, loadErr)
	}
	return loaded
}

func parseTemplate(path string) (*Template, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	raw, err := intrinsics.ProcessYAML(data, &intrinsics.ProcessorOptions{NoProcess: true})
	if err != nil {
		return nil, err
	}
	var tree map[string]any
	if err := json.Unmarshal(raw, &tree); err != nil {
		return nil, err
	}
	// A second copy for goformation, without the unmodelled properties.
	var typed map[string]any
	if err := json.Unmarshal(raw, &typed); err != nil {
		return nil, err
	}
	for _, r := range asMap(typed["Resources"]) {
		res := asMap(r)
		props := asMap(res["Properties"])
		for _, p := range unmodelled[asString(res["Type"])] {
			deletePath(props, p)
		}
	}
	params := asMap(tree["Parameters"])
	handlers := map[string]intrinsics.IntrinsicHandler{}
	for _, name := range intrinsicNames {
		handlers[name] = func(name string, input, _ any) any {
			if name == "Ref" {
				if p := asMap(params[asString(input)]); p != nil {
					switch typ := asString(p["Type"]); {
					case typ == "CommaDelimitedList" || strings.HasPrefix(typ, "List<"):
						return []any{encodeIntrinsic(name, input)}
					case typ == "Number":
						return p["Default"]
					}
				}
			}
			// An Fn::If with a list in either branch (a literal list, or a
			// Ref to a list parameter, already a list here) is a list.
			if args := asSlice(input); name == "Fn::If" && len(args) == 3 && (asSlice(args[1]) != nil || asSlice(args[2]) != nil) {
				return []any{encodeIntrinsic(name, input)}
			}
			return encodeIntrinsic(name, input)
		}
	}
	typedJSON, err := json.Marshal(typed)
	if err != nil {
		return nil, err
	}
	tpl, err := goformation.ParseJSONWithOptions(typedJSON, &intrinsics.ProcessorOptions{IntrinsicHandlerOverrides: handlers})
	if err != nil {
		return nil, fmt.Errorf("goformation: %w", err)
	}
	return &Template{Template: tpl, Tree: tree}, nil
}

func encodeIntrinsic(name string, input any) string {
	b, _ := json.Marshal(map[string]any{name: input})
	return base64.StdEncoding.EncodeToString(b)
}

// decodeIntrinsic recognises goformation's encoding of an intrinsic.
func decodeIntrinsic(s string) (string, any, bool) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) == 0 || b[0] != '{' {
		return "", nil, false
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil || len(m) != 1 {
		return "", nil, false
	}
	for k, v := range m {
		if slices.Contains(intrinsicNames, k) {
			return k, v, true
		}
	}
	return "", nil, false
}

// longForm turns a value of the typed template (or any part of it) back
// into plain data with long-form intrinsics: {"Fn::Sub": …}.
func longForm(v any) any {
	switch x := v.(type) {
	case string:
		if name, arg, ok := decodeIntrinsic(x); ok {
			return map[string]any{name: longForm(arg)}
		}
		return x
	case *string:
		if x == nil {
			return nil
		}
		return longForm(*x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = longForm(e)
		}
		return out
	case []string:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = longForm(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = longForm(e)
		}
		return out
	case map[string]string:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = longForm(e)
		}
		return out
	default:
		// Typed structs: through their JSON.
		b, err := json.Marshal(x)
		if err != nil {
			return x
		}
		var plain any
		if json.Unmarshal(b, &plain) != nil {
			return x
		}
		if reflect.DeepEqual(plain, x) {
			return x
		}
		return longForm(plain)
	}
}

// Small accessors of plain data.
func asMap(v any) map[string]any { m, _ := v.(map[string]any); return m }
func asSlice(v any) []any        { s, _ := v.([]any); return s }
func asString(v any) string      { s, _ := v.(string); return s }

// deref is *p, or the zero value for nil.
func deref[T any](p *T) (v T) {
	if p != nil {
		v = *p
	}
	return v
}

// js renders v as JSON, for messages.
func js(v any) string { b, _ := json.Marshal(v); return string(b) }

// intrinsic returns the argument of v when v is the intrinsic name.
func intrinsic(v any, name string) (any, bool) {
	m := asMap(v)
	if len(m) != 1 {
		return nil, false
	}
	arg, ok := m[name]
	return arg, ok
}

// isRef reports whether v is {"Ref": target}, or a list holding only that
// (how a Ref to a list parameter reads in the typed template).
func isRef(v any, target string) bool {
	if l := asSlice(v); len(l) == 1 {
		v = l[0]
	}
	arg, ok := intrinsic(v, "Ref")
	return ok && arg == target
}

// getAtt returns the resource and attribute of {"Fn::GetAtt": …}, in either
// of its forms ("Res.Attr" or ["Res", "Attr"]).
func getAtt(v any) (string, string, bool) {
	arg, ok := intrinsic(v, "Fn::GetAtt")
	if !ok {
		return "", "", false
	}
	switch a := arg.(type) {
	case string:
		res, attr, ok := strings.Cut(a, ".")
		return res, attr, ok
	case []any:
		if len(a) == 2 {
			return asString(a[0]), asString(a[1]), true
		}
	}
	return "", "", false
}

// sub returns the template and variables of {"Fn::Sub": …}.
func sub(v any) (string, map[string]any, bool) {
	arg, ok := intrinsic(v, "Fn::Sub")
	if !ok {
		return "", nil, false
	}
	switch a := arg.(type) {
	case string:
		return a, map[string]any{}, true
	case []any:
		if len(a) == 2 {
			return asString(a[0]), asMap(a[1]), true
		}
	}
	return "", nil, false
}

func resource[T any](t *testing.T, tpl *Template, id string) T {
	t.Helper()
	r, ok := tpl.Resources[id].(T)
	if !ok {
		var zero T
		t.Fatalf("template.yaml: resource %s is %T, want %T", id, tpl.Resources[id], zero)
	}
	return r
}

func functions(t *testing.T, tpl *Template) map[apigw.Function]*serverless.Function {
	t.Helper()
	out := map[apigw.Function]*serverless.Function{}
	for _, fn := range apigw.Functions {
		id, ok := functionIDs[fn]
		if !ok {
			t.Fatalf("apigw.Functions has %q, which has no SAM logical id in this test", fn)
		}
		out[fn] = resource[*serverless.Function](t, tpl, id)
	}
	return out
}

func globalFunction(tpl *Template) *global.Function {
	g, _ := tpl.Globals["Function"].(*global.Function)
	if g == nil {
		return &global.Function{}
	}
	return g
}

// treeResource is a resource of the plain tree.
func treeResource(tpl *Template, id string) map[string]any {
	return asMap(asMap(tpl.Tree["Resources"])[id])
}

// stagingPrefix is the template's staging prefix (IMAGO_STAGING_PREFIX).
func stagingPrefix(t *testing.T, tpl *Template) string {
	t.Helper()
	p, ok := environment(tpl, functions(t, tpl)[apigw.Upload])["IMAGO_STAGING_PREFIX"]
	if !ok || asString(p) == "" {
		t.Fatal("IMAGO_STAGING_PREFIX is not set to a literal prefix for UploadFunction")
	}
	return asString(p)
}

// environment is a function's environment, Globals merged under its own,
// in long form.
func environment(tpl *Template, fn *serverless.Function) map[string]any {
	env := map[string]any{}
	if g := globalFunction(tpl); g.Environment != nil {
		for k, v := range g.Environment.Variables {
			env[k] = longForm(v)
		}
	}
	if fn.Environment != nil {
		for k, v := range fn.Environment.Variables {
			env[k] = longForm(v)
		}
	}
	return env
}

// ---------------------------------------------------------------- functions

func TestFunctionsAreGoOnArm64BuiltByMake(t *testing.T) {
	tpl := load(t)
	fns := functions(t, tpl)
	if n := len(tpl.GetAllServerlessFunctionResources()); n != len(fns) {
		t.Errorf("template.yaml has %d functions, want exactly the %d of apigw.Functions", n, len(fns))
	}
	makefile, err := os.ReadFile(root + "/Makefile")
	if err != nil {
		t.Fatal(err)
	}
	g := globalFunction(tpl)
	for fn, f := range fns {
		id := functionIDs[fn]
		runtime := cmpOr(deref(f.Runtime), deref(g.Runtime))
		if runtime != "provided.al2023" {
			t.Errorf("%s: Runtime %q, want provided.al2023", id, runtime)
		}
		arch := f.Architectures
		if arch == nil && g.Architectures != nil {
			arch = *g.Architectures
		}
		if !slices.Equal(arch, []string{"arm64"}) {
			t.Errorf("%s: Architectures %v, want [arm64]", id, arch)
		}
		if h := cmpOr(deref(f.Handler), deref(g.Handler)); h != "bootstrap" {
			t.Errorf("%s: Handler %q, want bootstrap", id, h)
		}
		if f.CodeUri == nil || deref(f.CodeUri.String) != "." {
			t.Errorf("%s: CodeUri %v, want . (the Makefile builds from the repository root)", id, js(f.CodeUri))
		}
		if bm := f.AWSCloudFormationMetadata["BuildMethod"]; bm != "makefile" {
			t.Errorf("%s: Metadata.BuildMethod %v, want makefile", id, bm)
		}
		if !regexp.MustCompile(`(?m)^build-` + id + `:`).Match(makefile) {
			t.Errorf("%s: the Makefile has no build-%s target for sam build", id, id)
		}
		// API Gateway gives an integration 30 s; only the upload function,
		// which also serves S3 events, may run longer.
		timeout := cmpOr(deref(f.Timeout), deref(g.Timeout))
		if timeout == 0 || (fn != apigw.Upload && timeout > 30) {
			t.Errorf("%s: Timeout %d s, want 1..30 (API Gateway's integration limit)", id, timeout)
		}
		if f.Role != nil {
			t.Errorf("%s: sets Role, which bypasses the least-privilege Policies checked here", id)
		}
		// LoggingConfig (not modelled by goformation): a log group of this
		// stack, with a retention.
		lc := asMap(asMap(treeResource(tpl, id)["Properties"])["LoggingConfig"])
		if lg := lc["LogGroup"]; lg != nil {
			arg, _ := intrinsic(lg, "Ref")
			if _, ok := tpl.Resources[asString(arg)].(*logs.LogGroup); !ok {
				t.Errorf("%s: LoggingConfig.LogGroup %s is not a log group of this stack", id, js(lg))
			} else if resource[*logs.LogGroup](t, tpl, asString(arg)).RetentionInDays == nil {
				t.Errorf("%s: log group %s keeps logs forever", id, arg)
			}
		}
	}
}

func cmpOr[T comparable](vals ...T) T {
	var zero T
	for _, v := range vals {
		if v != zero {
			return v
		}
	}
	return zero
}

// ---------------------------------------------------------------- routes

func TestRoutesMatchApigwRoutes(t *testing.T) {
	tpl := load(t)
	type route struct{ Method, Path string }
	got := map[route]string{}
	for fn, f := range functions(t, tpl) {
		for name, ev := range f.Events {
			switch ev.Type {
			case "HttpApi":
				p := ev.Properties.HttpApiEvent
				if p == nil {
					t.Errorf("%s: event %s: properties are not an HttpApi event's", functionIDs[fn], name)
					continue
				}
				if !isRef(longForm(p.ApiId), apiID) {
					t.Errorf("%s: event %s: ApiId %s, want !Ref %s (otherwise SAM builds an implicit API without the authorizer)", functionIDs[fn], name, js(longForm(p.ApiId)), apiID)
				}
				r := route{deref(p.Method), deref(p.Path)}
				if prev, dup := got[r]; dup {
					t.Errorf("route %s %s is declared twice (%s and %s)", r.Method, r.Path, prev, functionIDs[fn])
				}
				got[r] = functionIDs[fn]
			case "S3":
			case "DynamoDB":
				// The table's stream (TestTableStreamReachesMetadataOnly).
			default:
				t.Errorf("%s: event %s has type %s; the functions are invoked by the HTTP API, S3 and the table's stream only", functionIDs[fn], name, ev.Type)
			}
		}
	}
	want := map[route]string{}
	for _, r := range apigw.Routes {
		want[route{r.Method, r.Path}] = functionIDs[r.Function]
	}
	for r, fn := range want {
		switch g, ok := got[r]; {
		case !ok:
			t.Errorf("route %s %s (apigw.Routes, %s) has no HttpApi event in template.yaml", r.Method, r.Path, fn)
		case g != fn:
			t.Errorf("route %s %s is on %s, but apigw.Routes has it on %s", r.Method, r.Path, g, fn)
		}
	}
	for r, fn := range got {
		if _, ok := want[r]; !ok {
			t.Errorf("route %s %s on %s is not in apigw.Routes", r.Method, r.Path, fn)
		}
	}
}

func TestJWTAuthorizerIsTheDefaultAndHealthIsOpen(t *testing.T) {
	tpl := load(t)
	open := openRoutes(t)
	for _, key := range []string{"GET /health", "GET /links/{token}"} {
		if !open[key] {
			t.Errorf("%s asks for a caller identity: the handlers changed, or openRoutes cannot tell", key)
		}
	}
	api := resource[*serverless.HttpApi](t, tpl, apiID)
	if api.Auth == nil || deref(api.Auth.DefaultAuthorizer) == "" {
		t.Fatalf("%s: no Auth.DefaultAuthorizer: every route would be open", apiID)
	}
	def := *api.Auth.DefaultAuthorizer
	authz := asMap(asMap(longForm(api.Auth.Authorizers))[def])
	if authz == nil {
		t.Fatalf("%s: the default authorizer %q is not among Auth.Authorizers", apiID, def)
	}
	// Its issuer and audience, with and without a JwtIssuer: see
	// TestIdentityWithoutAnIssuerIsACognitoUserPool and TestIdentityWithAnIssuerUsesIt.
	if asMap(authz["JwtConfiguration"]) == nil {
		t.Errorf("authorizer %s has no JwtConfiguration", def)
	}
	if src := authz["IdentitySource"]; src != "$request.header.Authorization" {
		t.Errorf("authorizer %s: IdentitySource %v, want $request.header.Authorization", def, src)
	}
	// Parameters of the authorizer.
	for _, p := range []string{"JwtIssuer", "JwtAudience"} {
		if _, ok := tpl.Parameters[p]; !ok {
			t.Errorf("parameter %s is missing", p)
		}
	}
	// Access logs: not modelled by goformation; on the plain tree.
	als := asMap(asMap(treeResource(tpl, apiID)["Properties"])["AccessLogSettings"])
	if res, _, ok := getAtt(als["DestinationArn"]); !ok || tpl.Resources[res] == nil || !strings.Contains(asString(als["Format"]), "$context.requestId") {
		t.Errorf("%s: AccessLogSettings %s, want a log group of this stack and a format with $context.requestId", apiID, js(als))
	} else {
		if lg, ok := tpl.Resources[res].(*logs.LogGroup); !ok || lg.RetentionInDays == nil {
			t.Errorf("%s: the access log group %s has no retention: logs kept forever", apiID, res)
		}
		// The Lambda request id joins an access log line to the
		// function's request log line.
		if !strings.Contains(asString(als["Format"]), "$context.integration.requestId") {
			t.Errorf("%s: the access log format lacks $context.integration.requestId (the Lambda request id)", apiID)
		}
	}

	for fn, f := range functions(t, tpl) {
		for name, ev := range f.Events {
			p := ev.Properties.HttpApiEvent
			if ev.Type != "HttpApi" || p == nil {
				continue
			}
			authorizer := ""
			if p.Auth != nil {
				authorizer = deref(p.Auth.Authorizer)
			}
			// A route the handlers answer without an identity has no
			// authorizer (a link's holder, a load balancer has no token);
			// every other route keeps the default one.
			key := deref(p.Method) + " " + deref(p.Path)
			switch {
			case open[key] && authorizer != "NONE":
				t.Errorf("%s: event %s (%s, open) must have Auth.Authorizer NONE, has %q", functionIDs[fn], name, key, authorizer)
			case !open[key] && authorizer != "" && authorizer != def:
				t.Errorf("%s: event %s (%s) overrides the authorizer with %q", functionIDs[fn], name, key, authorizer)
			}
		}
	}
}

// ---------------------------------------------------------------- environment

// Variables the code reads that a deployment does not set: `imago serve`
// only, or optional with a good default.
var (
	serveOnlyVars = []string{"IMAGO_DATA_DIR", "IMAGO_ADDR", "IMAGO_TOKENS"}
	optionalVars  = []string{"IMAGO_REDIS_TIMEOUT",
		"IMAGO_TEST_INGEST_PAUSE_DIR", // app.IngestPauseVar: a crash tests' hook, never deployed
	}
)

// functionVars are the variables only some functions need, and which: the
// multipart threshold only where uploads are planned.
var functionVars = map[string][]apigw.Function{
	"IMAGO_MULTIPART_THRESHOLD": {apigw.Upload},
}

// designVars are names docs/design.md ("Configuration") and the deployment
// define that the code may not read yet (they arrive with other branches):
// known, not typos.
var designVars = []string{"IMAGO_CURSOR_SECRET", "IMAGO_MULTIPART_THRESHOLD"}

// needs reports whether function fn must set variable v.
func needs(fn apigw.Function, v string) bool {
	only, ok := functionVars[v]
	return !ok || slices.Contains(only, fn)
}

// productionVars finds every IMAGO_* name the production code reads: the
// string literals that are exactly such a name, in the non-test Go files of
// functions/ and internal/ (but internal/testenv, internal/storetest and
// internal/docstore/servicetest, which only tests use), minus serveOnlyVars
// and optionalVars.
func productionVars(t *testing.T) []string {
	t.Helper()
	name := regexp.MustCompile(`^IMAGO_[A-Z0-9_]+$`)
	found := map[string]bool{}
	fset := token.NewFileSet()
	for _, dir := range []string{root + "/functions", root + "/internal"} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				switch d.Name() {
				case "testenv", "storetest", "servicetest", "samtemplate":
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if s, err := strconv.Unquote(lit.Value); err == nil && name.MatchString(s) {
						found[s] = true
					}
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// A scan that finds nothing would pass vacuously.
	for _, must := range []string{"IMAGO_TABLE", "IMAGO_BUCKET", "IMAGO_KMS_KEY_ID", "IMAGO_CACHE_KEY", "IMAGO_LOG_LEVEL"} {
		if !found[must] {
			t.Fatalf("the source scan did not find %s: fix productionVars", must)
		}
	}
	var vars []string
	for v := range found {
		if !slices.Contains(serveOnlyVars, v) && !slices.Contains(optionalVars, v) {
			vars = append(vars, v)
		}
	}
	sort.Strings(vars)
	return vars
}

func TestEnvironmentCoversEveryVariableTheCodeReads(t *testing.T) {
	tpl := load(t)
	vars := productionVars(t)
	known := map[string]bool{}
	for _, v := range slices.Concat(vars, serveOnlyVars, optionalVars, designVars) {
		known[v] = true
	}
	for fn, f := range functions(t, tpl) {
		env := environment(tpl, f)
		for v, only := range functionVars {
			if _, ok := env[v]; ok && !slices.Contains(only, fn) {
				t.Errorf("%s: sets %s, which only %v need (least exposure)", functionIDs[fn], v, only)
			}
			if _, ok := env[v]; !ok && slices.Contains(only, fn) {
				t.Errorf("%s: %s is not set", functionIDs[fn], v)
			}
		}
		for _, v := range vars {
			if !needs(fn, v) {
				continue
			}
			val, ok := env[v]
			if !ok {
				t.Errorf("%s: %s is not set (Globals or the function's Environment)", functionIDs[fn], v)
			} else if val == "" && v != "IMAGO_CACHE_KEY" {
				t.Errorf("%s: %s is empty", functionIDs[fn], v)
			}
		}
		for k := range env {
			if strings.HasPrefix(k, "IMAGO_") && !known[k] {
				t.Errorf("%s: sets %s, which no code reads (a typo?)", functionIDs[fn], k)
			}
			if slices.Contains(serveOnlyVars, k) {
				t.Errorf("%s: sets %s, which only `imago serve` reads", functionIDs[fn], k)
			}
		}
	}
}

func TestEnvironmentPointsAtThisStack(t *testing.T) {
	tpl := load(t)
	bucketName := longForm(resource[*s3.Bucket](t, tpl, bucketID).BucketName)
	for fn, f := range functions(t, tpl) {
		id := functionIDs[fn]
		env := environment(tpl, f)
		if !isRef(env["IMAGO_TABLE"], tableID) {
			t.Errorf("%s: IMAGO_TABLE %s, want !Ref %s", id, js(env["IMAGO_TABLE"]), tableID)
		}
		if !isRef(env["IMAGO_AUDIT_TABLE"], auditID) {
			t.Errorf("%s: IMAGO_AUDIT_TABLE %s, want !Ref %s", id, js(env["IMAGO_AUDIT_TABLE"]), auditID)
		}
		if !isRef(env["IMAGO_AUDIT"], "Audit") {
			t.Errorf("%s: IMAGO_AUDIT %s, want !Ref Audit", id, js(env["IMAGO_AUDIT"]))
		}
		// Not !Ref: see the cycle test. The same expression as the name.
		if bucketName == nil || !reflect.DeepEqual(env["IMAGO_BUCKET"], bucketName) {
			t.Errorf("%s: IMAGO_BUCKET %s, want the bucket's BucketName expression %s", id, js(env["IMAGO_BUCKET"]), js(bucketName))
		}
		if res, attr, ok := getAtt(env["IMAGO_KMS_KEY_ID"]); !(ok && res == keyID && attr == "Arn") && !isRef(env["IMAGO_KMS_KEY_ID"], keyID) && !isRef(env["IMAGO_KMS_KEY_ID"], aliasID) {
			t.Errorf("%s: IMAGO_KMS_KEY_ID %s, want %s's ARN, id or alias", id, js(env["IMAGO_KMS_KEY_ID"]), keyID)
		}
		tmpl, _, ok := sub(env["IMAGO_REDIS_URL"])
		if !ok || !strings.HasPrefix(tmpl, "rediss://${"+cacheID+".Endpoint.Address}:${"+cacheID+".Endpoint.Port}") {
			t.Errorf("%s: IMAGO_REDIS_URL %s, want !Sub rediss://${%s.Endpoint.Address}:${%[3]s.Endpoint.Port}", id, js(env["IMAGO_REDIS_URL"]), cacheID)
		}
		// ElastiCache Serverless is a cluster: the URL says so, and no
		// cold start has to ask.
		standIns := strings.NewReplacer("${"+cacheID+".Endpoint.Address}", "cache.example", "${"+cacheID+".Endpoint.Port}", "6379")
		if cluster, err := rediscache.IsClusterURL(standIns.Replace(tmpl)); !ok || err != nil || !cluster {
			t.Errorf("%s: IMAGO_REDIS_URL %s does not select cluster mode (cluster=true): %v", id, js(env["IMAGO_REDIS_URL"]), err)
		}
		for v, param := range map[string]string{"IMAGO_CACHE_TTL": "CacheTtl", "IMAGO_TENANT_CLAIM": "TenantClaim", "IMAGO_LOG_LEVEL": "LogLevel"} {
			if !isRef(env[v], param) {
				t.Errorf("%s: %s %s, want !Ref %s", id, v, js(env[v]), param)
			}
		}
		if p := tpl.Parameters["Audit"]; p.Default != "on" || !slices.Equal(p.AllowedValues, []any{"on", "off"}) {
			t.Errorf("parameter Audit: default %v, allowed %v; want on, and exactly on and off (docs/design.md, \"Configuration\")", p.Default, p.AllowedValues)
		}
		if d := tpl.Parameters["TenantClaim"].Default; d != config.DefaultTenantClaim {
			t.Errorf("parameter TenantClaim defaults to %v, want %q (docs/design.md, \"Configuration\")", d, config.DefaultTenantClaim)
		}
		if stagingPrefix(t, tpl) == "" {
			t.Errorf("%s: no staging prefix", id)
		}
	}
}

// secretAlphabet is the set of characters Secrets Manager's
// GenerateSecretString may draw from under gen's settings.
func secretAlphabet(gen *secretsmanager.Secret_GenerateSecretString) string {
	const (
		upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		lower = "abcdefghijklmnopqrstuvwxyz"
		digit = "0123456789"
		punct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
	)
	var set string
	if !deref(gen.ExcludeUppercase) {
		set += upper
	}
	if !deref(gen.ExcludeLowercase) {
		set += lower
	}
	if !deref(gen.ExcludeNumbers) {
		set += digit
	}
	if !deref(gen.ExcludePunctuation) {
		set += punct
	}
	if deref(gen.IncludeSpace) {
		set += " "
	}
	var out []rune
	for _, r := range set {
		if !strings.ContainsRune(deref(gen.ExcludeCharacters), r) {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return string(out)
}

var dynamicRef = regexp.MustCompile(`\{\{resolve:secretsmanager:\$\{([A-Za-z0-9]+)\}:SecretString\}\}`)

// TestCacheKeyIsAValidGeneratedSecret checks the IMAGO_CACHE_KEY trick,
// which IMAGO_CURSOR_SECRET and IMAGO_LINK_SECRET use too: a generated
// secret of 43 base64-alphabet characters plus "=" is always the base64 of
// 32 bytes, which config.FromEnv accepts. The three keys are three secrets.
func TestCacheKeyIsAValidGeneratedSecret(t *testing.T) {
	tpl := load(t)
	secrets := map[string]string{} // variable → secret
	for fn, f := range functions(t, tpl) {
		for _, name := range secretVars {
			v := environment(tpl, f)[name]
			tmpl, _, ok := sub(v)
			m := dynamicRef.FindStringSubmatch(tmpl)
			if !ok || m == nil || tmpl != m[0]+"=" {
				t.Fatalf("%s: %s %s, want !Sub '{{resolve:secretsmanager:${Secret}:SecretString}}='", functionIDs[fn], name, js(v))
			}
			if prev, seen := secrets[name]; seen && prev != m[1] {
				t.Errorf("%s: %s comes from %s here and %s elsewhere", functionIDs[fn], name, m[1], prev)
			}
			secrets[name] = m[1]
			secret := resource[*secretsmanager.Secret](t, tpl, m[1])
			gen := secret.GenerateSecretString
			if gen == nil || secret.SecretString != nil {
				t.Fatalf("%s: want a generated secret (GenerateSecretString), not a literal", m[1])
			}
			if gen.GenerateStringKey != nil || gen.SecretStringTemplate != nil {
				t.Errorf("%s: a JSON secret; the reference takes the whole SecretString", m[1])
			}
			const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
			want := []rune(b64)
			slices.Sort(want)
			if got := secretAlphabet(gen); got != string(want) {
				t.Errorf("%s: the secret draws from %q, want exactly the base64 alphabet %q", m[1], got, string(want))
			}
			if n := deref(gen.PasswordLength); n != 43 {
				t.Errorf("%s: PasswordLength %d, want 43 (with the '=' appended: the base64 of 32 bytes)", m[1], n)
			}
			// Any such value is accepted, whatever its last character.
			alphabet := []rune(b64)
			for i := range alphabet {
				key := make([]rune, 43)
				for j := range key {
					key[j] = alphabet[(i+j*7)%len(alphabet)]
				}
				cfg, err := config.FromEnv(mapEnv(map[string]string{name: string(key) + "="}))
				if err != nil || (name == "IMAGO_CACHE_KEY" && len(cfg.CacheKey) != 32) || (name == "IMAGO_LINK_SECRET" && len(cfg.LinkKey) != config.LinkKeySize) {
					t.Fatalf("%s: a generated key %q= is rejected: %v", name, string(key), err)
				}
			}
		}
	}
	for i, a := range secretVars {
		for _, b := range secretVars[i+1:] {
			if secrets[a] == secrets[b] {
				t.Errorf("%s and %s are one secret (%s): one key, two uses", a, b, secrets[a])
			}
		}
	}
}

// secretVars are the keys the stack generates, one secret each.
var secretVars = []string{"IMAGO_CACHE_KEY", "IMAGO_CURSOR_SECRET", "IMAGO_LINK_SECRET"}

// TestTemplateEnvironmentPassesConfig runs config.FromEnv on each
// function's environment, with stand-ins for what only exists once deployed.
func TestTemplateEnvironmentPassesConfig(t *testing.T) {
	tpl := load(t)
	for fn, f := range functions(t, tpl) {
		env := map[string]string{}
		for k, v := range environment(tpl, f) {
			env[k] = standIn(t, tpl, v)
		}
		cfg, err := config.FromEnv(mapEnv(env))
		if err != nil {
			t.Errorf("%s: config.FromEnv on the template's environment %v: %v", functionIDs[fn], env, err)
			continue
		}
		if !cfg.UsesAWS() || cfg.RedisURL == "" || cfg.CacheKey == nil {
			t.Errorf("%s: the template's environment does not select AWS, Redis and a sealed cache: %+v", functionIDs[fn], cfg)
		}
		if cfg.MaxInlineBytes > config.HardMaxInlineBytes {
			t.Errorf("%s: IMAGO_MAX_INLINE_BYTES %d is over what a Lambda response carries", functionIDs[fn], cfg.MaxInlineBytes)
		}
	}
}

// standIn gives a value of the template plausible content: literals as they
// are, Refs to parameters their default, anything else a placeholder.
func standIn(t *testing.T, tpl *Template, v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	if arg, ok := intrinsic(v, "Ref"); ok {
		if p, ok := tpl.Parameters[asString(arg)]; ok && p.Default != nil {
			return fmt.Sprint(p.Default)
		}
		return "ref-" + asString(arg)
	}
	if tmpl, _, ok := sub(v); ok {
		if m := dynamicRef.FindStringSubmatch(tmpl); m != nil {
			sec := resource[*secretsmanager.Secret](t, tpl, m[1])
			tmpl = strings.ReplaceAll(tmpl, m[0], strings.Repeat("Q", deref(sec.GenerateSecretString.PasswordLength)))
		}
		return regexp.MustCompile(`\$\{[^}]+\}`).ReplaceAllString(tmpl, "x")
	}
	return "standin"
}

func mapEnv(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// ---------------------------------------------------------------- S3

func TestStagingNotificationTargetsUploadOnly(t *testing.T) {
	tpl := load(t)
	staging := stagingPrefix(t, tpl)
	if staging != config.DefaultStagingPrefix {
		t.Errorf("IMAGO_STAGING_PREFIX %q differs from the code's default %q", staging, config.DefaultStagingPrefix)
	}
	// The function writes blobs/…: a blob must never match the filter.
	if strings.HasPrefix(s3store.KeyPrefix, staging) || strings.HasPrefix(staging, s3store.KeyPrefix) {
		t.Fatalf("staging prefix %q and blob prefix %q overlap: an ingest could trigger itself", staging, s3store.KeyPrefix)
	}
	count := 0
	for fn, f := range functions(t, tpl) {
		for name, ev := range f.Events {
			if ev.Type != "S3" {
				continue
			}
			count++
			if fn != apigw.Upload {
				t.Errorf("%s: event %s: S3 events go to UploadFunction only", functionIDs[fn], name)
			}
			p := ev.Properties.S3Event
			if p == nil {
				t.Errorf("%s: event %s: properties are not an S3 event's", functionIDs[fn], name)
				continue
			}
			if !isRef(longForm(p.Bucket), bucketID) {
				t.Errorf("%s: event %s: Bucket %s, want !Ref %s", functionIDs[fn], name, js(longForm(p.Bucket)), bucketID)
			}
			var types []string
			if p.Events != nil {
				if p.Events.String != nil {
					types = []string{*p.Events.String}
				} else if p.Events.StringArray != nil {
					types = *p.Events.StringArray
				}
			}
			if len(types) == 0 {
				t.Errorf("%s: event %s: no S3 event types", functionIDs[fn], name)
			}
			for _, typ := range types {
				if !strings.HasPrefix(typ, "s3:ObjectCreated:") {
					t.Errorf("%s: event %s: %s; only ObjectCreated events start an ingest", functionIDs[fn], name, typ)
				}
			}
			var rules []serverless.Function_S3KeyFilterRule
			if p.Filter != nil && p.Filter.S3Key != nil {
				rules = p.Filter.S3Key.Rules
			}
			if len(rules) != 1 || !strings.EqualFold(rules[0].Name, "prefix") || rules[0].Value != staging {
				t.Errorf("%s: event %s: filter %s, want exactly prefix %q", functionIDs[fn], name, js(rules), staging)
			}
		}
	}
	if count != 1 {
		t.Errorf("%d S3 events, want exactly one (UploadFunction, on %s)", count, staging)
	}
	if b := resource[*s3.Bucket](t, tpl, bucketID); b.NotificationConfiguration != nil {
		t.Errorf("%s declares its own NotificationConfiguration; SAM builds it from UploadFunction's S3 event", bucketID)
	}
}

func TestBucketIsPrivateTLSOnlyAndExpiresStaging(t *testing.T) {
	tpl := load(t)
	b := resource[*s3.Bucket](t, tpl, bucketID)
	pab := b.PublicAccessBlockConfiguration
	if pab == nil || !deref(pab.BlockPublicAcls) || !deref(pab.BlockPublicPolicy) || !deref(pab.IgnorePublicAcls) || !deref(pab.RestrictPublicBuckets) {
		t.Errorf("%s: PublicAccessBlockConfiguration %s, want all four true", bucketID, js(pab))
	}
	if b.BucketEncryption == nil || len(b.BucketEncryption.ServerSideEncryptionConfiguration) == 0 ||
		b.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault == nil {
		t.Errorf("%s: no default encryption", bucketID)
	}
	// A deleted staged plaintext must be gone, not a noncurrent version.
	if v := b.VersioningConfiguration; v != nil && v.Status == "Enabled" {
		t.Errorf("%s: versioning keeps deleted staged plaintext as noncurrent versions", bucketID)
	}
	staging := stagingPrefix(t, tpl)
	expires, aborts := false, false
	if b.LifecycleConfiguration != nil {
		for _, r := range b.LifecycleConfiguration.Rules {
			if r.Status != "Enabled" {
				continue
			}
			prefix := deref(r.Prefix)
			if prefix == staging && r.ExpirationInDays != nil && *r.ExpirationInDays <= 1 {
				expires = true
			}
			if (prefix == "" || prefix == staging) && r.AbortIncompleteMultipartUpload != nil {
				aborts = true
			}
		}
	}
	if !expires || !aborts {
		t.Errorf("%s: lifecycle rules %s, want %s expired after 1 day and incomplete multipart uploads aborted", bucketID, js(b.LifecycleConfiguration), staging)
	}

	pol := resource[*s3.BucketPolicy](t, tpl, bucketPolID)
	if !isRef(longForm(pol.Bucket), bucketID) {
		t.Fatalf("%s is not on %s", bucketPolID, bucketID)
	}
	tlsOnly := false
	for _, st := range asSlice(asMap(longForm(pol.PolicyDocument))["Statement"]) {
		s := asMap(st)
		cond := asMap(asMap(s["Condition"])["Bool"])
		if s["Effect"] != "Deny" || s["Principal"] != "*" || fmt.Sprint(cond["aws:SecureTransport"]) != "false" {
			continue
		}
		actions := fmt.Sprint(s["Action"])
		var res []string
		for _, r := range toList(s["Resource"]) {
			if name, attr, ok := getAtt(r); ok && name == bucketID && attr == "Arn" {
				res = append(res, "bucket")
			} else if tmpl, _, ok := sub(r); ok && tmpl == "${"+bucketID+".Arn}/*" {
				res = append(res, "objects")
			}
		}
		if strings.Contains(actions, "s3:*") && slices.Contains(res, "bucket") && slices.Contains(res, "objects") {
			tlsOnly = true
		}
	}
	if !tlsOnly {
		t.Errorf("%s: no Deny of s3:* to * on the bucket and its objects when aws:SecureTransport is false", bucketPolID)
	}
}

func toList(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	return []any{v}
}

// ---------------------------------------------------------------- IAM

// The exact grants of each function: action → resource, where resources
// are named by what they are (see classify). Adding an action, or widening
// a resource, fails this test on purpose: change it together with the
// template, and say why in both.
func wantGrants(staging string) map[apigw.Function][]string {
	blobs := "bucket/" + s3store.KeyPrefix + "*"
	staged := "bucket/" + staging + "*"
	index := "table/index/" + dynamostore.IndexName
	linkIndex := "table/index/" + dynamostore.LinkIndexName
	trashIndex := "table/index/" + dynamostore.TrashIndexName
	auditIndex := "audit/index/" + dynamostore.AuditIndexName
	return map[apigw.Function][]string{
		apigw.Upload: {
			"s3:PutObject " + blobs, // PutObject, CreateMultipartUpload, UploadPart, CompleteMultipartUpload
			"s3:AbortMultipartUpload " + blobs,
			"s3:DeleteObject " + blobs, // a failed upload removes its blob
			"s3:PutObject " + staged,   // presigned PUT and UploadPart URLs are signed by this role
			"s3:GetObject " + staged,   // the ingest reads the staged plaintext
			"s3:DeleteObject " + staged,
			"s3:ListMultipartUploadParts " + staged, // GET /documents/{id}/parts, and complete
			"s3:AbortMultipartUpload " + staged,     // a failed or abandoned multipart upload
			"s3:ListBucket bucket",                  // a missing staged object is a 404, not a 403
			"dynamodb:PutItem table",
			"dynamodb:UpdateItem table",
			"dynamodb:GetItem table",
			"dynamodb:DeleteItem table",
			"kms:GenerateDataKey key",
			"kms:Decrypt key",        // the ingest unwraps the key CreateUpload generated
			"dynamodb:PutItem audit", // uploads' and ingests' records (conditioned: never over one)
			"dynamodb:GetItem audit", // a chain's last record, after a lost answer
		},
		apigw.Download: {
			"s3:GetObject " + blobs,
			"dynamodb:GetItem table",
			"dynamodb:UpdateItem table", // a share link's use, counted and given back
			"kms:Decrypt key",
			"dynamodb:PutItem audit", // reads' and link reads' records
			"dynamodb:GetItem audit",
		},
		apigw.Metadata: {
			"dynamodb:GetItem table",
			"dynamodb:DeleteItem table", // documents (a purge), and a purged document's links
			"dynamodb:PutItem table",    // a new share link
			"dynamodb:UpdateItem table", // a document's policy (expiry, trash, restore, hold), a revoked share link
			"dynamodb:Query " + index,
			"dynamodb:Query " + trashIndex,      // GET /documents?trash=true
			"dynamodb:Query " + linkIndex,       // a document's links: listed, and deleted with it
			"s3:DeleteObject " + blobs,          // a purge: DELETE, or a TTL removal from the stream
			"s3:DeleteObject " + staged,         // the purge of a pending document
			"s3:AbortMultipartUpload " + staged, // aborts its upload
			"dynamodb:PutItem audit",            // the other routes' records, the stream's expiries and purges
			"dynamodb:GetItem audit",
			"dynamodb:Query " + auditIndex, // GET /audit
			// The stream's reads (AWSLambdaDynamoDBExecutionRole) and
			// sqs:SendMessage on its on-failure queue are SAM's, from the
			// DynamoDB event: not in Policies.
		},
	}
}

// classify names a policy resource by what it is in this stack, or reports
// what it is not.
func classify(tpl *Template, bucketName any, r any) (string, error) {
	if s, ok := r.(string); ok {
		if strings.Contains(s, "*") && !strings.Contains(s, "/") {
			return "", fmt.Errorf("unscoped resource %q", s)
		}
		return "", fmt.Errorf("literal resource %q: name this stack's resources with !GetAtt / !Sub", s)
	}
	if res, attr, ok := getAtt(r); ok && attr == "Arn" {
		switch res {
		case tableID:
			return "table", nil
		case auditID:
			return "audit", nil
		case keyID:
			return "key", nil
		case bucketID:
			return "bucket", nil
		}
	}
	if tmpl, vars, ok := sub(r); ok {
		if rest, ok := strings.CutPrefix(tmpl, "${"+tableID+".Arn}/"); ok && len(vars) == 0 {
			return "table/" + rest, nil
		}
		if rest, ok := strings.CutPrefix(tmpl, "${"+auditID+".Arn}/"); ok && len(vars) == 0 {
			return "audit/" + rest, nil
		}
		if rest, ok := strings.CutPrefix(tmpl, "${"+bucketID+".Arn}/"); ok && len(vars) == 0 {
			return "bucket/" + rest, nil
		}
		// The computed bucket name (UploadFunction must not depend on the
		// bucket): the same template and variables as its BucketName.
		if btmpl, bvars, ok := sub(bucketName); ok && reflect.DeepEqual(vars, bvars) {
			if rest, ok := strings.CutPrefix(tmpl, "arn:${AWS::Partition}:s3:::"+btmpl+"/"); ok {
				return "bucket/" + rest, nil
			}
			if tmpl == "arn:${AWS::Partition}:s3:::"+btmpl {
				return "bucket", nil
			}
		}
	}
	return "", fmt.Errorf("resource %s is not one of this stack's bucket prefixes, tables, indexes or key", js(r))
}

func TestPoliciesAreLeastPrivilege(t *testing.T) {
	tpl := load(t)
	bucketName := longForm(resource[*s3.Bucket](t, tpl, bucketID).BucketName)
	want := wantGrants(stagingPrefix(t, tpl))
	ecKeys := slices.Sorted(maps.Keys(docstore.ContextFor("tenant", "document")))
	for fn := range functions(t, tpl) {
		id := functionIDs[fn]
		// The plain tree: goformation's union type would hide a managed
		// policy name or a SAM policy template next to the documents.
		policies := asSlice(asMap(treeResource(tpl, id)["Properties"])["Policies"])
		if len(policies) == 0 {
			t.Errorf("%s: no Policies", id)
		}
		var got []string
		for i, p := range policies {
			doc := asMap(p)
			if doc == nil || doc["Statement"] == nil || len(doc) > 2 {
				t.Errorf("%s: Policies[%d] is %s; only inline policy documents are allowed (no managed policies, no SAM policy templates)", id, i, js(p))
				continue
			}
			for _, st := range asSlice(doc["Statement"]) {
				s := asMap(st)
				sid := asString(s["Sid"])
				if s["Effect"] != "Allow" {
					t.Errorf("%s: statement %s: Effect %v (Deny statements are not expected here)", id, sid, s["Effect"])
				}
				for _, k := range []string{"NotAction", "NotResource", "Principal", "NotPrincipal"} {
					if s[k] != nil {
						t.Errorf("%s: statement %s uses %s", id, sid, k)
					}
				}
				var resources []string
				for _, r := range toList(s["Resource"]) {
					name, err := classify(tpl, bucketName, r)
					if err != nil {
						t.Errorf("%s: statement %s: %v", id, sid, err)
						continue
					}
					resources = append(resources, name)
				}
				for _, a := range toList(s["Action"]) {
					action := asString(a)
					if strings.ContainsAny(action, "*?") {
						t.Errorf("%s: statement %s: wildcard action %q", id, sid, action)
					}
					if strings.HasPrefix(action, "kms:") {
						checkEncryptionContextCondition(t, id, sid, s["Condition"], ecKeys)
					}
					for _, r := range resources {
						got = append(got, action+" "+r)
					}
				}
			}
		}
		slices.Sort(got)
		got = slices.Compact(got)
		w := slices.Clone(want[fn])
		slices.Sort(w)
		if !slices.Equal(got, w) {
			t.Errorf("%s grants\n  %s\nwant exactly\n  %s\nextra: %v\nmissing: %v", id,
				strings.Join(got, "\n  "), strings.Join(w, "\n  "), minus(got, w), minus(w, got))
		}
	}
}

// TestAuditTableIsAppendOnly: whatever else changes in the policies, no
// function may change or remove an audit record (docs/design.md, "Audit
// trail"): on the audit table each function has exactly PutItem (every one
// conditioned on the record not existing, by the code) and GetItem (a
// chain's last record, after a lost answer), and MetadataFunction Query on
// the tenant-time index (GET /audit). Every statement of the template that
// can reach the table counts: those that name it, and any whose resource
// is a literal or a wildcard (the least-privilege test refuses those; this
// one does not rely on it). No other IAM resource exists in the template to
// grant more.
func TestAuditTableIsAppendOnly(t *testing.T) {
	tpl := load(t)
	forbidden := regexp.MustCompile(`^dynamodb:(UpdateItem|DeleteItem|BatchWriteItem|PartiQL.*|\*.*)$|^\*$|^dynamodb:.*[*?]`)
	for id, r := range asMap(tpl.Tree["Resources"]) {
		if typ := asString(asMap(r)["Type"]); strings.HasPrefix(typ, "AWS::IAM::") {
			t.Errorf("%s (%s): an IAM resource beside the functions' Policies; this test reads those only", id, typ)
		}
	}
	want := map[apigw.Function][]string{
		apigw.Upload:   {"dynamodb:GetItem audit", "dynamodb:PutItem audit"},
		apigw.Download: {"dynamodb:GetItem audit", "dynamodb:PutItem audit"},
		apigw.Metadata: {"dynamodb:GetItem audit", "dynamodb:PutItem audit", "dynamodb:Query audit/index/" + dynamostore.AuditIndexName},
	}
	for fn := range functions(t, tpl) {
		id := functionIDs[fn]
		var got []string
		for _, p := range asSlice(asMap(treeResource(tpl, id)["Properties"])["Policies"]) {
			for _, st := range asSlice(asMap(p)["Statement"]) {
				s := asMap(st)
				var reaches []string
				for _, r := range toList(s["Resource"]) {
					named := map[string]bool{}
					refs(r, named)
					switch lit, isLit := r.(string); {
					case named[auditID]:
						res := "audit"
						if tmpl, _, ok := sub(r); ok {
							res = "audit/" + strings.TrimPrefix(tmpl, "${"+auditID+".Arn}/")
						}
						reaches = append(reaches, res)
					case isLit && strings.ContainsAny(lit, "*?"):
						reaches = append(reaches, "audit (through "+lit+")")
					}
				}
				for _, a := range toList(s["Action"]) {
					action := asString(a)
					for _, res := range reaches {
						if forbidden.MatchString(action) {
							t.Errorf("%s: statement %s allows %s on %s: the audit trail is append-only", id, asString(s["Sid"]), action, res)
						}
						got = append(got, action+" "+res)
					}
				}
				if s["NotAction"] != nil || s["NotResource"] != nil {
					t.Errorf("%s: statement %s uses NotAction or NotResource, which may reach the audit table", id, asString(s["Sid"]))
				}
			}
		}
		slices.Sort(got)
		got = slices.Compact(got)
		if !slices.Equal(got, want[fn]) {
			t.Errorf("%s on the audit table: %v, want exactly %v", id, got, want[fn])
		}
	}
}

func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// checkEncryptionContextCondition wants KMS use bound to data keys of
// documents: the context keys are exactly docstore.ContextFor's, and a
// context is present (ForAllValues alone also matches none).
func checkEncryptionContextCondition(t *testing.T, fn, sid string, cond any, keys []string) {
	t.Helper()
	c := asMap(cond)
	var got []string
	for _, k := range toList(asMap(c["ForAllValues:StringEquals"])["kms:EncryptionContextKeys"]) {
		got = append(got, asString(k))
	}
	slices.Sort(got)
	if !slices.Equal(got, keys) {
		t.Errorf("%s: statement %s: kms:EncryptionContextKeys %v under ForAllValues:StringEquals, want %v", fn, sid, got, keys)
	}
	if v := asMap(c["Null"])["kms:EncryptionContextKeys"]; fmt.Sprint(v) != "false" {
		t.Errorf("%s: statement %s: want Null kms:EncryptionContextKeys false (a call without a context matches ForAllValues)", fn, sid)
	}
}

// ---------------------------------------------------------------- DynamoDB

// schemaNames reads the attribute names of dynamostore's schema from its
// source: they are unexported constants (only IndexName is exported).
func schemaNames(t *testing.T) map[string]string {
	t.Helper()
	names := map[string]string{}
	for _, file := range []string{"dynamostore.go", "links.go"} {
		f, err := parser.ParseFile(token.NewFileSet(), root+"/internal/dynamostore/"+file, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if vs, ok := n.(*ast.ValueSpec); ok {
				for i, id := range vs.Names {
					if i < len(vs.Values) {
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							names[id.Name], _ = strconv.Unquote(lit.Value)
						}
					}
				}
			}
			return true
		})
	}
	for _, c := range []string{"attrID", "attrTenantListed", "attrCreatedKey", "attrExpiresAt", "attrLinkDocument", "attrTenantTrash"} {
		if names[c] == "" {
			t.Fatalf("internal/dynamostore has no string constant %s any more: update this test", c)
		}
	}
	return names
}

func TestTableMatchesDynamostoreSchema(t *testing.T) {
	tpl := load(t)
	names := schemaNames(t)
	tb := resource[*dynamodb.Table](t, tpl, tableID)
	if deref(tb.BillingMode) != "PAY_PER_REQUEST" {
		t.Errorf("BillingMode %q, want PAY_PER_REQUEST", deref(tb.BillingMode))
	}
	if p := tb.PointInTimeRecoverySpecification; p == nil || !deref(p.PointInTimeRecoveryEnabled) {
		t.Errorf("point-in-time recovery is off")
	}
	checkRecoveryPeriod(t, tpl)
	// The TTL's removals reach MetadataFunction through the stream, which
	// must carry the removed item (TestTableStreamReachesMetadataOnly).
	if s := tb.StreamSpecification; s == nil || s.StreamViewType != "NEW_AND_OLD_IMAGES" {
		t.Errorf("StreamSpecification %s, want StreamViewType NEW_AND_OLD_IMAGES", js(s))
	}
	if s := tb.SSESpecification; s == nil || !s.SSEEnabled {
		t.Errorf("SSESpecification.SSEEnabled is not true")
	}
	if tb.TableName != nil {
		t.Errorf("TableName is fixed (%s): a second stack could not deploy, and a replacement would fail", deref(tb.TableName))
	}
	keys := func(ks []dynamodb.Table_KeySchema) []string {
		var out []string
		for _, k := range ks {
			out = append(out, k.AttributeName+" "+k.KeyType)
		}
		return out
	}
	if got, want := keys(tb.KeySchema), []string{names["attrID"] + " HASH"}; !slices.Equal(got, want) {
		t.Errorf("KeySchema %v, want %v", got, want)
	}
	// The documents by tenant, the trash by tenant, and a document's share
	// links: each index's partition and sort key, and every attribute (the
	// stores read whole items from them).
	wantGSIs := map[string][]string{
		dynamostore.IndexName:      {names["attrTenantListed"] + " HASH", names["attrCreatedKey"] + " RANGE"},
		dynamostore.TrashIndexName: {names["attrTenantTrash"] + " HASH", names["attrCreatedKey"] + " RANGE"},
		dynamostore.LinkIndexName:  {names["attrLinkDocument"] + " HASH", names["attrCreatedKey"] + " RANGE"},
	}
	var gotGSIs []string
	for _, gsi := range tb.GlobalSecondaryIndexes {
		gotGSIs = append(gotGSIs, gsi.IndexName)
		want, ok := wantGSIs[gsi.IndexName]
		if !ok {
			continue
		}
		if got := keys(gsi.KeySchema); !slices.Equal(got, want) {
			t.Errorf("%s KeySchema %v, want %v", gsi.IndexName, got, want)
		}
		if gsi.Projection == nil || deref(gsi.Projection.ProjectionType) != "ALL" {
			t.Errorf("%s projection %s, want ALL", gsi.IndexName, js(gsi.Projection))
		}
	}
	slices.Sort(gotGSIs)
	if want := slices.Sorted(maps.Keys(wantGSIs)); !slices.Equal(gotGSIs, want) {
		t.Errorf("GlobalSecondaryIndexes %v, want exactly %v", gotGSIs, want)
	}
	// CloudFormation wants exactly the key attributes defined.
	defs := map[string]string{}
	for _, d := range tb.AttributeDefinitions {
		defs[d.AttributeName] = d.AttributeType
	}
	wantDefs := map[string]string{names["attrID"]: "S", names["attrTenantListed"]: "S", names["attrCreatedKey"]: "S",
		names["attrLinkDocument"]: "S", names["attrTenantTrash"]: "S"}
	if !maps.Equal(defs, wantDefs) {
		t.Errorf("AttributeDefinitions %v, want %v", defs, wantDefs)
	}
	if ttl := tb.TimeToLiveSpecification; ttl == nil || !ttl.Enabled || deref(ttl.AttributeName) != names["attrExpiresAt"] {
		t.Errorf("TimeToLiveSpecification %s, want %s enabled", js(ttl), names["attrExpiresAt"])
	}
}

// auditSchema are the audit table's key attributes as internal/dynamostore
// (audit.go, AuditStore) writes them, with their types: the chain's
// partition and the record's place in it, and the tenant-time index's
// partition and sort keys.
var auditSchema = map[string]string{"chain_key": "S", "seq": "N", "tenant": "S", "time_key": "S"}

// TestAuditTableMatchesAuditStore checks the audit table against the
// AuditStore's layout: (chain_key, seq) as the key, which its conditional
// PutItem and GetItem name; the tenant-time index (tenant, time_key, every
// attribute) its Query reads; a NEW_IMAGE stream for a SIEM; no TTL;
// point-in-time recovery, encryption, on-demand, deletion protection.
func TestAuditTableMatchesAuditStore(t *testing.T) {
	tpl := load(t)
	// The names must be the store's: each is a string literal of its source.
	src, err := os.ReadFile(root + "/internal/dynamostore/audit.go")
	if err != nil {
		t.Fatal(err)
	}
	for name := range auditSchema {
		if !strings.Contains(string(src), strconv.Quote(name)) {
			t.Errorf("internal/dynamostore/audit.go never names %q any more: update the table and this test", name)
		}
	}
	tb := resource[*dynamodb.Table](t, tpl, auditID)
	if deref(tb.BillingMode) != "PAY_PER_REQUEST" {
		t.Errorf("%s: BillingMode %q, want PAY_PER_REQUEST", auditID, deref(tb.BillingMode))
	}
	if !deref(tb.DeletionProtectionEnabled) {
		t.Errorf("%s: DeletionProtectionEnabled is not true", auditID)
	}
	if p := tb.PointInTimeRecoverySpecification; p == nil || !deref(p.PointInTimeRecoveryEnabled) {
		t.Errorf("%s: point-in-time recovery is off", auditID)
	}
	if s := tb.SSESpecification; s == nil || !s.SSEEnabled {
		t.Errorf("%s: SSESpecification.SSEEnabled is not true", auditID)
	}
	if s := tb.StreamSpecification; s == nil || s.StreamViewType != "NEW_IMAGE" {
		t.Errorf("%s: StreamSpecification %s, want StreamViewType NEW_IMAGE (every record as written, for a SIEM)", auditID, js(s))
	}
	if tb.TimeToLiveSpecification != nil {
		t.Errorf("%s: a TimeToLiveSpecification: nothing may remove an audit record", auditID)
	}
	if tb.TableName != nil {
		t.Errorf("%s: TableName is fixed (%s): a second stack could not deploy", auditID, deref(tb.TableName))
	}
	keys := func(ks []dynamodb.Table_KeySchema) []string {
		var out []string
		for _, k := range ks {
			out = append(out, k.AttributeName+" "+k.KeyType)
		}
		return out
	}
	if got, want := keys(tb.KeySchema), []string{"chain_key HASH", "seq RANGE"}; !slices.Equal(got, want) {
		t.Errorf("%s: KeySchema %v, want %v", auditID, got, want)
	}
	if len(tb.GlobalSecondaryIndexes) != 1 || tb.GlobalSecondaryIndexes[0].IndexName != dynamostore.AuditIndexName {
		t.Fatalf("%s: GlobalSecondaryIndexes %s, want exactly %s", auditID, js(tb.GlobalSecondaryIndexes), dynamostore.AuditIndexName)
	}
	gsi := tb.GlobalSecondaryIndexes[0]
	if got, want := keys(gsi.KeySchema), []string{"tenant HASH", "time_key RANGE"}; !slices.Equal(got, want) {
		t.Errorf("%s: %s KeySchema %v, want %v", auditID, gsi.IndexName, got, want)
	}
	if gsi.Projection == nil || deref(gsi.Projection.ProjectionType) != "ALL" {
		t.Errorf("%s: %s projection %s, want ALL (GET /audit reads whole records from it)", auditID, gsi.IndexName, js(gsi.Projection))
	}
	defs := map[string]string{}
	for _, d := range tb.AttributeDefinitions {
		defs[d.AttributeName] = d.AttributeType
	}
	if !maps.Equal(defs, auditSchema) {
		t.Errorf("%s: AttributeDefinitions %v, want %v", auditID, defs, auditSchema)
	}
}

// checkRecoveryPeriod wants the point-in-time recovery period to be the
// PointInTimeRecoveryDays parameter, 1 to 35 days (what DynamoDB allows),
// 7 by default: it bounds how long a purged document's wrapped key can be
// restored, which README.md states (read from the plain tree: goformation's
// schema predates RecoveryPeriodInDays).
func checkRecoveryPeriod(t *testing.T, tpl *Template) {
	t.Helper()
	const param = "PointInTimeRecoveryDays"
	pitr := asMap(asMap(treeResource(tpl, tableID)["Properties"])["PointInTimeRecoverySpecification"])
	if !isRef(pitr["RecoveryPeriodInDays"], param) {
		t.Errorf("PointInTimeRecoverySpecification.RecoveryPeriodInDays %s, want !Ref %s", js(pitr["RecoveryPeriodInDays"]), param)
	}
	p := asMap(asMap(tpl.Tree["Parameters"])[param])
	if p["Type"] != "Number" || fmt.Sprint(p["MinValue"]) != "1" || fmt.Sprint(p["MaxValue"]) != "35" || fmt.Sprint(p["Default"]) != "7" {
		t.Errorf("parameter %s: %s, want a Number, 1 to 35, default 7", param, js(p))
	}
	readme, err := os.ReadFile(root + "/README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "`"+param+"`") {
		t.Errorf("README.md does not name %s: the crypto-shredding bound is stated there", param)
	}
}

// ---------------------------------------------------------------- KMS

func TestKeyRotatesAndIsAdministeredByTheAccount(t *testing.T) {
	tpl := load(t)
	k := resource[*kms.Key](t, tpl, keyID)
	if !deref(k.EnableKeyRotation) {
		t.Errorf("%s: EnableKeyRotation is not true", keyID)
	}
	if spec := deref(k.KeySpec); spec != "" && spec != "SYMMETRIC_DEFAULT" {
		t.Errorf("%s: KeySpec %s; GenerateDataKey needs a symmetric key", keyID, spec)
	}
	rootAdmin := false
	for _, st := range asSlice(asMap(longForm(k.KeyPolicy))["Statement"]) {
		s := asMap(st)
		tmpl, _, _ := sub(asMap(s["Principal"])["AWS"])
		if s["Effect"] == "Allow" && tmpl == "arn:${AWS::Partition}:iam::${AWS::AccountId}:root" && fmt.Sprint(s["Action"]) == "kms:*" {
			rootAdmin = true
		}
	}
	if !rootAdmin {
		t.Errorf("%s: the key policy does not give the account root kms:* (without it IAM policies cannot grant the key, and it can be locked out)", keyID)
	}
	a := resource[*kms.Alias](t, tpl, aliasID)
	if !isRef(longForm(a.TargetKeyId), keyID) {
		t.Errorf("%s targets %s, want !Ref %s", aliasID, js(longForm(a.TargetKeyId)), keyID)
	}
	alias := longForm(a.AliasName)
	if arg, ok := intrinsic(alias, "Ref"); ok {
		alias = tpl.Parameters[asString(arg)].Default
	}
	if alias != "alias/imago" {
		t.Errorf("%s: AliasName (default) %v, want alias/imago", aliasID, alias)
	}
}

// ---------------------------------------------------------------- network

func TestCacheAndEndpointsAreReachableFromTheFunctionsOnly(t *testing.T) {
	tpl := load(t)
	g := globalFunction(tpl)
	// Which subnets, with and without a VpcId: TestNetworkWithoutAVPCIsCreated
	// and TestNetworkWithAGivenVPCUsesIt.
	for fn, f := range functions(t, tpl) {
		vpc := f.VpcConfig
		if vpc == nil {
			vpc = g.VpcConfig
		}
		if vpc == nil || len(vpc.SubnetIds) == 0 || len(vpc.SecurityGroupIds) != 1 || !isRef(longForm(vpc.SecurityGroupIds[0]), fnSGID) {
			t.Errorf("%s: VpcConfig %s, want the private subnets and %s", functionIDs[fn], js(longForm(vpc)), fnSGID)
		}
	}
	c := resource[*elasticache.ServerlessCache](t, tpl, cacheID)
	if c.Engine != "valkey" && c.Engine != "redis" {
		t.Errorf("%s: Engine %s, want valkey or redis", cacheID, c.Engine)
	}
	if len(c.SecurityGroupIds) != 1 || !isRef(longForm(c.SecurityGroupIds[0]), cacheSGID) {
		t.Errorf("%s: security groups %s, want %s", cacheID, js(longForm(c.SecurityGroupIds)), cacheSGID)
	}
	onlyFromFunctions(t, tpl, cacheSGID, 6379, 6380)
	onlyFromFunctions(t, tpl, endpointSG, 443, 443)
	for id, r := range tpl.Resources {
		if e, ok := r.(*ec2.VPCEndpoint); ok && deref(e.VpcEndpointType) == "Interface" {
			if !deref(e.PrivateDnsEnabled) || len(e.SecurityGroupIds) != 1 || !isRef(longForm(e.SecurityGroupIds[0]), endpointSG) {
				t.Errorf("%s: want private DNS and %s", id, endpointSG)
			}
		}
	}
}

// onlyFromFunctions wants group id to admit TCP on exactly [from, to], and
// only from the functions' group.
func onlyFromFunctions(t *testing.T, tpl *Template, id string, from, to int) {
	t.Helper()
	sg := resource[*ec2.SecurityGroup](t, tpl, id)
	if len(sg.SecurityGroupIngress) == 0 {
		t.Errorf("%s admits nothing", id)
	}
	for _, in := range sg.SecurityGroupIngress {
		if in.CidrIp != nil || in.CidrIpv6 != nil || in.SourcePrefixListId != nil ||
			!isRef(longForm(in.SourceSecurityGroupId), fnSGID) ||
			in.IpProtocol != "tcp" || deref(in.FromPort) != from || deref(in.ToPort) != to {
			t.Errorf("%s: ingress %s, want tcp %d-%d from %s only", id, js(longForm(in)), from, to, fnSGID)
		}
	}
}

// ---------------------------------------------------------------- cycles

// refs lists the logical ids a long-form value refers to.
func refs(v any, out map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		if arg, ok := intrinsic(x, "Ref"); ok {
			out[asString(arg)] = true
			return
		}
		if res, _, ok := getAtt(x); ok {
			out[res] = true
			return
		}
		if tmpl, vars, ok := sub(x); ok {
			for _, m := range regexp.MustCompile(`\$\{([^}!]+)\}`).FindAllStringSubmatch(tmpl, -1) {
				name, _, _ := strings.Cut(m[1], ".")
				if _, local := vars[name]; !local {
					out[name] = true
				}
			}
			for _, e := range vars {
				refs(e, out)
			}
			return
		}
		for _, e := range x {
			refs(e, out)
		}
	case []any:
		for _, e := range x {
			refs(e, out)
		}
	}
}

// TestNoDependencyCycle follows Ref, GetAtt, Sub and DependsOn, plus what
// SAM adds: a function inherits Globals' references; a bucket with an S3
// event depends on the function (its notification names it); the API
// depends on the functions its routes integrate. A DynamoDB stream event
// becomes an event source mapping of its own, which depends on both the
// function and the table (and its on-failure queue): no edge between
// them.
func TestNoDependencyCycle(t *testing.T) {
	tpl := load(t)
	resources := asMap(tpl.Tree["Resources"])
	deps := map[string]map[string]bool{}
	add := func(from, to string) {
		if _, ok := resources[to]; !ok || from == to {
			return
		}
		if deps[from] == nil {
			deps[from] = map[string]bool{}
		}
		deps[from][to] = true
	}
	globalRefs := map[string]bool{}
	refs(asMap(tpl.Tree["Globals"])["Function"], globalRefs)
	for id, r := range resources {
		res := asMap(r)
		props := maps.Clone(asMap(res["Properties"]))
		out := map[string]bool{}
		if res["Type"] == "AWS::Serverless::Function" {
			maps.Copy(out, globalRefs)
			// An event's source depends on the function, not the reverse.
			for _, ev := range asMap(props["Events"]) {
				if asMap(ev)["Type"] == "DynamoDB" {
					continue
				}
				sources := map[string]bool{}
				refs(asMap(ev)["Properties"], sources)
				for source := range sources {
					add(source, id)
				}
			}
			delete(props, "Events")
		}
		refs(props, out)
		for _, d := range toList(res["DependsOn"]) {
			out[asString(d)] = true
		}
		for to := range out {
			add(id, to)
		}
	}
	// Depth-first search for a back edge.
	const (
		unseen = iota
		active
		done
	)
	state := map[string]int{}
	var path []string
	var visit func(string) bool
	visit = func(n string) bool {
		state[n] = active
		path = append(path, n)
		for _, m := range slices.Sorted(maps.Keys(deps[n])) {
			if state[m] == active {
				i := slices.Index(path, m)
				t.Errorf("dependency cycle: %s -> %s", strings.Join(path[i:], " -> "), m)
				return true
			}
			if state[m] == unseen && visit(m) {
				return true
			}
		}
		path = path[:len(path)-1]
		state[n] = done
		return false
	}
	for _, n := range slices.Sorted(maps.Keys(resources)) {
		if state[n] == unseen && visit(n) {
			return
		}
	}
}

// ---------------------------------------------------------------- outputs

func TestOutputs(t *testing.T) {
	tpl := load(t)
	for _, name := range []string{"ApiUrl", "BucketName", "TableName", "KeyAlias"} {
		if _, ok := tpl.Outputs[name]; !ok {
			t.Errorf("output %s is missing", name)
		}
	}
	// A SIEM subscribes to the audit records as they are written.
	if out, ok := tpl.Outputs["AuditStreamArn"]; !ok {
		t.Errorf("output AuditStreamArn is missing")
	} else if res, attr, ok := getAtt(longForm(out.Value)); !ok || res != auditID || attr != "StreamArn" {
		t.Errorf("output AuditStreamArn %s, want !GetAtt %s.StreamArn", js(longForm(out.Value)), auditID)
	}
	tmpl, _, _ := sub(longForm(tpl.Outputs["ApiUrl"].Value))
	if !strings.HasPrefix(tmpl, "https://${"+apiID+"}.execute-api.") {
		t.Errorf("ApiUrl %s, want https://${%s}.execute-api.…", js(longForm(tpl.Outputs["ApiUrl"].Value)), apiID)
	}
}

// ---------------------------------------------------------------- samconfig.toml, env.json

// testenvVars runs `scripts/testenv env`, which only prints its export
// lines, with its default ports: env.json names those, whatever ports this
// run's servers were moved to.
func testenvVars(t *testing.T) map[string]string {
	t.Helper()
	cmd := exec.Command("bash", root+"/scripts/testenv", "env")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "IMAGO_TESTENV_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("scripts/testenv env: %v", err)
	}
	vars := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "="); ok {
			vars[k] = v
		}
	}
	return vars
}

func TestEnvJSONPointsAtTheLocalServers(t *testing.T) {
	tpl := load(t)
	data, err := os.ReadFile(root + "/env.json")
	if err != nil {
		t.Fatal(err)
	}
	var envs map[string]map[string]string
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&envs); err != nil {
		t.Fatalf("env.json: %v", err)
	}
	local := testenvVars(t)
	vars := productionVars(t)
	for fn, f := range functions(t, tpl) {
		id := functionIDs[fn]
		env, ok := envs[id]
		if !ok {
			t.Errorf("env.json has no %s", id)
			continue
		}
		declared := environment(tpl, f)
		for k := range env {
			// sam local ignores, silently, what the template does not declare.
			if _, ok := declared[k]; !ok {
				t.Errorf("env.json: %s.%s is not declared in template.yaml, so sam local ignores it", id, k)
			}
		}
		for _, v := range vars {
			if _, ok := env[v]; !ok && needs(fn, v) {
				t.Errorf("env.json: %s does not set %s (sam local would pass the template's unresolved value)", id, v)
			}
		}
		for _, k := range []string{"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_KMS", "IMAGO_TABLE", "IMAGO_BUCKET", "IMAGO_KMS_KEY_ID", "IMAGO_REDIS_URL", "IMAGO_AUDIT_TABLE"} {
			if env[k] != local[k] {
				t.Errorf("env.json: %s.%s = %q, scripts/testenv has %q", id, k, env[k], local[k])
			}
		}
		if _, err := config.FromEnv(mapEnv(env)); err != nil {
			t.Errorf("env.json: %s: %v", id, err)
		}
	}
	for k := range envs {
		if k != "Parameters" && tpl.Resources[k] == nil {
			t.Errorf("env.json names %s, which is not a function of template.yaml", k)
		}
	}
}

func TestSamconfig(t *testing.T) {
	tpl := load(t)
	data, err := os.ReadFile(root + "/samconfig.toml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	sections := map[string]map[string]string{}
	section := ""
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
			sections[section] = map[string]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("samconfig.toml: cannot read %q", line)
			}
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if uq, err := strconv.Unquote(v); err == nil {
				v = uq
			}
			if section == "" {
				sections[""] = map[string]string{k: v}
			} else {
				sections[section][k] = v
			}
		}
	}
	checks := map[string]map[string]string{
		"":                                   {"version": "0.1"},
		"default.deploy.parameters":          {"stack_name": "imago", "capabilities": "CAPABILITY_IAM", "resolve_s3": "true", "confirm_changeset": "true"},
		"default.local_invoke.parameters":    {"env_vars": "env.json"},
		"default.local_start_api.parameters": {"env_vars": "env.json"},
	}
	for sec, kv := range checks {
		if _, ok := sections[sec]; !ok {
			t.Errorf("samconfig.toml: no [%s]", sec)
		}
		for k, v := range kv {
			if got := sections[sec][k]; got != v {
				t.Errorf("samconfig.toml [%s] %s = %q, want %q", sec, k, got, v)
			}
		}
	}
	if _, ok := sections["default.build.parameters"]; !ok {
		t.Errorf("samconfig.toml: no [default.build.parameters]")
	}
	// parameter_overrides: only parameters that exist, and every one
	// without a default.
	overrides := map[string]string{}
	for _, m := range regexp.MustCompile(`(\w+)=("(?:[^"\\]|\\.)*"|\S+)`).FindAllStringSubmatch(sections["default.deploy.parameters"]["parameter_overrides"], -1) {
		overrides[m[1]] = strings.Trim(m[2], `"`)
	}
	for k := range overrides {
		if _, ok := tpl.Parameters[k]; !ok {
			t.Errorf("samconfig.toml overrides %s, which template.yaml does not declare", k)
		}
	}
	for name, p := range tpl.Parameters {
		if _, ok := overrides[name]; !ok && p.Default == nil {
			t.Errorf("samconfig.toml: parameter %s has no default and no override", name)
		}
	}
	// `sam deploy` works unedited: nothing in it waits to be filled in.
	placeholder := regexp.MustCompile(`(?i)\b(REGION|USER_POOL_ID|APP_CLIENT_ID|ACCOUNT_ID|CHANGE_?ME|TODO)\b|0123456789abcdef|<[a-z-]+>`)
	for k, v := range overrides {
		if placeholder.MatchString(v) {
			t.Errorf("samconfig.toml overrides %s with a placeholder, %q: sam deploy would fail or deploy nonsense", k, v)
		}
	}
}

// ---------------------------------------------------------------- events/

func eventFiles(t *testing.T) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(root + "/events/*.json")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		files[filepath.Base(p)] = b
	}
	for _, want := range []string{"health.json", "upload.json", "upload-multipart.json", "create-upload.json",
		"get-metadata.json", "list.json", "delete.json", "download.json", "download-range.json", "s3-object-created.json",
		"stream-ttl-remove.json"} {
		if files[want] == nil {
			t.Errorf("events/%s is missing", want)
		}
	}
	return files
}

// recordsSource is the eventSource of an event of Records (aws:s3,
// aws:dynamodb), or "" for an API Gateway event.
func recordsSource(b []byte) string {
	var probe struct {
		Records []struct {
			EventSource string `json:"eventSource"`
		}
	}
	if json.Unmarshal(b, &probe) != nil || len(probe.Records) == 0 {
		return ""
	}
	return cmpOr(probe.Records[0].EventSource, "(none)")
}

func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data")
	}
	return nil
}

func TestEventsAreRealisticAPIGatewayAndS3Events(t *testing.T) {
	tpl := load(t)
	staging := stagingPrefix(t, tpl)
	open := openRoutes(t)
	covered := map[string]bool{}
	for name, b := range eventFiles(t) {
		t.Run(name, func(t *testing.T) {
			switch recordsSource(b) {
			case "":
			case "aws:s3":
				checkS3Event(t, b, staging)
				return
			case "aws:dynamodb":
				checkStreamSample(t, b)
				return
			default:
				t.Fatalf("records of %s: neither S3's nor the table stream's", recordsSource(b))
			}
			var ev events.APIGatewayV2HTTPRequest
			if err := strictDecode(b, &ev); err != nil {
				t.Fatalf("not an API Gateway HTTP API (payload 2.0) event: %v", err)
			}
			covered[ev.RouteKey] = true
			checkAPIEvent(t, &ev, open)
		})
	}
	for _, r := range apigw.Routes {
		if !covered[r.Key()] {
			t.Errorf("no event in events/ for route %s", r.Key())
		}
	}
}

func checkAPIEvent(t *testing.T, ev *events.APIGatewayV2HTTPRequest, open map[string]bool) {
	t.Helper()
	rc := ev.RequestContext
	if ev.Version != "2.0" {
		t.Errorf("version %q, want 2.0", ev.Version)
	}
	route, params, ok, _ := apigw.Match(rc.HTTP.Method, ev.RawPath)
	if !ok || route.Key() != ev.RouteKey {
		t.Fatalf("routeKey %q, but %s %s matches %q", ev.RouteKey, rc.HTTP.Method, ev.RawPath, route.Key())
	}
	if rc.RouteKey != ev.RouteKey || rc.HTTP.Path != ev.RawPath {
		t.Errorf("requestContext routeKey %q / http.path %q disagree with the event's %q / %q", rc.RouteKey, rc.HTTP.Path, ev.RouteKey, ev.RawPath)
	}
	if rc.Stage != "$default" || rc.RequestID == "" || rc.APIID == "" || rc.AccountID == "" || rc.DomainName == "" {
		t.Errorf("requestContext lacks stage $default, requestId, apiId, accountId or domainName: %+v", rc)
	}
	if rc.HTTP.Protocol == "" || rc.HTTP.SourceIP == "" || rc.HTTP.UserAgent == "" {
		t.Errorf("requestContext.http lacks protocol, sourceIp or userAgent: %+v", rc.HTTP)
	}
	if when, err := time.Parse("02/Jan/2006:15:04:05 -0700", rc.Time); err != nil || when.UnixMilli()/1000 != rc.TimeEpoch/1000 {
		t.Errorf("requestContext time %q and timeEpoch %d disagree (%v)", rc.Time, rc.TimeEpoch, err)
	}
	for k := range ev.Headers {
		if k != strings.ToLower(k) {
			t.Errorf("header %q: API Gateway lower-cases header names", k)
		}
	}
	if ev.Headers["host"] != rc.DomainName {
		t.Errorf("host header %q, domainName %q", ev.Headers["host"], rc.DomainName)
	}
	q, err := url.ParseQuery(ev.RawQueryString)
	if err != nil {
		t.Errorf("rawQueryString %q: %v", ev.RawQueryString, err)
	}
	if len(q) != len(ev.QueryStringParameters) {
		t.Errorf("rawQueryString %q and queryStringParameters %v disagree", ev.RawQueryString, ev.QueryStringParameters)
	}
	for k, v := range ev.QueryStringParameters {
		if strings.Join(q[k], ",") != v {
			t.Errorf("queryStringParameters[%s] = %q, rawQueryString has %q", k, v, q[k])
		}
	}
	if strings.Contains(route.Path, "{id}") && params["id"] != placeholderID {
		t.Errorf("path id %q, want the placeholder %s", params["id"], placeholderID)
	}
	if !maps.Equal(params, ev.PathParameters) {
		t.Errorf("pathParameters %v, but the path's parameters are %v", ev.PathParameters, params)
	}
	// The authorizer: none on the open routes (Authorizer NONE), the JWT
	// one on every other route.
	a := rc.Authorizer
	if open[route.Key()] {
		if a != nil || ev.Headers["authorization"] != "" {
			t.Errorf("%s has no authorizer; the event carries one", route.Key())
		}
	} else if a == nil || a.JWT == nil || a.JWT.Claims["sub"] == "" || a.JWT.Scopes == nil || !strings.HasPrefix(ev.Headers["authorization"], "Bearer ") {
		t.Errorf("want a JWT authorizer context with claims.sub and scopes, and a Bearer authorization header")
	}
	body := []byte(ev.Body)
	if ev.IsBase64Encoded {
		if body, err = base64.StdEncoding.DecodeString(ev.Body); err != nil {
			t.Fatalf("isBase64Encoded, but the body is not base64: %v", err)
		}
	}
	if cl := ev.Headers["content-length"]; cl != "" && cl != strconv.Itoa(len(body)) {
		t.Errorf("content-length %s, the body has %d bytes", cl, len(body))
	}
	if len(body) > 0 {
		if _, _, err := mime.ParseMediaType(ev.Headers["content-type"]); err != nil {
			t.Errorf("a body without a usable content-type: %v", err)
		}
	}
}

func checkS3Event(t *testing.T, b []byte, staging string) {
	t.Helper()
	var ev events.S3Event
	if err := strictDecode(b, &ev); err != nil {
		t.Fatalf("not an S3 event: %v", err)
	}
	if len(ev.Records) == 0 {
		t.Fatal("no Records")
	}
	for _, r := range ev.Records {
		if r.EventSource != "aws:s3" || !strings.HasPrefix(r.EventName, "ObjectCreated:") || r.EventVersion == "" || r.AWSRegion == "" {
			t.Errorf("record source %q, name %q, version %q, region %q; want an aws:s3 ObjectCreated record", r.EventSource, r.EventName, r.EventVersion, r.AWSRegion)
		}
		// S3 URL-encodes keys in events (a space as '+').
		key, err := url.QueryUnescape(r.S3.Object.Key)
		if err != nil {
			t.Fatalf("key %q is not URL-encoded: %v", r.S3.Object.Key, err)
		}
		rest, ok := strings.CutPrefix(key, staging)
		if !ok {
			t.Fatalf("key %q is not under %s, the only prefix the notification sends", key, staging)
		}
		if _, err := docstore.ParseID(rest); err != nil {
			t.Errorf("key %q does not name a document id: %v", key, err)
		}
		if r.S3.Bucket.Name == "" || r.S3.Bucket.Arn != "arn:aws:s3:::"+r.S3.Bucket.Name || r.S3.Object.Size <= 0 {
			t.Errorf("bucket %q (arn %q), size %d", r.S3.Bucket.Name, r.S3.Bucket.Arn, r.S3.Object.Size)
		}
	}
}

// checkStreamSample wants a DynamoDB stream event of the table's view
// (NEW_AND_OLD_IMAGES) whose records are TTL removals of documents, in
// the layout dynamostore reads: what the filter of MetadataFunction's
// stream event lets through and its handler acts on.
func checkStreamSample(t *testing.T, b []byte) {
	t.Helper()
	var ev events.DynamoDBEvent
	if err := strictDecode(b, &ev); err != nil {
		t.Fatalf("not a DynamoDB stream event: %v", err)
	}
	var raw apigw.StreamEvent
	if err := json.Unmarshal(b, &raw); err != nil || len(raw.Records) != len(ev.Records) {
		t.Fatalf("apigw.StreamEvent: %v", err)
	}
	for i, r := range ev.Records {
		c := r.Change
		if r.EventSource != "aws:dynamodb" || r.EventVersion == "" || r.AWSRegion == "" || r.EventID == "" ||
			!strings.HasPrefix(r.EventSourceArn, "arn:aws:dynamodb:"+r.AWSRegion+":") || !strings.Contains(r.EventSourceArn, "/stream/") {
			t.Errorf("record %d: source %q, version %q, region %q, id %q, ARN %q; want an aws:dynamodb record of a table's stream",
				i, r.EventSource, r.EventVersion, r.AWSRegion, r.EventID, r.EventSourceArn)
		}
		if c.StreamViewType != "NEW_AND_OLD_IMAGES" || c.SequenceNumber == "" || c.SizeBytes <= 0 || c.NewImage != nil {
			t.Errorf("record %d: view %q, sequence %q, size %d, new image %v; want a REMOVE of the table's NEW_AND_OLD_IMAGES stream",
				i, c.StreamViewType, c.SequenceNumber, c.SizeBytes, c.NewImage)
		}
		if !raw.Records[i].IsTTLRemoval() {
			t.Errorf("record %d: %s by %+v is not a TTL removal: the handler would ignore it", i, r.EventName, r.UserIdentity)
		}
		rec, ok, err := dynamostore.DecodeStreamImage(raw.Records[i].DynamoDB.OldImage)
		if err != nil || !ok {
			t.Fatalf("record %d: OldImage is not a document's item: ok %v, %v", i, ok, err)
		}
		if rec.ID != placeholderID || c.Keys["id"].String() != placeholderID {
			t.Errorf("record %d: document %s, key %v; want the placeholder %s", i, rec.ID, c.Keys, placeholderID)
		}
	}
}

// TestEventsThroughTheHandlers answers every API event with the handler of
// the function its route names, on embedded backends: a well-formed event
// is never a 400, 401, 405 or 415, and the ones that can succeed there do.
func TestEventsThroughTheHandlers(t *testing.T) {
	want := map[string][]int{
		"health.json":           {200},
		"health-head.json":      {200},
		"upload.json":           {201},
		"upload-multipart.json": {201},
		"list.json":             {200},
		"get-metadata.json":     {404}, // the placeholder id exists nowhere
		"delete.json":           {404},
		"download.json":         {404},
		"download-range.json":   {404},
		"create-upload.json":    {201, 503}, // 503: no staging area on embedded backends
		"create-link.json":      {404},
		"list-links.json":       {404},
		"revoke-link.json":      {404},
		"link-content.json":     {404}, // a token of another deployment's secret
		"set-policy.json":       {404},
		"restore.json":          {404},
		"hold.json":             {404},
		"release.json":          {404},
		"purge.json":            {404},
		"list-trash.json":       {200},
		"audit.json":            {200}, // the filters select nothing yet
	}
	ctx := context.Background()
	a := embeddedApp(t)
	for name, b := range eventFiles(t) {
		switch recordsSource(b) {
		case "":
		case "aws:dynamodb":
			// The document is nowhere: finishing its removal finds nothing
			// left, which is a success (Removed is idempotent).
			t.Run(name, func(t *testing.T) {
				out, err := a.NewMetadataFunction().Invoke(ctx, b)
				if err != nil || len(out) != 0 {
					t.Errorf("the metadata function answered %q, %v; want nothing and no error", out, err)
				}
			})
			continue
		default:
			continue
		}
		t.Run(name, func(t *testing.T) {
			var ev events.APIGatewayV2HTTPRequest
			if err := json.Unmarshal(b, &ev); err != nil {
				t.Fatal(err)
			}
			route, _, ok, _ := apigw.Match(ev.RequestContext.HTTP.Method, ev.RawPath)
			if !ok {
				t.Fatalf("no route for %s", ev.RouteKey)
			}
			resp := a.Handler(route.Function).Handle(ctx, &ev)
			allowed, listed := want[name]
			switch {
			case listed && !slices.Contains(allowed, resp.Status):
				t.Errorf("%s answered %d %s, want %v", ev.RouteKey, resp.Status, resp.Body, allowed)
			case !listed && slices.Contains([]int{400, 401, 405, 415}, resp.Status):
				t.Errorf("%s answered %d %s: the event is malformed", ev.RouteKey, resp.Status, resp.Body)
			}
		})
	}
}

// embeddedApp is the application on embedded backends in a fresh folder,
// closed when the test ends.
func embeddedApp(t *testing.T) *app.App {
	t.Helper()
	cfg, err := config.FromEnv(mapEnv(map[string]string{"IMAGO_DATA_DIR": t.TempDir()}))
	if err != nil {
		t.Fatal(err)
	}
	set, _, err := embedded.Open(context.Background(), cfg, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(cfg, set, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// openRoutes are the keys of the routes the handlers answer without a
// caller identity, found by asking them: each route gets an event without
// an authorizer context, and a route that needs an identity answers 401
// before it looks at anything else.
func openRoutes(t *testing.T) map[string]bool {
	t.Helper()
	a := embeddedApp(t)
	placeholders := strings.NewReplacer("{id}", placeholderID, "{link_id}", "l1nk", "{token}", "t0ken")
	open := map[string]bool{}
	for _, r := range apigw.Routes {
		path := placeholders.Replace(r.Path)
		_, params, ok, _ := apigw.Match(r.Method, path)
		if !ok {
			t.Fatalf("route %s does not match its own path %s", r.Key(), path)
		}
		ev := &events.APIGatewayV2HTTPRequest{Version: "2.0", RouteKey: r.Key(), RawPath: path, PathParameters: params,
			Headers: map[string]string{}}
		ev.RequestContext.RouteKey, ev.RequestContext.Stage = r.Key(), "$default"
		ev.RequestContext.HTTP.Method, ev.RequestContext.HTTP.Path = r.Method, path
		if resp := a.Handler(r.Function).Handle(context.Background(), ev); resp.Status != 401 {
			open[r.Key()] = true
		}
	}
	if len(open) == 0 || len(open) == len(apigw.Routes) {
		t.Fatalf("open routes %v: the probe cannot tell open routes from the others", open)
	}
	return open
}
