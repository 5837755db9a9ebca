package dynamostore

// The mapping between Records and items as it was written by hand, before
// the struct tags of item.go: kept here, in a test file, as the reference
// of the layout every stored item has (layout_test.go holds encode and
// decode to it) and as the baseline of BenchmarkItem.

import (
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/imagodocs/imago/internal/docstore"
)

// handEncode is the item of rec, as the hand-written mapping that wrote
// every item before this package used attributevalue built it.
func handEncode(rec docstore.Record) map[string]types.AttributeValue {
	created := rec.CreatedAt.UTC().Truncate(time.Microsecond)
	item := map[string]types.AttributeValue{
		attrID:            str(string(rec.ID)),
		attrTenant:        str(string(rec.Tenant)),
		attrFilename:      str(rec.Filename),
		attrContentType:   str(rec.ContentType),
		attrSize:          num(rec.Size),
		attrSHA256:        str(rec.SHA256),
		attrStatus:        str(string(rec.Status)),
		attrCreatedAt:     str(created.Format(time.RFC3339Nano)),
		attrCreatedKey:    str(createdKey(created, rec.ID)),
		attrWrappedKey:    &types.AttributeValueMemberB{Value: rec.WrappedKey},
		attrKeyID:         str(rec.KeyID),
		attrFormatVersion: num(int64(rec.FormatVersion)),
		attrSegmentSize:   num(int64(rec.SegmentSize)),
	}
	if rec.WrappedKey == nil {
		// B cannot be null; an empty one is at least well-formed.
		item[attrWrappedKey] = &types.AttributeValueMemberB{Value: []byte{}}
	}
	if len(rec.Metadata) > 0 {
		m := make(map[string]types.AttributeValue, len(rec.Metadata))
		for k, v := range rec.Metadata {
			m[k] = str(v)
		}
		item[attrMetadata] = &types.AttributeValueMemberM{Value: m}
	}
	if rec.Status == docstore.StatusAvailable {
		item[attrTenantListed] = str(string(rec.Tenant))
	}
	if rec.BlobID != "" {
		item[attrBlobID] = str(string(rec.BlobID))
	}
	if rec.Failure != "" {
		item[attrFailure] = str(rec.Failure)
	}
	if !rec.ExpiresAt.IsZero() {
		item[attrExpiresAt] = num(rec.ExpiresAt.Unix())
	}
	if rec.UploadID != "" {
		item[attrUploadID] = str(rec.UploadID)
		item[attrPartSize] = num(rec.PartSize)
	}
	return item
}

// handDecode is the record of an item, as the hand-written mapping read it.
func handDecode(item map[string]types.AttributeValue) (docstore.Record, error) {
	d := handDecoder{item: item}
	var rec docstore.Record
	rec.ID = docstore.ID(d.str(attrID, true))
	rec.Tenant = docstore.Tenant(d.str(attrTenant, true))
	rec.Filename = d.str(attrFilename, false)
	rec.ContentType = d.str(attrContentType, false)
	rec.Size = d.num(attrSize, false)
	rec.SHA256 = d.str(attrSHA256, false)
	rec.Status = docstore.Status(d.str(attrStatus, true))
	rec.CreatedAt = d.time(attrCreatedAt)
	rec.Metadata = d.strMap(attrMetadata)
	rec.WrappedKey = d.bytes(attrWrappedKey)
	rec.KeyID = d.str(attrKeyID, false)
	rec.FormatVersion = int(d.num(attrFormatVersion, false))
	rec.SegmentSize = int(d.num(attrSegmentSize, false))
	rec.BlobID = docstore.ID(d.str(attrBlobID, false))
	rec.Failure = d.str(attrFailure, false)
	if _, ok := item[attrExpiresAt]; ok {
		rec.ExpiresAt = time.Unix(d.num(attrExpiresAt, true), 0).UTC()
	}
	rec.UploadID = d.str(attrUploadID, false)
	rec.PartSize = d.num(attrPartSize, false)
	if d.err != nil {
		return docstore.Record{}, d.err
	}
	return rec, nil
}

// handDecoder reads attributes, keeping the first error.
type handDecoder struct {
	item map[string]types.AttributeValue
	err  error
}

func (d *handDecoder) fail(name, format string, a ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("attribute %s: %s", name, fmt.Sprintf(format, a...))
	}
}

func (d *handDecoder) str(name string, required bool) string {
	switch v := d.item[name].(type) {
	case *types.AttributeValueMemberS:
		return v.Value
	case nil:
		if required {
			d.fail(name, "missing")
		}
	default:
		d.fail(name, "is %T, want S", v)
	}
	return ""
}

func (d *handDecoder) num(name string, required bool) int64 {
	switch v := d.item[name].(type) {
	case *types.AttributeValueMemberN:
		n, err := strconv.ParseInt(v.Value, 10, 64)
		if err != nil {
			d.fail(name, "%v", err)
		}
		return n
	case nil:
		if required {
			d.fail(name, "missing")
		}
	default:
		d.fail(name, "is %T, want N", v)
	}
	return 0
}

func (d *handDecoder) time(name string) time.Time {
	s := d.str(name, true)
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		d.fail(name, "%v", err)
	}
	return t.UTC()
}

func (d *handDecoder) bytes(name string) []byte {
	switch v := d.item[name].(type) {
	case *types.AttributeValueMemberB:
		return v.Value
	case nil:
	default:
		d.fail(name, "is %T, want B", v)
	}
	return nil
}

func (d *handDecoder) strMap(name string) map[string]string {
	switch v := d.item[name].(type) {
	case *types.AttributeValueMemberM:
		out := make(map[string]string, len(v.Value))
		for k, av := range v.Value {
			s, ok := av.(*types.AttributeValueMemberS)
			if !ok {
				d.fail(name, "value of %q is %T, want S", k, av)
				continue
			}
			out[k] = s.Value
		}
		return out
	case nil:
	default:
		d.fail(name, "is %T, want M", v)
	}
	return map[string]string{}
}
