package main

import (
	"math"
	"math/bits"
	"time"
)

// The histogram's bucket layout, as in HdrHistogram: values below
// subCount are counted exactly; above that, each power of two is split
// into subHalf equal buckets, so a bucket is never wider than 1/64 (1.6%)
// of the values it holds.
const (
	subBits    = 7
	subCount   = 1 << subBits // 128
	subHalf    = subCount / 2 // 64
	maxShift   = 30           // the last bucket holds everything from 64<<30 µs (~19 hours) up
	numBuckets = subCount + maxShift*subHalf
)

// histogram counts latencies in microseconds in log-linear buckets. It is
// not safe for concurrent use: give every goroutine its own and merge.
type histogram struct {
	counts []uint64 // grown on demand up to numBuckets
	n      uint64
	sum    uint64
	min    uint64
	max    uint64
}

// bucketOf returns the index of the bucket that counts v.
func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(v) - subBits // >= 1: v>>shift is in [subHalf, subCount)
	if shift > maxShift {
		return numBuckets - 1
	}
	return subCount + (shift-1)*subHalf + int(v>>shift) - subHalf
}

// bucketRange returns the lowest and highest value that bucket i counts.
func bucketRange(i int) (lo, hi uint64) {
	if i < subCount {
		return uint64(i), uint64(i)
	}
	j := i - subCount
	shift := uint(j/subHalf + 1)
	lo = uint64(j%subHalf+subHalf) << shift
	return lo, lo + 1<<shift - 1
}

// record counts one latency, rounded down to the microsecond.
func (h *histogram) record(d time.Duration) {
	us := uint64(0)
	if d > 0 {
		us = uint64(d / time.Microsecond)
	}
	h.recordUS(us)
}

// recordUS counts one value in microseconds.
func (h *histogram) recordUS(v uint64) {
	i := bucketOf(v)
	if i >= len(h.counts) {
		h.grow(i + 1)
	}
	h.counts[i]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += v
}

func (h *histogram) grow(n int) {
	// Grow in steps of one power of two to avoid reallocating often.
	n = min(numBuckets, max(n+subHalf, 2*len(h.counts)))
	c := make([]uint64, n)
	copy(c, h.counts)
	h.counts = c
}

// merge adds o's counts to h.
func (h *histogram) merge(o *histogram) {
	if o.n == 0 {
		return
	}
	if len(o.counts) > len(h.counts) {
		h.grow(len(o.counts))
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// count returns the number of values recorded.
func (h *histogram) count() uint64 { return h.n }

// mean returns the exact mean in microseconds, 0 when empty.
func (h *histogram) mean() float64 {
	if h.n == 0 {
		return 0
	}
	return float64(h.sum) / float64(h.n)
}

// quantile returns the value at quantile q (0 < q <= 1): the highest value
// of the bucket holding the ceil(q*n)-th smallest value, clamped to the
// exact minimum and maximum (and the minimum itself for the first
// value). It errs high by at most one bucket width
// (1.6%), never low. An empty histogram returns 0.
func (h *histogram) quantile(q float64) uint64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	if rank == 1 {
		return h.min
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			_, hi := bucketRange(i)
			return min(max(hi, h.min), h.max)
		}
	}
	return h.max
}
