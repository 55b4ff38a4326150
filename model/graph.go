package model

import (
	"bytes"
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"

	pb "github.com/directops/nbp/model/onnxpb"
)

// stripZipMap rewrites a model whose output is made by a ZipMap node (what
// skl2onnx writes unless told zipmap=False): the node goes, and the tensor
// it read, float [N, classes], becomes the output in its place. It returns
// the new model and the output's name.
func stripZipMap(onnx []byte, output string) ([]byte, string, error) {
	model, err := pb.Fields(onnx)
	if err != nil {
		return nil, "", err
	}
	gi := -1
	for i, f := range model {
		if f.Num == pb.ModelGraph && f.Type == protowire.BytesType {
			gi = i
		}
	}
	if gi < 0 {
		return nil, "", fmt.Errorf("%w: no graph", pb.ErrMalformed)
	}
	graph, err := pb.Fields(model[gi].Bytes)
	if err != nil {
		return nil, "", err
	}
	zip, input, classes := -1, "", 0
	for i, f := range graph {
		if f.Num != pb.GraphNode {
			continue
		}
		node, err := pb.Fields(f.Bytes)
		if err != nil {
			return nil, "", err
		}
		var op string
		var ins, outs []string
		n := 0
		for _, nf := range node {
			switch nf.Num {
			case pb.NodeOpType:
				op = string(nf.Bytes)
			case pb.NodeInput:
				ins = append(ins, string(nf.Bytes))
			case pb.NodeOutput:
				outs = append(outs, string(nf.Bytes))
			case pb.NodeAttribute:
				if c, err := countLabels(nf.Bytes); err != nil {
					return nil, "", err
				} else if c > 0 {
					n = c
				}
			}
		}
		if op == "ZipMap" && len(outs) == 1 && outs[0] == output && len(ins) == 1 {
			zip, input, classes = i, ins[0], n
		}
	}
	if zip < 0 {
		return nil, "", fmt.Errorf("output %q is not a tensor, and no ZipMap node makes it", output)
	}
	if classes == 0 {
		return nil, "", fmt.Errorf("the ZipMap making %q has no class labels", output)
	}
	var g []byte
	for i, f := range graph {
		switch {
		case i == zip:
		case f.Num == pb.GraphOutput && valueName(f.Bytes) == output:
			g = pb.AppendBytes(g, pb.GraphOutput, pb.TensorValueInfo(input, pb.Float, pb.Dim{Param: "N"}, pb.Dim{Value: int64(classes)}))
		default:
			g = append(g, f.Raw...)
		}
	}
	var out []byte
	for i, f := range model {
		if i == gi {
			out = pb.AppendBytes(out, pb.ModelGraph, g)
			continue
		}
		out = append(out, f.Raw...)
	}
	return out, input, nil
}

// countLabels returns how many class labels a ZipMap attribute lists (0
// for any other attribute); ints may be packed or not.
func countLabels(attr []byte) (int, error) {
	fs, err := pb.Fields(attr)
	if err != nil {
		return 0, err
	}
	var name string
	n := 0
	for _, f := range fs {
		switch {
		case f.Num == pb.AttrName:
			name = string(f.Bytes)
		case f.Num == pb.AttrInts && f.Type == protowire.VarintType, f.Num == pb.AttrStrings:
			n++
		case f.Num == pb.AttrInts && f.Type == protowire.BytesType: // packed
			for b := f.Bytes; len(b) > 0; {
				_, m := protowire.ConsumeVarint(b)
				if m < 0 {
					return 0, fmt.Errorf("%w: packed ints", pb.ErrMalformed)
				}
				b = b[m:]
				n++
			}
		}
	}
	if name != "classlabels_int64s" && name != "classlabels_strings" {
		return 0, nil
	}
	return n, nil
}

func valueName(vi []byte) string {
	fs, err := pb.Fields(vi)
	if err != nil {
		return ""
	}
	for _, f := range fs {
		if f.Num == pb.ValueInfoName {
			return string(f.Bytes)
		}
	}
	return ""
}

// mergedInput is the shared input of a merged model.
const mergedInput = "input"

// errNoMerge is returned when files cannot be merged into one graph; they
// then run as separate sessions.
var errNoMerge = errors.New("cannot merge")

// mergeGraphs composes several models into one: every graph's names get a
// prefix of their own, all read one input, and each keeps one output (the
// one nbp reads), so that one session run scores every file. Files must
// declare the same operator sets, and hold no subgraphs or sparse
// initializers; otherwise errNoMerge.
func mergeGraphs(files [][]byte, inputs, outputs []string) ([]byte, []string, error) {
	var (
		ir                          uint64
		opsets                      []byte
		nodes, inits, outs, inputVI []byte
		names                       []string
	)
	for i, onnx := range files {
		prefix := fmt.Sprintf("m%d_", i)
		rename := func(s string) string {
			switch {
			case s == "":
				return s
			case s == inputs[i]:
				return mergedInput
			}
			return prefix + s
		}
		model, err := pb.Fields(onnx)
		if err != nil {
			return nil, nil, err
		}
		var ops, graph []byte
		for _, f := range model {
			switch f.Num {
			case pb.ModelIRVersion:
				ir = max(ir, f.Varint)
			case pb.ModelOpsetImport:
				ops = append(ops, f.Raw...)
			case pb.ModelGraph:
				graph = f.Bytes
			}
		}
		if i == 0 {
			opsets = ops
		} else if !bytes.Equal(ops, opsets) {
			return nil, nil, fmt.Errorf("%w: the files declare different operator sets", errNoMerge)
		}
		fields, err := pb.Fields(graph)
		if err != nil {
			return nil, nil, err
		}
		found := false
		for _, f := range fields {
			switch f.Num {
			case pb.GraphNode:
				n, err := renameNode(f.Bytes, prefix, rename)
				if err != nil {
					return nil, nil, err
				}
				nodes = pb.AppendBytes(nodes, pb.GraphNode, n)
			case pb.GraphInitializer:
				t, err := renameField(f.Bytes, pb.TensorName, rename)
				if err != nil {
					return nil, nil, err
				}
				inits = pb.AppendBytes(inits, pb.GraphInitializer, t)
			case pb.GraphInput:
				if valueName(f.Bytes) == inputs[i] && inputVI == nil {
					vi, err := renameField(f.Bytes, pb.ValueInfoName, rename)
					if err != nil {
						return nil, nil, err
					}
					inputVI = pb.AppendBytes(nil, pb.GraphInput, vi)
				}
				// Other inputs name initializers (IR < 4): they go with them.
			case pb.GraphOutput:
				if valueName(f.Bytes) != outputs[i] {
					continue
				}
				vi, err := renameField(f.Bytes, pb.ValueInfoName, rename)
				if err != nil {
					return nil, nil, err
				}
				outs = pb.AppendBytes(outs, pb.GraphOutput, vi)
				names = append(names, rename(outputs[i]))
				found = true
			case graphSparseInitializer:
				return nil, nil, fmt.Errorf("%w: sparse initializers", errNoMerge)
			}
		}
		if !found {
			return nil, nil, fmt.Errorf("%w: no output %q", errNoMerge, outputs[i])
		}
	}
	var g []byte
	g = append(g, nodes...)
	g = pb.AppendString(g, pb.GraphName, "nbp_merged")
	g = append(g, inits...)
	g = append(g, inputVI...)
	g = append(g, outs...)
	var out []byte
	out = pb.AppendInt64(out, pb.ModelIRVersion, int64(ir))
	out = pb.AppendString(out, pb.ModelProducerName, "nbp (merged)")
	out = pb.AppendBytes(out, pb.ModelGraph, g)
	out = append(out, opsets...)
	return out, names, nil
}

// Fields of onnx.proto not written by nbp, read when merging.
const (
	graphSparseInitializer protowire.Number = 15
	attrG                  protowire.Number = 6
	attrGraphs             protowire.Number = 11
)

// renameNode renames a node's inputs, outputs and name; a node with a
// subgraph cannot be renamed this way (its body names outer values).
func renameNode(node []byte, prefix string, rename func(string) string) ([]byte, error) {
	fs, err := pb.Fields(node)
	if err != nil {
		return nil, err
	}
	var b []byte
	for _, f := range fs {
		switch f.Num {
		case pb.NodeInput, pb.NodeOutput:
			b = pb.AppendString(b, f.Num, rename(string(f.Bytes)))
		case pb.NodeName:
			b = pb.AppendString(b, f.Num, prefix+string(f.Bytes))
		case pb.NodeAttribute:
			as, err := pb.Fields(f.Bytes)
			if err != nil {
				return nil, err
			}
			for _, a := range as {
				if a.Num == attrG || a.Num == attrGraphs {
					return nil, fmt.Errorf("%w: a node has a subgraph", errNoMerge)
				}
			}
			b = append(b, f.Raw...)
		default:
			b = append(b, f.Raw...)
		}
	}
	return b, nil
}

// renameField renames the string field num of a message.
func renameField(msg []byte, num protowire.Number, rename func(string) string) ([]byte, error) {
	fs, err := pb.Fields(msg)
	if err != nil {
		return nil, err
	}
	var b []byte
	for _, f := range fs {
		if f.Num == num && f.Type == protowire.BytesType {
			b = pb.AppendString(b, num, rename(string(f.Bytes)))
			continue
		}
		b = append(b, f.Raw...)
	}
	return b, nil
}
