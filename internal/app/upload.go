package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/imagodocs/imago/internal/apigw"
)

// UploadFunction is the Lambda handler of UploadFunction, which API Gateway
// (POST /documents, POST /documents/uploads) and S3 (ObjectCreated on the
// staging prefix) both invoke: it tells the two apart by the event's shape.
type UploadFunction struct {
	app  *App
	http *apigw.Handler
}

// NewUploadFunction returns the upload function's handler.
func (a *App) NewUploadFunction() *UploadFunction {
	return &UploadFunction{app: a, http: a.Handler(apigw.Upload)}
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

// isS3Event looks for S3's event shape without decoding the payload twice:
// API Gateway events never carry "Records", S3 notifications always do.
func isS3Event(payload []byte) bool {
	var probe struct {
		Records []struct {
			EventSource string `json:"eventSource"`
		} `json:"Records"`
	}
	if !bytes.Contains(payload, []byte(`"Records"`)) || json.Unmarshal(payload, &probe) != nil {
		return false
	}
	return len(probe.Records) > 0 && probe.Records[0].EventSource == "aws:s3"
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
			u.app.Log.InfoContext(ctx, "ignoring S3 event", "event", rec.EventName)
			continue
		}
		// Only the S3 backends have a bucket: on the embedded ones the
		// events come from `imago serve` itself, whatever IMAGO_BUCKET says.
		if u.app.Config.UsesAWS() && rec.S3.Bucket.Name != "" && u.app.Config.Bucket != "" && rec.S3.Bucket.Name != u.app.Config.Bucket {
			u.app.Log.WarnContext(ctx, "ignoring S3 event of another bucket", "bucket", rec.S3.Bucket.Name)
			continue
		}
		// S3 URL-encodes keys in events, with '+' for a space.
		key, err := url.QueryUnescape(rec.S3.Object.Key)
		if err != nil {
			errs = append(errs, fmt.Errorf("S3 event key %q: %w", rec.S3.Object.Key, err))
			continue
		}
		if err := u.app.Service.Ingest(ctx, key); err != nil {
			u.app.Log.ErrorContext(ctx, "ingest failed", "key", key, "error", err.Error())
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
