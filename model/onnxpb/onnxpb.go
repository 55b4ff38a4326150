// Package onnxpb writes and reads the few parts of the ONNX protobuf
// format that nbp needs: a model's graph, nodes, attributes, tensors and
// value types. It uses the field numbers of the public onnx.proto schema
// with google.golang.org/protobuf/encoding/protowire; no generated code is
// involved. The trainer writes models with it, and the loader rewrites a
// converter's ZipMap output with it.
package onnxpb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Versions nbp writes.
const (
	IRVersion    = 8  // ModelProto.ir_version
	OpsetVersion = 17 // the default domain's ("ai.onnx") operator set
	// MLDomain is the domain of the classic machine-learning operators
	// (TreeEnsembleClassifier, ZipMap); MLOpset the version nbp writes.
	MLDomain = "ai.onnx.ml"
	MLOpset  = 3
)

// Field numbers from onnx.proto.
const (
	// ModelProto
	ModelIRVersion     protowire.Number = 1
	ModelProducerName  protowire.Number = 2
	ModelModelVersion  protowire.Number = 5
	ModelDocString     protowire.Number = 6
	ModelGraph         protowire.Number = 7
	ModelOpsetImport   protowire.Number = 8
	ModelMetadataProps protowire.Number = 14

	// OperatorSetIdProto
	OpsetIDDomain  protowire.Number = 1
	OpsetIDVersion protowire.Number = 2

	// StringStringEntryProto
	EntryKey   protowire.Number = 1
	EntryValue protowire.Number = 2

	// GraphProto
	GraphNode        protowire.Number = 1
	GraphName        protowire.Number = 2
	GraphInitializer protowire.Number = 5
	GraphDocString   protowire.Number = 10
	GraphInput       protowire.Number = 11
	GraphOutput      protowire.Number = 12

	// NodeProto
	NodeInput     protowire.Number = 1
	NodeOutput    protowire.Number = 2
	NodeName      protowire.Number = 3
	NodeOpType    protowire.Number = 4
	NodeAttribute protowire.Number = 5
	NodeDomain    protowire.Number = 7

	// AttributeProto
	AttrName    protowire.Number = 1
	AttrS       protowire.Number = 4
	AttrFloats  protowire.Number = 7
	AttrInts    protowire.Number = 8
	AttrStrings protowire.Number = 9
	AttrType    protowire.Number = 20

	// TensorProto
	TensorDims     protowire.Number = 1
	TensorDataType protowire.Number = 2
	TensorName     protowire.Number = 8
	TensorRawData  protowire.Number = 9

	// ValueInfoProto
	ValueInfoName protowire.Number = 1
	ValueInfoType protowire.Number = 2

	// TypeProto and its Tensor, Sequence and Map
	TypeTensorType   protowire.Number = 1
	TypeSequenceType protowire.Number = 4
	TypeMapType      protowire.Number = 5
	TensorElemType   protowire.Number = 1
	TensorTypeShape  protowire.Number = 2
	SequenceElemType protowire.Number = 1
	MapKeyType       protowire.Number = 1
	MapValueType     protowire.Number = 2

	// TensorShapeProto and its Dimension
	ShapeDim      protowire.Number = 1
	DimValueField protowire.Number = 1
	DimParamField protowire.Number = 2
)

// TensorProto.DataType values.
const (
	Float = 1
	Int64 = 7
	Bool  = 9
)

// AttributeProto.AttributeType values.
const (
	AttrTypeString  = 3
	AttrTypeFloats  = 6
	AttrTypeInts    = 7
	AttrTypeStrings = 8
)

// AppendInt64 appends a varint field (also used for enums).
func AppendInt64(b []byte, num protowire.Number, v int64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(v))
}

// AppendString appends a length-delimited string field.
func AppendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// AppendBytes appends a length-delimited bytes field, or an encoded
// embedded message.
func AppendBytes(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

// OpsetImport encodes an OperatorSetIdProto.
func OpsetImport(domain string, version int64) []byte {
	var b []byte
	b = AppendString(b, OpsetIDDomain, domain)
	return AppendInt64(b, OpsetIDVersion, version)
}

// Entry encodes a StringStringEntryProto (a metadata_props entry).
func Entry(key, value string) []byte {
	var b []byte
	b = AppendString(b, EntryKey, key)
	return AppendString(b, EntryValue, value)
}

// Dim is one dimension of a tensor shape: a fixed size or a symbolic name.
type Dim struct {
	Value int64
	Param string
}

// TensorValueInfo encodes a ValueInfoProto for a tensor.
func TensorValueInfo(name string, elem int64, dims ...Dim) []byte {
	var shape []byte
	for _, d := range dims {
		var db []byte
		if d.Param != "" {
			db = AppendString(db, DimParamField, d.Param)
		} else {
			db = AppendInt64(db, DimValueField, d.Value)
		}
		shape = AppendBytes(shape, ShapeDim, db)
	}
	var tt []byte
	tt = AppendInt64(tt, TensorElemType, elem)
	tt = AppendBytes(tt, TensorTypeShape, shape)
	return valueInfo(name, AppendBytes(nil, TypeTensorType, tt))
}

// SequenceOfMapsValueInfo encodes seq(map(int64, float)), ZipMap's output.
func SequenceOfMapsValueInfo(name string) []byte {
	var floatType []byte
	floatType = AppendBytes(floatType, TypeTensorType, AppendInt64(nil, TensorElemType, Float))
	var m []byte
	m = AppendInt64(m, MapKeyType, Int64)
	m = AppendBytes(m, MapValueType, floatType)
	mapType := AppendBytes(nil, TypeMapType, m)
	seq := AppendBytes(nil, SequenceElemType, mapType)
	return valueInfo(name, AppendBytes(nil, TypeSequenceType, seq))
}

func valueInfo(name string, typ []byte) []byte {
	var b []byte
	b = AppendString(b, ValueInfoName, name)
	return AppendBytes(b, ValueInfoType, typ)
}

// Tensor encodes a TensorProto whose data is stored in raw_data.
func Tensor(name string, dataType int64, dims []int64, raw []byte) []byte {
	var b []byte
	for _, d := range dims {
		b = AppendInt64(b, TensorDims, d)
	}
	b = AppendInt64(b, TensorDataType, dataType)
	b = AppendString(b, TensorName, name)
	return AppendBytes(b, TensorRawData, raw)
}

// FloatTensor encodes a float32 TensorProto (little-endian IEEE 754).
func FloatTensor(name string, dims []int64, v []float32) []byte {
	raw := make([]byte, 0, 4*len(v))
	for _, x := range v {
		raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(x))
	}
	return Tensor(name, Float, dims, raw)
}

// BoolTensor encodes a bool TensorProto (one byte per element).
func BoolTensor(name string, dims []int64, v []bool) []byte {
	raw := make([]byte, len(v))
	for i, x := range v {
		if x {
			raw[i] = 1
		}
	}
	return Tensor(name, Bool, dims, raw)
}

// Int64Tensor encodes an int64 TensorProto (little-endian).
func Int64Tensor(name string, dims []int64, v []int64) []byte {
	raw := make([]byte, 0, 8*len(v))
	for _, x := range v {
		raw = binary.LittleEndian.AppendUint64(raw, uint64(x))
	}
	return Tensor(name, Int64, dims, raw)
}

func attr(name string, typ int64) []byte {
	var b []byte
	b = AppendString(b, AttrName, name)
	return AppendInt64(b, AttrType, typ)
}

// IntsAttr encodes an INTS AttributeProto.
func IntsAttr(name string, v []int64) []byte {
	b := attr(name, AttrTypeInts)
	for _, x := range v {
		b = AppendInt64(b, AttrInts, x)
	}
	return b
}

// FloatsAttr encodes a FLOATS AttributeProto.
func FloatsAttr(name string, v []float32) []byte {
	b := attr(name, AttrTypeFloats)
	for _, x := range v {
		b = protowire.AppendTag(b, AttrFloats, protowire.Fixed32Type)
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

// StringAttr encodes a STRING AttributeProto.
func StringAttr(name, v string) []byte {
	return AppendString(attr(name, AttrTypeString), AttrS, v)
}

// StringsAttr encodes a STRINGS AttributeProto.
func StringsAttr(name string, v []string) []byte {
	b := attr(name, AttrTypeStrings)
	for _, s := range v {
		b = AppendString(b, AttrStrings, s)
	}
	return b
}

// Field is one field of an encoded message, as Fields reads it.
type Field struct {
	Num  protowire.Number
	Type protowire.Type
	// Raw is the whole field, tag included: appending it re-encodes the
	// field unchanged.
	Raw []byte
	// Bytes is a length-delimited field's content; Varint a varint's value.
	Bytes  []byte
	Varint uint64
}

// ErrMalformed is wrapped when bytes are not a protobuf message.
var ErrMalformed = errors.New("malformed protobuf")

// Fields splits an encoded message into its fields, in order.
func Fields(b []byte) ([]Field, error) {
	var fs []Field
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, protowire.ParseError(n))
		}
		f := Field{Num: num, Type: typ}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return nil, fmt.Errorf("%w: field %d: %w", ErrMalformed, num, protowire.ParseError(m))
		}
		switch typ {
		case protowire.BytesType:
			f.Bytes, _ = protowire.ConsumeBytes(b[n:])
		case protowire.VarintType:
			f.Varint, _ = protowire.ConsumeVarint(b[n:])
		}
		f.Raw = b[:n+m]
		fs = append(fs, f)
		b = b[n+m:]
	}
	return fs, nil
}
