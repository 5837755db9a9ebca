// Package lambdamain is each Lambda function's main, one call: Run. It is
// package app's, apart so that the Lambda runtime's client (whose RPC
// support brings text/template, which keeps every exported method of the
// binary alive in the linker) stays out of `imago serve`.
package lambdamain

import (
	"context"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/imagodocs/imago/internal/apigw"
	"github.com/imagodocs/imago/internal/app"
)

// Run is the main of Lambda function fn, on the AWS backends
// (app.FromEnv). Everything is built once per execution environment,
// outside the handler, and reused by every invocation. A failed start is a
// Lambda init error: the process exits before reaching the runtime API,
// and the log says why.
func Run(fn apigw.Function) {
	log := app.NewLogger(os.Stderr, os.Getenv)
	a, err := app.FromEnv(context.Background(), os.Getenv, log)
	if err != nil {
		log.Error("startup failed", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(handler(a, fn))
}

// handler is what the Lambda runtime invokes for function fn: the upload
// function's handler, which takes the S3 events of the staging prefix
// besides its routes; the download function's Respond, not Invoke, since
// the runtime gives each response's buffer back once sent, so a
// document's answer reuses it (apigw.LambdaResponse); the metadata
// function's handler, which takes the documents table's stream besides its
// routes.
func handler(a *app.App, fn apigw.Function) any {
	switch fn {
	case apigw.Upload:
		return a.NewUploadFunction()
	case apigw.Download:
		return a.Handler(fn).Respond
	case apigw.Metadata:
		return a.NewMetadataFunction()
	}
	return a.Handler(fn)
}
