package samtemplate

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/imagodocs/imago/internal/apigw"
)

// A scenario is one set of parameter values given to `sam deploy`: the
// template's Conditions, Fn::If and parameter Refs are evaluated by hand
// for it, on the plain tree, so that a test can look at the stack that set
// of parameters would really make (which resources exist, what a property
// comes to).
type scenario struct {
	name   string
	params map[string]any // a list parameter's value is a []any of strings
}

// Parameter sets the tests deploy, by hand: every default, and each of the
// ways an existing VPC or identity provider is given.
var (
	defaultsOnly = scenario{"defaults", nil}
	existingVPC  = scenario{"existing VPC", map[string]any{
		"VpcId":                "vpc-0123456789abcdef0",
		"PrivateSubnetIds":     []any{"subnet-0123456789abcdef0", "subnet-0fedcba9876543210"},
		"PrivateRouteTableIds": []any{"rtb-0123456789abcdef0", "rtb-0fedcba9876543210"},
	}}
	existingIssuer = scenario{"existing issuer", map[string]any{
		"JwtIssuer":   "https://issuer.example.com/",
		"JwtAudience": []any{"imago-api", "imago-cli"},
	}}
)

// with returns the scenario with more parameters set.
func (sc scenario) with(name string, params map[string]any) scenario {
	out := scenario{name: sc.name + ", " + name, params: maps.Clone(sc.params)}
	if out.params == nil {
		out.params = map[string]any{}
	}
	maps.Copy(out.params, params)
	return out
}

// stack is the template evaluated for one scenario.
type stack struct {
	t     *testing.T
	tpl   *Template
	sc    scenario
	conds map[string]bool
}

func deploy(t *testing.T, tpl *Template, sc scenario) *stack {
	t.Helper()
	params := asMap(tpl.Tree["Parameters"])
	for name := range sc.params {
		if params[name] == nil {
			t.Fatalf("scenario %s: template.yaml has no parameter %s", sc.name, name)
		}
	}
	s := &stack{t: t, tpl: tpl, sc: sc, conds: map[string]bool{}}
	for name := range asMap(tpl.Tree["Conditions"]) {
		s.conds[name] = s.condition(name, nil)
	}
	return s
}

// param is a parameter's value in the scenario: given, or its default (a
// list parameter's default split at commas, as CloudFormation does).
func (s *stack) param(name string) (any, bool) {
	p := asMap(asMap(s.tpl.Tree["Parameters"])[name])
	if p == nil {
		return nil, false
	}
	if v, ok := s.sc.params[name]; ok {
		return v, true
	}
	def, ok := p["Default"]
	if !ok {
		s.t.Fatalf("scenario %s: parameter %s has no default and no value", s.sc.name, name)
	}
	typ := asString(p["Type"])
	if typ == "CommaDelimitedList" || strings.HasPrefix(typ, "List<") {
		var out []any
		for _, e := range strings.Split(fmt.Sprint(def), ",") {
			out = append(out, e)
		}
		return out, true
	}
	return fmt.Sprint(def), true
}

func (s *stack) condition(name string, seen []string) bool {
	if slices.Contains(seen, name) {
		s.t.Fatalf("condition cycle: %v -> %s", seen, name)
	}
	def, ok := asMap(s.tpl.Tree["Conditions"])[name]
	if !ok {
		s.t.Fatalf("no condition %s", name)
	}
	return s.truth(def, append(seen, name))
}

// truth evaluates a condition function.
func (s *stack) truth(v any, seen []string) bool {
	// goformation's YAML reader turns `!Condition Name` into the bare name.
	if name, ok := v.(string); ok {
		return s.condition(name, seen)
	}
	m := asMap(v)
	if len(m) != 1 {
		s.t.Fatalf("not a condition function: %s", js(v))
	}
	for fn, arg := range m {
		args := asSlice(arg)
		switch fn {
		case "Condition":
			return s.condition(asString(arg), seen)
		case "Fn::Equals":
			return len(args) == 2 && reflect.DeepEqual(s.resolve(args[0]), s.resolve(args[1]))
		case "Fn::Not":
			return len(args) == 1 && !s.truth(args[0], seen)
		case "Fn::And", "Fn::Or":
			allTrue, anyTrue := true, false
			for _, a := range args {
				b := s.truth(a, seen)
				allTrue, anyTrue = allTrue && b, anyTrue || b
			}
			if fn == "Fn::And" {
				return allTrue
			}
			return anyTrue
		}
		s.t.Fatalf("condition function %s is not evaluated by this test", fn)
	}
	return false
}

// resolve evaluates Fn::If and parameter Refs in v; Refs to resources and
// pseudo parameters, GetAtt and Sub stay as they are.
func (s *stack) resolve(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if arg, ok := intrinsic(x, "Ref"); ok {
			if val, ok := s.param(asString(arg)); ok {
				return val
			}
			return x
		}
		if arg, ok := intrinsic(x, "Fn::If"); ok {
			args := asSlice(arg)
			if len(args) != 3 {
				s.t.Fatalf("Fn::If %s: want [condition, then, else]", js(arg))
			}
			if s.conds[asString(args[0])] {
				return s.resolve(args[1])
			}
			return s.resolve(args[2])
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = s.resolve(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = s.resolve(e)
		}
		return out
	}
	return v
}

// exists reports whether the stack has resource id (its Condition, if any,
// holds).
func (s *stack) exists(id string) bool {
	r := treeResource(s.tpl, id)
	if r == nil {
		return false
	}
	c, ok := r["Condition"]
	return !ok || s.conds[asString(c)]
}

// props is a resource's properties, resolved; a function's come with the
// Globals it inherits under them.
func (s *stack) props(id string) map[string]any {
	r := treeResource(s.tpl, id)
	props := maps.Clone(asMap(r["Properties"]))
	if r["Type"] == "AWS::Serverless::Function" {
		for k, v := range asMap(asMap(s.tpl.Tree["Globals"])["Function"]) {
			if _, own := props[k]; !own {
				props[k] = v
			}
		}
	}
	return asMap(s.resolve(props))
}

// refList reads a resolved list of Refs to resources: their ids.
func refList(v any) []string {
	var out []string
	for _, e := range asSlice(v) {
		if arg, ok := intrinsic(e, "Ref"); ok {
			out = append(out, asString(arg))
		} else {
			out = append(out, "?"+js(e))
		}
	}
	return out
}

func stringList(v any) []string {
	var out []string
	for _, e := range asSlice(v) {
		out = append(out, fmt.Sprint(e))
	}
	return out
}

// TestEveryReferenceExistsInEveryScenario: whatever the parameters, no
// resource or output of the stack names a resource the same parameters do
// not create (CloudFormation would refuse the template at deploy time).
func TestEveryReferenceExistsInEveryScenario(t *testing.T) {
	tpl := load(t)
	resources := asMap(tpl.Tree["Resources"])
	scenarios := []scenario{defaultsOnly, existingVPC, existingIssuer,
		existingVPC.with("no endpoints", map[string]any{"CreateS3Endpoint": "false", "CreateDynamoDBEndpoint": "false", "CreateKmsEndpoint": "false"}),
		existingIssuer.with("existing VPC", existingVPC.params).with("alarm e-mail", map[string]any{"AlarmEmail": "ops@example.com"})}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			s := deploy(t, tpl, sc)
			check := func(from string, v any) {
				out := map[string]bool{}
				refs(s.resolve(v), out)
				for to := range out {
					if _, isResource := resources[to]; isResource && !s.exists(to) {
						t.Errorf("%s refers to %s, which these parameters do not create", from, to)
					}
				}
			}
			for id, r := range resources {
				if !s.exists(id) {
					continue
				}
				check(id, s.props(id))
				for _, d := range toList(asMap(r)["DependsOn"]) {
					if d != nil && !s.exists(asString(d)) {
						t.Errorf("%s depends on %s, which these parameters do not create", id, d)
					}
				}
			}
			for name, o := range asMap(tpl.Tree["Outputs"]) {
				if c, ok := asMap(o)["Condition"]; ok && !s.conds[asString(c)] {
					continue
				}
				check("output "+name, asMap(o)["Value"])
			}
		})
	}
}

// TestNetworkWithoutAVPCIsCreated: with every default, the functions, the
// cache and the KMS endpoint sit in the two private subnets the stack
// creates, in two Availability Zones, and the gateway endpoints serve
// exactly those subnets' route tables.
func TestNetworkWithoutAVPCIsCreated(t *testing.T) {
	tpl := load(t)
	s := deploy(t, tpl, defaultsOnly)
	vpc := vpcOf(t, tpl)
	if !s.exists(vpc) {
		t.Fatalf("no VPC given, and the stack creates none")
	}
	vp := s.props(vpc)
	if vp["EnableDnsSupport"] != true || vp["EnableDnsHostnames"] != true {
		t.Errorf("%s: DNS support and hostnames must be on (the KMS endpoint's private DNS): %s", vpc, js(vp))
	}
	subnets := refList(s.props(functionIDs[apigw.Upload])["VpcConfig"].(map[string]any)["SubnetIds"])
	if len(subnets) != 2 {
		t.Fatalf("the functions' subnets are %v, want the two created subnets", subnets)
	}
	zones := map[string]bool{}
	for _, sn := range subnets {
		r := treeResource(tpl, sn)
		if r["Type"] != "AWS::EC2::Subnet" || !s.exists(sn) {
			t.Fatalf("the functions' subnet %s is not a subnet this stack creates", sn)
		}
		p := s.props(sn)
		if !isRef(p["VpcId"], vpc) {
			t.Errorf("%s is not in %s", sn, vpc)
		}
		if p["MapPublicIpOnLaunch"] == true {
			t.Errorf("%s gives public addresses: it must be private", sn)
		}
		zones[js(p["AvailabilityZone"])] = true
	}
	if len(zones) != 2 {
		t.Errorf("the two subnets are in the same Availability Zone: %v", slices.Collect(maps.Keys(zones)))
	}
	// Each subnet's route table, which the gateway endpoints must serve.
	var tables []string
	for id, r := range asMap(tpl.Tree["Resources"]) {
		if asMap(r)["Type"] == "AWS::EC2::SubnetRouteTableAssociation" && s.exists(id) {
			p := s.props(id)
			if slices.Contains(subnets, refList([]any{p["SubnetId"]})[0]) {
				tables = append(tables, refList([]any{p["RouteTableId"]})[0])
			}
		}
	}
	slices.Sort(tables)
	if len(tables) != 2 {
		t.Errorf("route tables of the subnets: %v, want one per subnet", tables)
	}
	for _, rt := range tables {
		if p := s.props(rt); !isRef(p["VpcId"], vpc) {
			t.Errorf("route table %s is not in %s", rt, vpc)
		}
	}
	for id := range asMap(tpl.Tree["Resources"]) {
		r := treeResource(tpl, id)
		switch r["Type"] {
		case "AWS::Serverless::Function":
			got := refList(s.props(id)["VpcConfig"].(map[string]any)["SubnetIds"])
			if !slices.Equal(got, subnets) {
				t.Errorf("%s: subnets %v, want %v", id, got, subnets)
			}
		case "AWS::ElastiCache::ServerlessCache":
			if got := refList(s.props(id)["SubnetIds"]); !slices.Equal(got, subnets) {
				t.Errorf("%s: subnets %v, want %v", id, got, subnets)
			}
		case "AWS::EC2::SecurityGroup":
			if s.exists(id) && !isRef(s.props(id)["VpcId"], vpc) {
				t.Errorf("%s: VpcId %s, want the created %s", id, js(s.props(id)["VpcId"]), vpc)
			}
		case "AWS::EC2::InternetGateway", "AWS::EC2::NatGateway", "AWS::EC2::EIP":
			t.Errorf("%s (%s): the VPC is private; the functions need AWS APIs only, through endpoints", id, r["Type"])
		}
	}
	eps := endpoints(t, s)
	for _, want := range []string{"s3", "dynamodb", "kms"} {
		id, ok := eps[want]
		if !ok {
			t.Errorf("a created VPC has no %s endpoint: the functions could not reach it (no NAT)", want)
			continue
		}
		p := s.props(id)
		if !isRef(p["VpcId"], vpc) {
			t.Errorf("%s: VpcId %s, want %s", id, js(p["VpcId"]), vpc)
		}
		switch p["VpcEndpointType"] {
		case "Gateway":
			got := refList(p["RouteTableIds"])
			slices.Sort(got)
			if !slices.Equal(got, tables) {
				t.Errorf("%s: route tables %v, want the subnets' %v", id, got, tables)
			}
		case "Interface":
			if got := refList(p["SubnetIds"]); !slices.Equal(got, subnets) {
				t.Errorf("%s: subnets %v, want %v", id, got, subnets)
			}
		}
	}
}

// TestNetworkWithAGivenVPCUsesIt: given a VPC, the stack creates no
// network of its own, puts everything in the given subnets, and skips
// each endpoint on its own when asked to.
func TestNetworkWithAGivenVPCUsesIt(t *testing.T) {
	tpl := load(t)
	given := existingVPC.params
	s := deploy(t, tpl, existingVPC)
	for id := range asMap(tpl.Tree["Resources"]) {
		switch treeResource(tpl, id)["Type"] {
		case "AWS::EC2::VPC", "AWS::EC2::Subnet", "AWS::EC2::RouteTable", "AWS::EC2::SubnetRouteTableAssociation":
			if s.exists(id) {
				t.Errorf("a VPC is given, and the stack still creates %s", id)
			}
		case "AWS::Serverless::Function":
			if got := s.props(id)["VpcConfig"].(map[string]any)["SubnetIds"]; !reflect.DeepEqual(got, given["PrivateSubnetIds"]) {
				t.Errorf("%s: subnets %s, want the given %s", id, js(got), js(given["PrivateSubnetIds"]))
			}
		case "AWS::ElastiCache::ServerlessCache":
			if got := s.props(id)["SubnetIds"]; !reflect.DeepEqual(got, given["PrivateSubnetIds"]) {
				t.Errorf("%s: subnets %s, want the given %s", id, js(got), js(given["PrivateSubnetIds"]))
			}
		case "AWS::EC2::SecurityGroup":
			if s.exists(id) && s.props(id)["VpcId"] != given["VpcId"] {
				t.Errorf("%s: VpcId %s, want the given %s", id, js(s.props(id)["VpcId"]), given["VpcId"])
			}
		}
	}
	eps := endpoints(t, s)
	for service, id := range eps {
		p := s.props(id)
		if p["VpcId"] != given["VpcId"] {
			t.Errorf("%s endpoint %s: VpcId %s, want %s", service, id, js(p["VpcId"]), given["VpcId"])
		}
		if p["VpcEndpointType"] == "Gateway" && !reflect.DeepEqual(p["RouteTableIds"], given["PrivateRouteTableIds"]) {
			t.Errorf("%s endpoint %s: route tables %s, want the given %s", service, id, js(p["RouteTableIds"]), js(given["PrivateRouteTableIds"]))
		}
		if p["VpcEndpointType"] == "Interface" && !reflect.DeepEqual(p["SubnetIds"], given["PrivateSubnetIds"]) {
			t.Errorf("%s endpoint %s: subnets %s, want the given %s", service, id, js(p["SubnetIds"]), js(given["PrivateSubnetIds"]))
		}
	}
	if len(eps) != 3 {
		t.Errorf("endpoints %v, want s3, dynamodb and kms by default", eps)
	}
	// Each endpoint can be skipped on its own, and only with a given VPC.
	for service, param := range map[string]string{"s3": "CreateS3Endpoint", "dynamodb": "CreateDynamoDBEndpoint", "kms": "CreateKmsEndpoint"} {
		skip := map[string]any{param: "false"}
		got := endpoints(t, deploy(t, tpl, existingVPC.with(param+"=false", skip)))
		if _, ok := got[service]; ok || len(got) != 2 {
			t.Errorf("%s=false: endpoints %v, want all but %s", param, got, service)
		}
		if got := endpoints(t, deploy(t, tpl, defaultsOnly.with(param+"=false", skip))); len(got) != 3 {
			t.Errorf("%s=false without a VPC: endpoints %v; a created VPC needs all three", param, got)
		}
	}
	// The KMS endpoint's group exists exactly when the endpoint does.
	noKMS := deploy(t, tpl, existingVPC.with("no KMS endpoint", map[string]any{"CreateKmsEndpoint": "false"}))
	if noKMS.exists(endpointSG) {
		t.Errorf("%s is created without the KMS endpoint it guards", endpointSG)
	}
}

// vpcOf finds the template's VPC resource.
func vpcOf(t *testing.T, tpl *Template) string {
	t.Helper()
	for id, r := range asMap(tpl.Tree["Resources"]) {
		if asMap(r)["Type"] == "AWS::EC2::VPC" {
			return id
		}
	}
	t.Fatal("template.yaml declares no AWS::EC2::VPC")
	return ""
}

// endpoints maps each VPC endpoint the stack creates by service (s3,
// dynamodb, kms) to its logical id.
func endpoints(t *testing.T, s *stack) map[string]string {
	t.Helper()
	out := map[string]string{}
	for id, r := range asMap(s.tpl.Tree["Resources"]) {
		if asMap(r)["Type"] != "AWS::EC2::VPCEndpoint" || !s.exists(id) {
			continue
		}
		tmpl, _, _ := sub(s.props(id)["ServiceName"])
		service := strings.TrimPrefix(tmpl, "com.amazonaws.${AWS::Region}.")
		if _, dup := out[service]; dup {
			t.Errorf("two %s endpoints", service)
		}
		out[service] = id
	}
	return out
}

// authorizerConfig is the default authorizer's JwtConfiguration, resolved.
func authorizerConfig(t *testing.T, s *stack) map[string]any {
	t.Helper()
	auth := asMap(s.props(apiID)["Auth"])
	def := asString(auth["DefaultAuthorizer"])
	return asMap(asMap(asMap(auth["Authorizers"])[def])["JwtConfiguration"])
}

// TestIdentityWithoutAnIssuerIsACognitoUserPool: with every default, the
// API accepts the tokens of a user pool and app client the stack creates,
// which an operator can use from the CLI as the README says.
func TestIdentityWithoutAnIssuerIsACognitoUserPool(t *testing.T) {
	tpl := load(t)
	s := deploy(t, tpl, defaultsOnly)
	pool, client := "", ""
	for id, r := range asMap(tpl.Tree["Resources"]) {
		switch asMap(r)["Type"] {
		case "AWS::Cognito::UserPool":
			pool = id
		case "AWS::Cognito::UserPoolClient":
			client = id
		}
	}
	if pool == "" || client == "" || !s.exists(pool) || !s.exists(client) {
		t.Fatalf("no issuer given, and the stack creates no Cognito user pool and app client (%q, %q)", pool, client)
	}
	jwt := authorizerConfig(t, s)
	tmpl, _, ok := sub(jwt["issuer"])
	if !ok || tmpl != "https://cognito-idp.${AWS::Region}.${AWS::URLSuffix}/${"+pool+"}" {
		t.Errorf("authorizer issuer %s, want https://cognito-idp.${AWS::Region}.${AWS::URLSuffix}/${%s}", js(jwt["issuer"]), pool)
	}
	if got := refList(jwt["audience"]); !slices.Equal(got, []string{client}) {
		t.Errorf("authorizer audience %v, want [%s]", got, client)
	}
	pp := s.props(pool)
	if asMap(pp["AdminCreateUserConfig"])["AllowAdminCreateUserOnly"] != true {
		t.Errorf("%s lets anyone sign up: every new user would be a tenant", pool)
	}
	cp := s.props(client)
	if !isRef(cp["UserPoolId"], pool) {
		t.Errorf("%s is not a client of %s", client, pool)
	}
	if cp["GenerateSecret"] == true {
		t.Errorf("%s has a secret: initiate-auth from the CLI would need a SECRET_HASH", client)
	}
	if flows := stringList(cp["ExplicitAuthFlows"]); !slices.Contains(flows, "ALLOW_USER_PASSWORD_AUTH") || !slices.Contains(flows, "ALLOW_REFRESH_TOKEN_AUTH") {
		t.Errorf("%s: ExplicitAuthFlows %v, want ALLOW_USER_PASSWORD_AUTH (initiate-auth) and ALLOW_REFRESH_TOKEN_AUTH", client, flows)
	}
	outputs := asMap(tpl.Tree["Outputs"])
	cmds := asMap(outputs["GetTokenCommands"])
	tmpl, _, _ = sub(cmds["Value"])
	for _, want := range []string{"admin-create-user", "admin-set-user-password", "initiate-auth", "USER_PASSWORD_AUTH", "${" + pool + "}", "${" + client + "}"} {
		if !strings.Contains(tmpl, want) {
			t.Errorf("output GetTokenCommands does not say %s: %q", want, tmpl)
		}
	}
	for _, name := range []string{"UserPoolId", "UserPoolClientId", "GetTokenCommands"} {
		if c := asMap(outputs[name])["Condition"]; c == nil || !s.conds[asString(c)] {
			t.Errorf("output %s is missing, or not conditioned on the pool (condition %v)", name, c)
		}
	}
}

// TestIdentityWithAnIssuerUsesIt: given an issuer and audiences, they are
// the authorizer's, and no user pool is created.
func TestIdentityWithAnIssuerUsesIt(t *testing.T) {
	tpl := load(t)
	s := deploy(t, tpl, existingIssuer)
	for id, r := range asMap(tpl.Tree["Resources"]) {
		if strings.HasPrefix(asString(asMap(r)["Type"]), "AWS::Cognito::") && s.exists(id) {
			t.Errorf("an issuer is given, and the stack still creates %s", id)
		}
	}
	jwt := authorizerConfig(t, s)
	if jwt["issuer"] != existingIssuer.params["JwtIssuer"] || !reflect.DeepEqual(jwt["audience"], existingIssuer.params["JwtAudience"]) {
		t.Errorf("authorizer %s, want the given issuer and audiences %s", js(jwt), js(existingIssuer.params))
	}
	for name, o := range asMap(tpl.Tree["Outputs"]) {
		if c, ok := asMap(o)["Condition"]; ok && s.conds[asString(c)] && strings.Contains(js(o), "UserPool") {
			t.Errorf("output %s names the user pool, which is not created", name)
		}
	}
}
