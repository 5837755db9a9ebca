package apigw

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/imagodocs/imago/internal/docstore"
)

// MetadataFunction is the Lambda handler of MetadataFunction, which API
// Gateway (its routes) and the documents table's stream both invoke: it
// tells the two apart by the event's shape, handing API Gateway events to
// the metadata function's Handler and the stream's records of TTL
// deletions to Service.Removed, which takes the blob, links, staged bytes
// and cache entry of a document whose record DynamoDB removed at its
// expiry or purge.
type MetadataFunction struct {
	http  *Handler
	svc   *docstore.Service
	log   *slog.Logger
	image ImageDecoder
}

// ImageDecoder reads a stream record's item image as a document's record;
// ok is false for an item that is not a document's. dynamostore's
// DecodeStreamImage is one.
type ImageDecoder func(image json.RawMessage) (rec docstore.Record, ok bool, err error)

// NewMetadataFunction returns the metadata function's handler over svc,
// with opts for its routes' Handler, reading stream images with image.
func NewMetadataFunction(svc *docstore.Service, opts Options, image ImageDecoder) *MetadataFunction {
	return &MetadataFunction{http: New(svc, Metadata, opts), svc: svc, log: functionLogger(opts, Metadata), image: image}
}

// Invoke implements lambda.Handler.
func (m *MetadataFunction) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	if !isStreamEvent(payload) {
		return m.http.Invoke(ctx, payload)
	}
	var ev StreamEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, fmt.Errorf("decode DynamoDB stream event: %w", err)
	}
	return nil, m.HandleStream(ctx, &ev)
}

// StreamEvent is a DynamoDB stream event as Lambda delivers it, with the
// images kept in DynamoDB's JSON for the ImageDecoder.
type StreamEvent struct {
	Records []StreamRecord `json:"Records"`
}

// StreamRecord is one record of a StreamEvent.
type StreamRecord struct {
	EventID      string `json:"eventID"`
	EventName    string `json:"eventName"` // INSERT, MODIFY, REMOVE
	EventSource  string `json:"eventSource"`
	UserIdentity *struct {
		Type        string `json:"type"`
		PrincipalID string `json:"principalId"`
	} `json:"userIdentity,omitempty"`
	DynamoDB struct {
		Keys     json.RawMessage `json:"Keys"`
		OldImage json.RawMessage `json:"OldImage,omitempty"`
	} `json:"dynamodb"`
}

// ttlPrincipal is the identity of DynamoDB's TTL deletions in the stream.
const ttlPrincipal = "dynamodb.amazonaws.com"

// IsTTLRemoval reports whether r records an item DynamoDB's TTL removed.
func (r StreamRecord) IsTTLRemoval() bool {
	return r.EventName == "REMOVE" && r.UserIdentity != nil &&
		r.UserIdentity.Type == "Service" && r.UserIdentity.PrincipalID == ttlPrincipal
}

// isStreamEvent tells a DynamoDB stream event from an API Gateway event.
func isStreamEvent(payload []byte) bool { return recordsSource(payload) == "aws:dynamodb" }

// HandleStream finishes the removal of every document in ev that
// DynamoDB's TTL removed, and ignores every other record (the API's own
// writes and deletes, share links' items). An error makes Lambda retry the
// batch, which Removed tolerates (it is idempotent).
func (m *MetadataFunction) HandleStream(ctx context.Context, ev *StreamEvent) error {
	var errs []error
	for _, r := range ev.Records {
		if !r.IsTTLRemoval() || len(r.DynamoDB.OldImage) == 0 {
			continue
		}
		rec, ok, err := m.image(r.DynamoDB.OldImage)
		if err != nil {
			m.log.ErrorContext(ctx, "undecodable stream record", "event", r.EventID, "error", err.Error())
			errs = append(errs, err)
			continue
		}
		if !ok {
			continue
		}
		if err := m.svc.Removed(ctx, rec); err != nil {
			m.log.ErrorContext(ctx, "removal after a TTL deletion failed", "document", rec.ID, "error", err.Error())
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
