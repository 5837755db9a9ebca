package kmskeys

import (
	"github.com/imagodocs/imago/internal/awskind"
	"github.com/imagodocs/imago/internal/docstore"
)

// codes fixes the kind of KMS's error codes. The key or the ciphertext
// being wrong is internal: no retry helps, and KMS does not say which, by
// design (a wrong encryption context is an InvalidCiphertextException too).
var codes = map[string]docstore.Kind{
	"InvalidCiphertextException": docstore.KindInternal,
	"IncorrectKeyException":      docstore.KindInternal,
	"NotFoundException":          docstore.KindInternal,
	"DisabledException":          docstore.KindInternal,
	"KMSInvalidStateException":   docstore.KindInternal,
	"AccessDeniedException":      docstore.KindInternal,
	"InvalidKeyUsageException":   docstore.KindInternal,
	"InvalidGrantTokenException": docstore.KindInternal,
	"ThrottlingException":        docstore.KindUnavailable,
	"LimitExceededException":     docstore.KindUnavailable,
	"KMSInternalException":       docstore.KindUnavailable,
	"DependencyTimeoutException": docstore.KindUnavailable,
	"KeyUnavailableException":    docstore.KindUnavailable,
	"ServiceUnavailable":         docstore.KindUnavailable,
	"InternalFailure":            docstore.KindUnavailable,
}

// kindOf classifies an error of the KMS client.
func kindOf(err error) docstore.Kind { return awskind.Of(err, codes) }
