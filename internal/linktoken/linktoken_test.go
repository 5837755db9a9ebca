package linktoken

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

func keys(t testing.TB) *Keys {
	t.Helper()
	secret := make([]byte, SecretSize)
	rand.Read(secret)
	k, err := NewKeys(secret)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sample(k *Keys) Claims {
	var link [IDSize]byte
	var doc [16]byte
	rand.Read(link[:])
	rand.Read(doc[:])
	return k.New(link, doc, time.Now().Add(time.Hour), "tenant-a")
}

func TestRoundTrip(t *testing.T) {
	k := keys(t)
	c := sample(k)
	tok := k.Encode(c)
	if len(tok) != EncodedLen || strings.ContainsAny(tok, "+/=") {
		t.Fatalf("token %q: length %d, want %d URL-safe characters", tok, len(tok), EncodedLen)
	}
	got, err := k.Decode(tok)
	if err != nil {
		t.Fatal(err)
	}
	if got != c {
		t.Fatalf("decoded %+v, want %+v", got, c)
	}
	if !k.BoundTo(got, "tenant-a") || k.BoundTo(got, "tenant-b") || k.BoundTo(got, "") {
		t.Fatal("the tenant binding does not tell tenant-a from others")
	}
	if k.Encode(c) != tok {
		t.Fatal("the same link encodes to another token")
	}
}

func TestNewKeysRefusesAShortSecret(t *testing.T) {
	if _, err := NewKeys(make([]byte, 16)); err == nil {
		t.Fatal("a 16-byte secret was taken")
	}
}

// Every bit of the token is covered: flipping any one makes it invalid.
func TestEveryBitFlipIsRefused(t *testing.T) {
	k := keys(t)
	raw, _ := base64.RawURLEncoding.DecodeString(k.Encode(sample(k)))
	for i := range raw {
		for bit := range 8 {
			b := bytes.Clone(raw)
			b[i] ^= 1 << bit
			if _, err := k.Decode(base64.RawURLEncoding.EncodeToString(b)); err != ErrInvalid {
				t.Fatalf("byte %d bit %d flipped: %v", i, bit, err)
			}
		}
	}
}

func TestMalformedTokensAreRefused(t *testing.T) {
	k := keys(t)
	tok := k.Encode(sample(k))
	for name, bad := range map[string]string{
		"empty":           "",
		"truncated":       tok[:len(tok)-1],
		"extended":        tok + "A",
		"padded":          tok[:len(tok)-2] + "==",
		"standard base64": strings.NewReplacer("-", "+", "_", "/").Replace(tok),
		"other secret":    keys(t).Encode(sample(k)),
		"not base64":      strings.Repeat("!", EncodedLen),
		"last char bits":  tok[:len(tok)-1] + string(tok[len(tok)-1]^1),
	} {
		if bad == tok {
			continue // the replacer found nothing to replace
		}
		if _, err := k.Decode(bad); err != ErrInvalid {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	k := keys(f)
	tok := k.Encode(sample(k))
	f.Add(tok)
	f.Add(tok[:50])
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := k.Decode(s)
		if err != nil {
			if err != ErrInvalid {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		// Only this deployment's own tokens decode, and each re-encodes to
		// itself: there is one spelling of a token.
		if s != tok || k.Encode(c) != s {
			t.Fatalf("a token this test did not make decoded: %q", s)
		}
	})
}
