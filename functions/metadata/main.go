// Command metadata is the MetadataFunction Lambda: the routes of docs/design.md
// ("The three functions") served by the metadata function. Package lambdamain
// runs it: everything is built once per execution environment, outside
// the handler, and reused by every invocation; it runs on the AWS
// backends only (internal/backends/awsbackends), and links no embedded
// one.
package main

import (
	"github.com/imagodocs/imago/internal/apigw"
	"github.com/imagodocs/imago/internal/app/lambdamain"
)

func main() { lambdamain.Run(apigw.Metadata) }
