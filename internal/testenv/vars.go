package testenv

import (
	"crypto/rand"
	"encoding/base64"
	"os"
)

// AWSVars are the variables that point the AWS family of backends at the
// local servers: the region, each service's endpoint, and the table,
// bucket and key whose presence selects the AWS backends, and the audit
// trail's table.
var AWSVars = []string{
	"AWS_REGION", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_KMS",
	"IMAGO_TABLE", "IMAGO_BUCKET", "IMAGO_KMS_KEY_ID", "IMAGO_AUDIT_TABLE",
}

// CredentialVars are the local servers' credentials (scripts/testenv
// exports them), and what keeps the SDK from asking the EC2 metadata
// service for others.
var CredentialVars = []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_EC2_METADATA_DISABLED"}

// FunctionVars are the variables of the test's environment a function (a
// Lambda bootstrap, `imago serve`) started by a test gets: AWSVars,
// CredentialVars and the Redis URL. Nothing else of the test's
// environment leaks into it.
func FunctionVars() []string {
	return append(append(append([]string{}, AWSVars...), CredentialVars...), "IMAGO_REDIS_URL")
}

// FunctionEnv returns "NAME=value" for each of FunctionVars that is set,
// for an exec.Cmd's Env.
func FunctionEnv() []string {
	var env []string
	for _, k := range FunctionVars() {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// AddCredentials copies the CredentialVars that are set into env, the
// environment of an in-process `imago serve` (its getenv).
func AddCredentials(env map[string]string) {
	for _, k := range CredentialVars {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
}

// RandomSecret is a fresh 32-byte secret, base64: a test run's deployment
// secret (IMAGO_CURSOR_SECRET, IMAGO_LINK_SECRET), one for all the
// functions it starts, as the stack gives them one.
func RandomSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}
