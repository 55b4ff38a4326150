package train

import (
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/stat"
)

// constantRelStd is the relative standard deviation (std/|mean|) at or below
// which a transformed column is treated as constant: differences that small
// are at the resolution of float32 and would only amplify rounding noise.
const constantRelStd = 1e-6

// NewStandardizer computes the preprocessing statistics of an Export from
// training rows x (n×f row-major, raw values, NaN = missing):
//
//   - impute[j] is the median of the finite values of column j (0 if the
//     column has none); it replaces NaN inputs.
//   - mean[j] and scale[j] are the mean and 1/(population standard
//     deviation) of column j after imputation and, where logMask[j] is true,
//     the log(max(x,0)+1) transform, computed exactly as Export.Transform
//     does. Rows holding ±Inf in column j are left out. A column that is
//     (numerically) constant gets scale 0, so it contributes nothing.
//
// logMask may be nil (no log columns); otherwise it must have length f.
// NewStandardizer panics if the lengths are inconsistent.
func NewStandardizer(x []float32, n, f int, logMask []bool) (impute, mean, scale []float32) {
	if n < 0 || f < 0 || len(x) != n*f {
		panic(fmt.Sprintf("train: NewStandardizer: len(x) = %d, n = %d, f = %d", len(x), n, f))
	}
	if logMask != nil && len(logMask) != f {
		panic(fmt.Sprintf("train: NewStandardizer: len(logMask) = %d, want %d", len(logMask), f))
	}
	impute = make([]float32, f)
	mean = make([]float32, f)
	scale = make([]float32, f)

	finite := make([]float64, 0, n)
	transformed := make([]float64, 0, n)
	for j := range f {
		logCol := logMask != nil && logMask[j]

		finite = finite[:0]
		for i := range n {
			if v := float64(x[i*f+j]); !math.IsNaN(v) && !math.IsInf(v, 0) {
				finite = append(finite, v)
			}
		}
		impute[j] = float32(median(finite))

		transformed = transformed[:0]
		for i := range n {
			v := x[i*f+j]
			if math.IsInf(float64(v), 0) {
				continue
			}
			transformed = append(transformed, float64(transformValue(v, impute[j], logCol, 0, 1)))
		}
		if len(transformed) == 0 {
			continue
		}
		m, sd := stat.PopMeanStdDev(transformed, nil)
		mean[j] = float32(m)
		if sd > 0 && sd > constantRelStd*math.Abs(m) {
			if s := float32(1 / sd); !math.IsInf(float64(s), 0) {
				scale[j] = s
			}
		}
	}
	return impute, mean, scale
}

// median returns the median of v (the mean of the two middle values for an
// even count), or 0 for an empty slice. v is sorted in place.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	mid := len(v) / 2
	if len(v)%2 == 1 {
		return v[mid]
	}
	return v[mid-1]/2 + v[mid]/2
}
