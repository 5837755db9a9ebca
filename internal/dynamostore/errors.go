package dynamostore

import (
	"github.com/imagodocs/imago/internal/awskind"
	"github.com/imagodocs/imago/internal/docstore"
)

// codes are the DynamoDB error codes that a later request may get past.
// (Conditional check failures are handled where their meaning is known.)
var codes = map[string]docstore.Kind{
	"ProvisionedThroughputExceededException": docstore.KindUnavailable,
	"RequestLimitExceeded":                   docstore.KindUnavailable,
	"ThrottlingException":                    docstore.KindUnavailable,
	"InternalServerError":                    docstore.KindUnavailable,
	"ServiceUnavailable":                     docstore.KindUnavailable,
	"TransactionConflictException":           docstore.KindUnavailable,
	"ReplicatedWriteConflictException":       docstore.KindUnavailable,
}

// kindOf classifies an error of the DynamoDB client.
func kindOf(err error) docstore.Kind { return awskind.Of(err, codes) }
