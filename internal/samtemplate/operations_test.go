package samtemplate

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/imagodocs/imago/internal/apigw"
)

// statefulTypes are the resource types whose deletion loses something:
// data, identities, keys, or an operational record. Each must say what
// happens to it on `sam delete` and on a replacement.
var statefulTypes = []string{
	"AWS::S3::Bucket", "AWS::DynamoDB::Table", "AWS::KMS::Key", "AWS::Cognito::UserPool",
	"AWS::SecretsManager::Secret", "AWS::Logs::LogGroup", "AWS::SQS::Queue",
	"AWS::ElastiCache::ServerlessCache",
}

// retained are the resources `sam delete` leaves behind (the README says
// so): the documents, their records, the key that opens them, and the
// identities that own them (losing any one makes the others useless); and
// the audit trail, whose records outlive the documents they name and the
// stack that wrote them.
var retained = []string{bucketID, tableID, keyID, "UserPool", auditID}

func TestStatefulResourcesSayWhatDeletionDoes(t *testing.T) {
	tpl := load(t)
	var kept []string
	for id, r := range asMap(tpl.Tree["Resources"]) {
		res := asMap(r)
		if !slices.Contains(statefulTypes, asString(res["Type"])) {
			continue
		}
		del, repl := asString(res["DeletionPolicy"]), asString(res["UpdateReplacePolicy"])
		if del == "" || repl == "" {
			t.Errorf("%s (%s): DeletionPolicy %q, UpdateReplacePolicy %q; say both", id, res["Type"], del, repl)
		}
		if del != repl {
			t.Errorf("%s: DeletionPolicy %s but UpdateReplacePolicy %s: a replacement would do what a delete does not", id, del, repl)
		}
		if del == "Retain" {
			kept = append(kept, id)
		}
	}
	slices.Sort(kept)
	want := slices.Clone(retained)
	slices.Sort(want)
	if !slices.Equal(kept, want) {
		t.Errorf("retained on sam delete: %v, want %v (and README.md says which)", kept, want)
	}
	readme, err := os.ReadFile(root + "/README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range retained {
		if !strings.Contains(string(readme), "`"+id+"`") {
			t.Errorf("README.md does not name %s among what sam delete keeps", id)
		}
	}
}

// TestFailedIngestIsNeverSilent: S3 invokes UploadFunction asynchronously;
// an ingest that keeps failing must end in an encrypted queue whose depth
// is alarmed, after bounded retries.
func TestFailedIngestIsNeverSilent(t *testing.T) {
	tpl := load(t)
	id := functionIDs[apigw.Upload]
	cfg := asMap(asMap(treeResource(tpl, id)["Properties"])["EventInvokeConfig"])
	if cfg == nil {
		t.Fatalf("%s has no EventInvokeConfig: a failed S3-event ingest would be dropped after Lambda's default retries", id)
	}
	if n, ok := cfg["MaximumRetryAttempts"].(float64); !ok || n < 1 || n > 2 {
		t.Errorf("%s: MaximumRetryAttempts %v, want 1 or 2 (set, and bounded)", id, cfg["MaximumRetryAttempts"])
	}
	if n, ok := cfg["MaximumEventAgeInSeconds"].(float64); !ok || n < 60 || n > 21600 {
		t.Errorf("%s: MaximumEventAgeInSeconds %v, want 60…21600 (set: it bounds how long an event is retried)", id, cfg["MaximumEventAgeInSeconds"])
	} else if n >= 86400 {
		t.Errorf("%s: events retried after the staged object expired", id)
	}
	checkFailureQueue(t, tpl, id, asMap(asMap(cfg["DestinationConfig"])["OnFailure"]))
}

// checkFailureQueue wants an on-failure destination that is an encrypted
// SQS queue of this stack, always there, whose depth is alarmed.
func checkFailureQueue(t *testing.T, tpl *Template, id string, onFailure map[string]any) {
	t.Helper()
	queue, attr, ok := getAtt(onFailure["Destination"])
	if onFailure["Type"] != "SQS" || !ok || attr != "Arn" || asString(treeResource(tpl, queue)["Type"]) != "AWS::SQS::Queue" {
		t.Fatalf("%s: OnFailure %s, want Type SQS and the Arn of a queue of this stack", id, js(onFailure))
	}
	qp := asMap(treeResource(tpl, queue)["Properties"])
	if qp["SqsManagedSseEnabled"] != true && qp["KmsMasterKeyId"] == nil {
		t.Errorf("%s is not encrypted (SqsManagedSseEnabled or KmsMasterKeyId)", queue)
	}
	if c := treeResource(tpl, queue)["Condition"]; c != nil {
		t.Errorf("%s exists only under condition %v", queue, c)
	}
	if n := alarmsOn(tpl, "AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", func(v any) bool {
		r, a, ok := getAtt(v)
		return ok && r == queue && a == "QueueName"
	}); n == 0 {
		t.Errorf("no alarm on %s's depth (AWS/SQS ApproximateNumberOfMessagesVisible, QueueName)", queue)
	}
}

// TestTableStreamReachesMetadataOnly: DynamoDB's TTL removals (an expiry,
// a purge at the end of the deletion delay) reach MetadataFunction through
// the table's stream, which carries the removed item; the function is
// invoked for those records only; a batch that keeps failing is isolated,
// retried a bounded number of times, and ends in an alarmed queue while the
// stream (24 hours) still holds it.
func TestTableStreamReachesMetadataOnly(t *testing.T) {
	tpl := load(t)
	var found []string
	for fn := range functionIDs {
		id := functionIDs[fn]
		for name, ev := range asMap(asMap(treeResource(tpl, id)["Properties"])["Events"]) {
			e := asMap(ev)
			if e["Type"] != "DynamoDB" {
				continue
			}
			found = append(found, id+"."+name)
			if fn != apigw.Metadata {
				t.Errorf("%s: a DynamoDB event; only %s handles the stream", id, functionIDs[apigw.Metadata])
			}
			checkStreamEvent(t, tpl, id+"."+name, asMap(e["Properties"]))
		}
	}
	if len(found) != 1 {
		t.Fatalf("DynamoDB events %v, want exactly one, on %s", found, functionIDs[apigw.Metadata])
	}
}

func checkStreamEvent(t *testing.T, tpl *Template, id string, p map[string]any) {
	t.Helper()
	if res, attr, ok := getAtt(p["Stream"]); !ok || res != tableID || attr != "StreamArn" {
		t.Errorf("%s: Stream %s, want !GetAtt %s.StreamArn", id, js(p["Stream"]), tableID)
	}
	// A mapping made after the stream must not skip the removals made
	// before it became active; Removed is idempotent, so a replay is
	// harmless.
	if p["StartingPosition"] != "TRIM_HORIZON" {
		t.Errorf("%s: StartingPosition %v, want TRIM_HORIZON", id, p["StartingPosition"])
	}
	if n, ok := p["BatchSize"].(float64); !ok || n < 1 || n > 100 {
		t.Errorf("%s: BatchSize %v, want a small one (1…100): each record is a blob and links to delete within the timeout", id, p["BatchSize"])
	}
	if p["BisectBatchOnFunctionError"] != true {
		t.Errorf("%s: BisectBatchOnFunctionError %v, want true (one bad record must not hold back its batch)", id, p["BisectBatchOnFunctionError"])
	}
	if n, ok := p["MaximumRetryAttempts"].(float64); !ok || n < 1 || n > 10 {
		t.Errorf("%s: MaximumRetryAttempts %v, want 1…10 (set: the default retries until the record expires)", id, p["MaximumRetryAttempts"])
	}
	if n, ok := p["MaximumRecordAgeInSeconds"].(float64); !ok || n < 60 || n >= 86400 {
		t.Errorf("%s: MaximumRecordAgeInSeconds %v, want 60…86399: a failure must reach the queue while the stream still holds the record", id, p["MaximumRecordAgeInSeconds"])
	}
	checkFailureQueue(t, tpl, id, asMap(asMap(p["DestinationConfig"])["OnFailure"]))

	// The filter lets TTL removals through, and only those: what the
	// handler acts on (apigw.StreamRecord.IsTTLRemoval).
	filters := asSlice(asMap(p["FilterCriteria"])["Filters"])
	if len(filters) != 1 {
		t.Fatalf("%s: FilterCriteria %s, want one filter (TTL removals)", id, js(p["FilterCriteria"]))
	}
	var pattern struct {
		EventName    []string `json:"eventName"`
		UserIdentity struct {
			Type        []string `json:"type"`
			PrincipalID []string `json:"principalId"`
		} `json:"userIdentity"`
	}
	if err := strictDecode([]byte(asString(asMap(filters[0])["Pattern"])), &pattern); err != nil {
		t.Fatalf("%s: filter pattern: %v", id, err)
	}
	if len(pattern.EventName) != 1 || len(pattern.UserIdentity.Type) != 1 || len(pattern.UserIdentity.PrincipalID) != 1 {
		t.Fatalf("%s: filter pattern %+v, want one event name, one identity type, one principal", id, pattern)
	}
	var r apigw.StreamRecord
	r.EventName = pattern.EventName[0]
	r.UserIdentity = &struct {
		Type        string `json:"type"`
		PrincipalID string `json:"principalId"`
	}{pattern.UserIdentity.Type[0], pattern.UserIdentity.PrincipalID[0]}
	if !r.IsTTLRemoval() {
		t.Errorf("%s: the filter admits %+v, which the handler ignores: it would never act", id, pattern)
	}
	r.EventName = "MODIFY"
	if r.IsTTLRemoval() {
		t.Errorf("the handler acts on a MODIFY record: this test's check of the filter proves nothing")
	}
}

// TestFunctionsAreTracedAndAlarmed: X-Ray active on every function, and an
// alarm on each function's errors and throttles.
func TestFunctionsAreTracedAndAlarmed(t *testing.T) {
	tpl := load(t)
	g := globalFunction(tpl)
	for fn, f := range functions(t, tpl) {
		id := functionIDs[fn]
		if tracing := cmpOr(deref(f.Tracing), deref(g.Tracing)); tracing != "Active" {
			t.Errorf("%s: Tracing %q, want Active", id, tracing)
		}
		for _, metric := range []string{"Errors", "Throttles"} {
			if n := alarmsOn(tpl, "AWS/Lambda", metric, "FunctionName", func(v any) bool { return isRef(v, id) }); n != 1 {
				t.Errorf("%s: %d alarms on AWS/Lambda %s, want 1", id, n, metric)
			}
		}
	}
	// Every alarm tells the topic, which an AlarmEmail subscribes to.
	for id, r := range asMap(tpl.Tree["Resources"]) {
		res := asMap(r)
		if res["Type"] != "AWS::CloudWatch::Alarm" {
			continue
		}
		p := asMap(res["Properties"])
		actions := asSlice(p["AlarmActions"])
		if len(actions) == 0 {
			t.Errorf("%s has no AlarmActions: nobody is told", id)
		}
		for _, a := range actions {
			if arg, ok := intrinsic(a, "Ref"); !ok || asString(treeResource(tpl, asString(arg))["Type"]) != "AWS::SNS::Topic" {
				t.Errorf("%s: action %s is not a topic of this stack", id, js(a))
			}
		}
		if p["TreatMissingData"] != "notBreaching" {
			t.Errorf("%s: TreatMissingData %v; an idle function would alarm", id, p["TreatMissingData"])
		}
	}
}

// alarmsOn counts the alarms on namespace/metric whose dimension dim
// satisfies match.
func alarmsOn(tpl *Template, namespace, metric, dim string, match func(any) bool) int {
	n := 0
	for _, r := range asMap(tpl.Tree["Resources"]) {
		res := asMap(r)
		p := asMap(res["Properties"])
		if res["Type"] != "AWS::CloudWatch::Alarm" || p["Namespace"] != namespace || p["MetricName"] != metric {
			continue
		}
		for _, d := range asSlice(p["Dimensions"]) {
			if asMap(d)["Name"] == dim && match(asMap(d)["Value"]) {
				n++
			}
		}
	}
	return n
}

// TestCORS: a browser may call every route from the configured origin,
// send the token and a JSON or document body, and read the headers the API
// answers with.
func TestCORS(t *testing.T) {
	tpl := load(t)
	cors := asMap(asMap(treeResource(tpl, apiID)["Properties"])["CorsConfiguration"])
	if cors == nil {
		t.Fatalf("%s has no CorsConfiguration", apiID)
	}
	origins := asSlice(cors["AllowOrigins"])
	if len(origins) != 1 {
		t.Fatalf("AllowOrigins %s, want [!Ref <parameter>]", js(cors["AllowOrigins"]))
	}
	param, ok := intrinsic(origins[0], "Ref")
	if p := asMap(asMap(tpl.Tree["Parameters"])[asString(param)]); !ok || p == nil || p["Type"] != "String" {
		// SAM resolves this Ref into the API's OpenAPI body itself: a list
		// parameter's value would arrive as one string.
		t.Errorf("AllowOrigins %s, want a !Ref to a String parameter", js(origins[0]))
	}
	lower := func(v any) []string {
		var out []string
		for _, s := range stringList(v) {
			out = append(out, strings.ToLower(s))
		}
		return out
	}
	methods := lower(cors["AllowMethods"])
	for _, r := range apigw.Routes {
		if !slices.Contains(methods, strings.ToLower(r.Method)) {
			t.Errorf("AllowMethods %v lacks %s (route %s)", methods, r.Method, r.Key())
		}
	}
	headers := lower(cors["AllowHeaders"])
	for _, h := range []string{"authorization", "content-type"} {
		if !slices.Contains(headers, h) {
			t.Errorf("AllowHeaders %v lacks %s", headers, h)
		}
	}
	exposed := lower(cors["ExposeHeaders"])
	// A page fetching a document, or a share link, reads its content
	// headers; Content-Length is not CORS-safelisted in every browser.
	for _, h := range []string{"etag", "content-range", "content-length", "content-disposition", "x-imago-cache", "location", "retry-after"} {
		if !slices.Contains(exposed, h) {
			t.Errorf("ExposeHeaders %v lacks %s: a browser could not read it", exposed, h)
		}
	}
	if cors["AllowCredentials"] == true {
		t.Errorf("AllowCredentials: the API takes bearer tokens; credentials with '*' are refused by SAM and browsers")
	}
	// The bucket's CORS (presigned PUTs) takes the same origin.
	for _, rule := range asSlice(asMap(asMap(asMap(treeResource(tpl, bucketID)["Properties"])["CorsConfiguration"]))["CorsRules"]) {
		if o := asSlice(asMap(rule)["AllowedOrigins"]); len(o) != 1 || !isRef(o[0], asString(param)) {
			t.Errorf("%s: CORS rule origins %s, want [!Ref %s]", bucketID, js(asMap(rule)["AllowedOrigins"]), param)
		}
	}
}

// TestEveryParameterHasADefault: `sam deploy` works with nothing filled
// in (README.md, "Deploying to AWS"), and the defaults pass their own
// constraints.
func TestEveryParameterHasADefault(t *testing.T) {
	tpl := load(t)
	for name, p := range asMap(tpl.Tree["Parameters"]) {
		pm := asMap(p)
		def, ok := pm["Default"]
		if !ok {
			t.Errorf("parameter %s has no default: sam deploy needs it filled in", name)
			continue
		}
		v := fmt.Sprint(def)
		if pat := asString(pm["AllowedPattern"]); pat != "" {
			values := []string{v}
			if pm["Type"] == "CommaDelimitedList" {
				values = strings.Split(v, ",")
			}
			for _, e := range values {
				if !regexp.MustCompile(pat).MatchString(e) {
					t.Errorf("parameter %s: default %q does not match its AllowedPattern %s", name, e, pat)
				}
			}
		}
		if allowed := asSlice(pm["AllowedValues"]); allowed != nil && !slices.Contains(stringList(allowed), v) {
			t.Errorf("parameter %s: default %q is not among its AllowedValues", name, v)
		}
	}
}
