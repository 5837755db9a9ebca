// Package servicetest is the behaviour suite of docstore.Service on real
// backends, written once and run by each family of backends from its own
// tests, as Go CDK's blob/drivertest is by each blob driver: the family
// supplies a Harness (how to build its backends, what it lets a test reach
// behind the Service's back), and Run runs every behaviour as a subtest.
//
//	func TestService(t *testing.T) { servicetest.Run(t, harness) }
//
// The embedded family runs it from this package's own tests
// (embedded_test.go), so `go test ./internal/docstore/...` runs the suite;
// the AWS family from internal/backends/awsbackends, with and without Redis.
// A behaviour that needs what a harness lacks (a staging area of its own
// to list, the Redis servers) is skipped on it, saying why.
//
// It is test support: no production package imports it. Besides the suite
// it holds OpenEmbedded, the embedded family built in a test's own folder,
// for every test that wants the embedded backends whole. Every subtest uses
// fresh random ids and tenants, so that it can run on shared, long-lived
// servers alongside other runs.
package servicetest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/imagodocs/imago/internal/docstore"
)

// Harness is what a family of backends gives the suite.
type Harness struct {
	// Open builds a fresh set of the family's backends, with its cache,
	// released when t ends (or skips t when the family's servers are not
	// there). Its staging area takes presigned uploads; their URLs need not
	// reach anything.
	Open func(t *testing.T) *Set
	// Rounds is how many rounds the races run many times are played: fewer
	// where a round costs seconds of S3, DynamoDB and KMS. Zero means 20.
	Rounds int
	// Redis runs the cache-tier behaviours on the local Redis servers (one
	// node, and the three-node cluster) over the family's origin, each
	// instance with a Redis client of its own, as Lambda's have.
	Redis bool
	// RedisStateLoss runs the behaviours that make a Redis of the test's own
	// (testenv.StartRedis, StartRedisCluster) lose state under a DELETE.
	// They need only an origin, and restarts cost seconds: one family runs
	// them.
	RedisStateLoss bool
}

// Set is one built set of a family's backends.
type Set struct {
	docstore.Backends
	// StagingPrefix is where the staging area keeps the staged objects
	// (docstore.Config.StagingPrefix): a staged object's key is the prefix
	// and the document's id.
	StagingPrefix string
	// Raw reaches the stored objects behind the Service's back.
	Raw Raw
}

// Raw reaches a family's stored objects behind the Service's back, as an
// attacker with write access to the bucket or the data folder (or a client
// racing its own PUTs) would. Stage, Staged, ReadBlob and WriteBlob are
// required; the listings are given only where the store is the test's own
// (not a shared bucket), and the behaviours that need them are skipped
// without.
type Raw struct {
	// Stage writes body as the staged object at key (prefix included).
	Stage func(t *testing.T, key string, body []byte)
	// Staged reports whether a staged object is at key.
	Staged func(t *testing.T, key string) bool
	// ReadBlob and WriteBlob read and write the stored blob of id.
	ReadBlob  func(t *testing.T, id docstore.ID) []byte
	WriteBlob func(t *testing.T, id docstore.ID, b []byte)

	// Blobs lists every stored blob.
	Blobs func(t *testing.T) []string
	// StagedObjects lists everything in the staging area.
	StagedObjects func(t *testing.T) []string
	// ReceivePart stores body as the part the presigned part URL url
	// names, as the staging area's receiver does. Given with StagedObjects.
	ReceivePart func(t *testing.T, url string, body []byte)
}

// Run runs every behaviour of the suite on h's family, one subtest each.
func Run(t *testing.T, h Harness) {
	if h.Rounds == 0 {
		h.Rounds = 20
	}
	for _, b := range behaviours {
		t.Run(b.name, func(t *testing.T) { b.run(t, h) })
	}
}

// behaviours are the suite's subtests, in the order Run runs them.
var behaviours = []struct {
	name string
	run  func(t *testing.T, h Harness)
}{
	{"WriteOrdering", testWriteOrdering},
	{"MainPaths", testMainPaths},
	{"IdempotentRetryFinishesAPendingUpload", testIdempotentRetryFinishesAPendingUpload},
	{"IdempotentUploadsRaceOneBodyWins", testIdempotentUploadsRaceOneBodyWins},
	{"MissFetchesTheBlobWhileItReadsTheRecord", testMissFetchesTheBlobWhileItReadsTheRecord},
	{"IngestRacingBodiesOneWinsWhole", testIngestRacingBodiesOneWinsWhole},
	{"TamperedBlobIsRefused", testTamperedBlobIsRefused},
	{"IngestFailureMarksTheDocument", testIngestFailureMarksTheDocument},
	{"DeletePendingRemovesStagedBytes", testDeletePendingRemovesStagedBytes},
	{"IngestStagedObjectAlreadyGone", testIngestStagedObjectAlreadyGone},
	{"RangesEndingInsideTheLastSegment", testRangesEndingInsideTheLastSegment},
	{"ListingShowsEveryStatus", testListingShowsEveryStatus},
	{"DeleteAvailableRemovesItsStagingKey", testDeleteAvailableRemovesItsStagingKey},
	{"ReconcileFinishesOrRemovesStagedBytes", testReconcileFinishesOrRemovesStagedBytes},
	{"ReconcileRemovesAnExpiredUploadInParts", testReconcileRemovesAnExpiredUploadInParts},
	{"CacheTier_HitsSkipTheOrigin", onEachRedis(testHitsSkipTheOrigin)},
	{"CacheTier_SealedValuesHoldNoPlaintext", onEachRedis(testSealedValuesHoldNoPlaintext)},
	{"CacheTier_ConcurrentMissesAcrossInstancesLoadOnce", onEachRedis(testConcurrentMissesAcrossInstancesLoadOnce)},
	{"CacheTier_BrokenRedisNeverFailsARequest", testBrokenRedisNeverFailsARequest},
	{"CacheTier_WaiterTakesOverAnAbandonedFill", onEachRedis(testWaiterTakesOverAnAbandonedFill)},
	{"CacheTier_DeleteWinsOverAPausedFill", testDeleteWinsOverAPausedFill},
	{"CacheTier_DeleteWinsOverConcurrentDownloads", testDeleteWinsOverConcurrentDownloads},
	{"CacheTier_DeleteWithoutTheCacheDeletesNothing", testDeleteWithoutTheCacheDeletesNothing},
	{"CacheStateLoss_DeletedDocumentStaysDeleted", testDeletedDocumentStaysDeleted},
	{"ShareLinks", testShareLinks},
	{"ShareLinkRefusesBadRequests", testShareLinkRefusesBadRequests},
	{"ShareLinkServesOnlyTheDocumentItWasMadeFor", testShareLinkServesOnlyTheDocumentItWasMadeFor},
	{"ShareLinkLastUseRace", testShareLinkLastUseRace},
	{"Retention", testRetention},
	{"TrashAndRestore", testTrashAndRestore},
	{"LegalHold", testLegalHold},
	{"PolicyRaces", testPolicyRaces},
	{"ExpiryWinsOverADownloadInFlight", testExpiryWinsOverADownloadInFlight},
	{"HoldWinsOverAPausedPurge", testHoldWinsOverAPausedPurge},
	{"SweepSurvivesBeingCutShort", testSweepSurvivesBeingCutShort},
	{"StreamRecordOfAnEarlierDocument", testStreamRecordOfAnEarlierDocument},
	{"AuditRecordsEveryRequest", testAuditRecordsEveryRequest},
	{"AuditFailsClosed", testAuditFailsClosed},
	{"AuditChainsUnderConcurrentWriters", testAuditChainsUnderConcurrentWriters},
}

func randomDoc(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func hexSHA256(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func withoutCache(b docstore.Backends) docstore.Backends { b.Cache = nil; return b }

// evictEntry makes a document cold, as an expiry would (a Delete would
// leave a tombstone refusing the refill).
func evictEntry(t *testing.T, c docstore.Cache, id docstore.ID) {
	t.Helper()
	ev, ok := c.(interface {
		Evict(context.Context, docstore.ID) error
	})
	if !ok {
		t.Fatalf("%T cannot evict", c)
	}
	if err := ev.Evict(context.Background(), id); err != nil {
		t.Fatal(err)
	}
}
