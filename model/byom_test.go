package model_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/model"
	"github.com/directops/nbp/model/modeltest"
	"github.com/directops/nbp/model/train"
)

// treeVersion writes the catalog's rules as per-product tree ensembles,
// reading the schema's columns in reverse order, leaving two products to
// the rules and keeping one file's ZipMap.
func treeVersion(t testing.TB, cat *catalog.Catalog) (dir string, left []string) {
	t.Helper()
	cols := features.Names()
	slices.Reverse(cols)
	left = []string{"CC_YOUTH", "LOAN_CONSUMER"}
	dir, err := train.WriteRulesTrees(t.TempDir(), cat, train.TreeVersion{Version: "trees-1", Columns: cols,
		Leave: left, ZipMap: []string{"TD_1Y", "WM_CASH"}, TrainedAt: time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	return dir, left
}

func rules(t testing.TB, cat *catalog.Catalog) *model.Rules {
	t.Helper()
	r, err := model.NewRules(cat, features.Names())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestTreeVersionScoresAsItsTrees(t *testing.T) {
	cat := defaultCatalog(t)
	dir, left := treeVersion(t, cat)
	r := rules(t, cat)
	m, err := model.Open(dir, features.Names(), cat.ProductIDs(), model.ONNXOptions{Workers: 2, BatchSize: 64, Rules: r,
		FeatureReasons: cat.FeatureReasons, Probe: features.Probe(64, 1), Budget: 50 * time.Millisecond, BatchBudget: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Sessions() != 1 {
		t.Errorf("%d sessions: the files were not merged", m.Sessions())
	}
	sep, err := model.Open(dir, features.Names(), cat.ProductIDs(), model.ONNXOptions{Workers: 1, BatchSize: 64, Rules: r,
		FeatureReasons: cat.FeatureReasons, Separate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sep.Close()
	if sep.Sessions() != len(cat.Products)-2 {
		t.Errorf("separate: %d sessions", sep.Sessions())
	}
	info := m.Info()
	if info.Version != "trees-1" || info.Reasons != model.ReasonsPerturbation || len(info.Files) != len(cat.Products)-2 {
		t.Fatalf("info %+v", info)
	}
	const n = 300
	x := append(demoRows(t, cat, n-64), features.Probe(64, 2)...)
	P, F := len(cat.Products), int(features.NumFields)
	got := make([]float32, n*P)
	sc, err := m.Score(context.Background(), x, n, got)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Release()
	apart := make([]float32, n*P)
	ss, err := sep.Score(context.Background(), x, n, apart)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Release()
	if !slices.Equal(apart, got) {
		t.Error("the merged graph scores unlike the files apart")
	}
	for i := range 20 {
		for k := range cat.Products {
			if a, b := sc.Explain(i, k, nil), ss.Explain(i, k, nil); !slices.Equal(a, b) {
				t.Fatalf("row %d product %d: reasons merged %v, apart %v", i, k, a, b)
			}
		}
	}
	want := make([]float32, n*P)
	if _, err := r.Score(context.Background(), x, n, want); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		for k, p := range cat.Products {
			if d := math.Abs(float64(got[i*P+k] - want[i*P+k])); d > 2e-6 {
				t.Fatalf("row %d %s: trees %v, rules %v", i, p.ID, got[i*P+k], want[i*P+k])
			}
			if sc.ByRules[k] != slices.Contains(left, p.ID) {
				t.Errorf("%s: by rules %v", p.ID, sc.ByRules[k])
			}
		}
	}
	// Every scored item has its reasons; a feature that fires no signal
	// (all missing) gives none.
	explained := 0
	for i := range 50 {
		for k := range cat.Products {
			codes := sc.Explain(i, k, nil)
			if len(codes) > 3 {
				t.Fatalf("row %d product %d: %v", i, k, codes)
			}
			for _, c := range codes {
				if _, ok := cat.Reasons[c]; !ok {
					t.Fatalf("unknown reason code %q", c)
				}
			}
			if len(codes) > 0 {
				explained++
			}
		}
	}
	if explained < 50*P/3 {
		t.Errorf("only %d of %d items have reasons", explained, 50*P)
	}
	// One row alone scores as in the batch.
	one := make([]float32, P)
	s1, err := m.Score(context.Background(), x[5*F:6*F], 1, one)
	if err != nil {
		t.Fatal(err)
	}
	s1.Release()
	if !slices.Equal(one, got[5*P:6*P]) {
		t.Errorf("single %v, batch %v", one, got[5*P:6*P])
	}
}

// TestPerturbationAgreesWithContributions measures the perturbation
// reasons against the exact contributions of nbp's own model, on demo
// customers: the share of items whose first reason is the same, and the
// share of the exact top three the perturbation finds.
func TestPerturbationAgreesWithContributions(t *testing.T) {
	cat := defaultCatalog(t)
	pert, err := model.NewONNX(committedBytes(t), features.Names(), cat.ProductIDs(), model.ONNXOptions{Workers: 1, FeatureReasons: cat.FeatureReasons, NoContributions: true})
	if err != nil {
		t.Fatal(err)
	}
	defer pert.Close()
	ex, err := model.NewONNX(committedBytes(t), features.Names(), cat.ProductIDs(), model.ONNXOptions{Workers: 1, FeatureReasons: cat.FeatureReasons})
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Close()
	if pert.Info().Reasons != model.ReasonsPerturbation || ex.Info().Reasons != model.ReasonsContributions {
		t.Fatalf("methods %s, %s", pert.Info().Reasons, ex.Info().Reasons)
	}
	const n = 400
	x := demoRows(t, cat, n)
	P, F := len(cat.Products), int(features.NumFields)
	out := make([]float32, P)
	var items, first, found, total int
	for i := range n {
		se, err := ex.Score(context.Background(), x[i*F:(i+1)*F], 1, out)
		if err != nil {
			t.Fatal(err)
		}
		sp, err := pert.Score(context.Background(), x[i*F:(i+1)*F], 1, out)
		if err != nil {
			t.Fatal(err)
		}
		for k := range P {
			a, b := se.Explain(0, k, nil), sp.Explain(0, k, nil)
			if len(a) == 0 {
				continue
			}
			items++
			if len(b) > 0 && a[0] == b[0] {
				first++
			}
			for _, c := range a {
				total++
				if slices.Contains(b, c) {
					found++
				}
			}
		}
		se.Release()
		sp.Release()
	}
	firstShare, foundShare := float64(first)/float64(items), float64(found)/float64(total)
	t.Logf("perturbation against exact contributions, %d items of %d customers: first reason the same %.1f%%, exact top-three codes found %.1f%%",
		items, n, 100*firstShare, 100*foundShare)
	if firstShare < 0.6 || foundShare < 0.7 {
		t.Errorf("agreement too low: first %.2f, found %.2f", firstShare, foundShare)
	}
}

func committedBytes(t testing.TB) []byte {
	t.Helper()
	path, err := modeltest.ModelPath()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestValidationReportsEveryProblem loads versions that must be refused,
// each naming what is wrong.
func TestValidationReportsEveryProblem(t *testing.T) {
	cat := defaultCatalog(t)
	r := rules(t, cat)
	base, _ := treeVersion(t, cat)
	opts := model.ONNXOptions{Workers: 1, Rules: r, FeatureReasons: cat.FeatureReasons, Probe: features.Probe(32, 3),
		Budget: 100 * time.Millisecond, BatchBudget: 2 * time.Second}
	manifest := func(t *testing.T, edit func(m map[string]any)) string {
		dir := t.TempDir()
		ents, _ := os.ReadDir(base)
		for _, e := range ents {
			b, _ := os.ReadFile(filepath.Join(base, e.Name()))
			if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		var m map[string]any
		b, _ := os.ReadFile(filepath.Join(dir, model.ManifestFile))
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		if err := os.WriteFile(filepath.Join(dir, model.ManifestFile), mustJSON(t, m), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	files := func(m map[string]any) []any { return m["files"].([]any) }
	tests := []struct {
		name string
		dir  func(t *testing.T) string
		is   error
		want []string
	}{
		{"unknown feature and wrong width", func(t *testing.T) string {
			return manifest(t, func(m map[string]any) { m["features"] = append(m["features"].([]any)[1:], "shoe_size", "iq") })
		}, model.ErrMismatch, []string{`feature "shoe_size"`, `feature "iq"`, "want float [N, 37]"}},
		{"product not in the catalog, and twice", func(t *testing.T) string {
			return manifest(t, func(m map[string]any) {
				fs := files(m)
				fs[0].(map[string]any)["product"] = "SPACE_TRIP"
				fs[1].(map[string]any)["product"] = fs[2].(map[string]any)["product"]
			})
		}, model.ErrMismatch, []string{`product "SPACE_TRIP", which the catalog lacks`, "which TD_1Y.onnx scores too"}},
		{"an output that is not a probability", func(t *testing.T) string {
			return manifest(t, func(m map[string]any) { files(m)[3].(map[string]any)["output"] = "label" })
		}, model.ErrMismatch, []string{`output "label" is int64 [N], want float probabilities [N, 2]`}},
		{"missing and corrupt files", func(t *testing.T) string {
			dir := manifest(t, func(map[string]any) {})
			if err := os.Remove(filepath.Join(dir, "TD_3M.onnx")); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "TD_3Y.onnx"), []byte("not a model"), 0o644); err != nil {
				t.Fatal(err)
			}
			return dir
		}, os.ErrNotExist, []string{"TD_3M.onnx: no such file"}},
		{"corrupt file", func(t *testing.T) string {
			dir := manifest(t, func(map[string]any) {})
			b, _ := os.ReadFile(filepath.Join(dir, "TD_3Y.onnx"))
			if err := os.WriteFile(filepath.Join(dir, "TD_3Y.onnx"), b[:len(b)/2], 0o644); err != nil {
				t.Fatal(err)
			}
			return dir
		}, model.ErrMismatch, []string{"TD_3Y.onnx: not an ONNX model"}},
		{"scores outside [0, 1] on the probe", func(t *testing.T) string {
			dir := manifest(t, func(map[string]any) {})
			// Leaves all positive: ONNX Runtime's binary classifier then
			// skips the logistic (a known pitfall of hand-edited exports).
			c := &train.TreeClassifier{Features: int(features.NumFields), Base: -2, Trees: []train.Tree{{Nodes: []train.TreeNode{
				{Feature: 0, Mode: "BRANCH_LEQ", Threshold: 40, True: 1, False: 2}, {Leaf: true, Weight: 0.3}, {Leaf: true, Weight: 0.5}}}}}
			b, err := c.MarshalONNX()
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "TD_3M.onnx"), b, 0o644); err != nil {
				t.Fatal(err)
			}
			return dir
		}, model.ErrBadOutput, []string{"for product TD_3M (TD_3M.onnx)", "probe"}},
		{"manifest", func(t *testing.T) string {
			return manifest(t, func(m map[string]any) { m["version"] = "../x"; m["colour"] = "blue" })
		}, model.ErrMismatch, []string{`unknown field "colour"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := model.Open(tt.dir(t), features.Names(), cat.ProductIDs(), opts)
			if err == nil {
				m.Close()
				t.Fatal("the version loaded")
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("err = %v, want %v", err, tt.is)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not say %q", err, w)
				}
			}
		})
	}
	t.Run("over budget", func(t *testing.T) {
		o := opts
		o.Budget = time.Nanosecond
		_, err := model.Open(base, features.Names(), cat.ProductIDs(), o)
		if !errors.Is(err, model.ErrTooSlow) || !strings.Contains(err.Error(), "one row takes") {
			t.Fatalf("err = %v", err)
		}
	})
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"version":"v1","features":["age"],"files":[{"file":"a.onnx","product":"TD_3M"}]}`))
	f.Add([]byte(`{"version":"v1","features":["age","aum"],"files":[{"file":"a.onnx","products":["A","B"],"output":"p"}],"missing":-1,"reference":{"aum":0}}`))
	f.Add([]byte(`{"version":"","files":[{"file":"../a.onnx","product":"A","column":3}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := model.ParseManifest(b)
		if err != nil {
			if !errors.Is(err, model.ErrMismatch) {
				t.Fatalf("error %v does not wrap ErrMismatch", err)
			}
			return
		}
		if !model.ValidVersion(m.Version) || len(m.Features) == 0 || len(m.Files) == 0 {
			t.Fatalf("accepted %+v", m)
		}
		for _, e := range m.Files {
			if filepath.Base(e.File) != e.File || (e.Product == "") == (len(e.Products) == 0) {
				t.Fatalf("accepted entry %+v", e)
			}
		}
	})
}
