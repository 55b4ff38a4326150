package service

import (
	"fmt"
	"time"
)

// ControlShareOf is the share of n generated ids in the control group at t.
func ControlShareOf(p *Pipeline, n int, t time.Time) float64 {
	in := 0
	for i := 0; i < n; i++ {
		if p.inControl(fmt.Sprintf("X%09d", i), t) {
			in++
		}
	}
	return float64(in) / float64(n)
}

// ControlOverlap is the share of a's control group also in b's, over n ids.
func ControlOverlap(p *Pipeline, n int, a, b time.Time) float64 {
	inA, both := 0, 0
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("X%09d", i)
		if p.inControl(id, a) {
			inA++
			if p.inControl(id, b) {
				both++
			}
		}
	}
	return float64(both) / float64(max(inA, 1))
}

// Spearman and TopOverlap expose the shadow's measures to the tests.
var (
	Spearman   = spearman
	TopOverlap = topOverlap
)
