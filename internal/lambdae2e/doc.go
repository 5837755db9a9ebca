// Package lambdae2e holds the end-to-end tests of the three Lambda
// functions, run as AWS runs them: each function is built as a `bootstrap`
// binary (-tags lambda.norpc, CGO_ENABLED=0, for this machine) and started
// under the Lambda Runtime Interface Emulator (aws-lambda-rie, what
// `sam local invoke` runs inside its container), on the project's local
// S3, DynamoDB, KMS and Redis servers (scripts/testenv). The tests speak to
// the functions only through the emulator's invoke API, with API Gateway
// HTTP API (payload 2.0) events and S3 notifications, and check what comes
// back, plus what is left in S3, with the services' own APIs.
//
// The large-upload test drives the whole presigned-upload chain for real:
// the client PUTs to versitygw, versitygw posts the S3 event to the relay
// (scripts/tools/cmd/s3relay), the relay invokes the upload function under
// the emulator, which ingests the staged object.
//
// The package holds no code besides this file: only tests.
package lambdae2e
