package train

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// Versions written into the model.
const (
	irVersion    = 8  // ONNX IR version (ModelProto.ir_version)
	opsetVersion = 17 // default-domain ("ai.onnx") operator set
)

// modelDoc is ModelProto.doc_string.
const modelDoc = "nbp next-best-product propensity: per-product logistic regression on standardized features"

// Field numbers from the public onnx.proto schema.
const (
	// ModelProto
	modelIRVersion     protowire.Number = 1
	modelProducerName  protowire.Number = 2
	modelModelVersion  protowire.Number = 5
	modelDocString     protowire.Number = 6
	modelGraph         protowire.Number = 7
	modelOpsetImport   protowire.Number = 8
	modelMetadataProps protowire.Number = 14

	// OperatorSetIdProto
	opsetIDDomain  protowire.Number = 1
	opsetIDVersion protowire.Number = 2

	// StringStringEntryProto
	entryKey   protowire.Number = 1
	entryValue protowire.Number = 2

	// GraphProto
	graphNode        protowire.Number = 1
	graphName        protowire.Number = 2
	graphInitializer protowire.Number = 5
	graphDocString   protowire.Number = 10
	graphInput       protowire.Number = 11
	graphOutput      protowire.Number = 12

	// NodeProto
	nodeInput  protowire.Number = 1
	nodeOutput protowire.Number = 2
	nodeName   protowire.Number = 3
	nodeOpType protowire.Number = 4

	// TensorProto
	tensorDims     protowire.Number = 1
	tensorDataType protowire.Number = 2
	tensorName     protowire.Number = 8
	tensorRawData  protowire.Number = 9

	// ValueInfoProto
	valueInfoName protowire.Number = 1
	valueInfoType protowire.Number = 2

	// TypeProto and TypeProto.Tensor
	typeTensorType  protowire.Number = 1
	tensorElemType  protowire.Number = 1
	tensorTypeShape protowire.Number = 2

	// TensorShapeProto and TensorShapeProto.Dimension
	shapeDim      protowire.Number = 1
	dimValueField protowire.Number = 1
	dimParamField protowire.Number = 2
)

// TensorProto.DataType values.
const (
	dataTypeFloat = 1
	dataTypeInt64 = 7
	dataTypeBool  = 9
)

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
	b = appendInt64(b, modelIRVersion, irVersion)
	b = appendString(b, modelProducerName, ProducerName)
	b = appendInt64(b, modelModelVersion, e.TrainedAt.Unix())
	b = appendString(b, modelDocString, modelDoc)
	b = appendMessage(b, modelGraph, e.graph())
	b = appendMessage(b, modelOpsetImport, opsetImport("", opsetVersion))
	for _, kv := range meta {
		var entry []byte
		entry = appendString(entry, entryKey, kv[0])
		entry = appendString(entry, entryValue, kv[1])
		b = appendMessage(b, modelMetadataProps, entry)
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
			nb = appendString(nb, nodeInput, in)
		}
		nb = appendString(nb, nodeOutput, n.output)
		nb = appendString(nb, nodeName, n.output+"_"+n.op)
		nb = appendString(nb, nodeOpType, n.op)
		g = appendMessage(g, graphNode, nb)
	}

	g = appendString(g, graphName, GraphName)

	inits := [][]byte{
		floatTensor(initImpute, []int64{f}, e.ImputeValue),
		boolTensor(initLogMask, []int64{f}, e.LogMask),
		floatTensor(initMean, []int64{f}, e.Mean),
		floatTensor(initScale, []int64{f}, e.Scale),
		floatTensor(initZero, nil, []float32{0}),
		floatTensor(initOne, nil, []float32{1}),
		floatTensor(initWeights, []int64{f, p}, e.Weights),
		floatTensor(initBias, []int64{p}, e.Bias),
		int64Tensor(initAxes, []int64{1}, []int64{2}),
	}
	for _, t := range inits {
		g = appendMessage(g, graphInitializer, t)
	}

	g = appendString(g, graphDocString, "impute NaN, log1p selected columns, standardize, logistic regression per product")
	batch := dim{param: BatchDim}
	g = appendMessage(g, graphInput, floatValueInfo(InputFeatures, batch, dim{value: f}))
	g = appendMessage(g, graphOutput, floatValueInfo(OutputPropensity, batch, dim{value: p}))
	g = appendMessage(g, graphOutput, floatValueInfo(OutputContributions, batch, dim{value: f}, dim{value: p}))
	return g
}

// opsetImport encodes an OperatorSetIdProto.
func opsetImport(domain string, version int64) []byte {
	var b []byte
	b = appendString(b, opsetIDDomain, domain)
	return appendInt64(b, opsetIDVersion, version)
}

// dim is one dimension of a tensor shape: a fixed size or a symbolic name.
type dim struct {
	value int64
	param string
}

// floatValueInfo encodes a ValueInfoProto for a float32 tensor.
func floatValueInfo(name string, dims ...dim) []byte {
	var shape []byte
	for _, d := range dims {
		var db []byte
		if d.param != "" {
			db = appendString(db, dimParamField, d.param)
		} else {
			db = appendInt64(db, dimValueField, d.value)
		}
		shape = appendMessage(shape, shapeDim, db)
	}
	var tensorType []byte
	tensorType = appendInt64(tensorType, tensorElemType, dataTypeFloat)
	tensorType = appendMessage(tensorType, tensorTypeShape, shape)

	var typ []byte
	typ = appendMessage(typ, typeTensorType, tensorType)

	var b []byte
	b = appendString(b, valueInfoName, name)
	return appendMessage(b, valueInfoType, typ)
}

// tensor encodes a TensorProto whose data is stored in raw_data.
func tensor(name string, dataType int64, dims []int64, raw []byte) []byte {
	var b []byte
	for _, d := range dims {
		b = appendInt64(b, tensorDims, d)
	}
	b = appendInt64(b, tensorDataType, dataType)
	b = appendString(b, tensorName, name)
	return appendBytes(b, tensorRawData, raw)
}

// floatTensor encodes a float32 TensorProto (little-endian IEEE 754).
func floatTensor(name string, dims []int64, v []float32) []byte {
	raw := make([]byte, 0, 4*len(v))
	for _, x := range v {
		raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(x))
	}
	return tensor(name, dataTypeFloat, dims, raw)
}

// boolTensor encodes a bool TensorProto (one byte per element).
func boolTensor(name string, dims []int64, v []bool) []byte {
	raw := make([]byte, len(v))
	for i, x := range v {
		if x {
			raw[i] = 1
		}
	}
	return tensor(name, dataTypeBool, dims, raw)
}

// int64Tensor encodes an int64 TensorProto (little-endian).
func int64Tensor(name string, dims []int64, v []int64) []byte {
	raw := make([]byte, 0, 8*len(v))
	for _, x := range v {
		raw = binary.LittleEndian.AppendUint64(raw, uint64(x))
	}
	return tensor(name, dataTypeInt64, dims, raw)
}

// appendInt64 appends a varint-encoded int64 field (also used for enums).
func appendInt64(b []byte, num protowire.Number, v int64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(v))
}

// appendString appends a length-delimited string field.
func appendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// appendBytes appends a length-delimited bytes field.
func appendBytes(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// appendMessage appends an already encoded embedded message.
func appendMessage(b []byte, num protowire.Number, msg []byte) []byte {
	return appendBytes(b, num, msg)
}
