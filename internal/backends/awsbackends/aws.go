// Package awsbackends builds the AWS family of backends: S3, DynamoDB and
// KMS (IMAGO_TABLE, IMAGO_BUCKET, IMAGO_KMS_KEY_ID), with the cache
// package backends chooses. It is what a Lambda function runs on, and
// `imago serve` too when IMAGO_TABLE is set; it links no embedded backend
// (package embedded, its sibling, is `imago serve`'s only).
package awsbackends

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/imagodocs/imago/internal/backends"
	"github.com/imagodocs/imago/internal/config"
	"github.com/imagodocs/imago/internal/dynamostore"
	"github.com/imagodocs/imago/internal/kmskeys"
	"github.com/imagodocs/imago/internal/s3store"
)

// ErrNoTable is Open's error when IMAGO_TABLE is unset: there is nothing
// else a Lambda function can run on.
var ErrNoTable = errors.New("IMAGO_TABLE is not set: a Lambda function runs on the AWS backends only (set IMAGO_TABLE, IMAGO_BUCKET and IMAGO_KMS_KEY_ID); the embedded backends are `imago serve`'s")

// Open builds the AWS backends cfg selects, and the cache.
func Open(ctx context.Context, cfg config.Config, log *slog.Logger) (*backends.Set, error) {
	if !cfg.UsesAWS() {
		return nil, ErrNoTable
	}
	set, err := openAWS(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := backends.OpenCache(ctx, cfg, set, log); err != nil {
		set.Close()
		return nil, err
	}
	return set, nil
}

// openAWS builds the S3, DynamoDB and KMS backends. The SDK's own
// configuration chain supplies region, credentials and endpoint overrides
// (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_KMS).
// Clients are built once per process and reused by every request.
func openAWS(ctx context.Context, cfg config.Config) (*backends.Set, error) {
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx,
		awsconfig.WithHTTPClient(awsHTTPClient(cfg.AWSTimeout)),
		awsconfig.WithRetryer(awsRetryer),
		// A blob authenticates every segment itself (AES-GCM, package
		// envelope): the SDK's SHA-256 of each GetObject body would only
		// double-check it, at a millisecond of CPU per MiB read.
		awsconfig.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
		// Other modes rebuild the HTTP client's dialer (and its timeouts).
		awsconfig.WithDefaultsMode(aws.DefaultsModeLegacy))
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	set := &backends.Set{Kind: "aws"}
	s3Client := s3store.NewClient(awsCfg)
	set.Blobs = s3store.New(s3Client, cfg.Bucket)
	set.Staging = s3store.NewStaging(s3Client, cfg.Bucket, cfg.StagingPrefix)
	ddb := dynamodb.NewFromConfig(awsCfg)
	meta := dynamostore.New(ddb, cfg.Table)
	set.Meta, set.Links = meta, meta
	if cfg.AuditTable != "" {
		set.Audit = dynamostore.NewAuditStore(ddb, cfg.AuditTable)
	}
	set.Keys = kmskeys.New(kms.NewFromConfig(awsCfg), cfg.KMSKeyID)
	return set, nil
}
