package rediscache

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/imagodocs/imago/internal/docstore"
)

// Value layout.
//
// Every value starts with two bytes that are never encrypted, so that a
// reader can tell what it is looking at before doing any work:
//
//	[0] version (currently 2; 1 is read too)
//	[1] flags   (bit 0: sealed; every other bit must be zero)
//
// Unsealed, the rest is the record itself:
//
//	uvarint len ‖ tenant
//	uvarint len ‖ filename
//	uvarint len ‖ content type
//	varint      size
//	uvarint len ‖ sha256 (the hex string, as docstore carries it)
//	varint      expires (Unix seconds; 0: none) — version 2 only
//	body        (everything up to the end of the value)
//
// Sealed, the rest is a 12-byte random nonce followed by the record above
// encrypted with AES-256-GCM (so the tenant and the filename are not readable
// either), its 16-byte tag last. The additional data is the two leading bytes
// followed by the Redis key the value was written under: a value copied or
// renamed to another key, or with its version or flags altered, fails to
// open.
//
// The body runs to the end of the value instead of carrying its own length:
// a hit then needs no copy at all. The value arrives from Redis in one
// allocation (go-redis reads a bulk string into a single []byte), the body of
// an unsealed entry is a sub-slice of it, and a sealed entry is decrypted in
// place. Only the three short strings are copied out.
const (
	valueVersion byte = 2
	// valueVersion1 values, without the expiry, were written before
	// documents expired; they are read as entries without one.
	valueVersion1 byte = 1
	flagSealed    byte = 1 << 0
	knownFlags         = flagSealed

	prefixLen = 2
	nonceLen  = 12 // AES-GCM standard nonce
	tagLen    = 16 // AES-GCM tag
)

// Decode failures. They make a value a miss, never an error the caller sees:
// the next fill overwrites the key.
var (
	errShort       = errors.New("value too short")
	errVersion     = errors.New("unknown value version")
	errFlags       = errors.New("unknown value flags")
	errSealedNoKey = errors.New("value is sealed but no seal key is configured")
	errNotSealed   = errors.New("value is not sealed but a seal key is configured")
	errOpen        = errors.New("sealed value does not open (wrong key, wrong Redis key, or altered)")
	errMalformed   = errors.New("malformed record")
)

// appendAAD appends the additional data that binds a sealed value to its
// version, flags and Redis key.
func appendAAD(dst []byte, version, flags byte, key string) []byte {
	dst = append(dst, version, flags)
	return append(dst, key...)
}

// recordLen is the encoded length of doc's record (header fields and body).
func recordLen(doc *docstore.CachedDocument) int {
	return uvarintStrLen(string(doc.Tenant)) +
		uvarintStrLen(doc.Filename) +
		uvarintStrLen(doc.ContentType) +
		varintLen(doc.Size) +
		uvarintStrLen(doc.SHA256) +
		varintLen(expiresOf(doc)) +
		len(doc.Body)
}

func uvarintStrLen(s string) int { return uvarintLen(uint64(len(s))) + len(s) }

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func varintLen(v int64) int {
	// Zig-zag, as binary.PutVarint does.
	ux := uint64(v) << 1
	if v < 0 {
		ux = ^ux
	}
	return uvarintLen(ux)
}

// putRecord writes doc's record into dst, which must be exactly recordLen
// bytes long.
func putRecord(dst []byte, doc *docstore.CachedDocument) {
	n := putString(dst, string(doc.Tenant))
	n += putString(dst[n:], doc.Filename)
	n += putString(dst[n:], doc.ContentType)
	n += binary.PutVarint(dst[n:], doc.Size)
	n += putString(dst[n:], doc.SHA256)
	n += binary.PutVarint(dst[n:], expiresOf(doc))
	copy(dst[n:], doc.Body)
}

// expiresOf is doc's expiry as stored: Unix seconds, rounded up so that
// an entry never answers past its document's expiry; 0 when it has none.
func expiresOf(doc *docstore.CachedDocument) int64 {
	if doc.Expires.IsZero() {
		return 0
	}
	secs := doc.Expires.Unix()
	if doc.Expires.Nanosecond() > 0 {
		secs++
	}
	return max(secs, 1)
}

func putString(dst []byte, s string) int {
	n := binary.PutUvarint(dst, uint64(len(s)))
	return n + copy(dst[n:], s)
}

// encode returns the value to store for doc under key, sealed when aead is
// non-nil. It allocates exactly once, the size of the value.
func encode(key string, doc *docstore.CachedDocument, aead cipher.AEAD) ([]byte, error) {
	rl := recordLen(doc)
	if aead == nil {
		val := make([]byte, prefixLen+rl)
		val[0], val[1] = valueVersion, 0
		putRecord(val[prefixLen:], doc)
		return val, nil
	}
	const off = prefixLen + nonceLen
	val := make([]byte, off+rl+tagLen)
	val[0], val[1] = valueVersion, flagSealed
	nonce := val[prefixLen:off]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	putRecord(val[off:off+rl], doc)
	var aadBuf [96]byte
	aad := appendAAD(aadBuf[:0], valueVersion, flagSealed, key)
	// Seal in place: the ciphertext is appended to val[:off], exactly over
	// the plaintext, and the tag fills the last tagLen bytes.
	aead.Seal(val[:off], nonce, val[off:off+rl], aad)
	return val, nil
}

// decode parses a value read from key. aead must be the same sealing
// configuration the writer had: a sealed value without a key, or an unsealed
// one with a key, is rejected (a reader that seals never trusts a plaintext
// value, which anyone with write access to Redis could have planted). A
// sealed value is decrypted in place, so val must not be used afterwards.
// The returned Body aliases val. decode never panics, whatever val holds.
func decode(key string, val []byte, aead cipher.AEAD) (*docstore.CachedDocument, error) {
	if len(val) < prefixLen {
		return nil, errShort
	}
	version, flags := val[0], val[1]
	if version != valueVersion && version != valueVersion1 {
		return nil, fmt.Errorf("%w %d", errVersion, version)
	}
	if flags&^knownFlags != 0 {
		return nil, fmt.Errorf("%w %#x", errFlags, flags)
	}
	rec := val[prefixLen:]
	switch sealed := flags&flagSealed != 0; {
	case sealed && aead == nil:
		return nil, errSealedNoKey
	case !sealed && aead != nil:
		return nil, errNotSealed
	case sealed:
		if len(rec) < nonceLen+tagLen {
			return nil, errShort
		}
		nonce, ct := rec[:nonceLen], rec[nonceLen:]
		var aadBuf [96]byte
		aad := appendAAD(aadBuf[:0], version, flags, key)
		pt, err := aead.Open(ct[:0], nonce, ct, aad)
		if err != nil {
			return nil, errOpen
		}
		rec = pt
	}
	return parseRecord(rec, version)
}

func parseRecord(rec []byte, version byte) (*docstore.CachedDocument, error) {
	r := reader{b: rec}
	tenant := r.string()
	filename := r.string()
	contentType := r.string()
	size := r.varint()
	sum := r.string()
	var expires int64
	if version >= 2 {
		expires = r.varint()
	}
	if r.bad || size < 0 || expires < 0 {
		return nil, errMalformed
	}
	doc := &docstore.CachedDocument{Tenant: docstore.Tenant(tenant), Descriptor: docstore.Descriptor{Filename: filename, ContentType: contentType, Size: size, SHA256: sum}, Body: r.b}
	if expires > 0 {
		doc.Expires = time.Unix(expires, 0).UTC()
	}
	return doc, nil
}

// reader consumes a record; once bad, every read returns a zero value.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) string() string {
	if r.bad {
		return ""
	}
	n, k := binary.Uvarint(r.b)
	if k <= 0 || n > uint64(len(r.b)-k) {
		r.bad = true
		return ""
	}
	s := string(r.b[k : k+int(n)])
	r.b = r.b[k+int(n):]
	return s
}

func (r *reader) varint() int64 {
	if r.bad {
		return 0
	}
	v, k := binary.Varint(r.b)
	if k <= 0 {
		r.bad = true
		return 0
	}
	r.b = r.b[k:]
	return v
}
