package train

import (
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"
)

// Metadata keys written to the ONNX metadata_props. See the package
// documentation for their format.
const (
	MetaFeatureNames = "nbp.feature_names"
	MetaProductIDs   = "nbp.product_ids"
	MetaModelVersion = "nbp.model_version"
	MetaTrainedAt    = "nbp.trained_at"
)

// Names of the graph input and outputs and other fixed identifiers of the
// exported model.
const (
	InputFeatures       = "features"
	OutputPropensity    = "propensity"
	OutputContributions = "contributions"

	// GraphName is GraphProto.name of the exported model.
	GraphName = "nbp_propensity"
	// ProducerName is ModelProto.producer_name of the exported model.
	ProducerName = "nbp-train"
	// BatchDim is the symbolic name (dim_param) of the batch dimension.
	BatchDim = "N"
)

// Export is a fitted model ready to be written as ONNX.
//
// F = len(FeatureNames) and P = len(ProductIDs); every per-feature slice has
// length F. The zero value is not valid; see Validate.
type Export struct {
	FeatureNames []string          // F, the order of the input columns
	ProductIDs   []string          // P, the order of the output columns
	Version      string            // e.g. "propensity-2026.11.27-1"
	TrainedAt    time.Time         // written as RFC 3339 UTC and as ModelProto.model_version (Unix seconds)
	Meta         map[string]string // extra metadata_props (e.g. "nbp.catalog_version"), optional
	ImputeValue  []float32         // F: a NaN input is replaced by this raw value
	LogMask      []bool            // F: column is transformed with log1p(max(x,0)) after imputation
	Mean, Scale  []float32         // F: z = (t - Mean) * Scale   (Scale = 1/std, 0 allowed for a constant column)
	Weights      []float32         // F*P row-major: Weights[f*P+p]
	Bias         []float32         // P
}

// reservedMetaKeys are the metadata keys written by MarshalONNX itself.
var reservedMetaKeys = map[string]bool{
	MetaFeatureNames: true,
	MetaProductIDs:   true,
	MetaModelVersion: true,
	MetaTrainedAt:    true,
}

// Validate reports whether e can be exported: feature names and product IDs
// must be non-empty, valid UTF-8 and unique, every slice must have the length
// implied by F and P, every number must be finite, Version and TrainedAt must
// be set, and Meta must not use an empty or reserved key. All problems found
// are joined into the returned error.
func (e *Export) Validate() error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("train: "+format, args...))
	}

	f, p := len(e.FeatureNames), len(e.ProductIDs)
	if f == 0 {
		add("no feature names")
	}
	if p == 0 {
		add("no product IDs")
	}
	checkNames := func(kind string, names []string) {
		seen := make(map[string]int, len(names))
		for i, name := range names {
			switch {
			case name == "":
				add("%s %d is empty", kind, i)
			case !utf8.ValidString(name):
				add("%s %d (%q) is not valid UTF-8", kind, i, name)
			}
			if j, dup := seen[name]; dup {
				add("%s %q appears at %d and %d", kind, name, j, i)
			} else {
				seen[name] = i
			}
		}
	}
	checkNames("feature name", e.FeatureNames)
	checkNames("product ID", e.ProductIDs)

	checkLen := func(field string, got, want int) bool {
		if got != want {
			add("len(%s) = %d, want %d", field, got, want)
			return false
		}
		return true
	}
	checkFloats := func(field string, v []float32, want int) {
		if !checkLen(field, len(v), want) {
			return
		}
		for i, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				add("%s[%d] = %v is not finite", field, i, x)
				return
			}
		}
	}
	checkFloats("ImputeValue", e.ImputeValue, f)
	checkLen("LogMask", len(e.LogMask), f)
	checkFloats("Mean", e.Mean, f)
	checkFloats("Scale", e.Scale, f)
	checkFloats("Weights", e.Weights, f*p)
	checkFloats("Bias", e.Bias, p)

	if e.Version == "" {
		add("Version is empty")
	} else if !utf8.ValidString(e.Version) {
		add("Version %q is not valid UTF-8", e.Version)
	}
	if e.TrainedAt.IsZero() {
		add("TrainedAt is zero")
	}
	for k, v := range e.Meta {
		switch {
		case k == "":
			add("Meta has an empty key")
		case reservedMetaKeys[k]:
			add("Meta key %q is reserved", k)
		case !utf8.ValidString(k) || !utf8.ValidString(v):
			add("Meta entry %q is not valid UTF-8", k)
		}
	}
	return errors.Join(errs...)
}

// transformValue is the per-element preprocessing of the graph, written with
// the same float32 operations in the same order: impute NaN, optionally
// log(max(x,0)+1), then center and scale.
func transformValue(x, impute float32, logCol bool, mean, scale float32) float32 {
	if x != x { // NaN
		x = impute
	}
	if logCol {
		x = float32(math.Log(float64(max(x, 0) + 1)))
	}
	return (x - mean) * scale
}

// Transform writes the standardized row z for one raw row, mirroring the
// graph's preprocessing (see the package documentation): NaN inputs are
// replaced by ImputeValue, LogMask columns become log(max(x,0)+1), and the
// result is centered by Mean and multiplied by Scale. raw and z must both
// have length F (they may be the same slice); Transform panics otherwise.
// Infinite inputs are not imputed, as in the graph.
func (e *Export) Transform(raw []float32, z []float32) {
	f := len(e.FeatureNames)
	if len(raw) != f || len(z) != f {
		panic(fmt.Sprintf("train: Transform: len(raw) = %d, len(z) = %d, want %d", len(raw), len(z), f))
	}
	for i, x := range raw {
		z[i] = transformValue(x, e.ImputeValue[i], e.LogMask[i], e.Mean[i], e.Scale[i])
	}
}

// Predict writes the propensity of every product for one raw row: out[p] =
// sigmoid(Bias[p] + Σ_f z[f]*Weights[f*P+p]) with z from Transform. The logit
// is accumulated in float64. raw must have length F and out length P; Predict
// panics otherwise.
func (e *Export) Predict(raw []float32, out []float32) {
	f, p := len(e.FeatureNames), len(e.ProductIDs)
	if len(out) != p {
		panic(fmt.Sprintf("train: Predict: len(out) = %d, want %d", len(out), p))
	}
	var buf [64]float32
	var z []float32
	if f <= len(buf) {
		z = buf[:f]
	} else {
		z = make([]float32, f)
	}
	e.Transform(raw, z)
	for j := range out {
		logit := float64(e.Bias[j])
		for i, zi := range z {
			logit += float64(zi * e.Weights[i*p+j])
		}
		out[j] = float32(sigmoid(logit))
	}
}

// sigmoid returns 1/(1+exp(-s)) without overflowing for large |s|.
func sigmoid(s float64) float64 {
	if s >= 0 {
		return 1 / (1 + math.Exp(-s))
	}
	e := math.Exp(s)
	return e / (1 + e)
}
