// Command provision creates, idempotently, the AWS resources the tests use on
// the local servers started by scripts/testenv: the S3 bucket, the DynamoDB
// table (with its GSIs, TTL and stream) and the KMS key with its alias.
//
// Endpoints and credentials come from the environment, as for every SDK user:
// AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_KMS,
// AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (see `scripts/testenv env`).
//
//	provision -bucket imago-test -table imago-test -alias alias/imago-test
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

const (
	tableHashKey = "id"
	ttlAttribute = "expires_at"
	// streamView is the view of the table's stream, as template.yaml
	// declares it: a TTL removal's record carries the removed item.
	streamView = ddbtypes.StreamViewTypeNewAndOldImages
)

// index is one global secondary index of the table.
type index struct{ name, hash, sort string }

// indexes are the table's: the documents' listing index and the share
// links' index by document (dynamostore's schema).
var indexes = []index{
	{"tenant-index", "tenant_listed", "created_key"},
	{"link-index", "link_document", "created_key"},
	{"trash-index", "tenant_trash", "created_key"},
}

func (ix index) gsi() ddbtypes.GlobalSecondaryIndex {
	return ddbtypes.GlobalSecondaryIndex{
		IndexName: aws.String(ix.name),
		KeySchema: []ddbtypes.KeySchemaElement{
			{AttributeName: aws.String(ix.hash), KeyType: ddbtypes.KeyTypeHash},
			{AttributeName: aws.String(ix.sort), KeyType: ddbtypes.KeyTypeRange},
		},
		Projection: &ddbtypes.Projection{ProjectionType: ddbtypes.ProjectionTypeAll},
	}
}

// attributeDefinitions are the key attributes of the table and of ixs.
func attributeDefinitions(ixs []index) []ddbtypes.AttributeDefinition {
	defs := []ddbtypes.AttributeDefinition{{AttributeName: aws.String(tableHashKey), AttributeType: ddbtypes.ScalarAttributeTypeS}}
	seen := map[string]bool{tableHashKey: true}
	for _, ix := range ixs {
		for _, a := range []string{ix.hash, ix.sort} {
			if !seen[a] {
				seen[a] = true
				defs = append(defs, ddbtypes.AttributeDefinition{AttributeName: aws.String(a), AttributeType: ddbtypes.ScalarAttributeTypeS})
			}
		}
	}
	return defs
}

func main() {
	bucket := flag.String("bucket", "imago-test", "S3 bucket")
	table := flag.String("table", "imago-test", "DynamoDB table")
	auditTable := flag.String("audit-table", "", "DynamoDB table of the audit trail (none when empty)")
	alias := flag.String("alias", "alias/imago-test", "KMS key alias")
	only := flag.String("only", "s3,dynamodb,kms", "comma-separated services to provision")
	timeout := flag.Duration("timeout", 90*time.Second, "overall timeout")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("provision: ")

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatalf("load AWS config: %v", err)
	}
	want := map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		want[strings.TrimSpace(s)] = true
	}
	if want["s3"] {
		if err := provisionBucket(ctx, s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }), *bucket); err != nil {
			log.Fatalf("S3 (versitygw): bucket %s: %v", *bucket, err)
		}
	}
	if want["dynamodb"] {
		if err := provisionTable(ctx, dynamodb.NewFromConfig(cfg), *table); err != nil {
			log.Fatalf("DynamoDB (DynamoDB Local): table %s: %v", *table, err)
		}
		if *auditTable != "" {
			if err := provisionAuditTable(ctx, dynamodb.NewFromConfig(cfg), *auditTable); err != nil {
				log.Fatalf("DynamoDB (DynamoDB Local): audit table %s: %v", *auditTable, err)
			}
		}
	}
	if want["kms"] {
		if err := provisionKey(ctx, kms.NewFromConfig(cfg), *alias); err != nil {
			log.Fatalf("KMS (local-kms): key %s: %v", *alias, err)
		}
	}
}

func provisionBucket(ctx context.Context, c *s3.Client, bucket string) error {
	if _, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &bucket}); err == nil {
		log.Printf("S3 bucket %s: exists", bucket)
		return nil
	} else {
		var nf *s3types.NotFound
		var nsb *s3types.NoSuchBucket
		if !errors.As(err, &nf) && !errors.As(err, &nsb) {
			return fmt.Errorf("HeadBucket: %w", err)
		}
	}
	_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket})
	var owned *s3types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return fmt.Errorf("CreateBucket: %w", err)
	}
	log.Printf("S3 bucket %s: created", bucket)
	return nil
}

func provisionTable(ctx context.Context, c *dynamodb.Client, table string) error {
	desc, err := c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &table})
	var rnf *ddbtypes.ResourceNotFoundException
	switch {
	case err == nil:
		if err := checkTable(desc.Table); err != nil {
			return err
		}
		log.Printf("DynamoDB table %s: exists", table)
		if err := addMissingIndexes(ctx, c, table, desc.Table); err != nil {
			return err
		}
		if err := enableStream(ctx, c, table, desc.Table); err != nil {
			return err
		}
	case errors.As(err, &rnf):
		gsis := make([]ddbtypes.GlobalSecondaryIndex, len(indexes))
		for i, ix := range indexes {
			gsis[i] = ix.gsi()
		}
		if err := createTable(ctx, c, &dynamodb.CreateTableInput{
			TableName:            &table,
			BillingMode:          ddbtypes.BillingModePayPerRequest,
			AttributeDefinitions: attributeDefinitions(indexes),
			KeySchema: []ddbtypes.KeySchemaElement{
				{AttributeName: aws.String(tableHashKey), KeyType: ddbtypes.KeyTypeHash},
			},
			GlobalSecondaryIndexes: gsis,
			StreamSpecification:    &ddbtypes.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: streamView},
		}); err != nil {
			return err
		}
		log.Printf("DynamoDB table %s: created", table)
	default:
		return fmt.Errorf("DescribeTable: %w", err)
	}

	ttl, err := c.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: &table})
	if err != nil {
		return fmt.Errorf("DescribeTimeToLive: %w", err)
	}
	if d := ttl.TimeToLiveDescription; d != nil && aws.ToString(d.AttributeName) == ttlAttribute &&
		(d.TimeToLiveStatus == ddbtypes.TimeToLiveStatusEnabled || d.TimeToLiveStatus == ddbtypes.TimeToLiveStatusEnabling) {
		log.Printf("DynamoDB table %s: TTL on %s already enabled", table, ttlAttribute)
		return nil
	}
	_, err = c.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName: &table,
		TimeToLiveSpecification: &ddbtypes.TimeToLiveSpecification{
			AttributeName: aws.String(ttlAttribute),
			Enabled:       aws.Bool(true),
		},
	})
	if err != nil {
		return fmt.Errorf("UpdateTimeToLive: %w", err)
	}
	log.Printf("DynamoDB table %s: TTL enabled on %s", table, ttlAttribute)
	return nil
}

// checkTable reports a table that exists with another shape than the one
// this program creates (it never alters or deletes an existing table).
func checkTable(t *ddbtypes.TableDescription) error {
	if t == nil {
		return errors.New("DescribeTable returned no table")
	}
	if len(t.KeySchema) != 1 || aws.ToString(t.KeySchema[0].AttributeName) != tableHashKey {
		return fmt.Errorf("exists with another key schema (want partition key %q only); delete it or restart the test environment", tableHashKey)
	}
	return nil
}

// addMissingIndexes adds, one at a time as DynamoDB requires, the indexes
// a table made by an older version of this program lacks, and waits for
// each to be active.
func addMissingIndexes(ctx context.Context, c *dynamodb.Client, table string, t *ddbtypes.TableDescription) error {
	have := map[string]bool{}
	for _, g := range t.GlobalSecondaryIndexes {
		have[aws.ToString(g.IndexName)] = true
	}
	for _, ix := range indexes {
		if have[ix.name] {
			continue
		}
		gsi := ix.gsi()
		_, err := c.UpdateTable(ctx, &dynamodb.UpdateTableInput{
			TableName:            &table,
			AttributeDefinitions: attributeDefinitions([]index{ix}),
			GlobalSecondaryIndexUpdates: []ddbtypes.GlobalSecondaryIndexUpdate{{Create: &ddbtypes.CreateGlobalSecondaryIndexAction{
				IndexName: gsi.IndexName, KeySchema: gsi.KeySchema, Projection: gsi.Projection,
			}}},
		})
		if err != nil {
			return fmt.Errorf("UpdateTable (add %s): %w", ix.name, err)
		}
		for {
			d, err := c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &table})
			if err != nil {
				return fmt.Errorf("DescribeTable: %w", err)
			}
			active := false
			for _, g := range d.Table.GlobalSecondaryIndexes {
				active = active || (aws.ToString(g.IndexName) == ix.name && g.IndexStatus == ddbtypes.IndexStatusActive)
			}
			if active {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("wait for index %s: %w", ix.name, ctx.Err())
			case <-time.After(200 * time.Millisecond):
			}
		}
		log.Printf("DynamoDB table %s: index %s added", table, ix.name)
	}
	return nil
}

// enableStream turns on the stream (streamView) of a table made by an
// older version of this program, which had none, and waits for the table
// to be active again. A stream of another view is reported, not changed:
// changing it means disabling the stream, which this program never does.
func enableStream(ctx context.Context, c *dynamodb.Client, table string, t *ddbtypes.TableDescription) error {
	if s := t.StreamSpecification; s != nil && aws.ToBool(s.StreamEnabled) {
		if s.StreamViewType != streamView {
			return fmt.Errorf("DynamoDB table %s: its stream's view is %s, want %s; delete the table or restart the test environment", table, s.StreamViewType, streamView)
		}
		log.Printf("DynamoDB table %s: stream (%s) already enabled", table, streamView)
		return nil
	}
	_, err := c.UpdateTable(ctx, &dynamodb.UpdateTableInput{
		TableName:           &table,
		StreamSpecification: &ddbtypes.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: streamView},
	})
	if err != nil {
		return fmt.Errorf("UpdateTable (enable the stream): %w", err)
	}
	for {
		d, err := c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &table})
		if err != nil {
			return fmt.Errorf("DescribeTable: %w", err)
		}
		if d.Table.TableStatus == ddbtypes.TableStatusActive && d.Table.LatestStreamArn != nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the stream of %s: %w", table, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	log.Printf("DynamoDB table %s: stream (%s) enabled", table, streamView)
	return nil
}

func provisionKey(ctx context.Context, c *kms.Client, alias string) error {
	if !strings.HasPrefix(alias, "alias/") {
		return fmt.Errorf("alias must start with alias/")
	}
	d, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: &alias})
	if err == nil {
		log.Printf("KMS %s: exists (key %s)", alias, aws.ToString(d.KeyMetadata.KeyId))
		return nil
	}
	var nf *kmstypes.NotFoundException
	if !errors.As(err, &nf) {
		return fmt.Errorf("DescribeKey: %w", err)
	}
	k, err := c.CreateKey(ctx, &kms.CreateKeyInput{
		KeySpec:     kmstypes.KeySpecSymmetricDefault,
		KeyUsage:    kmstypes.KeyUsageTypeEncryptDecrypt,
		Description: aws.String("imago test key (scripts/testenv)"),
	})
	if err != nil {
		return fmt.Errorf("CreateKey: %w", err)
	}
	keyID := aws.ToString(k.KeyMetadata.KeyId)
	if _, err := c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: &alias, TargetKeyId: &keyID}); err != nil {
		return fmt.Errorf("CreateAlias: %w", err)
	}
	log.Printf("KMS %s: created (key %s)", alias, keyID)
	return nil
}

// provisionAuditTable creates the audit trail's table as dynamostore's
// AuditStore uses it: chain_key and seq, the tenant-time index, a stream of
// new images (a SIEM's feed). An existing table is left as it is.
func provisionAuditTable(ctx context.Context, c *dynamodb.Client, table string) error {
	_, err := c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &table})
	var rnf *ddbtypes.ResourceNotFoundException
	switch {
	case err == nil:
		log.Printf("DynamoDB audit table %s: exists", table)
		return nil
	case !errors.As(err, &rnf):
		return fmt.Errorf("DescribeTable: %w", err)
	}
	s := func(name string) ddbtypes.AttributeDefinition {
		return ddbtypes.AttributeDefinition{AttributeName: aws.String(name), AttributeType: ddbtypes.ScalarAttributeTypeS}
	}
	if err := createTable(ctx, c, &dynamodb.CreateTableInput{
		TableName:   &table,
		BillingMode: ddbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []ddbtypes.AttributeDefinition{s("chain_key"), s("tenant"), s("time_key"),
			{AttributeName: aws.String("seq"), AttributeType: ddbtypes.ScalarAttributeTypeN}},
		KeySchema: []ddbtypes.KeySchemaElement{
			{AttributeName: aws.String("chain_key"), KeyType: ddbtypes.KeyTypeHash},
			{AttributeName: aws.String("seq"), KeyType: ddbtypes.KeyTypeRange},
		},
		GlobalSecondaryIndexes: []ddbtypes.GlobalSecondaryIndex{index{"tenant-time", "tenant", "time_key"}.gsi()},
		StreamSpecification:    &ddbtypes.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: ddbtypes.StreamViewTypeNewImage},
	}); err != nil {
		return err
	}
	log.Printf("DynamoDB audit table %s: created", table)
	return nil
}

// createTable creates a table (one created meanwhile by another run is as
// good) and waits until it is active.
func createTable(ctx context.Context, c *dynamodb.Client, in *dynamodb.CreateTableInput) error {
	_, err := c.CreateTable(ctx, in)
	var inUse *ddbtypes.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("CreateTable: %w", err)
	}
	w := dynamodb.NewTableExistsWaiter(c, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = 200 * time.Millisecond
		o.MaxDelay = 2 * time.Second
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: in.TableName}, 60*time.Second); err != nil {
		return fmt.Errorf("wait for table: %w", err)
	}
	return nil
}
