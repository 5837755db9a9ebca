package testenv

import "testing"

// AssertNoPlaintext fails the test if stored holds any 64 consecutive bytes
// of doc. Every run of 64 bytes that doc shares with stored contains one of
// doc's 32-byte chunks at an offset that is a multiple of 32, so indexing
// those chunks and sliding over stored finds each such run in one pass.
// (doc should be random: a run of repeated bytes would match anywhere.)
func AssertNoPlaintext(t testing.TB, what string, stored, doc []byte) {
	t.Helper()
	const chunk = 32
	index := make(map[[chunk]byte]int, len(doc)/chunk)
	for i := 0; i+chunk <= len(doc); i += chunk {
		index[[chunk]byte(doc[i:i+chunk])] = i
	}
	for j := 0; j+chunk <= len(stored); j++ {
		if i, ok := index[[chunk]byte(stored[j:j+chunk])]; ok {
			t.Fatalf("%s holds document bytes %d..%d at offset %d", what, i, i+chunk, j)
		}
	}
}
