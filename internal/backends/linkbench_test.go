package backends_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/imagodocs/imago/internal/apigw"
	"github.com/imagodocs/imago/internal/docstore"
	"github.com/imagodocs/imago/internal/linktoken"
)

// BenchmarkLinkHit1MiB compares a 1 MiB share link answered from a hot
// cache — the token checked, the use counted by a conditional UpdateItem on
// DynamoDB Local while the entry is read from Redis — with the owner's hit
// of the same document, both through the download function's Lambda path
// (h.Respond), in the same run; and the link's answer with the use's
// UpdateItem alone, which it cannot go below. scripts/bench prints both
// ratios.
func BenchmarkLinkHit1MiB(b *testing.B) {
	set := openAWS(b)
	ctx := context.Background()
	// The link's own cost: neither answer is audited here
	// (BenchmarkCacheHit1MiBAudited measures what a record costs).
	origin := set.Backends
	origin.Audit = nil
	svc := docstore.NewService(origin, docstore.Config{LinkKey: bytes.Repeat([]byte{3}, linktoken.SecretSize)}, nil)
	tenant := docstore.Tenant("bench-links-" + string(docstore.NewID()))
	doc := randomDoc(1 << 20)
	d, err := svc.Upload(ctx, docstore.UploadRequest{Tenant: tenant, Filename: "doc.pdf", ContentType: "application/pdf", Body: doc})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { svc.Delete(context.Background(), tenant, d.ID) })
	l, err := svc.CreateLink(ctx, tenant, d.ID, docstore.LinkRequest{})
	if err != nil {
		b.Fatal(err)
	}
	h := apigw.New(svc, apigw.Download, apigw.Options{})
	run := func(b *testing.B, payload []byte) {
		b.SetBytes(int64(len(doc)))
		for b.Loop() {
			out, err := h.Respond(ctx, payload)
			if err != nil || len(out.Bytes()) < len(doc) || !bytes.Contains(out.Bytes()[:200], []byte(`"statusCode":200`)) {
				b.Fatalf("invoke: %v %.200s", err, out.Bytes())
			}
			out.Close()
		}
	}
	b.Run("baseline=owner-hit", func(b *testing.B) { run(b, downloadEvent(d.ID, string(tenant))) })
	b.Run("link-hit", func(b *testing.B) { run(b, linkEvent(svc.LinkToken(l))) })
	// The use's conditional UpdateItem alone: what a link's answer cannot
	// go below, whatever it overlaps it with.
	b.Run("floor=use-update", func(b *testing.B) {
		for b.Loop() {
			if _, err := set.Links.UseLink(ctx, l.ID, d.ID, time.Now()); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// linkEvent is API Gateway's event of GET /links/{token}: no authorizer.
func linkEvent(token string) []byte {
	ev := events.APIGatewayV2HTTPRequest{Version: "2.0", RouteKey: "GET /links/{token}",
		RawPath: "/links/" + token, PathParameters: map[string]string{"token": token},
		Headers: map[string]string{"accept": "*/*", "user-agent": "bench"}}
	ev.RequestContext.HTTP.Method = "GET"
	payload, _ := json.Marshal(ev)
	return payload
}
