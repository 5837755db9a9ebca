package apigw

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/imagodocs/imago/internal/docstore"
)

// UploadFunction is the Lambda handler of UploadFunction, which API Gateway
// (POST /documents, POST /documents/uploads and the routes of uploads in
// parts) and S3 (ObjectCreated on the staging prefix) both invoke: it tells
// the two apart by the event's shape, handing API Gateway events to the
// upload function's Handler and S3 notifications to Service.Ingest.
type UploadFunction struct {
	http   *Handler
	svc    *docstore.Service
	log    *slog.Logger
	bucket string
}

// NewUploadFunction returns the upload function's handler over svc, with
// opts for its routes' Handler (New(svc, Upload, opts)) and its log.
// bucket is the only bucket whose events it ingests (the S3 backends'
// IMAGO_BUCKET); "" takes every event, as on the embedded backends, whose
// events `imago serve` sends itself.
func NewUploadFunction(svc *docstore.Service, opts Options, bucket string) *UploadFunction {
	return &UploadFunction{http: New(svc, Upload, opts), svc: svc, log: functionLogger(opts, Upload), bucket: bucket}
}

// Invoke implements lambda.Handler.
func (u *UploadFunction) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	if !isS3Event(payload) {
		return u.http.Invoke(ctx, payload)
	}
	var ev events.S3Event
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, fmt.Errorf("decode S3 event: %w", err)
	}
	return nil, u.IngestS3Event(ctx, &ev)
}

// isS3Event tells an S3 notification from an API Gateway event.
func isS3Event(payload []byte) bool { return recordsSource(payload) == "aws:s3" }

// recordsSource is the eventSource of the first of an event's "Records"
// (S3 notifications, DynamoDB streams), without decoding the payload
// twice: API Gateway events never carry "Records". "" when it has none.
func recordsSource(payload []byte) string {
	var probe struct {
		Records []struct {
			EventSource string `json:"eventSource"`
		} `json:"Records"`
	}
	if !bytes.Contains(payload, []byte(`"Records"`)) || json.Unmarshal(payload, &probe) != nil || len(probe.Records) == 0 {
		return ""
	}
	return probe.Records[0].EventSource
}

// IngestS3Event ingests each ObjectCreated record. An error makes Lambda
// retry the whole event, which Ingest tolerates.
func (u *UploadFunction) IngestS3Event(ctx context.Context, ev *events.S3Event) error {
	var errs []error
	for _, rec := range ev.Records {
		// AWS names events "ObjectCreated:Put"; S3-compatible servers
		// often send the notification-configuration form "s3:ObjectCreated:Put".
		name := strings.TrimPrefix(rec.EventName, "s3:")
		if rec.EventSource != "aws:s3" || !strings.HasPrefix(name, "ObjectCreated:") {
			u.log.InfoContext(ctx, "ignoring S3 event", "event", rec.EventName)
			continue
		}
		if rec.S3.Bucket.Name != "" && u.bucket != "" && rec.S3.Bucket.Name != u.bucket {
			u.log.WarnContext(ctx, "ignoring S3 event of another bucket", "bucket", rec.S3.Bucket.Name)
			continue
		}
		// S3 URL-encodes keys in events, with '+' for a space.
		key, err := url.QueryUnescape(rec.S3.Object.Key)
		if err != nil {
			errs = append(errs, fmt.Errorf("S3 event key %q: %w", rec.S3.Object.Key, err))
			continue
		}
		if err := u.svc.Ingest(ctx, key); err != nil {
			u.log.ErrorContext(ctx, "ingest failed", "key", key, "error", err.Error())
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
