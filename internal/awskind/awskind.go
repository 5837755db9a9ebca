// Package awskind classifies the errors of the AWS SDK clients into the
// domain's error kinds, the same way for S3, DynamoDB and KMS: each
// backend names the error codes whose meaning it knows, and everything
// else is judged by what the SDK itself would retry.
package awskind

import (
	"context"
	"errors"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"

	"github.com/imagodocs/imago/internal/docstore"
)

// Of returns the kind of an SDK error: the kind codes gives its error
// code, if any; KindUnavailable for a deadline, a server fault, or anything
// the SDK's retryer would retry (throttling, 5xx, connection and timeout
// errors), since a later request may get through; KindInternal otherwise
// (a missing resource, a denied call, a bad request: no retry helps).
func Of(err error, codes map[string]docstore.Kind) docstore.Kind {
	if err == nil {
		return docstore.KindInternal
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return docstore.KindUnavailable
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		if kind, ok := codes[ae.ErrorCode()]; ok {
			return kind
		}
		if ae.ErrorFault() == smithy.FaultServer {
			return docstore.KindUnavailable
		}
	}
	if retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) == aws.TrueTernary {
		return docstore.KindUnavailable
	}
	return docstore.KindInternal
}
