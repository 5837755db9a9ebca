package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Header is a parsed blob header.
type Header struct {
	Version     int
	SegmentSize int
	raw         [HeaderSize]byte
}

// ParseHeader parses the first HeaderSize bytes of a blob. It checks the
// structure only; Open checks that the header belongs to a key and binding.
func ParseHeader(b []byte) (*Header, error) {
	if len(b) < HeaderSize {
		return nil, ErrAuth
	}
	if string(b[0:4]) != magic {
		return nil, fmt.Errorf("%w: not an Imago blob", ErrAuth)
	}
	if b[4] != Version {
		return nil, fmt.Errorf("%w: unsupported format version %d", ErrAuth, b[4])
	}
	seg := binary.BigEndian.Uint32(b[5:9])
	if seg < MinSegmentSize || seg > MaxSegmentSize {
		return nil, fmt.Errorf("%w: segment size %d out of range", ErrAuth, seg)
	}
	h := &Header{Version: int(b[4]), SegmentSize: int(seg)}
	copy(h.raw[:], b[:HeaderSize])
	return h, nil
}

func (h *Header) salt() []byte       { return h.raw[9:41] }
func (h *Header) prefix() []byte     { return h.raw[41:48] }
func (h *Header) commitment() []byte { return h.raw[48:80] }

// deriveKeys returns the segment AEAD and the key commitment for a header.
func deriveKeys(key []byte, h *Header, b Binding) (cipher.AEAD, []byte, error) {
	if len(key) != KeySize {
		return nil, nil, fmt.Errorf("envelope: data key is %d bytes, want %d", len(key), KeySize)
	}
	info := make([]byte, 0, 13+48+8+len(b.DocumentID)+len(b.Tenant))
	info = append(info, "imago/blob/v1"...)
	info = append(info, h.raw[0:48]...)
	info = binary.BigEndian.AppendUint32(info, uint32(len(b.DocumentID)))
	info = append(info, b.DocumentID...)
	info = binary.BigEndian.AppendUint32(info, uint32(len(b.Tenant)))
	info = append(info, b.Tenant...)
	okm, err := hkdf.Key(sha256.New, key, h.salt(), string(info), KeySize+commitmentSize)
	if err != nil {
		return nil, nil, fmt.Errorf("envelope: derive keys: %w", err)
	}
	block, err := aes.NewCipher(okm[:KeySize])
	if err != nil {
		return nil, nil, fmt.Errorf("envelope: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, nil, fmt.Errorf("envelope: %w", err)
	}
	return aead, okm[KeySize:], nil
}

// setCounter writes the segment counter and last flag of a nonce whose
// prefix is already in place.
func setCounter(dst *[nonceSize]byte, i int64, last bool) {
	binary.BigEndian.PutUint32(dst[prefixSize:prefixSize+4], uint32(i))
	dst[nonceSize-1] = 0
	if last {
		dst[nonceSize-1] = 1
	}
}
