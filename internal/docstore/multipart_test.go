package docstore

import "testing"

func TestPlanParts(t *testing.T) {
	const MiB, GiB, TiB = int64(1 << 20), int64(1 << 30), int64(1 << 40)
	for _, tc := range []struct {
		size, requested int64
		partSize        int64
		count           int
	}{
		{1, 0, 16 * MiB, 1},
		{64*MiB + 1, 0, 16 * MiB, 5},                 // just over the default threshold: a short last part
		{10_000 * 16 * MiB, 0, 16 * MiB, 10_000},     // exactly 10 000 default parts
		{10_000*16*MiB + 1, 0, 17 * MiB, 9412},       // one byte more: the part size grows by a MiB
		{5 * TiB, 0, 525 * MiB, 9987},                // S3's largest object
		{6 * MiB, 5 * MiB, 5 * MiB, 2},               // the smallest part size, a short last part
		{10_000 * 5 * MiB, 5 * MiB, 5 * MiB, 10_000}, // 10 000 minimum parts
		{3 * GiB, 5 * GiB, 5 * GiB, 1},               // the largest part size
	} {
		ps, n, err := PlanParts(tc.size, tc.requested)
		if err != nil || ps != tc.partSize || n != tc.count {
			t.Errorf("PlanParts(%d, %d) = %d, %d, %v; want %d, %d", tc.size, tc.requested, ps, n, err, tc.partSize, tc.count)
			continue
		}
		// Every part but the last is exactly ps; the last holds the rest.
		last := Record{Document: Document{Descriptor: Descriptor{Size: tc.size}}, PartSize: ps}
		if got := last.partCount(); got != n {
			t.Errorf("size %d part size %d: partCount %d, want %d", tc.size, ps, got, n)
		}
		if l := last.partSizeOf(n); l <= 0 || l > ps || int64(n-1)*ps+l != tc.size {
			t.Errorf("size %d part size %d: the last part is %d bytes", tc.size, ps, l)
		}
		if n > 1 && last.partSizeOf(1) != ps {
			t.Errorf("size %d: part 1 is %d bytes, want %d", tc.size, last.partSizeOf(1), ps)
		}
	}
	for _, tc := range []struct {
		size, requested int64
		kind            Kind
	}{
		{0, 0, KindInvalid},
		{-1, 0, KindInvalid},
		{5*TiB + 1, 0, KindTooLarge},
		{100 * MiB, 5*MiB - 1, KindInvalid},
		{100 * MiB, 5*GiB + 1, KindInvalid},
		{10_000*5*MiB + 1, 5 * MiB, KindInvalid}, // 10 001 parts
	} {
		if _, _, err := PlanParts(tc.size, tc.requested); KindOf(err) != tc.kind {
			t.Errorf("PlanParts(%d, %d): %v, want %v", tc.size, tc.requested, err, tc.kind)
		}
	}
}
