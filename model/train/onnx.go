package train

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"time"

	pb "github.com/directops/nbp/model/onnxpb"
)

// modelDoc is ModelProto.doc_string.
const modelDoc = "nbp next-best-product propensity: per-product logistic regression on standardized features"

// Names of the initializers (constant tensors) in the graph.
const (
	initImpute  = "impute"
	initLogMask = "log_mask"
	initMean    = "mean"
	initScale   = "scale"
	initZero    = "zero"
	initOne     = "one"
	initWeights = "W"
	initBias    = "b"
	initAxes    = "unsqueeze_axes"
)

// MarshalONNX validates e and encodes it as an ONNX ModelProto. The output
// is deterministic: the same Export always yields the same bytes.
func (e *Export) MarshalONNX() ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	meta, err := e.metadata()
	if err != nil {
		return nil, err
	}

	var b []byte
	b = pb.AppendInt64(b, pb.ModelIRVersion, pb.IRVersion)
	b = pb.AppendString(b, pb.ModelProducerName, ProducerName)
	b = pb.AppendInt64(b, pb.ModelModelVersion, e.TrainedAt.Unix())
	b = pb.AppendString(b, pb.ModelDocString, modelDoc)
	b = pb.AppendBytes(b, pb.ModelGraph, e.graph())
	b = pb.AppendBytes(b, pb.ModelOpsetImport, pb.OpsetImport("", pb.OpsetVersion))
	for _, kv := range meta {
		var entry []byte
		entry = pb.AppendString(entry, pb.EntryKey, kv[0])
		entry = pb.AppendString(entry, pb.EntryValue, kv[1])
		b = pb.AppendBytes(b, pb.ModelMetadataProps, entry)
	}
	return b, nil
}

// metadata returns the metadata_props entries sorted by key.
func (e *Export) metadata() ([][2]string, error) {
	features, err := jsonStrings(e.FeatureNames)
	if err != nil {
		return nil, err
	}
	products, err := jsonStrings(e.ProductIDs)
	if err != nil {
		return nil, err
	}
	meta := [][2]string{
		{MetaFeatureNames, features},
		{MetaProductIDs, products},
		{MetaModelVersion, e.Version},
		{MetaTrainedAt, e.TrainedAt.UTC().Format(time.RFC3339)},
	}
	for k, v := range e.Meta {
		meta = append(meta, [2]string{k, v})
	}
	slices.SortFunc(meta, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	return meta, nil
}

// jsonStrings encodes s as a compact JSON array without HTML escaping.
func jsonStrings(s []string) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return "", err
	}
	return string(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))), nil
}

// graph encodes the GraphProto. See the package documentation for the
// computation it performs.
func (e *Export) graph() []byte {
	f, p := int64(len(e.FeatureNames)), int64(len(e.ProductIDs))

	var g []byte
	nodes := []struct {
		op     string
		inputs []string
		output string
	}{
		// x0 = Where(IsNaN(features), impute, features)
		{"IsNaN", []string{InputFeatures}, "x_isnan"},
		{"Where", []string{"x_isnan", initImpute, InputFeatures}, "x_imputed"},
		// t = Where(log_mask, Log(Max(x0, 0) + 1), x0)
		{"Max", []string{"x_imputed", initZero}, "x_nonneg"},
		{"Add", []string{"x_nonneg", initOne}, "x_plus_one"},
		{"Log", []string{"x_plus_one"}, "x_log1p"},
		{"Where", []string{initLogMask, "x_log1p", "x_imputed"}, "t"},
		// z = (t - mean) * scale
		{"Sub", []string{"t", initMean}, "t_centered"},
		{"Mul", []string{"t_centered", initScale}, "z"},
		// propensity = Sigmoid(z·W + b)
		{"MatMul", []string{"z", initWeights}, "zw"},
		{"Add", []string{"zw", initBias}, "logits"},
		{"Sigmoid", []string{"logits"}, OutputPropensity},
		// contributions = Unsqueeze(z, [2]) * W  ([N,F,1] * [F,P] -> [N,F,P])
		{"Unsqueeze", []string{"z", initAxes}, "z_unsqueezed"},
		{"Mul", []string{"z_unsqueezed", initWeights}, OutputContributions},
	}
	for _, n := range nodes {
		var nb []byte
		for _, in := range n.inputs {
			nb = pb.AppendString(nb, pb.NodeInput, in)
		}
		nb = pb.AppendString(nb, pb.NodeOutput, n.output)
		nb = pb.AppendString(nb, pb.NodeName, n.output+"_"+n.op)
		nb = pb.AppendString(nb, pb.NodeOpType, n.op)
		g = pb.AppendBytes(g, pb.GraphNode, nb)
	}

	g = pb.AppendString(g, pb.GraphName, GraphName)

	inits := [][]byte{
		pb.FloatTensor(initImpute, []int64{f}, e.ImputeValue),
		pb.BoolTensor(initLogMask, []int64{f}, e.LogMask),
		pb.FloatTensor(initMean, []int64{f}, e.Mean),
		pb.FloatTensor(initScale, []int64{f}, e.Scale),
		pb.FloatTensor(initZero, nil, []float32{0}),
		pb.FloatTensor(initOne, nil, []float32{1}),
		pb.FloatTensor(initWeights, []int64{f, p}, e.Weights),
		pb.FloatTensor(initBias, []int64{p}, e.Bias),
		pb.Int64Tensor(initAxes, []int64{1}, []int64{2}),
	}
	for _, t := range inits {
		g = pb.AppendBytes(g, pb.GraphInitializer, t)
	}

	g = pb.AppendString(g, pb.GraphDocString, "impute NaN, log1p selected columns, standardize, logistic regression per product")
	batch := pb.Dim{Param: BatchDim}
	g = pb.AppendBytes(g, pb.GraphInput, floatValue(InputFeatures, batch, pb.Dim{Value: f}))
	g = pb.AppendBytes(g, pb.GraphOutput, floatValue(OutputPropensity, batch, pb.Dim{Value: p}))
	g = pb.AppendBytes(g, pb.GraphOutput, floatValue(OutputContributions, batch, pb.Dim{Value: f}, pb.Dim{Value: p}))
	return g
}

// floatValue encodes a ValueInfoProto for a float32 tensor.
func floatValue(name string, dims ...pb.Dim) []byte {
	return pb.TensorValueInfo(name, pb.Float, dims...)
}
