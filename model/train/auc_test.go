package train

import (
	"math"
	"math/rand/v2"
	"testing"
)

// bruteForceAUC compares every positive with every negative; a tie counts
// one half.
func bruteForceAUC(scores, labels []float64) float64 {
	var sum, pairs float64
	for i := range scores {
		if labels[i] <= 0.5 {
			continue
		}
		for j := range scores {
			if labels[j] > 0.5 {
				continue
			}
			pairs++
			switch {
			case scores[i] > scores[j]:
				sum++
			case scores[i] == scores[j]:
				sum += 0.5
			}
		}
	}
	if pairs == 0 {
		return math.NaN()
	}
	return sum / pairs
}

func TestAUC(t *testing.T) {
	tests := []struct {
		name   string
		scores []float64
		labels []float64
		want   float64 // NaN: expect NaN
	}{
		{"perfect", []float64{0.1, 0.2, 0.8, 0.9}, []float64{0, 0, 1, 1}, 1},
		{"inverted", []float64{0.9, 0.8, 0.2, 0.1}, []float64{0, 0, 1, 1}, 0},
		{"all tied", []float64{0.5, 0.5, 0.5, 0.5}, []float64{0, 1, 0, 1}, 0.5},
		{"one tie across classes", []float64{0.1, 0.5, 0.5, 0.9}, []float64{0, 0, 1, 1}, 0.875},
		{"textbook", []float64{0.1, 0.4, 0.35, 0.8}, []float64{0, 0, 1, 1}, 0.75},
		{"negative scores", []float64{-3, -1, -2, 5}, []float64{0, 1, 0, 1}, 1},
		{"no positives", []float64{0.1, 0.2}, []float64{0, 0}, math.NaN()},
		{"no negatives", []float64{0.1, 0.2}, []float64{1, 1}, math.NaN()},
		{"empty", nil, nil, math.NaN()},
		{"NaN score", []float64{0.1, math.NaN()}, []float64{0, 1}, math.NaN()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := AUC(tc.scores, tc.labels)
			if math.IsNaN(tc.want) {
				if !math.IsNaN(got) {
					t.Errorf("AUC = %v, want NaN", got)
				}
				return
			}
			if math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("AUC = %v, want %v", got, tc.want)
			}
			if bf := bruteForceAUC(tc.scores, tc.labels); math.Abs(bf-tc.want) > 1e-12 {
				t.Errorf("brute force = %v, want %v (bad test case)", bf, tc.want)
			}
		})
	}
}

func TestAUCMatchesBruteForce(t *testing.T) {
	tests := []struct {
		name   string
		n      int
		levels int     // scores are rounded to this many distinct values (0: continuous)
		rate   float64 // share of positives
	}{
		{"continuous", 1500, 0, 0.3},
		{"heavy ties", 1500, 5, 0.4},
		{"binary scores", 800, 2, 0.5},
		{"rare positives with ties", 2000, 50, 0.02},
		{"single positive", 300, 10, 0},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 99))
			scores := make([]float64, tc.n)
			labels := make([]float64, tc.n)
			for k := range tc.n {
				if rng.Float64() < tc.rate {
					labels[k] = 1
				}
				// Informative but noisy scores.
				s := labels[k] + rng.NormFloat64()
				if tc.levels > 0 {
					s = math.Round(s * float64(tc.levels) / 4)
				}
				scores[k] = s
			}
			if tc.rate == 0 {
				labels[rng.IntN(tc.n)] = 1
			}
			got, want := AUC(scores, labels), bruteForceAUC(scores, labels)
			if math.Abs(got-want) > 1e-12 {
				t.Errorf("AUC = %.15f, brute force = %.15f", got, want)
			}
		})
	}
}

func TestAUCPanicsOnLengthMismatch(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("AUC did not panic on mismatched lengths")
		}
	}()
	AUC([]float64{1, 2}, []float64{1})
}
