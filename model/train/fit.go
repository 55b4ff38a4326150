package train

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/optimize"
)

// Defaults used by FitLogistic for zero FitOptions fields.
const (
	DefaultL2            = 1e-3
	DefaultMaxIterations = 200
)

// gradTolerance is the infinity norm of the objective's gradient below which
// the fit is considered converged. It is also the bound under which a
// line-search failure near the optimum is accepted rather than reported.
const gradTolerance = 1e-7

// ErrSingleClass is returned by FitLogistic when all labels belong to the same
// class, so that the unregularised bias has no finite optimum.
var ErrSingleClass = errors.New("train: labels contain a single class")

// FitOptions configures FitLogistic.
type FitOptions struct {
	// L2 is the ridge penalty on the weights (not the bias): the objective is
	// mean log-loss + L2/2*|w|². Zero selects DefaultL2; negative values are
	// rejected. Use a tiny positive value for an (almost) unpenalised fit.
	L2 float64
	// MaxIterations bounds the number of L-BFGS major iterations. Zero
	// selects DefaultMaxIterations; negative values are rejected. Reaching
	// the limit is not an error.
	MaxIterations int
}

// FitLogistic fits weights w (len f) and bias b for standardized rows z
// (n×f row-major, float64) and labels y (len n, values in [0, 1], normally
// 0/1), minimizing
//
//	mean_i [ log(1+exp(s_i)) - y_i*s_i ] + L2/2*|w|²,  s_i = z_i·w + b
//
// with gonum's L-BFGS and the analytic gradient. The loss and the sigmoid are
// evaluated in overflow-free forms, so extreme logits are safe. It returns
// ErrSingleClass if y has no positive or no negative example, and an error
// for inconsistent lengths, non-finite inputs or invalid options.
func FitLogistic(z []float64, n, f int, y []float64, opts FitOptions) (w []float64, b float64, err error) {
	if n <= 0 || f <= 0 {
		return nil, 0, fmt.Errorf("train: FitLogistic: need n > 0 and f > 0, got n=%d f=%d", n, f)
	}
	if len(z) != n*f {
		return nil, 0, fmt.Errorf("train: FitLogistic: len(z) = %d, want n*f = %d", len(z), n*f)
	}
	if len(y) != n {
		return nil, 0, fmt.Errorf("train: FitLogistic: len(y) = %d, want n = %d", len(y), n)
	}
	if opts.L2 < 0 || math.IsNaN(opts.L2) || math.IsInf(opts.L2, 0) {
		return nil, 0, fmt.Errorf("train: FitLogistic: invalid L2 %v", opts.L2)
	}
	if opts.MaxIterations < 0 {
		return nil, 0, fmt.Errorf("train: FitLogistic: invalid MaxIterations %d", opts.MaxIterations)
	}
	if opts.L2 == 0 {
		opts.L2 = DefaultL2
	}
	if opts.MaxIterations == 0 {
		opts.MaxIterations = DefaultMaxIterations
	}
	for i, v := range z {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, 0, fmt.Errorf("train: FitLogistic: z[%d] = %v is not finite", i, v)
		}
	}
	for i, v := range y {
		if !(v >= 0 && v <= 1) {
			return nil, 0, fmt.Errorf("train: FitLogistic: y[%d] = %v is outside [0, 1]", i, v)
		}
	}
	rate := floats.Sum(y) / float64(n)
	if rate == 0 || rate == 1 {
		return nil, 0, ErrSingleClass
	}

	obj := newLogisticObjective(z, n, f, y, opts.L2)
	problem := optimize.Problem{
		Func: func(x []float64) float64 { return obj.value(x) },
		Grad: func(grad, x []float64) { copy(grad, obj.gradient(x)) },
	}

	// Start from w = 0 and the bias that matches the base rate.
	x0 := make([]float64, f+1)
	x0[f] = math.Log(rate / (1 - rate))

	settings := &optimize.Settings{
		GradientThreshold: gradTolerance,
		MajorIterations:   opts.MaxIterations,
		Converger: &optimize.FunctionConverge{
			Absolute:   1e-12,
			Relative:   1e-12,
			Iterations: 20,
		},
	}
	res, err := optimize.Minimize(problem, x0, settings, &optimize.LBFGS{})
	if res == nil {
		return nil, 0, fmt.Errorf("train: FitLogistic: %w", err)
	}
	if err != nil {
		// A line search can fail to make progress when the optimum has
		// already been reached to floating-point precision. Accept the
		// location in that case; report anything else.
		if floats.Norm(obj.gradient(res.X), math.Inf(1)) > math.Sqrt(gradTolerance) {
			return nil, 0, fmt.Errorf("train: FitLogistic: %w (status %v)", err, res.Status)
		}
	}
	for _, v := range res.X {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, 0, fmt.Errorf("train: FitLogistic: optimizer produced non-finite parameters (status %v)", res.Status)
		}
	}
	w = make([]float64, f)
	copy(w, res.X[:f])
	return w, res.X[f], nil
}

// logisticObjective evaluates the penalised mean log-loss and its gradient
// for the parameter vector x = (w, b). Value and gradient are computed
// together and cached for the last x, because the optimizer asks for both at
// the same location. It is not safe for concurrent use.
type logisticObjective struct {
	z    *mat.Dense
	y    []float64
	n, f int
	l2   float64

	s     *mat.VecDense // logits z·w (without bias), len n
	resid *mat.VecDense // sigmoid(s+b) - y, len n

	lastX []float64
	lastF float64
	lastG []float64
	valid bool
}

func newLogisticObjective(z []float64, n, f int, y []float64, l2 float64) *logisticObjective {
	return &logisticObjective{
		z:     mat.NewDense(n, f, z),
		y:     y,
		n:     n,
		f:     f,
		l2:    l2,
		s:     mat.NewVecDense(n, nil),
		resid: mat.NewVecDense(n, nil),
		lastX: make([]float64, f+1),
		lastG: make([]float64, f+1),
	}
}

// value returns the objective at x.
func (o *logisticObjective) value(x []float64) float64 {
	o.evaluate(x)
	return o.lastF
}

// gradient returns the gradient at x. The returned slice is owned by o and
// is overwritten by the next evaluation at a different x.
func (o *logisticObjective) gradient(x []float64) []float64 {
	o.evaluate(x)
	return o.lastG
}

func (o *logisticObjective) evaluate(x []float64) {
	if o.valid && floats.Equal(x, o.lastX) {
		return
	}
	f := o.f
	w := x[:f]
	b := x[f]

	o.s.MulVec(o.z, mat.NewVecDense(f, w))
	s := o.s.RawVector().Data
	r := o.resid.RawVector().Data
	var loss float64
	for i, si := range s {
		si += b
		loss += softplus(si) - o.y[i]*si
		r[i] = sigmoid(si) - o.y[i]
	}
	invN := 1 / float64(o.n)
	loss = loss*invN + o.l2/2*floats.Dot(w, w)

	// ∂/∂w = zᵀr/n + L2*w, ∂/∂b = Σr/n.
	g := o.lastG
	gw := mat.NewVecDense(f, g[:f])
	gw.MulVec(o.z.T(), o.resid)
	floats.Scale(invN, g[:f])
	floats.AddScaled(g[:f], o.l2, w)
	g[f] = floats.Sum(r) * invN

	copy(o.lastX, x)
	o.lastF = loss
	o.valid = true
}

// softplus returns log(1+exp(s)) without overflow or loss of precision.
func softplus(s float64) float64 {
	return max(s, 0) + math.Log1p(math.Exp(-math.Abs(s)))
}
