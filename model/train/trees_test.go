package train

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	ort "github.com/yalue/onnxruntime_go"
)

// randomTrees returns an ensemble of depth-3 trees on f features, with
// every split mode and both missing-value directions.
func randomTrees(rng *rand.Rand, f, trees int, form TreeForm) *TreeClassifier {
	modes := []string{"BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"}
	c := &TreeClassifier{Features: f, Base: float32(rng.NormFloat64()), Form: form}
	for range trees {
		var tr Tree
		// A full tree of depth 3: splits 0..6, leaves 7..14.
		for i := range 7 {
			th := float32(math.Round(rng.NormFloat64() * 3))
			tr.Nodes = append(tr.Nodes, TreeNode{Feature: rng.IntN(f), Mode: modes[rng.IntN(len(modes))],
				Threshold: th, True: 2*i + 1, False: 2*i + 2, MissingTrue: rng.IntN(2) == 0})
		}
		for range 8 {
			tr.Nodes = append(tr.Nodes, TreeNode{Leaf: true, Weight: float32(rng.NormFloat64() * 0.5)})
		}
		c.Trees = append(c.Trees, tr)
	}
	return c
}

func treeRows(rng *rand.Rand, n, f int) []float32 {
	x := make([]float32, n*f)
	for i := range x {
		switch r := rng.Float64(); {
		case r < 0.15:
			x[i] = float32(math.NaN())
		case r < 0.4:
			x[i] = float32(math.Round(rng.NormFloat64() * 3)) // on the thresholds
		default:
			x[i] = float32(rng.NormFloat64() * 4)
		}
	}
	return x
}

func TestTreeClassifierInONNXRuntime(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	const n, f = 64, 5
	c := randomTrees(rng, f, 20, FormTensor)
	b, err := c.MarshalONNX()
	if err != nil {
		t.Fatal(err)
	}
	in, err := ort.NewEmptyTensor[float32](ort.NewShape(n, f))
	if err != nil {
		t.Fatal(err)
	}
	defer in.Destroy()
	probs, err := ort.NewEmptyTensor[float32](ort.NewShape(n, 2))
	if err != nil {
		t.Fatal(err)
	}
	defer probs.Destroy()
	s, err := ort.NewAdvancedSessionWithONNXData(b, []string{TreeInput}, []string{"probabilities"}, []ort.Value{in}, []ort.Value{probs}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	x := treeRows(rng, n, f)
	copy(in.GetData(), x)
	if err := s.Run(); err != nil {
		t.Fatal(err)
	}
	got := probs.GetData()
	for r := range n {
		want := c.Predict(x[r*f : (r+1)*f])
		if math.Abs(float64(got[2*r+1])-want) > 1e-5 || math.Abs(float64(got[2*r])-(1-want)) > 1e-5 {
			t.Errorf("row %v: probabilities %v, Go walk %v", x[r*f:(r+1)*f], got[2*r:2*r+2], want)
		}
	}
}

func TestTreeClassifierZipMapIsASequenceOfMaps(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	c := randomTrees(rng, 3, 4, FormZipMap)
	b, err := c.MarshalONNX()
	if err != nil {
		t.Fatal(err)
	}
	label, probs := c.Outputs()
	_, outs, err := ort.GetInputOutputInfoWithONNXData(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 2 || outs[0].Name != label || outs[1].Name != probs || outs[1].OrtValueType != ort.ONNXTypeSequence {
		t.Fatalf("outputs %+v, want %s and a sequence %s", outs, label, probs)
	}
	s, err := ort.NewDynamicAdvancedSessionWithONNXData(b, []string{TreeInput}, []string{probs}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Destroy()
	x := treeRows(rng, 2, 3)
	in, err := ort.NewTensor(ort.NewShape(2, 3), x)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Destroy()
	out := []ort.Value{nil}
	if err := s.Run([]ort.Value{in}, out); err != nil {
		t.Fatal(err)
	}
	defer out[0].Destroy()
	seq, ok := out[0].(*ort.Sequence)
	if !ok {
		t.Fatalf("output is %T, want a sequence", out[0])
	}
	maps, err := seq.GetValues()
	if err != nil || len(maps) != 2 {
		t.Fatalf("%d maps, %v", len(maps), err)
	}
	for r, m := range maps {
		_, vals, err := m.(*ort.Map).GetKeysAndValues()
		if err != nil {
			t.Fatal(err)
		}
		p := vals.(*ort.Tensor[float32]).GetData()
		if want := c.Predict(x[r*3 : r*3+3]); math.Abs(float64(p[1])-want) > 1e-5 {
			t.Errorf("row %d: map %v, want class 1 at %v", r, p, want)
		}
	}
}

func TestTreeClassifierValidate(t *testing.T) {
	c := &TreeClassifier{Features: 2, Base: float32(math.NaN()), Trees: []Tree{
		{},
		{Nodes: []TreeNode{{Feature: 2, Mode: "BRANCH_XX", Threshold: 1, True: 0, False: 5}}},
	}}
	err := c.Validate()
	for _, want := range []string{"base NaN", "tree 0 has no nodes", `mode "BRANCH_XX"`, "feature 2 outside", "child 0 outside", "child 5 outside"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v, want %q", err, want)
		}
	}
}
