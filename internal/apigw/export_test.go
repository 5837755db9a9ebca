package apigw

// IsS3Event is isS3Event, for the tests of package apigw_test.
var IsS3Event = isS3Event
