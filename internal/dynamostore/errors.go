package dynamostore

import (
	"context"
	"errors"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"

	"github.com/imagodocs/imago/internal/docstore"
)

// kindOf classifies an error of the DynamoDB client (conditional check
// failures are handled where their meaning is known).
func kindOf(err error) docstore.Kind {
	if err == nil {
		return docstore.KindInternal
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return docstore.KindUnavailable
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "ProvisionedThroughputExceededException", "RequestLimitExceeded", "ThrottlingException",
			"InternalServerError", "ServiceUnavailable", "TransactionConflictException", "ReplicatedWriteConflictException":
			return docstore.KindUnavailable
		}
		if ae.ErrorFault() == smithy.FaultServer {
			return docstore.KindUnavailable
		}
	}
	// Throttling codes, 5xx statuses, connection and timeout errors: what
	// the SDK itself would retry is what a later request may get through.
	if retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) == aws.TrueTernary {
		return docstore.KindUnavailable
	}
	return docstore.KindInternal
}
