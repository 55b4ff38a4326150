package model_test

import (
	"context"
	"strconv"
	"testing"
)

// BenchmarkONNXScore is one model call of 1 to 64 customers: what a call
// costs, and what each further row adds.
func BenchmarkONNXScore(b *testing.B) {
	cat := defaultCatalog(b)
	m := committedModel(b, cat, 1)
	for _, n := range []int{1, 8, 32, 64} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			x := demoRows(b, cat, n)
			out := make([]float32, n*len(cat.ProductIDs()))
			b.ReportAllocs()
			for b.Loop() {
				sc, err := m.Score(context.Background(), x, n, out)
				if err != nil {
					b.Fatal(err)
				}
				sc.Release()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n)/1e3, "µs/row")
		})
	}
}
