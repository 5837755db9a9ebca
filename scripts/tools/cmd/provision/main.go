// Command provision creates, idempotently, the AWS resources the tests use on
// the local servers started by scripts/testenv: the S3 bucket, the DynamoDB
// table (with its GSI and TTL) and the KMS key with its alias.
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
	gsiName      = "tenant-index"
	gsiHashKey   = "tenant_listed"
	gsiRangeKey  = "created_key"
	tableHashKey = "id"
	ttlAttribute = "expires_at"
)

func main() {
	bucket := flag.String("bucket", "imago-test", "S3 bucket")
	table := flag.String("table", "imago-test", "DynamoDB table")
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
	case errors.As(err, &rnf):
		_, err = c.CreateTable(ctx, &dynamodb.CreateTableInput{
			TableName:   &table,
			BillingMode: ddbtypes.BillingModePayPerRequest,
			AttributeDefinitions: []ddbtypes.AttributeDefinition{
				{AttributeName: aws.String(tableHashKey), AttributeType: ddbtypes.ScalarAttributeTypeS},
				{AttributeName: aws.String(gsiHashKey), AttributeType: ddbtypes.ScalarAttributeTypeS},
				{AttributeName: aws.String(gsiRangeKey), AttributeType: ddbtypes.ScalarAttributeTypeS},
			},
			KeySchema: []ddbtypes.KeySchemaElement{
				{AttributeName: aws.String(tableHashKey), KeyType: ddbtypes.KeyTypeHash},
			},
			GlobalSecondaryIndexes: []ddbtypes.GlobalSecondaryIndex{{
				IndexName: aws.String(gsiName),
				KeySchema: []ddbtypes.KeySchemaElement{
					{AttributeName: aws.String(gsiHashKey), KeyType: ddbtypes.KeyTypeHash},
					{AttributeName: aws.String(gsiRangeKey), KeyType: ddbtypes.KeyTypeRange},
				},
				Projection: &ddbtypes.Projection{ProjectionType: ddbtypes.ProjectionTypeAll},
			}},
		})
		var inUse *ddbtypes.ResourceInUseException
		if err != nil && !errors.As(err, &inUse) {
			return fmt.Errorf("CreateTable: %w", err)
		}
		w := dynamodb.NewTableExistsWaiter(c, func(o *dynamodb.TableExistsWaiterOptions) {
			o.MinDelay = 200 * time.Millisecond
			o.MaxDelay = 2 * time.Second
		})
		if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: &table}, 60*time.Second); err != nil {
			return fmt.Errorf("wait for table: %w", err)
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
	for _, g := range t.GlobalSecondaryIndexes {
		if aws.ToString(g.IndexName) == gsiName {
			return nil
		}
	}
	return fmt.Errorf("exists without the %s index; delete it or restart the test environment", gsiName)
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
