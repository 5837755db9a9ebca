package awsbackends

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"

	"github.com/imagodocs/imago/internal/config"
)

// awsHTTPClient is the HTTP client of the S3, DynamoDB and KMS clients:
// the SDK's own, whose connections fail once they have made no progress,
// in either direction, for timeout. The SDK's defaults wait forever on a
// connection that stops delivering an answer, or stops taking an upload,
// which would hang a request past its Lambda's deadline instead of
// answering 503. A failed attempt is a connection error, which the SDK
// retries and awskind calls unavailable; a slow but progressing transfer
// of any size goes on (the SDK's own read timeout, which only watches
// reads, would cut an upload that takes longer than it, and the SDK
// exempts S3 from it for that reason).
//
// The service clients keep this dialer as long as the defaults mode is
// legacy (openAWS pins it): another mode makes them rebuild the dialer.
func awsHTTPClient(timeout time.Duration) *awshttp.BuildableClient {
	if timeout <= 0 {
		timeout = config.DefaultAWSTimeout
	}
	return awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = timeout }).
		WithTransportOptions(func(tr *http.Transport) {
			dial := tr.DialContext
			tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := dial(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				pc := &progressConn{Conn: c, timeout: timeout}
				pc.progress()
				return pc, nil
			}
			tr.TLSHandshakeTimeout = timeout
			tr.ResponseHeaderTimeout = timeout
		})
}

// progressChunk bounds one write to the connection, so that a large
// upload moves the deadline on as it goes.
const progressChunk = 64 << 10

// progressConn moves both of its connection's deadlines timeout past the
// last progress: every read or write call, and every chunk written.
// While a request body is written, the transport's pending read of the
// answer is kept alive by the writes; once both sides are silent for
// timeout, pending reads and writes fail.
type progressConn struct {
	net.Conn
	timeout time.Duration
}

func (c *progressConn) progress() { c.Conn.SetDeadline(time.Now().Add(c.timeout)) }

func (c *progressConn) Read(p []byte) (int, error) {
	c.progress()
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.progress()
	}
	return n, err
}

func (c *progressConn) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		c.progress()
		chunk := p[:min(len(p), progressChunk)]
		n, err := c.Conn.Write(chunk)
		written += n
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

// awsRetryer is the SDK's standard retryer (3 attempts) with its backoff
// capped at 1s instead of 20s, so that the retries of a stalled or broken
// backend fit in one request's budget (see config.DefaultAWSTimeout).
func awsRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = 3
		o.MaxBackoff = time.Second
	})
}
