package features

import (
	"math"
	"math/rand/v2"

	"github.com/directops/nbp/catalog"
)

// Probe returns n rows of the schema drawn from its ranges, the same for a
// seed: each value its field's minimum, its maximum, a value between
// (log-uniform for wide ranges such as money) or missing, so that a model
// meets, before it takes traffic, every kind of value the store may hold.
func Probe(n int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	x := make([]float32, n*int(NumFields))
	for i := 0; i < n; i++ {
		row := x[i*int(NumFields) : (i+1)*int(NumFields)]
		for f := range specs {
			row[f] = probeValue(r, specs[f])
		}
	}
	return x
}

func probeValue(r *rand.Rand, s Spec) float32 {
	u := r.Float64()
	if u < 0.1 && !s.Required {
		return float32(math.NaN())
	}
	switch s.Kind {
	case Flag:
		return float32(r.IntN(2))
	case RegionKey:
		return float32(1 + r.IntN(catalog.NumRegions))
	case Tolerance:
		return float32(r.IntN(6))
	case Date:
		// Days since 1970 from 2020 to 2035.
		return float32(18262 + r.IntN(5479))
	}
	switch {
	case u < 0.2:
		return float32(s.Min)
	case u < 0.3:
		return float32(s.Max)
	case s.Max-s.Min > 1000:
		return float32(s.Min + math.Expm1(r.Float64()*math.Log1p(s.Max-s.Min)))
	default:
		return float32(math.Round(s.Min + r.Float64()*(s.Max-s.Min)))
	}
}
