// Package linktoken is the format of share link tokens: the last segment
// of a link's URL, /links/<token>, which is all a link's holder has.
//
// A token is 73 bytes, base64url without padding (98 characters):
//
//	version    1 byte   Version
//	link id   16 bytes  random: the link's id, ≥ 128 unguessable bits
//	document  16 bytes  the document's UUID
//	expires    8 bytes  big-endian Unix seconds
//	tenant    16 bytes  HMAC-SHA256(tenant key, tenant), truncated
//	tag       16 bytes  HMAC-SHA256(tag key, the 57 bytes above), truncated
//
// Both keys are derived from the deployment's link secret
// (IMAGO_LINK_SECRET), each under its own label, so a token made by
// another deployment, or changed in any bit, fails the tag, which is
// checked in constant time before anything else is read. The tenant is
// bound without being revealed: the server checks the document's owner
// against the tenant field once it has read the document, so a token
// can only ever name a document of the tenant it was made for. The
// expiry is in the clear and authenticated, so an expired link is told
// apart without touching any store.
//
// The token is deterministic: the same link always has the same token, so
// the server keeps no token, only the link (a listing recomputes each
// link's URL). Changing the secret invalidates every link.
package linktoken

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"
)

// Version is the first byte of every token of this format.
const Version = 1

// SecretSize is the size of the deployment's link secret.
const SecretSize = 32

// IDSize is the size of a link id, and TagSize of each authenticator.
const (
	IDSize  = 16
	TagSize = 16
)

// Lengths of a token, raw and encoded.
const (
	rawLen     = 1 + IDSize + 16 + 8 + TagSize + TagSize
	signedLen  = rawLen - TagSize
	EncodedLen = (rawLen*8 + 5) / 6
)

// ErrInvalid is every reason a token is refused: malformed, truncated,
// tampered with, or made under another secret. Its callers answer them all
// alike, so it says no more.
var ErrInvalid = errors.New("linktoken: invalid token")

// Keys are the keys derived from one deployment's link secret.
type Keys struct {
	tag, tenant []byte
}

// NewKeys derives the keys of secret, which must be SecretSize bytes.
func NewKeys(secret []byte) (*Keys, error) {
	if len(secret) != SecretSize {
		return nil, errors.New("linktoken: the link secret must be 32 bytes")
	}
	return &Keys{tag: derive(secret, "imago link token tag v1"), tenant: derive(secret, "imago link token tenant v1")}, nil
}

func derive(secret []byte, label string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// Claims are what a token states.
type Claims struct {
	Link     [IDSize]byte
	Document [16]byte
	Expires  time.Time // whole seconds
	// tenant is the tenant's keyed hash; BoundTo compares a tenant with it.
	tenant [TagSize]byte
}

// New makes the claims of a link of tenant's document.
func (k *Keys) New(link [IDSize]byte, document [16]byte, expires time.Time, tenant string) Claims {
	c := Claims{Link: link, Document: document, Expires: time.Unix(expires.Unix(), 0).UTC()}
	copy(c.tenant[:], k.tenantTag(tenant))
	return c
}

func (k *Keys) tenantTag(tenant string) []byte {
	m := hmac.New(sha256.New, k.tenant)
	m.Write([]byte(tenant))
	return m.Sum(nil)[:TagSize]
}

// BoundTo reports, in constant time, whether the claims were made for
// tenant's document.
func (k *Keys) BoundTo(c Claims, tenant string) bool {
	return hmac.Equal(c.tenant[:], k.tenantTag(tenant))
}

// Encode is the token of c.
func (k *Keys) Encode(c Claims) string {
	raw := make([]byte, 0, rawLen)
	raw = append(raw, Version)
	raw = append(raw, c.Link[:]...)
	raw = append(raw, c.Document[:]...)
	raw = binary.BigEndian.AppendUint64(raw, uint64(c.Expires.Unix()))
	raw = append(raw, c.tenant[:]...)
	raw = append(raw, k.sign(raw)...)
	return base64.RawURLEncoding.EncodeToString(raw)
}

func (k *Keys) sign(signed []byte) []byte {
	m := hmac.New(sha256.New, k.tag)
	m.Write(signed)
	return m.Sum(nil)[:TagSize]
}

// Decode checks token and returns its claims; ErrInvalid unless it is a
// token this deployment made, exactly as it made it.
func (k *Keys) Decode(token string) (Claims, error) {
	if len(token) != EncodedLen {
		return Claims{}, ErrInvalid
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil || len(raw) != rawLen || raw[0] != Version {
		return Claims{}, ErrInvalid
	}
	if !hmac.Equal(raw[signedLen:], k.sign(raw[:signedLen])) {
		return Claims{}, ErrInvalid
	}
	var c Claims
	rest := raw[1:]
	rest = rest[copy(c.Link[:], rest):]
	rest = rest[copy(c.Document[:], rest):]
	secs := binary.BigEndian.Uint64(rest)
	rest = rest[8:]
	copy(c.tenant[:], rest)
	if secs > 1<<40 { // a tag over nonsense could only come from this code's own bug
		return Claims{}, ErrInvalid
	}
	c.Expires = time.Unix(int64(secs), 0).UTC()
	return c, nil
}
