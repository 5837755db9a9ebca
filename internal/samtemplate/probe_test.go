package samtemplate

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/awslabs/goformation/v7"
	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/intrinsics"
)

var names = []string{"Ref", "Fn::GetAtt", "Fn::Sub", "Fn::Join", "Fn::Select", "Fn::Split", "Fn::If", "Fn::Equals", "Fn::And", "Fn::Or", "Fn::Not", "Fn::Base64", "Fn::FindInMap", "Fn::GetAZs", "Fn::ImportValue", "Fn::Cidr", "Fn::Transform"}

func enc(name string, in any) string {
	b, _ := json.Marshal(map[string]any{name: in})
	return base64.StdEncoding.EncodeToString(b)
}

func TestProbe(t *testing.T) {
	data, _ := os.ReadFile("../../template.yaml")
	raw, err := intrinsics.ProcessYAML(data, &intrinsics.ProcessorOptions{NoProcess: true})
	if err != nil {
		t.Fatal(err)
	}
	var tree map[string]any
	json.Unmarshal(raw, &tree)
	params := tree["Parameters"].(map[string]any)
	res := tree["Resources"].(map[string]any)
	delete(res["HttpApi"].(map[string]any)["Properties"].(map[string]any), "AccessLogSettings")
	for _, n := range []string{"UploadFunction", "DownloadFunction", "MetadataFunction"} {
		delete(res[n].(map[string]any)["Properties"].(map[string]any), "LoggingConfig")
	}
	h := map[string]intrinsics.IntrinsicHandler{}
	for _, n := range names {
		h[n] = func(name string, in any, _ any) any {
			if name == "Ref" {
				if p, ok := params[in.(string)].(map[string]any); ok {
					typ := p["Type"].(string)
					if strings.HasPrefix(typ, "List<") || typ == "CommaDelimitedList" {
						return []any{enc(name, in)}
					}
					if typ == "Number" {
						return p["Default"]
					}
				}
			}
			return enc(name, in)
		}
	}
	b, _ := json.Marshal(tree)
	tpl, err := goformation.ParseJSONWithOptions(b, &intrinsics.ProcessorOptions{IntrinsicHandlerOverrides: h})
	if err != nil {
		t.Fatal(err)
	}
	var _ *cloudformation.Template = tpl
	for name, fn := range tpl.GetAllServerlessFunctionResources() {
		b, _ := json.MarshalIndent(fn, "", " ")
		fmt.Println(name, string(b)[:min(len(b), 1500)])
		fmt.Printf("%#v\n", fn.AWSCloudFormationMetadata)
		for en, ev := range fn.Events {
			fmt.Printf("%s %s %+v\n", en, ev.Type, ev.Properties)
		}
		break
	}
	for n, r := range tpl.Resources {
		fmt.Printf("%s %T\n", n, r)
	}
	fmt.Printf("globals %#v\n", tpl.Globals)
}
