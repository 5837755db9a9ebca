package s3store

// Options only the tests set: small parts, so that a test exercises
// multipart uploads without moving 64 MiB, and fewer parts in flight.

// WithPartSize sets the part size of multipart uploads, which is also the
// largest blob sent in one PutObject. Sizes under 5 MiB are raised to it.
// A blob so large that it would need more than 10,000 parts uses larger
// parts.
func WithPartSize(n int64) Option {
	return func(s *Store) { s.partSize = max(n, MinPartSize) }
}

// WithConcurrency sets how many parts of one upload may be in memory, read
// or in flight, at once (at least 1). Memory per Put is about
// concurrency × part size.
func WithConcurrency(n int) Option {
	return func(s *Store) { s.concurrency = max(n, 1) }
}
