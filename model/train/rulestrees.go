package train

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/model"
)

// negated is the split mode that is true when a signal's comparison is
// not: the split's true branch is "does not fire", where a missing value
// goes too, as a missing value never fires a signal.
var negated = map[string]string{
	">=": "BRANCH_LT",
	">":  "BRANCH_LEQ",
	"<=": "BRANCH_GT",
	"<":  "BRANCH_GTE",
	"==": "BRANCH_NEQ",
	"!=": "BRANCH_EQ",
}

// RulesAsTrees writes a product's catalog rules as a gradient-boosted
// tree ensemble over the given input columns: its first two signals make
// one tree of depth two, every other signal a stump, and the base take-up
// rate is the base log-odds. Its propensities are the rules scorer's (up
// to float32 thresholds); it is how nbp tests the tree-ensemble path of a
// bank's own model with a model whose right answer is known. Each leaf
// adds ±weight/2, so that no ensemble has only positive leaves.
func RulesAsTrees(p *catalog.Product, columns []string, form TreeForm) (*TreeClassifier, error) {
	col := make(map[string]int, len(columns))
	for i, c := range columns {
		col[c] = i
	}
	c := &TreeClassifier{Features: len(columns), Form: form}
	base := math.Log(p.Rules.Base / (1 - p.Rules.Base))
	type split struct {
		node TreeNode
		half float32
	}
	var splits []split
	for _, s := range p.Rules.Signals {
		f, ok := col[s.Feature]
		mode, known := negated[s.Op]
		if !ok || !known {
			return nil, fmt.Errorf("train: product %s: signal %s on %q (%s) has no column or split", p.ID, s.Code, s.Feature, s.Op)
		}
		base += s.Weight / 2
		splits = append(splits, split{TreeNode{Feature: f, Mode: mode, Threshold: float32(s.Value), MissingTrue: true}, float32(s.Weight / 2)})
	}
	if len(splits) == 0 {
		return nil, fmt.Errorf("train: product %s has no signals", p.ID)
	}
	c.Base = float32(base)
	leaf := func(w float32) TreeNode { return TreeNode{Leaf: true, Weight: w} }
	at := func(s split, t, f int) TreeNode { s.node.True, s.node.False = t, f; return s.node }
	if len(splits) >= 2 {
		a, b := splits[0], splits[1]
		c.Trees = append(c.Trees, Tree{Nodes: []TreeNode{
			at(a, 1, 4),
			at(b, 2, 3), leaf(-a.half - b.half), leaf(-a.half + b.half),
			at(b, 5, 6), leaf(a.half - b.half), leaf(a.half + b.half),
		}})
		splits = splits[2:]
	}
	for _, s := range splits {
		c.Trees = append(c.Trees, Tree{Nodes: []TreeNode{at(s, 1, 2), leaf(-s.half), leaf(s.half)}})
	}
	return c, nil
}

// TreeVersion says what WriteRulesTrees writes.
type TreeVersion struct {
	Version string
	Columns []string // the input columns, in order
	// Leave out names products the version does not score (the rules do);
	// ZipMap names those whose file keeps skl2onnx's ZipMap output.
	Leave, ZipMap []string
	TrainedAt     time.Time
}

// WriteRulesTrees writes a model version folder under dir: one binary
// tree-ensemble classifier per product (RulesAsTrees), its manifest and
// its card. It returns the folder.
func WriteRulesTrees(dir string, cat *catalog.Catalog, v TreeVersion) (string, error) {
	folder := filepath.Join(dir, v.Version)
	if err := os.MkdirAll(folder, 0o755); err != nil {
		return "", err
	}
	man := model.Manifest{Version: v.Version, TrainedAt: v.TrainedAt.UTC(), Features: v.Columns}
	for i := range cat.Products {
		p := &cat.Products[i]
		if slices.Contains(v.Leave, p.ID) {
			continue
		}
		form := FormTensor
		if slices.Contains(v.ZipMap, p.ID) {
			form = FormZipMap
		}
		tc, err := RulesAsTrees(p, v.Columns, form)
		if err != nil {
			return "", err
		}
		b, err := tc.MarshalONNX()
		if err != nil {
			return "", err
		}
		file := p.ID + ".onnx"
		if err := os.WriteFile(filepath.Join(folder, file), b, 0o644); err != nil {
			return "", err
		}
		man.Files = append(man.Files, model.ManifestEntry{File: file, Product: p.ID})
	}
	b, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(folder, model.ManifestFile), append(b, '\n'), 0o644); err != nil {
		return "", err
	}
	card := fmt.Sprintf("# Model card: %s\n\n- Files: one TreeEnsembleClassifier (ai.onnx.ml) per product, as onnxmltools exports an XGBClassifier; %d products, the rules score the rest.\n- Made by nbp-train from the catalog %s's rules: each signal is a split, so the scores are the rules' own. It exercises the tree-ensemble path; it learns nothing.\n- Reasons: measured by perturbation (no contributions output).\n", v.Version, len(man.Files), cat.Version)
	if err := os.WriteFile(filepath.Join(folder, model.CardFile), []byte(card), 0o644); err != nil {
		return "", err
	}
	return folder, nil
}
