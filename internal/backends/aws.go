package backends

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/redis/go-redis/v9"

	"github.com/imagodocs/imago/internal/config"
	"github.com/imagodocs/imago/internal/dynamostore"
	"github.com/imagodocs/imago/internal/kmskeys"
	"github.com/imagodocs/imago/internal/rediscache"
	"github.com/imagodocs/imago/internal/s3store"
)

// openAWS builds the S3, DynamoDB and KMS backends. The SDK's own
// configuration chain supplies region, credentials and endpoint overrides
// (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_KMS).
// Clients are built once per process and reused by every request.
func openAWS(ctx context.Context, cfg config.Config) (*Set, error) {
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
	set := &Set{Kind: "aws"}
	s3Client := s3store.NewClient(awsCfg)
	set.Blobs = s3store.New(s3Client, cfg.Bucket)
	set.Staging = s3store.NewStaging(s3Client, cfg.Bucket, cfg.StagingPrefix)
	set.Meta = dynamostore.New(dynamodb.NewFromConfig(awsCfg), cfg.Table)
	set.Keys = kmskeys.New(kms.NewFromConfig(awsCfg), cfg.KMSKeyID)
	return set, nil
}

// redisLog sends go-redis's own messages (failed dials, pool trouble) to
// the structured log instead of plain text on stderr.
type redisLog struct{ log *slog.Logger }

func (r redisLog) Printf(ctx context.Context, format string, v ...any) {
	r.log.WarnContext(ctx, "redis client", "detail", fmt.Sprintf(format, v...))
}

// openRedis opens the Redis cache, in the mode the server speaks
// (rediscache.Open asks it unless the URL says).
func openRedis(ctx context.Context, cfg config.Config, log *slog.Logger) (*rediscache.Cache, rediscache.Mode, func() error, error) {
	if log != nil {
		redis.SetLogger(redisLog{log}) // go-redis has one process-wide logger
	}
	// IMAGO_REDIS_TIMEOUT is the budget of one cache call, dial included:
	// the per-call deadline, and no socket operation may wait longer.
	client, mode, err := rediscache.Open(ctx, cfg.RedisURL, rediscache.ClientOptions{
		DialTimeout: cfg.RedisTimeout, ReadTimeout: cfg.RedisTimeout, WriteTimeout: cfg.RedisTimeout,
		PoolSize: cfg.RedisPoolSize, Logger: log,
	})
	if err != nil {
		return nil, "", nil, err
	}
	c := rediscache.New(client, rediscache.Options{
		TTL: cfg.CacheTTL, MaxBytes: cfg.CacheMaxBytes, SealKey: cfg.CacheKey,
		Timeout: cfg.RedisTimeout, Logger: log,
	})
	return c, mode, client.Close, nil
}
