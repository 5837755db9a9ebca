// Command smoke checks, over the real wire protocols, that the servers of
// scripts/testenv work as the Imago backends need (`scripts/testenv check`):
// S3 put/get and the event webhook through the relay, the DynamoDB table's
// indexes, stream and TTL, the audit table's keys, index and stream, KMS data
// keys bound to their encryption context, Redis PING.
//
// It reads the same environment as the code under test (`scripts/testenv env`).
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		fail("AWS config", err)
	}
	checks := []struct {
		name string
		fn   func(context.Context, aws.Config) error
	}{
		{"S3 (versitygw) put/get + event via relay", checkS3},
		{"DynamoDB (DynamoDB Local) table, indexes, stream, TTL", checkDynamo},
		{"DynamoDB (DynamoDB Local) audit table, index, stream", checkAuditTable},
		{"KMS (local-kms) data key + encryption context", checkKMS},
		{"Redis PING", checkRedis},
	}
	failed := 0
	for _, c := range checks {
		start := time.Now()
		if err := c.fn(ctx, cfg); err != nil {
			failed++
			fmt.Printf("FAIL %s: %v\n", c.name, err)
			continue
		}
		fmt.Printf("ok   %s (%s)\n", c.name, time.Since(start).Round(time.Millisecond))
	}
	fmt.Printf("%d passed, %d failed\n", len(checks)-failed, failed)
	if failed > 0 {
		os.Exit(1)
	}
}

func fail(what string, err error) {
	fmt.Fprintf(os.Stderr, "smoke: %s: %v\n", what, err)
	os.Exit(1)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func checkS3(ctx context.Context, cfg aws.Config) error {
	bucket := os.Getenv("IMAGO_BUCKET")
	c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	key := "smoke/" + randHex(8) + ".bin"
	body := []byte("imago smoke " + randHex(16))
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(body)}); err != nil {
		return fmt.Errorf("PutObject: %w", err)
	}
	defer c.DeleteObject(context.WithoutCancel(ctx), &s3.DeleteObjectInput{Bucket: &bucket, Key: &key})
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		return fmt.Errorf("GetObject: %w", err)
	}
	got, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil {
		return err
	}
	if !bytes.Equal(got, body) {
		return fmt.Errorf("GetObject returned %q, want %q", got, body)
	}

	relay := os.Getenv("IMAGO_TESTENV_RELAY_URL")
	if relay == "" {
		return nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		seen, err := relaySaw(ctx, relay, key)
		if err != nil {
			return fmt.Errorf("relay GET /events: %w", err)
		}
		if seen {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no ObjectCreated event for %s reached the relay at %s within 10s", key, relay)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func relaySaw(ctx context.Context, relay, key string) (bool, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, relay+"/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	var events []struct {
		Body struct {
			Records []struct {
				EventName string `json:"eventName"`
				S3        struct {
					Object struct {
						Key string `json:"key"`
					} `json:"object"`
				} `json:"s3"`
			} `json:"Records"`
		} `json:"body"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&events); err != nil {
		return false, err
	}
	for _, e := range events {
		for _, r := range e.Body.Records {
			k, _ := url.QueryUnescape(r.S3.Object.Key)
			if (r.S3.Object.Key == key || k == key) && strings.Contains(r.EventName, "ObjectCreated") {
				return true, nil
			}
		}
	}
	return false, nil
}

func checkDynamo(ctx context.Context, cfg aws.Config) error {
	table := os.Getenv("IMAGO_TABLE")
	c := dynamodb.NewFromConfig(cfg)
	d, err := c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &table})
	if err != nil {
		return fmt.Errorf("DescribeTable: %w", err)
	}
	if d.Table.TableStatus != ddbtypes.TableStatusActive {
		return fmt.Errorf("table status %s", d.Table.TableStatus)
	}
	// The documents by tenant, the trash by tenant, and a document's share
	// links: each index with its keys and every attribute projected.
	if err := checkIndexes(d.Table, []keys{
		{"tenant-index", "tenant_listed", "created_key"},
		{"trash-index", "tenant_trash", "created_key"},
		{"link-index", "link_document", "created_key"},
	}); err != nil {
		return err
	}
	// The stream the metadata function reads TTL removals from, with the
	// removed item in each record.
	if s := d.Table.StreamSpecification; s == nil || !aws.ToBool(s.StreamEnabled) || s.StreamViewType != ddbtypes.StreamViewTypeNewAndOldImages {
		return fmt.Errorf("the table's stream is not enabled with NEW_AND_OLD_IMAGES: %+v", d.Table.StreamSpecification)
	}
	ttl, err := c.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: &table})
	if err != nil {
		return fmt.Errorf("DescribeTimeToLive: %w", err)
	}
	if t := ttl.TimeToLiveDescription; t == nil || t.TimeToLiveStatus != ddbtypes.TimeToLiveStatusEnabled || aws.ToString(t.AttributeName) != "expires_at" {
		return fmt.Errorf("TTL not enabled on expires_at: %+v", ttl.TimeToLiveDescription)
	}
	return nil
}

// keys names a table's or an index's partition and sort keys.
type keys struct{ name, hash, rng string }

func keyNames(ks []ddbtypes.KeySchemaElement) map[ddbtypes.KeyType]string {
	m := map[ddbtypes.KeyType]string{}
	for _, k := range ks {
		m[k.KeyType] = aws.ToString(k.AttributeName)
	}
	return m
}

// checkIndexes wants each index of want on t, with its keys and every
// attribute projected.
func checkIndexes(t *ddbtypes.TableDescription, want []keys) error {
	for _, w := range want {
		found := false
		for _, g := range t.GlobalSecondaryIndexes {
			if aws.ToString(g.IndexName) != w.name {
				continue
			}
			found = true
			if ks := keyNames(g.KeySchema); ks[ddbtypes.KeyTypeHash] != w.hash || ks[ddbtypes.KeyTypeRange] != w.rng {
				return fmt.Errorf("%s key schema %v, want %s HASH, %s RANGE", w.name, ks, w.hash, w.rng)
			}
			if g.Projection == nil || g.Projection.ProjectionType != ddbtypes.ProjectionTypeAll {
				return fmt.Errorf("%s projection is not ALL", w.name)
			}
		}
		if !found {
			return fmt.Errorf("no %s GSI", w.name)
		}
	}
	return nil
}

// checkAuditTable checks the audit trail's table (IMAGO_AUDIT_TABLE) as
// internal/dynamostore's AuditStore uses it: each chain a partition
// (chain_key) of records by seq, the tenant-time index GET /audit reads, a
// NEW_IMAGE stream (what a SIEM would read in AWS), and no TTL: nothing
// removes a record. Read only: the check writes no record.
func checkAuditTable(ctx context.Context, cfg aws.Config) error {
	table := os.Getenv("IMAGO_AUDIT_TABLE")
	if table == "" {
		return errors.New("IMAGO_AUDIT_TABLE is not set (eval \"$(scripts/testenv env)\")")
	}
	c := dynamodb.NewFromConfig(cfg)
	d, err := c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &table})
	if err != nil {
		return fmt.Errorf("DescribeTable %s: %w", table, err)
	}
	if d.Table.TableStatus != ddbtypes.TableStatusActive {
		return fmt.Errorf("audit table status %s", d.Table.TableStatus)
	}
	if ks := keyNames(d.Table.KeySchema); ks[ddbtypes.KeyTypeHash] != "chain_key" || ks[ddbtypes.KeyTypeRange] != "seq" {
		return fmt.Errorf("audit table key schema %v, want chain_key HASH, seq RANGE", ks)
	}
	types := map[string]ddbtypes.ScalarAttributeType{}
	for _, a := range d.Table.AttributeDefinitions {
		types[aws.ToString(a.AttributeName)] = a.AttributeType
	}
	if types["seq"] != ddbtypes.ScalarAttributeTypeN || types["chain_key"] != ddbtypes.ScalarAttributeTypeS {
		return fmt.Errorf("audit table attribute types %v, want chain_key S, seq N", types)
	}
	if err := checkIndexes(d.Table, []keys{{"tenant-time", "tenant", "time_key"}}); err != nil {
		return err
	}
	if s := d.Table.StreamSpecification; s == nil || !aws.ToBool(s.StreamEnabled) || s.StreamViewType != ddbtypes.StreamViewTypeNewImage {
		return fmt.Errorf("the audit table's stream is not enabled with NEW_IMAGE: %+v", d.Table.StreamSpecification)
	}
	ttl, err := c.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: &table})
	if err != nil {
		return fmt.Errorf("DescribeTimeToLive %s: %w", table, err)
	}
	if t := ttl.TimeToLiveDescription; t != nil && (t.TimeToLiveStatus == ddbtypes.TimeToLiveStatusEnabled || t.TimeToLiveStatus == ddbtypes.TimeToLiveStatusEnabling) {
		return fmt.Errorf("TTL is on for the audit table (%s): nothing may remove a record", aws.ToString(t.AttributeName))
	}
	return nil
}

func checkKMS(ctx context.Context, cfg aws.Config) error {
	keyID := os.Getenv("IMAGO_KMS_KEY_ID")
	c := kms.NewFromConfig(cfg)
	ec := map[string]string{"imago:document": "doc-" + randHex(4), "imago:tenant": "t1"}
	dk, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: &keyID, KeySpec: kmstypes.DataKeySpecAes256, EncryptionContext: ec})
	if err != nil {
		return fmt.Errorf("GenerateDataKey: %w", err)
	}
	if len(dk.Plaintext) != 32 {
		return fmt.Errorf("data key is %d bytes", len(dk.Plaintext))
	}
	dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: ec})
	if err != nil {
		return fmt.Errorf("Decrypt with the right context: %w", err)
	}
	if !bytes.Equal(dec.Plaintext, dk.Plaintext) {
		return errors.New("Decrypt returned another key")
	}
	other := map[string]string{"imago:document": ec["imago:document"], "imago:tenant": "t2"}
	_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob, EncryptionContext: other})
	var ice *kmstypes.InvalidCiphertextException
	if !errors.As(err, &ice) {
		return fmt.Errorf("Decrypt with another context: want InvalidCiphertextException, got %v", err)
	}
	return nil
}

func checkRedis(ctx context.Context, _ aws.Config) error {
	u, err := url.Parse(os.Getenv("IMAGO_REDIS_URL"))
	if err != nil {
		return err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, "*1\r\n$4\r\nPING\r\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}
