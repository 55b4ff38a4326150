package model

import (
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
