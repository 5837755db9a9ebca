package localfront

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/uuid"

	"github.com/imagodocs/imago/internal/apigw"
)

// event builds the payload 2.0 event API Gateway would send.
func (f *Front) event(r *http.Request, route apigw.Route, params map[string]string, q url.Values, body []byte) *events.APIGatewayV2HTTPRequest {
	now := time.Now()
	headers := make(map[string]string, len(r.Header)+1)
	for k, v := range r.Header {
		headers[strings.ToLower(k)] = strings.Join(v, ",")
	}
	if r.Host != "" {
		headers["host"] = r.Host
	}
	// As API Gateway says how it was reached (https, always): the handlers
	// build absolute URLs (a share link's) from it.
	headers["x-forwarded-proto"] = "http"
	if r.TLS != nil {
		headers["x-forwarded-proto"] = "https"
	}
	query := map[string]string{}
	for k, v := range q {
		query[k] = strings.Join(v, ",")
	}
	ev := &events.APIGatewayV2HTTPRequest{
		Version:               "2.0",
		RouteKey:              route.Key(),
		RawPath:               r.URL.EscapedPath(),
		RawQueryString:        r.URL.RawQuery,
		Headers:               headers,
		QueryStringParameters: query,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			AccountID:  "000000000000",
			APIID:      "local",
			DomainName: r.Host,
			RequestID:  uuid.NewString(),
			RouteKey:   route.Key(),
			Stage:      "$default",
			Time:       now.UTC().Format("02/Jan/2006:15:04:05 -0700"),
			TimeEpoch:  now.UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method: r.Method, Path: r.URL.Path, Protocol: r.Proto,
				SourceIP: sourceIP(r.RemoteAddr), UserAgent: r.UserAgent(),
			},
		},
	}
	if cookies := r.Header.Values("Cookie"); len(cookies) > 0 {
		for _, c := range cookies {
			ev.Cookies = append(ev.Cookies, strings.Split(c, "; ")...)
		}
		delete(ev.Headers, "cookie")
	}
	if len(params) > 0 {
		ev.PathParameters = params
	}
	if len(body) > 0 {
		ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(body), true
	}
	if tenant, ok := f.tenant(r); ok {
		ev.RequestContext.Authorizer = &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
			JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{
				Claims: map[string]string{f.tenantClaim: tenant},
			},
		}
	}
	return ev
}

func sourceIP(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return remote
	}
	return host
}

// functionResponse is a function's payload 2.0 answer, as
// events.APIGatewayV2HTTPResponse but for the body, which stays the JSON
// string it arrived as: a document's base64 is decoded straight into the
// connection, never held as a Go string and a decoded copy besides (four
// 4 MiB Range answers at once would otherwise cost ~100 MiB).
type functionResponse struct {
	StatusCode        int                 `json:"statusCode"`
	Headers           map[string]string   `json:"headers"`
	MultiValueHeaders map[string][]string `json:"multiValueHeaders"`
	Cookies           []string            `json:"cookies"`
	Body              rawString           `json:"body"`
	IsBase64Encoded   bool                `json:"isBase64Encoded"`
}

// rawString is a JSON string value, undecoded: the bytes between its quotes
// within the function's output, which json.Unmarshal hands over in place
// and which stays alive (and unmodified) until the answer is written.
type rawString []byte

func (r *rawString) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*r = nil
		return nil
	}
	if len(b) < 2 || b[0] != '"' {
		return errors.New("body is not a JSON string")
	}
	*r = b
	return nil
}

// text returns the string's value, its escapes decoded.
func (r rawString) text() ([]byte, error) {
	if len(r) == 0 {
		return nil, nil
	}
	if !bytes.ContainsRune(r, '\\') {
		return r[1 : len(r)-1], nil
	}
	var s string
	if err := json.Unmarshal(r, &s); err != nil {
		return nil, err
	}
	return []byte(s), nil
}

// base64DecodedLen is the exact length of padded standard base64 b.
func base64DecodedLen(b []byte) (int, error) {
	if len(b)%4 != 0 {
		return 0, errors.New("base64 length is not a multiple of 4")
	}
	n := len(b) / 4 * 3
	if len(b) > 0 && b[len(b)-1] == '=' {
		n--
		if b[len(b)-2] == '=' {
			n--
		}
	}
	return n, nil
}
