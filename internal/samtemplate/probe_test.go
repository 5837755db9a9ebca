package samtemplate

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/awslabs/goformation/v7"
	"github.com/awslabs/goformation/v7/intrinsics"
)

func TestProbe(t *testing.T) {
	for _, opts := range []*intrinsics.ProcessorOptions{nil, {NoProcess: true}} {
		tpl, err := goformation.OpenWithOptions("../../template.yaml", opts)
		if err != nil {
			t.Logf("opts %+v: %v", opts, err)
			continue
		}
		fns := tpl.GetAllServerlessFunctionResources()
		for name, fn := range fns {
			b, _ := json.MarshalIndent(fn, "", " ")
			fmt.Println(name, string(b)[:min(len(b), 3000)])
			fmt.Printf("%#v\n", fn.AWSCloudFormationMetadata)
			break
		}
		fmt.Printf("globals %#v\n", tpl.Globals)
	}
}
