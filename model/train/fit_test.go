package train

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/diff/fd"
	"gonum.org/v1/gonum/floats"
)

// syntheticLogistic draws n standard-normal rows and Bernoulli labels from
// the logistic model with weights w and bias b.
func syntheticLogistic(rng *rand.Rand, n int, w []float64, b float64) (z, y []float64) {
	f := len(w)
	z = make([]float64, n*f)
	y = make([]float64, n)
	for i := range n {
		row := z[i*f : (i+1)*f]
		for j := range row {
			row[j] = rng.NormFloat64()
		}
		if rng.Float64() < sigmoid(floats.Dot(row, w)+b) {
			y[i] = 1
		}
	}
	return z, y
}

func TestFitLogisticRecoversCoefficients(t *testing.T) {
	// A negligible penalty recovers the generating coefficients up to
	// sampling noise; the default penalty shrinks them by a few percent.
	const n = 20000
	tests := []struct {
		name string
		w    []float64
		b    float64
		l2   float64
		tol  float64
	}{
		{"balanced", []float64{1.5, -2, 0.5, 0, 1}, -0.5, 1e-9, 0.1},
		{"rare-positives", []float64{1, -1, 0.5, 0, 0.8}, -3, 1e-9, 0.15},
		{"weak-signal", []float64{0.2, -0.1, 0.05, 0, 0.3}, 0.3, 1e-9, 0.06},
		{"balanced-default-L2", []float64{1.5, -2, 0.5, 0, 1}, -0.5, 0, 0.15},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := len(tc.w)
			z, y := syntheticLogistic(rand.New(rand.NewPCG(uint64(i), 42)), n, tc.w, tc.b)

			w, b, err := FitLogistic(z, n, f, y, FitOptions{L2: tc.l2})
			if err != nil {
				t.Fatalf("FitLogistic: %v", err)
			}
			for j := range f {
				if math.Abs(w[j]-tc.w[j]) > tc.tol {
					t.Errorf("w[%d] = %.4f, want %.4f ± %g", j, w[j], tc.w[j], tc.tol)
				}
			}
			if math.Abs(b-tc.b) > tc.tol {
				t.Errorf("b = %.4f, want %.4f ± %g", b, tc.b, tc.tol)
			}

			// The fit minimizes the training objective, so it must not be
			// worse there than the coefficients that generated the data,
			// and the gradient must vanish.
			l2 := tc.l2
			if l2 == 0 {
				l2 = DefaultL2
			}
			obj := newLogisticObjective(z, n, f, y, l2)
			fit := append(append([]float64{}, w...), b)
			truth := append(append([]float64{}, tc.w...), tc.b)
			if fv, tv := obj.value(fit), obj.value(truth); fv > tv+1e-12 {
				t.Errorf("objective at fit = %.10f > objective at truth = %.10f", fv, tv)
			}
			if g := floats.Norm(obj.gradient(fit), math.Inf(1)); g > 1e-6 {
				t.Errorf("gradient at fit has max-norm %g, want ~0", g)
			}

			// Ranking quality: the fitted scores rank as well as the true ones.
			fitted, ideal := make([]float64, n), make([]float64, n)
			for r := range n {
				row := z[r*f : (r+1)*f]
				fitted[r] = floats.Dot(row, w) + b
				ideal[r] = floats.Dot(row, tc.w) + tc.b
			}
			if got, want := AUC(fitted, y), AUC(ideal, y); got < want-0.005 {
				t.Errorf("AUC of fit = %.4f, of true model %.4f", got, want)
			}
		})
	}
}

func TestFitLogisticRegularization(t *testing.T) {
	trueW := []float64{1.5, -2, 0.5}
	const n = 5000
	z, y := syntheticLogistic(rand.New(rand.NewPCG(7, 7)), n, trueW, 0)

	norm := func(l2 float64) float64 {
		w, _, err := FitLogistic(z, n, len(trueW), y, FitOptions{L2: l2})
		if err != nil {
			t.Fatalf("FitLogistic(L2=%g): %v", l2, err)
		}
		return floats.Norm(w, 2)
	}
	weak, strong := norm(1e-6), norm(10)
	if !(strong < 0.2*weak) {
		t.Errorf("|w| with L2=10 is %.4f, with L2=1e-6 %.4f; want strong shrinkage", strong, weak)
	}
}

func TestFitLogisticSeparableData(t *testing.T) {
	// Perfectly separable labels have no finite unpenalised optimum; the L2
	// term must keep the solution finite and the loss evaluation stable.
	const n, f = 2000, 2
	rng := rand.New(rand.NewPCG(11, 12))
	z := make([]float64, n*f)
	y := make([]float64, n)
	for i := range n {
		z[i*f] = rng.NormFloat64()
		z[i*f+1] = rng.NormFloat64()
		if z[i*f] > 0 {
			y[i] = 1
		}
	}
	w, b, err := FitLogistic(z, n, f, y, FitOptions{})
	if err != nil {
		t.Fatalf("FitLogistic: %v", err)
	}
	if w[0] < 5 || math.Abs(w[1]) > 1 || math.Abs(b) > 2 {
		t.Errorf("w = %v, b = %v; want a large positive w[0] and small w[1], b", w, b)
	}
	scores := make([]float64, n)
	for i := range n {
		scores[i] = floats.Dot(z[i*f:(i+1)*f], w) + b
	}
	if auc := AUC(scores, y); auc < 0.999 {
		t.Errorf("AUC on separable data = %v, want ~1", auc)
	}
}

func TestFitLogisticErrors(t *testing.T) {
	z := []float64{0, 1, 2, 3}
	y := []float64{0, 1}
	tests := []struct {
		name    string
		z       []float64
		n, f    int
		y       []float64
		opts    FitOptions
		wantErr error // nil: any error
	}{
		{name: "zero rows", z: nil, n: 0, f: 2, y: nil},
		{name: "zero features", z: nil, n: 2, f: 0, y: y},
		{name: "z length", z: z[:3], n: 2, f: 2, y: y},
		{name: "y length", z: z, n: 2, f: 2, y: y[:1]},
		{name: "NaN in z", z: []float64{0, math.NaN(), 2, 3}, n: 2, f: 2, y: y},
		{name: "Inf in z", z: []float64{0, math.Inf(-1), 2, 3}, n: 2, f: 2, y: y},
		{name: "label above one", z: z, n: 2, f: 2, y: []float64{0, 2}},
		{name: "NaN label", z: z, n: 2, f: 2, y: []float64{0, math.NaN()}},
		{name: "negative L2", z: z, n: 2, f: 2, y: y, opts: FitOptions{L2: -1}},
		{name: "negative iterations", z: z, n: 2, f: 2, y: y, opts: FitOptions{MaxIterations: -1}},
		{name: "all negative", z: z, n: 2, f: 2, y: []float64{0, 0}, wantErr: ErrSingleClass},
		{name: "all positive", z: z, n: 2, f: 2, y: []float64{1, 1}, wantErr: ErrSingleClass},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := FitLogistic(tc.z, tc.n, tc.f, tc.y, tc.opts)
			if err == nil {
				t.Fatal("FitLogistic succeeded, want an error")
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("error = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestLogisticObjectiveGradient(t *testing.T) {
	// Compare the analytic gradient with central finite differences,
	// including parameters that push some logits far into saturation.
	const n, f = 200, 4
	rng := rand.New(rand.NewPCG(13, 14))
	z, y := syntheticLogistic(rng, n, []float64{1, -1, 0.5, 2}, 0.2)
	obj := newLogisticObjective(z, n, f, y, 0.05)

	for _, x := range [][]float64{
		{0, 0, 0, 0, 0},
		{0.3, -0.7, 1.1, 0.2, -0.4},
		{20, -15, 30, 10, 5},
	} {
		want := fd.Gradient(nil, obj.value, x, &fd.Settings{Formula: fd.Central, Step: 1e-6})
		got := append([]float64(nil), obj.gradient(x)...)
		for i := range got {
			if math.Abs(got[i]-want[i]) > 1e-5*max(1, math.Abs(want[i])) {
				t.Errorf("x = %v: gradient[%d] = %.9f, finite differences %.9f", x, i, got[i], want[i])
			}
		}
	}
}

func TestSoftplusAndSigmoidStable(t *testing.T) {
	tests := []struct {
		s, softplus, sigmoid float64
	}{
		{0, math.Ln2, 0.5},
		{-1000, 0, 0},
		{1000, 1000, 1},
		{-40, math.Exp(-40), math.Exp(-40) / (1 + math.Exp(-40))},
		{40, 40 + math.Exp(-40), 1 / (1 + math.Exp(-40))},
	}
	for _, tc := range tests {
		if got := softplus(tc.s); math.Abs(got-tc.softplus) > 1e-12*max(1, tc.softplus) {
			t.Errorf("softplus(%v) = %v, want %v", tc.s, got, tc.softplus)
		}
		if got := sigmoid(tc.s); math.Abs(got-tc.sigmoid) > 1e-15 {
			t.Errorf("sigmoid(%v) = %v, want %v", tc.s, got, tc.sigmoid)
		}
	}
}
