package train

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	pb "github.com/directops/nbp/model/onnxpb"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/encoding/protowire"
)

var nan32 = float32(math.NaN())

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(e *Export)
		wantErr string // empty: valid
	}{
		{"valid", func(*Export) {}, ""},
		{"valid without meta", func(e *Export) { e.Meta = nil }, ""},
		{"no features", func(e *Export) {
			e.FeatureNames, e.ImputeValue, e.LogMask, e.Mean, e.Scale, e.Weights = nil, nil, nil, nil, nil, nil
		}, "no feature names"},
		{"no products", func(e *Export) { e.ProductIDs, e.Weights, e.Bias = nil, nil, nil }, "no product IDs"},
		{"duplicate feature name", func(e *Export) { e.FeatureNames[2] = e.FeatureNames[0] }, `feature name "balance_eur" appears at 0 and 2`},
		{"duplicate product ID", func(e *Export) { e.ProductIDs[1] = "savings" }, `product ID "savings" appears`},
		{"empty feature name", func(e *Export) { e.FeatureNames[1] = "" }, "feature name 1 is empty"},
		{"empty product ID", func(e *Export) { e.ProductIDs[2] = "" }, "product ID 2 is empty"},
		{"invalid UTF-8 name", func(e *Export) { e.FeatureNames[0] = "bad\xff" }, "not valid UTF-8"},
		{"short ImputeValue", func(e *Export) { e.ImputeValue = e.ImputeValue[:3] }, "len(ImputeValue) = 3, want 4"},
		{"long LogMask", func(e *Export) { e.LogMask = append(e.LogMask, true) }, "len(LogMask) = 5, want 4"},
		{"short Mean", func(e *Export) { e.Mean = e.Mean[:1] }, "len(Mean)"},
		{"short Scale", func(e *Export) { e.Scale = nil }, "len(Scale)"},
		{"weights not F*P", func(e *Export) { e.Weights = e.Weights[:11] }, "len(Weights) = 11, want 12"},
		{"short Bias", func(e *Export) { e.Bias = e.Bias[:2] }, "len(Bias) = 2, want 3"},
		{"extra feature name", func(e *Export) { e.FeatureNames = append(e.FeatureNames, "extra") }, "len(ImputeValue) = 4, want 5"},
		{"NaN weight", func(e *Export) { e.Weights[5] = nan32 }, "Weights[5] = NaN is not finite"},
		{"Inf weight", func(e *Export) { e.Weights[0] = float32(math.Inf(1)) }, "Weights[0] = +Inf"},
		{"NaN bias", func(e *Export) { e.Bias[1] = nan32 }, "Bias[1]"},
		{"NaN impute", func(e *Export) { e.ImputeValue[0] = nan32 }, "ImputeValue[0]"},
		{"Inf mean", func(e *Export) { e.Mean[3] = float32(math.Inf(-1)) }, "Mean[3]"},
		{"NaN scale", func(e *Export) { e.Scale[2] = nan32 }, "Scale[2]"},
		{"empty version", func(e *Export) { e.Version = "" }, "Version is empty"},
		{"zero TrainedAt", func(e *Export) { e.TrainedAt = time.Time{} }, "TrainedAt is zero"},
		{"reserved meta key", func(e *Export) { e.Meta[MetaModelVersion] = "x" }, `Meta key "nbp.model_version" is reserved`},
		{"empty meta key", func(e *Export) { e.Meta[""] = "x" }, "empty key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := validExport()
			tc.mutate(e)
			err := e.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want error containing %q", tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Validate() = %q, want it to contain %q", err, tc.wantErr)
			}
			if _, merr := e.MarshalONNX(); merr == nil {
				t.Error("MarshalONNX succeeded on an invalid export")
			}
		})
	}
}

func TestTransform(t *testing.T) {
	e := validExport()
	// Columns: balance_eur (log, impute 1500), age_years (plain, impute 41),
	// txn_count_90d (log, impute 3), has_card (plain, scale 0).
	log1p := func(v float64) float32 { return float32(math.Log(float64(float32(v) + 1))) }
	tests := []struct {
		name string
		raw  []float32
		want []float32
	}{
		{
			"plain values",
			[]float32{99, 30, 4, 1},
			[]float32{(log1p(99) - 7.2) * 0.5, (30 - 43.5) * (1.0 / 15), (log1p(4) - 1.3) * 1.1, 0},
		},
		{
			"missing values are imputed before the log",
			[]float32{nan32, nan32, nan32, nan32},
			[]float32{(log1p(1500) - 7.2) * 0.5, (41 - 43.5) * (1.0 / 15), (log1p(3) - 1.3) * 1.1, 0},
		},
		{
			"negative values clamp to zero in log columns only",
			[]float32{-250, -1, -3, -1},
			[]float32{(0 - 7.2) * 0.5, (-1 - 43.5) * (1.0 / 15), (0 - 1.3) * 1.1, 0},
		},
		{
			"money-like values",
			[]float32{1e6, 1e6, 1e6, 1e6},
			[]float32{(log1p(1e6) - 7.2) * 0.5, (1e6 - 43.5) * (1.0 / 15), (log1p(1e6) - 1.3) * 1.1, 0},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := make([]float32, len(tc.raw))
			e.Transform(tc.raw, got)
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateApprox(1e-6, 1e-6)); diff != "" {
				t.Errorf("Transform mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPredict(t *testing.T) {
	e := validExport()
	raw := []float32{250, nan32, -2, 1}
	z := make([]float32, 4)
	e.Transform(raw, z)
	got := make([]float32, 3)
	e.Predict(raw, got)
	for p := range 3 {
		logit := float64(e.Bias[p])
		for f := range 4 {
			logit += float64(z[f]) * float64(e.Weights[f*3+p])
		}
		want := 1 / (1 + math.Exp(-logit))
		if math.Abs(float64(got[p])-want) > 1e-6 {
			t.Errorf("Predict[%d] = %v, want %v", p, got[p], want)
		}
	}

	// More features than Predict's stack buffer.
	wide := randomExport(randForTest(), 100, 2)
	rawWide := make([]float32, 100)
	out := make([]float32, 2)
	wide.Predict(rawWide, out)
	for _, v := range out {
		if !(v > 0 && v < 1) {
			t.Errorf("wide Predict = %v, want probabilities", out)
		}
	}
}

func TestNewStandardizer(t *testing.T) {
	nan := nan32
	inf := float32(math.Inf(1))
	tests := []struct {
		name                  string
		column                []float32
		log                   bool
		impute, mean, stdOrNA float64 // stdOrNA 0: scale must be 0
	}{
		{"plain", []float32{1, 2, 3, 4}, false, 2.5, 2.5, math.Sqrt(1.25)},
		{"odd count median", []float32{5, 1, 3}, false, 3, 3, math.Sqrt(8.0 / 3)},
		{"missing values use the median", []float32{1, nan, 3, nan, 8}, false, 3, 3.6, math.Sqrt(5.44)},
		{"infinite values are ignored", []float32{1, inf, 3}, false, 2, 2, 1},
		{"constant", []float32{7, 7, nan, 7}, false, 7, 7, 0},
		{"all missing", []float32{nan, nan}, false, 0, 0, 0},
		{"log column", []float32{0, math.E - 1, nan, -5}, true, 0, 0.25, math.Sqrt(0.1875)},
		{"constant large money", []float32{1e6, 1e6, 1e6}, false, 1e6, 1e6, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := len(tc.column)
			impute, mean, scale := NewStandardizer(tc.column, n, 1, []bool{tc.log})
			if math.Abs(float64(impute[0])-tc.impute) > 1e-6 {
				t.Errorf("impute = %v, want %v", impute[0], tc.impute)
			}
			if math.Abs(float64(mean[0])-tc.mean) > 1e-6*max(1, math.Abs(tc.mean)) {
				t.Errorf("mean = %v, want %v", mean[0], tc.mean)
			}
			wantScale := 0.0
			if tc.stdOrNA != 0 {
				wantScale = 1 / tc.stdOrNA
			}
			if math.Abs(float64(scale[0])-wantScale) > 1e-6*max(1, wantScale) {
				t.Errorf("scale = %v, want %v", scale[0], wantScale)
			}
		})
	}

	t.Run("several columns, nil log mask", func(t *testing.T) {
		x := []float32{
			1, 10,
			2, 20,
			3, nan,
		}
		impute, mean, scale := NewStandardizer(x, 3, 2, nil)
		want := [][]float32{{2, 15}, {2, 15}, {float32(1 / math.Sqrt(2.0/3)), float32(1 / math.Sqrt(50.0/3))}}
		got := [][]float32{impute, mean, scale}
		if diff := cmp.Diff(want, got, cmpopts.EquateApprox(1e-6, 0)); diff != "" {
			t.Errorf("NewStandardizer mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("standardized training data has zero mean and unit variance", func(t *testing.T) {
		const n, f = 1000, 5
		x := randomRawRows(randForTest(), n, f)
		logMask := []bool{true, false, true, false, true}
		impute, mean, scale := NewStandardizer(x, n, f, logMask)
		e := &Export{FeatureNames: make([]string, f), ImputeValue: impute, LogMask: logMask, Mean: mean, Scale: scale}
		sum, sumSq := make([]float64, f), make([]float64, f)
		z := make([]float32, f)
		for i := range n {
			e.Transform(x[i*f:(i+1)*f], z)
			for j, v := range z {
				sum[j] += float64(v)
				sumSq[j] += float64(v) * float64(v)
			}
		}
		for j := range f {
			m := sum[j] / n
			v := sumSq[j]/n - m*m
			if math.Abs(m) > 1e-4 || math.Abs(v-1) > 1e-3 {
				t.Errorf("column %d: mean %v, variance %v; want 0 and 1", j, m, v)
			}
		}
	})
}

// decodeFields parses one protobuf message into its fields, keyed by field
// number, failing the test on malformed input. Varints are returned as
// uint64, length-delimited fields as []byte.
func decodeFields(t *testing.T, b []byte) map[protowire.Number][]any {
	t.Helper()
	fields := make(map[protowire.Number][]any)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatalf("bad tag: %v", protowire.ParseError(n))
		}
		b = b[n:]
		switch typ {
		case protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				t.Fatalf("field %d: %v", num, protowire.ParseError(n))
			}
			fields[num] = append(fields[num], v)
			b = b[n:]
		case protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				t.Fatalf("field %d: %v", num, protowire.ParseError(n))
			}
			fields[num] = append(fields[num], v)
			b = b[n:]
		default:
			t.Fatalf("field %d: unexpected wire type %v", num, typ)
		}
	}
	return fields
}

func TestMarshalONNXStructure(t *testing.T) {
	e := validExport()
	model, err := e.MarshalONNX()
	if err != nil {
		t.Fatalf("MarshalONNX: %v", err)
	}
	m := decodeFields(t, model)
	if got := m[pb.ModelIRVersion]; len(got) != 1 || got[0] != uint64(8) {
		t.Errorf("ir_version = %v, want [8]", got)
	}
	if got := m[pb.ModelModelVersion]; len(got) != 1 || got[0] != uint64(e.TrainedAt.Unix()) {
		t.Errorf("model_version = %v, want [%d]", got, e.TrainedAt.Unix())
	}
	if got := m[pb.ModelProducerName]; len(got) != 1 || string(got[0].([]byte)) != "nbp-train" {
		t.Errorf("producer_name = %q", got)
	}
	if got := m[pb.ModelOpsetImport]; len(got) != 1 {
		t.Fatalf("opset_import has %d entries, want 1", len(got))
	}
	opset := decodeFields(t, m[pb.ModelOpsetImport][0].([]byte))
	if dom := opset[pb.OpsetIDDomain]; len(dom) != 1 || len(dom[0].([]byte)) != 0 {
		t.Errorf("opset domain = %q, want empty", dom)
	}
	if ver := opset[pb.OpsetIDVersion]; len(ver) != 1 || ver[0] != uint64(17) {
		t.Errorf("opset version = %v, want [17]", ver)
	}

	graph := decodeFields(t, m[pb.ModelGraph][0].([]byte))
	if got := string(graph[pb.GraphName][0].([]byte)); got != "nbp_propensity" {
		t.Errorf("graph name = %q", got)
	}
	var ops []string
	for _, raw := range graph[pb.GraphNode] {
		node := decodeFields(t, raw.([]byte))
		ops = append(ops, string(node[pb.NodeOpType][0].([]byte)))
	}
	wantOps := []string{"IsNaN", "Where", "Max", "Add", "Log", "Where", "Sub", "Mul", "MatMul", "Add", "Sigmoid", "Unsqueeze", "Mul"}
	if diff := cmp.Diff(wantOps, ops); diff != "" {
		t.Errorf("node op types (-want +got):\n%s", diff)
	}

	// The weight initializer holds W row-major as little-endian float32.
	for _, raw := range graph[pb.GraphInitializer] {
		init := decodeFields(t, raw.([]byte))
		if string(init[pb.TensorName][0].([]byte)) != initWeights {
			continue
		}
		if diff := cmp.Diff([]any{uint64(4), uint64(3)}, init[pb.TensorDims]); diff != "" {
			t.Errorf("W dims (-want +got):\n%s", diff)
		}
		data := init[pb.TensorRawData][0].([]byte)
		if len(data) != 4*12 || !bytes.Equal(data[4:8], []byte{0xcd, 0xcc, 0x4c, 0xbe}) { // -0.2
			t.Errorf("W raw_data = % x", data)
		}
	}

	var keys []string
	for _, raw := range m[pb.ModelMetadataProps] {
		entry := decodeFields(t, raw.([]byte))
		keys = append(keys, string(entry[pb.EntryKey][0].([]byte)))
	}
	wantKeys := []string{"nbp.catalog_version", MetaFeatureNames, MetaModelVersion, MetaProductIDs, MetaTrainedAt}
	if diff := cmp.Diff(wantKeys, keys); diff != "" {
		t.Errorf("metadata keys (-want +got):\n%s", diff)
	}

	// The encoding is deterministic.
	again, err := validExport().MarshalONNX()
	if err != nil || !bytes.Equal(model, again) {
		t.Errorf("MarshalONNX is not deterministic (err %v)", err)
	}
}
