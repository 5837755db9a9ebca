package kmskeys

import (
	"context"
	"errors"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"

	"github.com/imagodocs/imago/internal/docstore"
)

// kindOf classifies an error of the KMS client.
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
		case "InvalidCiphertextException", "IncorrectKeyException", "NotFoundException",
			"DisabledException", "KMSInvalidStateException", "AccessDeniedException",
			"InvalidKeyUsageException", "InvalidGrantTokenException":
			// The key or the ciphertext is wrong: no retry will help.
			// (KMS does not say which, by design: a wrong encryption
			// context is an InvalidCiphertextException too.)
			return docstore.KindInternal
		case "ThrottlingException", "LimitExceededException", "KMSInternalException",
			"DependencyTimeoutException", "KeyUnavailableException", "ServiceUnavailable", "InternalFailure":
			return docstore.KindUnavailable
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
