// Command hello is the baseline of the Lambda benchmarks: the smallest Go
// function that answers an API Gateway v2 event, built with the same flags
// as Imago's bootstraps, so that a ratio against it measures only what
// Imago adds.
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
)

func main() {
	lambda.Start(func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		return events.APIGatewayV2HTTPResponse{StatusCode: 200,
			Headers: map[string]string{"content-type": "application/json"},
			Body:    `{"status":"ok"}`}, nil
	})
}
