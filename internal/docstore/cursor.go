package docstore

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"time"
)

// Listing cursors are opaque to callers: version ‖ created-at (unix ns) ‖
// id ‖ MAC, base64url. The MAC (HMAC-SHA256 over the tenant and the
// position, truncated to 16 bytes) makes a forged, corrupted or
// other-tenant cursor a clean 400 instead of a query at an arbitrary
// position. The key is fixed: the cursor carries nothing secret and the
// store query is scoped to the caller's tenant regardless, so the MAC
// guards integrity and binds the tenant rather than hiding anything.
var cursorKey = sha256.Sum256([]byte("imago listing cursor v1"))

const (
	cursorVersion = 1
	cursorMACSize = 16
)

func cursorMAC(tenant Tenant, body []byte) []byte {
	m := hmac.New(sha256.New, cursorKey[:])
	m.Write([]byte(tenant))
	m.Write([]byte{0})
	m.Write(body)
	return m.Sum(nil)[:cursorMACSize]
}

// EncodeCursor makes the opaque cursor that resumes a listing after pos.
func EncodeCursor(tenant Tenant, pos ListPosition) string {
	body := make([]byte, 0, 1+8+36+cursorMACSize)
	body = append(body, cursorVersion)
	body = binary.BigEndian.AppendUint64(body, uint64(pos.CreatedAt.UnixNano()))
	body = append(body, pos.ID...)
	body = append(body, cursorMAC(tenant, body)...)
	return base64.RawURLEncoding.EncodeToString(body)
}

// DecodeCursor checks and decodes a cursor made by EncodeCursor for tenant.
func DecodeCursor(tenant Tenant, cursor string) (ListPosition, error) {
	const op = "docstore.DecodeCursor"
	bad := Errorf(op, KindInvalid, "cursor is not valid")
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(raw) != 1+8+36+cursorMACSize || raw[0] != cursorVersion {
		return ListPosition{}, bad
	}
	body, mac := raw[:len(raw)-cursorMACSize], raw[len(raw)-cursorMACSize:]
	if !hmac.Equal(mac, cursorMAC(tenant, body)) {
		return ListPosition{}, bad
	}
	id, err := ParseID(string(body[9:]))
	if err != nil {
		return ListPosition{}, bad
	}
	ns := int64(binary.BigEndian.Uint64(body[1:9]))
	return ListPosition{CreatedAt: time.Unix(0, ns).UTC(), ID: id}, nil
}
