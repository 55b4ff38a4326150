package train

import (
	"math"

	"gonum.org/v1/gonum/floats"
)

// AUC returns the area under the ROC curve of scores against binary labels,
// computed as the normalized Mann–Whitney U statistic: the probability that
// a randomly chosen positive scores higher than a randomly chosen negative,
// with ties counted as one half (tied scores share their average rank).
//
// A label greater than 0.5 is positive, any other label negative. AUC returns
// NaN if either class is empty or any score or label is NaN. It runs in
// O(n log n) and panics if the slices differ in length.
func AUC(scores []float64, labels []float64) float64 {
	if len(scores) != len(labels) {
		panic("train: AUC: len(scores) != len(labels)")
	}
	n := len(scores)
	var nPos int
	for i := range n {
		if math.IsNaN(scores[i]) || math.IsNaN(labels[i]) {
			return math.NaN()
		}
		if labels[i] > 0.5 {
			nPos++
		}
	}
	nNeg := n - nPos
	if nPos == 0 || nNeg == 0 {
		return math.NaN()
	}

	sorted := make([]float64, n)
	copy(sorted, scores)
	order := make([]int, n)
	floats.Argsort(sorted, order)

	// Sum of the (1-based, tie-averaged) ranks of the positives.
	var rankSum float64
	for lo := 0; lo < n; {
		hi := lo + 1
		for hi < n && sorted[hi] == sorted[lo] {
			hi++
		}
		avgRank := float64(lo+1+hi) / 2 // mean of ranks lo+1 .. hi
		for _, idx := range order[lo:hi] {
			if labels[idx] > 0.5 {
				rankSum += avgRank
			}
		}
		lo = hi
	}
	p, q := float64(nPos), float64(nNeg)
	u := rankSum - p*(p+1)/2
	return u / (p * q)
}
