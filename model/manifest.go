package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ManifestFile is the name of a version's manifest in its folder.
const ManifestFile = "manifest.json"

// CardFile is the name of a version's model card in its folder.
const CardFile = "MODEL_CARD.md"

// A Manifest describes a model version as a data team exports it: which
// feature columns its files read, in what order, and which output gives
// which product's propensity. A model written by nbp-train needs none: its
// metadata says the same.
type Manifest struct {
	Version   string    `json:"version"`
	TrainedAt time.Time `json:"trained_at,omitzero"`
	// Features are the input columns of every file, in order, named as in
	// the feature schema.
	Features []string `json:"features"`
	// Files are the version's ONNX files.
	Files []ManifestEntry `json:"files"`
	// Missing, when set, replaces a missing value (NaN) before the model
	// sees it, for a model trained on imputed data. By default NaN is
	// passed as it is, as XGBoost, LightGBM and the scikit-learn tree
	// converters expect missing values.
	Missing *float32 `json:"missing,omitempty"`
	// Reference is the customer the reasons of a model without
	// contributions are measured against, by feature; a feature it leaves
	// out is compared with its missing value (see Perturbation).
	Reference map[string]float32 `json:"reference,omitempty"`
}

// A ManifestEntry is one ONNX file of a version: a binary classifier for
// one product, or one output column per product.
type ManifestEntry struct {
	File string `json:"file"`
	// Product names the product of a binary classifier: its propensity is
	// column Column (default 1, the positive class) of the output.
	Product string `json:"product,omitempty"`
	// Products name the output's columns, in order, for a file that scores
	// several products.
	Products []string `json:"products,omitempty"`
	// Output is the output to read; by default the file's only float
	// tensor output of the right width, or its ZipMap (a sequence of maps),
	// which nbp removes to read the probabilities before it.
	Output string `json:"output,omitempty"`
	Column *int   `json:"column,omitempty"`
}

// ParseManifest parses and checks a manifest: every problem is reported.
// Unknown fields are refused, so that a typo does not pass unnoticed.
func ParseManifest(b []byte) (*Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: manifest: %w", ErrMismatch, err)
	}
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !ValidVersion(m.Version) {
		add("version %q: want 1 to 64 letters, digits, '.', '_' or '-'", m.Version)
	}
	if len(m.Features) == 0 {
		add("no features")
	}
	seen := map[string]bool{}
	for i, f := range m.Features {
		if f == "" || seen[f] {
			add("features[%d] %q: empty or repeated", i, f)
		}
		seen[f] = true
	}
	if len(m.Files) == 0 {
		add("no files")
	}
	files := map[string]bool{}
	for i, e := range m.Files {
		at := fmt.Sprintf("files[%d]", i)
		if e.File == "" || filepath.Base(e.File) != e.File || !strings.HasSuffix(e.File, ".onnx") {
			add("%s.file %q: want a .onnx file name in the version's folder", at, e.File)
		}
		if files[e.File] {
			add("%s.file %q: listed twice", at, e.File)
		}
		files[e.File] = true
		switch {
		case (e.Product == "") == (len(e.Products) == 0):
			add("%s: want product (a binary classifier) or products (one column each), not both or neither", at)
		case e.Product != "" && e.Column != nil && (*e.Column < 0 || *e.Column > 1):
			add("%s.column %d: a binary classifier's probabilities have columns 0 and 1", at, *e.Column)
		case len(e.Products) > 0 && e.Column != nil:
			add("%s.column: only for a binary classifier (product)", at)
		}
	}
	for f := range m.Reference {
		if !seen[f] {
			add("reference %q: not one of the features", f)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: manifest of %q:\n  %s", ErrMismatch, m.Version, strings.ReplaceAll(err.Error(), "\n", "\n  "))
	}
	return &m, nil
}

// ValidVersion reports whether s may name a model version (and its folder).
func ValidVersion(s string) bool {
	if len(s) == 0 || len(s) > 64 || s[0] == '.' || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// readVersion reads a version: a folder with a manifest and its files, a
// folder holding one model of nbp's own contract, or such a file.
func readVersion(path string) (*Manifest, map[string][]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, fmt.Errorf("load model: %w", err)
	}
	if !st.IsDir() {
		return readContract(path)
	}
	mb, err := os.ReadFile(filepath.Join(path, ManifestFile))
	if errors.Is(err, os.ErrNotExist) {
		onnx, _ := filepath.Glob(filepath.Join(path, "*.onnx"))
		if len(onnx) != 1 {
			return nil, nil, fmt.Errorf("load model %s: no %s, and %d .onnx files where one of nbp's own contract may stand without it", path, ManifestFile, len(onnx))
		}
		return readContract(onnx[0])
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load model: %w", err)
	}
	m, err := ParseManifest(mb)
	if err != nil {
		return nil, nil, fmt.Errorf("load model %s: %w", path, err)
	}
	data := make(map[string][]byte, len(m.Files))
	var errs []error
	for _, e := range m.Files {
		b, err := os.ReadFile(filepath.Join(path, e.File))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		data[e.File] = b
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, fmt.Errorf("load model %s: %w", path, err)
	}
	return m, data, nil
}

// readContract reads a file of nbp's own contract; its metadata is its
// manifest.
func readContract(path string) (*Manifest, map[string][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("load model: %w", err)
	}
	m, err := contractManifest(b, filepath.Base(path))
	if err != nil {
		return nil, nil, fmt.Errorf("load model %s: %w", path, err)
	}
	return m, map[string][]byte{m.Files[0].File: b}, nil
}
