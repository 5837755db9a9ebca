package dynamostore

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/imagodocs/imago/internal/docstore"
)

// DecodeStreamImage reads an item image of the table's stream (a record's
// OldImage or NewImage, in DynamoDB's JSON: {"id":{"S":"…"},…}) as the
// stream delivers it to Lambda. ok is false for an item that is not a
// document's (a share link's).
func DecodeStreamImage(image json.RawMessage) (rec docstore.Record, ok bool, err error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(image, &raw); err != nil {
		return docstore.Record{}, false, fmt.Errorf("stream image: %w", err)
	}
	item := make(map[string]types.AttributeValue, len(raw))
	for name, v := range raw {
		av, err := attributeValue(v)
		if err != nil {
			return docstore.Record{}, false, fmt.Errorf("stream image attribute %s: %w", name, err)
		}
		item[name] = av
	}
	if id, _ := item[attrID].(*types.AttributeValueMemberS); id == nil || strings.HasPrefix(id.Value, linkKeyPrefix) {
		return docstore.Record{}, false, nil
	}
	rec, err = decode(item)
	if err != nil {
		return docstore.Record{}, false, fmt.Errorf("stream image: %w", err)
	}
	return rec, true, nil
}

// attributeValue reads one attribute value in DynamoDB's JSON.
func attributeValue(v json.RawMessage) (types.AttributeValue, error) {
	var typed map[string]json.RawMessage
	if err := json.Unmarshal(v, &typed); err != nil || len(typed) != 1 {
		return nil, fmt.Errorf("not one typed value: %s", v)
	}
	for kind, body := range typed {
		switch kind {
		case "S":
			var s string
			err := json.Unmarshal(body, &s)
			return &types.AttributeValueMemberS{Value: s}, err
		case "N":
			var n string
			err := json.Unmarshal(body, &n)
			return &types.AttributeValueMemberN{Value: n}, err
		case "B":
			var s string
			if err := json.Unmarshal(body, &s); err != nil {
				return nil, err
			}
			b, err := base64.StdEncoding.DecodeString(s)
			return &types.AttributeValueMemberB{Value: b}, err
		case "BOOL":
			var b bool
			err := json.Unmarshal(body, &b)
			return &types.AttributeValueMemberBOOL{Value: b}, err
		case "NULL":
			return &types.AttributeValueMemberNULL{Value: true}, nil
		case "SS":
			var ss []string
			err := json.Unmarshal(body, &ss)
			return &types.AttributeValueMemberSS{Value: ss}, err
		case "NS":
			var ns []string
			err := json.Unmarshal(body, &ns)
			return &types.AttributeValueMemberNS{Value: ns}, err
		case "M":
			var m map[string]json.RawMessage
			if err := json.Unmarshal(body, &m); err != nil {
				return nil, err
			}
			out := make(map[string]types.AttributeValue, len(m))
			for k, e := range m {
				av, err := attributeValue(e)
				if err != nil {
					return nil, err
				}
				out[k] = av
			}
			return &types.AttributeValueMemberM{Value: out}, nil
		case "L":
			var l []json.RawMessage
			if err := json.Unmarshal(body, &l); err != nil {
				return nil, err
			}
			out := make([]types.AttributeValue, len(l))
			for i, e := range l {
				av, err := attributeValue(e)
				if err != nil {
					return nil, err
				}
				out[i] = av
			}
			return &types.AttributeValueMemberL{Value: out}, nil
		}
		return nil, fmt.Errorf("unknown type %q", kind)
	}
	return nil, nil
}
