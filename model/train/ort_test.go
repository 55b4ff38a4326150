package train

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	ort "github.com/yalue/onnxruntime_go"
)

// ortTolerance bounds |ORT - Go| relative to max(1, |Go|).
const ortTolerance = 1e-5

// ortCase is an export exercised through ONNX Runtime.
type ortCase struct {
	name   string
	export func(t *testing.T) *Export
}

func ortCases() []ortCase {
	return []ortCase{
		{"hand-written", func(*testing.T) *Export { return validExport() }},
		{"random-parameters", func(*testing.T) *Export { return randomExport(rand.New(rand.NewPCG(1, 2)), 9, 5) }},
		{"fitted-pipeline", func(t *testing.T) *Export { return pipelineExport(t, rand.New(rand.NewPCG(3, 4))) }},
		{"single-feature-single-product", func(*testing.T) *Export { return randomExport(rand.New(rand.NewPCG(5, 6)), 1, 1) }},
	}
}

// ortSession holds an AdvancedSession bound to fixed-size tensors.
type ortSession struct {
	session       *ort.AdvancedSession
	input         *ort.Tensor[float32]
	propensity    *ort.Tensor[float32]
	contributions *ort.Tensor[float32]
}

func newORTSession(t *testing.T, model []byte, n, f, p int) *ortSession {
	t.Helper()
	opts, err := ort.NewSessionOptions()
	if err != nil {
		t.Fatalf("NewSessionOptions: %v", err)
	}
	defer opts.Destroy()
	if err := opts.SetIntraOpNumThreads(1); err != nil {
		t.Fatalf("SetIntraOpNumThreads: %v", err)
	}
	if err := opts.SetInterOpNumThreads(1); err != nil {
		t.Fatalf("SetInterOpNumThreads: %v", err)
	}

	s := &ortSession{}
	if s.input, err = ort.NewEmptyTensor[float32](ort.NewShape(int64(n), int64(f))); err != nil {
		t.Fatalf("input tensor: %v", err)
	}
	t.Cleanup(func() { s.input.Destroy() })
	if s.propensity, err = ort.NewEmptyTensor[float32](ort.NewShape(int64(n), int64(p))); err != nil {
		t.Fatalf("propensity tensor: %v", err)
	}
	t.Cleanup(func() { s.propensity.Destroy() })
	if s.contributions, err = ort.NewEmptyTensor[float32](ort.NewShape(int64(n), int64(f), int64(p))); err != nil {
		t.Fatalf("contributions tensor: %v", err)
	}
	t.Cleanup(func() { s.contributions.Destroy() })

	s.session, err = ort.NewAdvancedSessionWithONNXData(model,
		[]string{InputFeatures},
		[]string{OutputPropensity, OutputContributions},
		[]ort.Value{s.input},
		[]ort.Value{s.propensity, s.contributions},
		opts)
	if err != nil {
		t.Fatalf("NewAdvancedSessionWithONNXData: %v", err)
	}
	t.Cleanup(func() { s.session.Destroy() })
	return s
}

// agree reports whether got agrees with want within ortTolerance.
func agree(got, want float32) bool {
	return math.Abs(float64(got)-float64(want)) <= ortTolerance*max(1, math.Abs(float64(want)))
}

func TestONNXRuntimeMatchesGoReference(t *testing.T) {
	for _, tc := range ortCases() {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.export(t)
			model, err := e.MarshalONNX()
			if err != nil {
				t.Fatalf("MarshalONNX: %v", err)
			}
			f, p := len(e.FeatureNames), len(e.ProductIDs)
			rng := rand.New(rand.NewPCG(7, 8))

			for _, n := range []int{1, 7} {
				s := newORTSession(t, model, n, f, p)

				// Edge rows first, then random batches.
				rows := edgeRows(f)
				rows = append(rows, randomRawRows(rng, 20*n, f)...)
				for len(rows)%n != 0 {
					rows = append(rows, randomRawRows(rng, 1, f)...)
				}

				wantP := make([]float32, p)
				z := make([]float32, f)
				var checked int
				for start := 0; start < len(rows); start += n * f {
					batch := rows[start : start+n*f]
					copy(s.input.GetData(), batch)
					if err := s.session.Run(); err != nil {
						t.Fatalf("N=%d: Run: %v", n, err)
					}
					gotP := s.propensity.GetData()
					gotC := s.contributions.GetData()
					for r := range n {
						raw := batch[r*f : (r+1)*f]
						e.Predict(raw, wantP)
						e.Transform(raw, z)
						for k := range p {
							if got := gotP[r*p+k]; !agree(got, wantP[k]) {
								t.Errorf("N=%d row %v: propensity[%d] = %v, Go reference %v", n, raw, k, got, wantP[k])
							}
						}
						for j := range f {
							for k := range p {
								want := z[j] * e.Weights[j*p+k]
								if got := gotC[(r*f+j)*p+k]; !agree(got, want) {
									t.Errorf("N=%d row %v: contributions[%d,%d] = %v, want z*W = %v", n, raw, j, k, got, want)
								}
							}
						}
						checked++
					}
				}
				if t.Failed() {
					return
				}
				t.Logf("N=%d: %d rows agree", n, checked)
			}
		})
	}
}

func TestONNXRuntimeMetadata(t *testing.T) {
	e := validExport()
	e.Meta["nbp.note"] = `quotes " and <html> & ünïcödé`
	e.FeatureNames[0] = `balance "eur" <x>`
	// A non-UTC time must still be written as UTC.
	e.TrainedAt = time.Date(2026, 11, 27, 4, 4, 5, 0, time.FixedZone("CET", 3600))
	model, err := e.MarshalONNX()
	if err != nil {
		t.Fatalf("MarshalONNX: %v", err)
	}
	md, err := ort.GetModelMetadataWithONNXData(model)
	if err != nil {
		t.Fatalf("GetModelMetadataWithONNXData: %v", err)
	}
	defer md.Destroy()

	lookup := func(key string) string {
		t.Helper()
		v, ok, err := md.LookupCustomMetadataMap(key)
		if err != nil || !ok {
			t.Fatalf("LookupCustomMetadataMap(%q) = %q, %v, %v", key, v, ok, err)
		}
		return v
	}
	var features, products []string
	if err := json.Unmarshal([]byte(lookup(MetaFeatureNames)), &features); err != nil {
		t.Fatalf("%s is not a JSON string array: %v", MetaFeatureNames, err)
	}
	if diff := cmp.Diff(e.FeatureNames, features); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", MetaFeatureNames, diff)
	}
	if err := json.Unmarshal([]byte(lookup(MetaProductIDs)), &products); err != nil {
		t.Fatalf("%s is not a JSON string array: %v", MetaProductIDs, err)
	}
	if diff := cmp.Diff(e.ProductIDs, products); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", MetaProductIDs, diff)
	}
	if got := lookup(MetaModelVersion); got != e.Version {
		t.Errorf("%s = %q, want %q", MetaModelVersion, got, e.Version)
	}
	trainedAt, err := time.Parse(time.RFC3339, lookup(MetaTrainedAt))
	if err != nil || !trainedAt.Equal(e.TrainedAt) || trainedAt.Location() != time.UTC {
		t.Errorf("%s = %v (%v), want %v in UTC", MetaTrainedAt, trainedAt, err, e.TrainedAt)
	}
	for k, want := range e.Meta {
		if got := lookup(k); got != want {
			t.Errorf("meta %q = %q, want %q", k, got, want)
		}
	}
	if _, ok, err := md.LookupCustomMetadataMap("nbp.absent"); ok || err != nil {
		t.Errorf("LookupCustomMetadataMap(absent key) = %v, %v; want false, nil", ok, err)
	}

	keys, err := md.GetCustomMetadataMapKeys()
	if err != nil {
		t.Fatalf("GetCustomMetadataMapKeys: %v", err)
	}
	slices.Sort(keys)
	wantKeys := []string{"nbp.catalog_version", MetaFeatureNames, MetaModelVersion, "nbp.note", MetaProductIDs, MetaTrainedAt}
	slices.Sort(wantKeys)
	if diff := cmp.Diff(wantKeys, keys); diff != "" {
		t.Errorf("metadata keys mismatch (-want +got):\n%s", diff)
	}

	checks := []struct {
		name string
		get  func() (string, error)
		want string
	}{
		{"producer name", md.GetProducerName, ProducerName},
		{"graph name", md.GetGraphName, GraphName},
		{"description", md.GetDescription, modelDoc},
	}
	for _, c := range checks {
		if got, err := c.get(); err != nil || got != c.want {
			t.Errorf("%s = %q, %v; want %q", c.name, got, err, c.want)
		}
	}
	if got, err := md.GetVersion(); err != nil || got != e.TrainedAt.Unix() {
		t.Errorf("model version = %d, %v; want %d", got, err, e.TrainedAt.Unix())
	}
}

func TestONNXRuntimeInputOutputInfo(t *testing.T) {
	e := randomExport(rand.New(rand.NewPCG(9, 10)), 5, 3)
	model, err := e.MarshalONNX()
	if err != nil {
		t.Fatalf("MarshalONNX: %v", err)
	}
	inputs, outputs, err := ort.GetInputOutputInfoWithONNXData(model)
	if err != nil {
		t.Fatalf("GetInputOutputInfoWithONNXData: %v", err)
	}
	tensor := func(name string, dims ...int64) ort.InputOutputInfo {
		return ort.InputOutputInfo{
			Name:         name,
			OrtValueType: ort.ONNXTypeTensor,
			Dimensions:   ort.NewShape(dims...),
			DataType:     ort.TensorElementDataTypeFloat,
		}
	}
	// The symbolic batch dimension is reported as -1.
	wantIn := []ort.InputOutputInfo{tensor(InputFeatures, -1, 5)}
	wantOut := []ort.InputOutputInfo{
		tensor(OutputPropensity, -1, 3),
		tensor(OutputContributions, -1, 5, 3),
	}
	if diff := cmp.Diff(wantIn, inputs); diff != "" {
		t.Errorf("inputs mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantOut, outputs); diff != "" {
		t.Errorf("outputs mismatch (-want +got):\n%s", diff)
	}
}
