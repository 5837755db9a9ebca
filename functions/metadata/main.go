// Command metadata is the MetadataFunction Lambda: the routes of docs/design.md
// ("The three functions") served by the metadata function. Everything is built
// once per execution environment, outside the handler, and reused by every
// invocation; it runs on the AWS backends only (internal/backends), and
// links no embedded one.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/imagodocs/imago/internal/apigw"
	"github.com/imagodocs/imago/internal/app"
)

func main() {
	log := app.NewLogger(os.Stderr, os.Getenv)
	a, err := app.FromEnv(context.Background(), os.Getenv, log)
	if err != nil {
		// A Lambda init error: the environment is not started, and the
		// log says why.
		log.Error("startup failed", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(a.Handler(apigw.Metadata))
}
