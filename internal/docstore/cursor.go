package docstore

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"time"
)

// Listing cursors are opaque to callers: version ‖ created-at (unix ns) ‖
// id ‖ MAC, base64url. The MAC is HMAC-SHA256, truncated to 16 bytes, over
// the tenant and the position, under the deployment's cursor secret
// (IMAGO_CURSOR_SECRET, or the embedded backends' cursor.key): a forged,
// corrupted or other-tenant cursor is a clean 400 instead of a query at a
// position the caller chose. The secret is never in the source, so nobody
// can mint a cursor the service did not hand out.
const (
	cursorVersion = 2
	cursorMACSize = 16
	cursorLen     = 1 + 8 + 36 + cursorMACSize

	// CursorKeySize is the size of the secret that authenticates cursors.
	CursorKeySize = 32
)

// cursorLabel separates this MAC from any other use of the secret.
const cursorLabel = "imago listing cursor\x00"

func cursorMAC(key []byte, tenant Tenant, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(cursorLabel))
	// The tenant's length first, so that no tenant ‖ body split is
	// ambiguous with another.
	m.Write(binary.BigEndian.AppendUint32(nil, uint32(len(tenant))))
	m.Write([]byte(tenant))
	m.Write(body)
	return m.Sum(nil)[:cursorMACSize]
}

// EncodeCursor makes the opaque cursor that resumes tenant's listing after
// pos, authenticated under key.
func EncodeCursor(key []byte, tenant Tenant, pos ListPosition) string {
	body := make([]byte, 0, cursorLen)
	body = append(body, cursorVersion)
	body = binary.BigEndian.AppendUint64(body, uint64(pos.CreatedAt.UnixNano()))
	body = append(body, pos.ID...)
	body = append(body, cursorMAC(key, tenant, body)...)
	return base64.RawURLEncoding.EncodeToString(body)
}

// DecodeCursor checks and decodes a cursor made by EncodeCursor under key
// for tenant. Anything else is KindInvalid.
func DecodeCursor(key []byte, tenant Tenant, cursor string) (ListPosition, error) {
	const op = "docstore.DecodeCursor"
	bad := E(op, KindInvalid, "cursor is not valid")
	if base64.RawURLEncoding.DecodedLen(len(cursor)) != cursorLen {
		return ListPosition{}, bad
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(cursor)
	if err != nil || len(raw) != cursorLen || raw[0] != cursorVersion {
		return ListPosition{}, bad
	}
	body, mac := raw[:len(raw)-cursorMACSize], raw[len(raw)-cursorMACSize:]
	if !hmac.Equal(mac, cursorMAC(key, tenant, body)) {
		return ListPosition{}, bad
	}
	id, err := ParseID(string(body[9:]))
	if err != nil {
		return ListPosition{}, bad
	}
	ns := int64(binary.BigEndian.Uint64(body[1:9]))
	return ListPosition{CreatedAt: time.Unix(0, ns).UTC(), ID: id}, nil
}

// randomCursorKey is the cursor secret of a Service built without one
// (tests, tools): random, so its cursors hold only within this process.
func randomCursorKey() []byte {
	key := make([]byte, CursorKeySize)
	rand.Read(key) // never fails (crypto/rand, Go ≥ 1.24)
	return key
}
