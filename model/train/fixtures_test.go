package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// validExport returns a small hand-written export (F=4, P=3) that passes
// Validate. Every call returns fresh slices, so tests may mutate it.
func validExport() *Export {
	return &Export{
		FeatureNames: []string{"balance_eur", "age_years", "txn_count_90d", "has_card"},
		ProductIDs:   []string{"savings", "credit_card", "mortgage"},
		Version:      "propensity-2026.11.27-1",
		TrainedAt:    time.Date(2026, 11, 27, 3, 4, 5, 0, time.UTC),
		Meta:         map[string]string{"nbp.catalog_version": "cat-42"},
		ImputeValue:  []float32{1500, 41, 3, 0},
		LogMask:      []bool{true, false, true, false},
		Mean:         []float32{7.2, 43.5, 1.3, 0.4},
		Scale:        []float32{0.5, 1.0 / 15, 1.1, 0},
		Weights: []float32{
			0.8, -0.2, 1.1,
			-0.3, 0.05, 0.4,
			0.25, 0.9, -0.6,
			1.5, -1.5, 0.7,
		},
		Bias: []float32{-1.2, -2.5, -3.1},
	}
}

// randomRawRows returns n×f raw feature values of the kinds seen in
// production: missing values, negative amounts, zeros, small counts and
// large money-like values up to ±1e6.
func randomRawRows(rng *rand.Rand, n, f int) []float32 {
	x := make([]float32, n*f)
	for i := range x {
		switch r := rng.Float64(); {
		case r < 0.15:
			x[i] = float32(math.NaN())
		case r < 0.25:
			x[i] = -float32(rng.ExpFloat64() * 500) // overdrafts, refunds
		case r < 0.30:
			x[i] = 0
		case r < 0.35:
			x[i] = float32(1e6 * (1 - 2*rng.Float64()*0.01)) // ~1e6 balances
		case r < 0.38:
			x[i] = -1e6
		case r < 0.70:
			x[i] = float32(rng.IntN(20)) // counts
		default:
			x[i] = float32(math.Exp(rng.NormFloat64()*2 + 5)) // log-normal money
		}
	}
	return x
}

// edgeRows returns rows that exercise every branch of the preprocessing at
// once: all missing, all zero, large positive and large negative values.
func edgeRows(f int) []float32 {
	vals := []float32{float32(math.NaN()), 0, 1e6, -1e6, -0.5, 1e-8}
	x := make([]float32, 0, len(vals)*f)
	for _, v := range vals {
		for range f {
			x = append(x, v)
		}
	}
	return x
}

// randomExport returns an export with random parameters. Every third column
// is log-transformed and the last column is constant (Scale 0).
func randomExport(rng *rand.Rand, f, p int) *Export {
	e := &Export{
		Version:     "propensity-test-random",
		TrainedAt:   time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600)),
		ImputeValue: make([]float32, f),
		LogMask:     make([]bool, f),
		Mean:        make([]float32, f),
		Scale:       make([]float32, f),
		Weights:     make([]float32, f*p),
		Bias:        make([]float32, p),
	}
	for j := range f {
		e.FeatureNames = append(e.FeatureNames, fmt.Sprintf("feature_%02d", j))
		e.LogMask[j] = j%3 == 0
		e.ImputeValue[j] = float32(rng.NormFloat64() * 10)
		if e.LogMask[j] {
			e.Mean[j] = float32(3 + rng.Float64()*3)
			e.Scale[j] = float32(0.2 + rng.Float64())
		} else {
			e.Mean[j] = float32(rng.NormFloat64() * 100)
			e.Scale[j] = float32(1 / (10 + rng.Float64()*1000))
		}
	}
	e.Scale[f-1] = 0
	for k := range p {
		e.ProductIDs = append(e.ProductIDs, fmt.Sprintf("product-%d", k))
		e.Bias[k] = float32(rng.NormFloat64())
	}
	for i := range e.Weights {
		e.Weights[i] = float32(rng.NormFloat64())
	}
	return e
}

// pipelineExport runs the whole offline pipeline on synthetic data:
// NewStandardizer, Export.Transform and one FitLogistic per product.
func pipelineExport(t *testing.T, rng *rand.Rand) *Export {
	t.Helper()
	const n = 3000
	names := []string{"balance_eur", "monthly_income_eur", "age_years", "txn_count_90d", "days_since_login", "score_delta"}
	logMask := []bool{true, true, false, true, false, false}
	products := []string{"savings", "credit_card", "mortgage", "insurance"}
	f, p := len(names), len(products)

	x := randomRawRows(rng, n, f)
	impute, mean, scale := NewStandardizer(x, n, f, logMask)
	e := &Export{
		FeatureNames: names,
		ProductIDs:   products,
		Version:      "propensity-test-pipeline",
		TrainedAt:    time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC),
		Meta:         map[string]string{"nbp.catalog_version": "2026-11-26", "nbp.training_rows": fmt.Sprint(n)},
		ImputeValue:  impute,
		LogMask:      logMask,
		Mean:         mean,
		Scale:        scale,
		Weights:      make([]float32, f*p),
		Bias:         make([]float32, p),
	}

	z32 := make([]float32, f)
	z := make([]float64, n*f)
	for i := range n {
		e.Transform(x[i*f:(i+1)*f], z32)
		for j, v := range z32 {
			z[i*f+j] = float64(v)
		}
	}
	y := make([]float64, n)
	for k := range p {
		trueW := make([]float64, f)
		for j := range trueW {
			trueW[j] = rng.NormFloat64()
		}
		for i := range n {
			s := -1.0
			for j, wj := range trueW {
				s += wj * z[i*f+j]
			}
			y[i] = 0
			if rng.Float64() < sigmoid(s) {
				y[i] = 1
			}
		}
		w, b, err := FitLogistic(z, n, f, y, FitOptions{})
		if err != nil {
			t.Fatalf("FitLogistic(product %s): %v", products[k], err)
		}
		for j, wj := range w {
			e.Weights[j*p+k] = float32(wj)
		}
		e.Bias[k] = float32(b)
	}
	if err := e.Validate(); err != nil {
		t.Fatalf("pipeline export is invalid: %v", err)
	}
	return e
}

// randForTest returns a deterministic random source.
func randForTest() *rand.Rand {
	return rand.New(rand.NewPCG(2026, 11))
}
