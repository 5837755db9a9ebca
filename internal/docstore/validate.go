package docstore

import (
	"fmt"
	"mime"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on caller-supplied metadata. They keep a DynamoDB item far below
// its 400 KB limit and a cache header small.
const (
	MaxFilenameBytes    = 255
	MaxContentTypeBytes = 255
	MaxMetadataPairs    = 32
	MaxMetadataKeyBytes = 64
	MaxMetadataValBytes = 1024
	MaxMetadataBytes    = 8 << 10
	MaxIdempotencyBytes = 255
	DefaultContentType  = "application/octet-stream"
)

// CleanFilename reduces a caller-supplied filename to its base name (some
// browsers send a full Windows path) and checks it is printable UTF-8.
func CleanFilename(name string) (string, error) {
	const op = "docstore.CleanFilename"
	name = strings.TrimSpace(name)
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = path.Clean("/" + name)[1:]
	if name == "." || name == ".." {
		name = ""
	}
	if !utf8.ValidString(name) {
		return "", E(op, KindInvalid, "filename is not valid UTF-8")
	}
	if len(name) > MaxFilenameBytes {
		return "", E(op, KindInvalid, fmt.Sprintf("filename is longer than %d bytes", MaxFilenameBytes))
	}
	for _, r := range name {
		if !unicode.IsPrint(r) && r != ' ' {
			return "", E(op, KindInvalid, "filename contains a control character")
		}
	}
	return name, nil
}

// CleanContentType parses a media type and returns it in canonical form;
// empty means application/octet-stream. An unparsable one is KindUnsupportedMedia.
func CleanContentType(ct string) (string, error) {
	const op = "docstore.CleanContentType"
	ct = strings.TrimSpace(ct)
	if ct == "" {
		return DefaultContentType, nil
	}
	if len(ct) > MaxContentTypeBytes {
		return "", E(op, KindUnsupportedMedia, fmt.Sprintf("content type is longer than %d bytes", MaxContentTypeBytes))
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || !strings.Contains(mt, "/") {
		return "", E(op, KindUnsupportedMedia, fmt.Sprintf("content type %q is not a valid media type", truncate(ct, 64)))
	}
	return mime.FormatMediaType(mt, params), nil
}

// ValidateMetadata checks custom metadata: lower-case keys of letters,
// digits, '-', '_' and '.', printable UTF-8 values, bounded counts and sizes.
func ValidateMetadata(md map[string]string) error {
	const op = "docstore.ValidateMetadata"
	if len(md) > MaxMetadataPairs {
		return E(op, KindInvalid, fmt.Sprintf("at most %d metadata pairs are allowed", MaxMetadataPairs))
	}
	total := 0
	for k, v := range md {
		if k == "" || len(k) > MaxMetadataKeyBytes {
			return E(op, KindInvalid, fmt.Sprintf("metadata key %q must be 1 to %d bytes", truncate(k, 64), MaxMetadataKeyBytes))
		}
		for _, r := range k {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
				return E(op, KindInvalid, fmt.Sprintf("metadata key %q may hold only a-z, 0-9, '-', '_' and '.'", truncate(k, 64)))
			}
		}
		if len(v) > MaxMetadataValBytes || !utf8.ValidString(v) {
			return E(op, KindInvalid, fmt.Sprintf("metadata value of %q must be UTF-8 of at most %d bytes", k, MaxMetadataValBytes))
		}
		for _, r := range v {
			if r < ' ' && r != '\t' || r == 0x7f {
				return E(op, KindInvalid, fmt.Sprintf("metadata value of %q contains a control character", k))
			}
		}
		total += len(k) + len(v)
	}
	if total > MaxMetadataBytes {
		return E(op, KindInvalid, fmt.Sprintf("metadata is larger than %d bytes in all", MaxMetadataBytes))
	}
	return nil
}
