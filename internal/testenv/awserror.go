package testenv

import (
	"net/http"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// ResponseError is the error an AWS SDK client returns for an HTTP answer
// of status whose body the SDK decoded as err (a modeled exception, or a
// smithy.GenericAPIError with the service's error code): what the
// backends' error classification sees, without a server to answer so.
func ResponseError(status int, err error) error {
	return &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}}, Err: err,
	}}
}
