package main

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketRangeHoldsItsValues(t *testing.T) {
	vals := []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 1023, 1024, 99_999, 1 << 20, 1<<36 - 1}
	for i := range 10_000 {
		vals = append(vals, uint64(i)*37)
	}
	for _, v := range vals {
		i := bucketOf(v)
		lo, hi := bucketRange(i)
		if v < lo || v > hi {
			t.Fatalf("bucketOf(%d) = %d, which holds [%d, %d]", v, i, lo, hi)
		}
		if v >= subCount && float64(hi-lo+1)/float64(lo) > 1.0/subHalf+1e-9 {
			t.Fatalf("bucket %d [%d, %d] is wider than 1/%d of its values", i, lo, hi, subHalf)
		}
	}
	// Buckets tile the line: each starts right after the previous one ends.
	for i := 1; i < numBuckets; i++ {
		_, prevHi := bucketRange(i - 1)
		lo, _ := bucketRange(i)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, bucket %d ends at %d", i, lo, i-1, prevHi)
		}
	}
	if got := bucketOf(1 << 62); got != numBuckets-1 {
		t.Errorf("bucketOf(huge) = %d, want the last bucket %d", got, numBuckets-1)
	}
}

func TestQuantile(t *testing.T) {
	tests := []struct {
		name   string
		values []uint64
		q      float64
		want   uint64
		tol    float64 // relative; the histogram errs high only
	}{
		{"empty", nil, 0.5, 0, 0},
		{"one value", []uint64{42}, 0.99, 42, 0},
		{"exact below 128", []uint64{10, 20, 30, 40}, 0.5, 20, 0},
		{"p100 is the max", []uint64{10, 20, 30, 5000}, 1, 5000, 0},
		{"small q is the min", []uint64{700, 800, 900}, 0.0001, 700, 0},
		{"p50 of 1..10000", seq(1, 10_000), 0.5, 5000, 1.0 / subHalf},
		{"p99 of 1..10000", seq(1, 10_000), 0.99, 9900, 1.0 / subHalf},
		{"p99.9 of 1..10000", seq(1, 10_000), 0.999, 9990, 1.0 / subHalf},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h histogram
			for _, v := range tt.values {
				h.recordUS(v)
			}
			got := h.quantile(tt.q)
			if got < tt.want || float64(got) > float64(tt.want)*(1+tt.tol) {
				t.Errorf("quantile(%g) = %d, want %d (+%.1f%%)", tt.q, got, tt.want, 100*tt.tol)
			}
		})
	}
}

// TestQuantileAgainstSort compares the histogram with the exact
// percentiles of a sorted slice of skewed, latency-like samples.
func TestQuantileAgainstSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h histogram
	parts := []*histogram{{}, {}, {}}
	var all []uint64
	for i := range 100_000 {
		v := uint64(200 + rng.ExpFloat64()*800)
		if i%1000 == 0 {
			v *= 50 // a tail
		}
		all = append(all, v)
		h.recordUS(v)
		parts[i%len(parts)].recordUS(v)
	}
	var merged histogram
	for _, p := range parts {
		merged.merge(p)
	}
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := all[int(q*float64(len(all)))-1]
		for name, h := range map[string]*histogram{"single": &h, "merged": &merged} {
			got := h.quantile(q)
			if got < exact || float64(got) > float64(exact)*(1+1.0/subHalf) {
				t.Errorf("%s: quantile(%g) = %d, exact %d", name, q, got, exact)
			}
		}
	}
	if merged.count() != h.count() || merged.min != all[0] || merged.max != all[len(all)-1] || merged.mean() != h.mean() {
		t.Errorf("merged n=%d min=%d max=%d mean=%g, want n=%d min=%d max=%d mean=%g",
			merged.count(), merged.min, merged.max, merged.mean(), h.count(), all[0], all[len(all)-1], h.mean())
	}
}

func TestRecordDuration(t *testing.T) {
	var h histogram
	h.record(1500 * time.Nanosecond) // rounds down to 1µs
	h.record(-time.Second)           // clock weirdness counts as 0
	if h.min != 0 || h.max != 1 || h.count() != 2 {
		t.Errorf("min=%d max=%d n=%d, want 0, 1, 2", h.min, h.max, h.count())
	}
}

func seq(from, to uint64) []uint64 {
	var s []uint64
	for v := from; v <= to; v++ {
		s = append(s, v)
	}
	return s
}
