package testenv

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	streamtypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
)

// StreamTail reads what DynamoDB Local's stream of a table records from
// the moment it is made on: the records its own writes produce, as a
// deployment's Lambda event source mapping would read them.
type StreamTail struct {
	client    *dynamodbstreams.Client
	iterators []*string
	// read are the records read but not yet found, in order.
	read []streamtypes.Record
}

// TailStream starts reading the stream of table (which must have one: the
// project's provisioning enables it) at its latest records.
func TailStream(tb testing.TB, table string) *StreamTail {
	tb.Helper()
	cfg := AWSConfig(tb, "DYNAMODB")
	ctx := context.Background()
	desc, err := dynamodb.NewFromConfig(cfg).DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &table})
	if err != nil {
		tb.Fatal(err)
	}
	if desc.Table.LatestStreamArn == nil {
		tb.Fatalf("table %s has no stream (scripts/testenv up enables it)", table)
	}
	// The streams API is DynamoDB's own endpoint locally.
	client := dynamodbstreams.NewFromConfig(cfg, func(o *dynamodbstreams.Options) {
		o.BaseEndpoint = aws.String(Require(tb, "AWS_ENDPOINT_URL_DYNAMODB")["AWS_ENDPOINT_URL_DYNAMODB"])
	})
	ds, err := client.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: desc.Table.LatestStreamArn})
	if err != nil {
		tb.Fatal(err)
	}
	st := &StreamTail{client: client}
	for _, sh := range ds.StreamDescription.Shards {
		if sh.SequenceNumberRange != nil && sh.SequenceNumberRange.EndingSequenceNumber != nil {
			continue // closed
		}
		it, err := client.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{
			StreamArn: desc.Table.LatestStreamArn, ShardId: sh.ShardId, ShardIteratorType: streamtypes.ShardIteratorTypeLatest,
		})
		if err != nil {
			tb.Fatal(err)
		}
		// DynamoDB Local places a LATEST iterator when it is first read:
		// read it now, so that it holds what comes after this call.
		out, err := client.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: it.ShardIterator})
		if err != nil {
			tb.Fatal(err)
		}
		st.iterators = append(st.iterators, out.NextShardIterator)
	}
	return st
}

// Find returns the first record, in the stream's order, that match
// accepts, reading the stream until one appears (at most 30 s). Records
// read and not found stay for later Finds.
func (st *StreamTail) Find(tb testing.TB, match func(streamtypes.Record) bool) streamtypes.Record {
	tb.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(30 * time.Second); ; {
		for i, r := range st.read {
			if match(r) {
				st.read = append(st.read[:i:i], st.read[i+1:]...)
				return r
			}
		}
		if time.Now().After(deadline) {
			tb.Fatal("no matching stream record within 30s")
		}
		got := 0
		for i, it := range st.iterators {
			if it == nil {
				continue
			}
			out, err := st.client.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: it})
			if err != nil {
				tb.Fatal(err)
			}
			st.iterators[i] = out.NextShardIterator
			st.read = append(st.read, out.Records...)
			got += len(out.Records)
		}
		if got == 0 {
			time.Sleep(50 * time.Millisecond) // polling the stream, as a Lambda event source mapping does
		}
	}
}

// LambdaStreamEvent is the event Lambda delivers for records, each as
// DynamoDB Local recorded it; asTTL marks them deleted by DynamoDB's TTL
// (userIdentity of the dynamodb.amazonaws.com service), as AWS marks its
// TTL deletions — DynamoDB Local runs no TTL, so a test deletes the item
// itself and says so here.
func LambdaStreamEvent(tb testing.TB, records []streamtypes.Record, asTTL bool) []byte {
	tb.Helper()
	var out []map[string]any
	for _, r := range records {
		rec := map[string]any{
			"eventID": aws.ToString(r.EventID), "eventName": string(r.EventName), "eventVersion": "1.1",
			"eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
			"eventSourceARN": "arn:aws:dynamodb:us-east-1:000000000000:table/local/stream/local",
		}
		d := map[string]any{"StreamViewType": string(r.Dynamodb.StreamViewType), "SequenceNumber": aws.ToString(r.Dynamodb.SequenceNumber)}
		if r.Dynamodb.SizeBytes != nil {
			d["SizeBytes"] = *r.Dynamodb.SizeBytes
		}
		if r.Dynamodb.ApproximateCreationDateTime != nil {
			d["ApproximateCreationDateTime"] = r.Dynamodb.ApproximateCreationDateTime.Unix()
		}
		for name, img := range map[string]map[string]streamtypes.AttributeValue{"Keys": r.Dynamodb.Keys, "OldImage": r.Dynamodb.OldImage, "NewImage": r.Dynamodb.NewImage} {
			if img != nil {
				d[name] = imageJSON(tb, img)
			}
		}
		rec["dynamodb"] = d
		if asTTL {
			rec["userIdentity"] = map[string]any{"type": "Service", "principalId": "dynamodb.amazonaws.com"}
		}
		out = append(out, rec)
	}
	b, err := json.Marshal(map[string]any{"Records": out})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// imageJSON is an item image in DynamoDB's JSON, as Lambda delivers it.
func imageJSON(tb testing.TB, img map[string]streamtypes.AttributeValue) map[string]any {
	out := make(map[string]any, len(img))
	for k, v := range img {
		out[k] = valueJSON(tb, v)
	}
	return out
}

func valueJSON(tb testing.TB, v streamtypes.AttributeValue) map[string]any {
	switch v := v.(type) {
	case *streamtypes.AttributeValueMemberS:
		return map[string]any{"S": v.Value}
	case *streamtypes.AttributeValueMemberN:
		return map[string]any{"N": v.Value}
	case *streamtypes.AttributeValueMemberB:
		return map[string]any{"B": base64.StdEncoding.EncodeToString(v.Value)}
	case *streamtypes.AttributeValueMemberBOOL:
		return map[string]any{"BOOL": v.Value}
	case *streamtypes.AttributeValueMemberNULL:
		return map[string]any{"NULL": true}
	case *streamtypes.AttributeValueMemberSS:
		return map[string]any{"SS": v.Value}
	case *streamtypes.AttributeValueMemberNS:
		return map[string]any{"NS": v.Value}
	case *streamtypes.AttributeValueMemberM:
		return map[string]any{"M": imageJSON(tb, v.Value)}
	case *streamtypes.AttributeValueMemberL:
		l := make([]any, len(v.Value))
		for i, e := range v.Value {
			l[i] = valueJSON(tb, e)
		}
		return map[string]any{"L": l}
	}
	tb.Fatalf("stream attribute value of type %T", v)
	return nil
}

// RecordKey is the id key of a stream record ("" when it has none).
func RecordKey(r streamtypes.Record) string {
	if s, ok := r.Dynamodb.Keys["id"].(*streamtypes.AttributeValueMemberS); ok {
		return s.Value
	}
	return ""
}
