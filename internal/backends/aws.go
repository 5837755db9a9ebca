package backends

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"

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
		awsconfig.WithRetryer(awsRetryer))
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

// awsHTTPClient is the SDK's HTTP client with a bound on silence: the
// SDK's defaults wait forever on a connection that stops delivering bytes
// mid-answer (or stops taking them mid-upload), which would hang a request
// past its Lambda's deadline instead of answering 503. A connection that
// is silent for timeout fails the attempt (a retryable error); a slow but
// progressing transfer of any size goes on. The read timeout also covers
// a stalled upload: the transport reads the connection while it writes,
// and nothing arrives.
func awsHTTPClient(timeout time.Duration) *awshttp.BuildableClient {
	if timeout <= 0 {
		timeout = config.DefaultAWSTimeout
	}
	return awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = timeout }).
		WithTransportOptions(func(tr *http.Transport) {
			tr.TLSHandshakeTimeout = timeout
			tr.ResponseHeaderTimeout = timeout
		}).
		WithReadTimeout(timeout)
}

// awsRetryer is the SDK's standard retryer (3 attempts) with its backoff
// capped at 2s instead of 20s, so that the retries of a stalled or broken
// backend fit in one request's budget (see config.DefaultAWSTimeout).
func awsRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = 3
		o.MaxBackoff = 2 * time.Second
	})
}

// redisLog sends go-redis's own messages (failed dials, pool trouble) to
// the structured log instead of plain text on stderr.
type redisLog struct{ log *slog.Logger }

func (r redisLog) Printf(ctx context.Context, format string, v ...any) {
	r.log.WarnContext(ctx, "redis client", "detail", fmt.Sprintf(format, v...))
}

func openRedis(ctx context.Context, cfg config.Config, log *slog.Logger) (*rediscache.Cache, func() error, error) {
	if log != nil {
		redis.SetLogger(redisLog{log}) // go-redis has one process-wide logger
	}
	// IMAGO_REDIS_TIMEOUT is the budget of one cache call, dial included:
	// the per-call deadline, and no socket operation may wait longer.
	client, err := rediscache.NewClient(cfg.RedisURL, rediscache.ClientOptions{
		DialTimeout: cfg.RedisTimeout, ReadTimeout: cfg.RedisTimeout, WriteTimeout: cfg.RedisTimeout,
	})
	if err != nil {
		return nil, nil, err
	}
	c := rediscache.New(client, rediscache.Options{
		TTL: cfg.CacheTTL, MaxBytes: cfg.CacheMaxBytes, SealKey: cfg.CacheKey,
		Timeout: cfg.RedisTimeout, Logger: log,
	})
	return c, client.Close, nil
}
