// Command upload is the UploadFunction Lambda: the routes of DESIGN.md served by
// the upload function. Everything is built once per execution environment,
// outside the handler, and reused by every invocation.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/imagodocs/imago/internal/app"
)

func main() {
	log := app.NewLogger(os.Stderr, os.Getenv)
	a := app.Must(app.FromEnv(context.Background(), os.Getenv, log))
	lambda.Start(a.NewUploadFunction())
}
