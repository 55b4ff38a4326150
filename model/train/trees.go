package train

import (
	"errors"
	"fmt"
	"math"

	pb "github.com/directops/nbp/model/onnxpb"
)

// TreeForm is the shape in which a converter writes a binary tree-ensemble
// classifier; nbp accepts each of them (see model.Manifest).
type TreeForm int

// The forms.
const (
	// FormTensor is what onnxmltools writes for an XGBoost XGBClassifier or
	// a LightGBM LGBMClassifier, and skl2onnx with zipmap=False: outputs
	// label int64 [N] and probabilities float32 [N, 2].
	FormTensor TreeForm = iota
	// FormZipMap is skl2onnx's default: output_label int64 [N] and
	// output_probability, a sequence of maps from class to probability
	// made by a ZipMap node behind the ensemble.
	FormZipMap
)

// The ONNX names converters use, and ours.
const (
	TreeInput     = "float_input"
	treeProducer  = "nbp-train (tree-ensemble fixture)"
	treeGraphName = "tree_ensemble_classifier"
)

// A TreeClassifier is a binary classifier made of regression trees whose
// leaf values add up, with the base, to the log-odds of the positive class
// (class 1): the form gradient-boosted trees (XGBoost, LightGBM,
// scikit-learn's GradientBoostingClassifier) take in ONNX, one
// TreeEnsembleClassifier node (domain ai.onnx.ml) with post_transform
// LOGISTIC.
type TreeClassifier struct {
	Features int     // F, the input width
	Base     float32 // the log-odds before any tree
	Trees    []Tree
	Form     TreeForm
	// Meta adds metadata_props (optional): converters carry none that nbp
	// needs, which is why a manifest describes the file.
	Meta map[string]string
}

// A Tree is a binary tree; Nodes[0] is its root.
type Tree struct {
	Nodes []TreeNode
}

// A TreeNode is a split or a leaf.
type TreeNode struct {
	Leaf   bool
	Weight float32 // a leaf's value, added to the log-odds

	Feature   int     // a split's input column
	Mode      string  // BRANCH_LEQ, BRANCH_LT, BRANCH_GTE, BRANCH_GT, BRANCH_EQ or BRANCH_NEQ
	Threshold float32 // compared with the input value
	// True and False index the children in Nodes. MissingTrue sends a
	// missing value (NaN) to True, as XGBoost's default directions do;
	// otherwise NaN follows the comparison, which is false.
	True, False int
	MissingTrue bool
}

// Validate reports every structural problem: empty trees, children out of
// range or not below their parent, unknown modes, features out of range,
// values that are not finite.
func (c *TreeClassifier) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf("train: trees: "+format, args...)) }
	if c.Features < 1 {
		add("features %d, want at least 1", c.Features)
	}
	if len(c.Trees) == 0 {
		add("no trees")
	}
	finite := func(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }
	if !finite(c.Base) {
		add("base %v is not finite", c.Base)
	}
	for t, tr := range c.Trees {
		if len(tr.Nodes) == 0 {
			add("tree %d has no nodes", t)
		}
		for i, n := range tr.Nodes {
			if n.Leaf {
				if !finite(n.Weight) {
					add("tree %d node %d: weight %v is not finite", t, i, n.Weight)
				}
				continue
			}
			if _, ok := branchModes[n.Mode]; !ok {
				add("tree %d node %d: mode %q", t, i, n.Mode)
			}
			if n.Feature < 0 || n.Feature >= c.Features {
				add("tree %d node %d: feature %d outside 0..%d", t, i, n.Feature, c.Features-1)
			}
			if !finite(n.Threshold) {
				add("tree %d node %d: threshold %v is not finite", t, i, n.Threshold)
			}
			// Children below their parent: the tree has no cycle.
			for _, ch := range []int{n.True, n.False} {
				if ch <= i || ch >= len(tr.Nodes) {
					add("tree %d node %d: child %d outside %d..%d", t, i, ch, i+1, len(tr.Nodes)-1)
				}
			}
		}
	}
	return errors.Join(errs...)
}

var branchModes = map[string]func(x, th float32) bool{
	"BRANCH_LEQ": func(x, th float32) bool { return x <= th },
	"BRANCH_LT":  func(x, th float32) bool { return x < th },
	"BRANCH_GTE": func(x, th float32) bool { return x >= th },
	"BRANCH_GT":  func(x, th float32) bool { return x > th },
	"BRANCH_EQ":  func(x, th float32) bool { return x == th },
	"BRANCH_NEQ": func(x, th float32) bool { return x != th },
}

// Margin returns the log-odds of class 1 for one row of c.Features values,
// walking the trees as ONNX Runtime does.
func (c *TreeClassifier) Margin(x []float32) float64 {
	z := float64(c.Base)
	for _, tr := range c.Trees {
		i := 0
		for !tr.Nodes[i].Leaf {
			n := &tr.Nodes[i]
			v := x[n.Feature]
			if (v != v && n.MissingTrue) || branchModes[n.Mode](v, n.Threshold) {
				i = n.True
			} else {
				i = n.False
			}
		}
		z += float64(tr.Nodes[i].Weight)
	}
	return z
}

// Predict returns the probability of class 1 for one row.
func (c *TreeClassifier) Predict(x []float32) float64 { return sigmoid(c.Margin(x)) }

// Outputs returns the names of the label and probability outputs of c's
// form.
func (c *TreeClassifier) Outputs() (label, probabilities string) {
	if c.Form == FormZipMap {
		return "output_label", "output_probability"
	}
	return "label", "probabilities"
}

// MarshalONNX writes c as a converter would: input float_input float32
// [N, F]; one TreeEnsembleClassifier node with LOGISTIC post-transform and
// class labels 0 and 1; in FormZipMap a ZipMap node behind it.
func (c *TreeClassifier) MarshalONNX() ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var (
		treeIDs, nodeIDs, featureIDs, trueIDs, falseIDs, missing []int64
		values                                                   []float32
		modes                                                    []string
		classTree, classNode, classID                            []int64
		classWeight                                              []float32
	)
	for t, tr := range c.Trees {
		for i, n := range tr.Nodes {
			treeIDs = append(treeIDs, int64(t))
			nodeIDs = append(nodeIDs, int64(i))
			if n.Leaf {
				modes = append(modes, "LEAF")
				featureIDs, values = append(featureIDs, 0), append(values, 0)
				trueIDs, falseIDs, missing = append(trueIDs, 0), append(falseIDs, 0), append(missing, 0)
				classTree, classNode, classID = append(classTree, int64(t)), append(classNode, int64(i)), append(classID, 0)
				classWeight = append(classWeight, n.Weight)
				continue
			}
			modes = append(modes, n.Mode)
			featureIDs, values = append(featureIDs, int64(n.Feature)), append(values, n.Threshold)
			trueIDs, falseIDs = append(trueIDs, int64(n.True)), append(falseIDs, int64(n.False))
			m := int64(0)
			if n.MissingTrue {
				m = 1
			}
			missing = append(missing, m)
		}
	}
	label, probs := c.Outputs()
	ensembleOut := probs
	if c.Form == FormZipMap {
		ensembleOut = "probability_tensor"
	}
	var node []byte
	node = pb.AppendString(node, pb.NodeInput, TreeInput)
	node = pb.AppendString(node, pb.NodeOutput, label)
	node = pb.AppendString(node, pb.NodeOutput, ensembleOut)
	node = pb.AppendString(node, pb.NodeName, "TreeEnsembleClassifier")
	node = pb.AppendString(node, pb.NodeOpType, "TreeEnsembleClassifier")
	for _, a := range [][]byte{
		pb.IntsAttr("class_ids", classID),
		pb.IntsAttr("class_nodeids", classNode),
		pb.IntsAttr("class_treeids", classTree),
		pb.FloatsAttr("class_weights", classWeight),
		pb.IntsAttr("classlabels_int64s", []int64{0, 1}),
		pb.FloatsAttr("base_values", []float32{c.Base}),
		pb.IntsAttr("nodes_falsenodeids", falseIDs),
		pb.IntsAttr("nodes_featureids", featureIDs),
		pb.IntsAttr("nodes_missing_value_tracks_true", missing),
		pb.StringsAttr("nodes_modes", modes),
		pb.IntsAttr("nodes_nodeids", nodeIDs),
		pb.IntsAttr("nodes_treeids", treeIDs),
		pb.IntsAttr("nodes_truenodeids", trueIDs),
		pb.FloatsAttr("nodes_values", values),
		pb.StringAttr("post_transform", "LOGISTIC"),
	} {
		node = pb.AppendBytes(node, pb.NodeAttribute, a)
	}
	node = pb.AppendString(node, pb.NodeDomain, pb.MLDomain)

	var g []byte
	g = pb.AppendBytes(g, pb.GraphNode, node)
	if c.Form == FormZipMap {
		var z []byte
		z = pb.AppendString(z, pb.NodeInput, ensembleOut)
		z = pb.AppendString(z, pb.NodeOutput, probs)
		z = pb.AppendString(z, pb.NodeName, "ZipMap")
		z = pb.AppendString(z, pb.NodeOpType, "ZipMap")
		z = pb.AppendBytes(z, pb.NodeAttribute, pb.IntsAttr("classlabels_int64s", []int64{0, 1}))
		z = pb.AppendString(z, pb.NodeDomain, pb.MLDomain)
		g = pb.AppendBytes(g, pb.GraphNode, z)
	}
	g = pb.AppendString(g, pb.GraphName, treeGraphName)
	batch := pb.Dim{Param: BatchDim}
	g = pb.AppendBytes(g, pb.GraphInput, floatValue(TreeInput, batch, pb.Dim{Value: int64(c.Features)}))
	g = pb.AppendBytes(g, pb.GraphOutput, pb.TensorValueInfo(label, pb.Int64, batch))
	if c.Form == FormZipMap {
		g = pb.AppendBytes(g, pb.GraphOutput, pb.SequenceOfMapsValueInfo(probs))
	} else {
		g = pb.AppendBytes(g, pb.GraphOutput, floatValue(probs, batch, pb.Dim{Value: 2}))
	}

	var b []byte
	b = pb.AppendInt64(b, pb.ModelIRVersion, pb.IRVersion)
	b = pb.AppendString(b, pb.ModelProducerName, treeProducer)
	b = pb.AppendBytes(b, pb.ModelGraph, g)
	b = pb.AppendBytes(b, pb.ModelOpsetImport, pb.OpsetImport("", pb.OpsetVersion))
	b = pb.AppendBytes(b, pb.ModelOpsetImport, pb.OpsetImport(pb.MLDomain, pb.MLOpset))
	meta := make([][2]string, 0, len(c.Meta))
	for k, v := range c.Meta {
		meta = append(meta, [2]string{k, v})
	}
	sortPairs(meta)
	for _, kv := range meta {
		var entry []byte
		entry = pb.AppendString(entry, pb.EntryKey, kv[0])
		entry = pb.AppendString(entry, pb.EntryValue, kv[1])
		b = pb.AppendBytes(b, pb.ModelMetadataProps, entry)
	}
	return b, nil
}

func sortPairs(kv [][2]string) {
	for i := 1; i < len(kv); i++ {
		for j := i; j > 0 && kv[j][0] < kv[j-1][0]; j-- {
			kv[j], kv[j-1] = kv[j-1], kv[j]
		}
	}
}
