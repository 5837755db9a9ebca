package s3store

import (
	"github.com/imagodocs/imago/internal/awskind"
	"github.com/imagodocs/imago/internal/docstore"
)

// codes are the S3 error codes whose kind S3's meaning fixes.
var codes = map[string]docstore.Kind{
	"NoSuchKey":          docstore.KindNotFound,
	"NotFound":           docstore.KindNotFound,
	"InvalidRange":       docstore.KindBadRange,
	"InternalError":      docstore.KindUnavailable,
	"ServiceUnavailable": docstore.KindUnavailable,
	"SlowDown":           docstore.KindUnavailable,
	"RequestTimeout":     docstore.KindUnavailable,
	// Uploads in parts: an upload completed or aborted, and parts that do
	// not make the object.
	"NoSuchUpload":     docstore.KindNotFound,
	"InvalidPart":      docstore.KindInvalid,
	"InvalidPartOrder": docstore.KindInvalid,
	"EntityTooSmall":   docstore.KindInvalid,
}

// kindOf classifies an error of the S3 client.
func kindOf(err error) docstore.Kind { return awskind.Of(err, codes) }
