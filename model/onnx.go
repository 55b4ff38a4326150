package model

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	ort "github.com/yalue/onnxruntime_go"
)

// The model file's contract (written by cmd/nbp-train).
const (
	inputFeatures     = "features"
	outputPropensity  = "propensity"
	outputContrib     = "contributions"
	metaFeatureNames  = "nbp.feature_names"
	metaProductIDs    = "nbp.product_ids"
	metaModelVersion  = "nbp.model_version"
	metaTrainedAt     = "nbp.trained_at"
	defaultBatchSize  = 256
	defaultMaxWorkers = 4
)

// StartRuntime loads the ONNX Runtime shared library at libPath (an absolute
// path) and initialises its environment. Call it once per process, before
// LoadONNX; call the returned function at exit.
func StartRuntime(libPath string) (stop func() error, err error) {
	if !strings.HasPrefix(libPath, "/") {
		return nil, fmt.Errorf("onnxruntime library path %q must be absolute", libPath)
	}
	if _, err := os.Stat(libPath); err != nil {
		return nil, fmt.Errorf("onnxruntime library: %w (run .ci/fetch-onnxruntime)", err)
	}
	ort.SetSharedLibraryPath(libPath)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return nil, fmt.Errorf("initialise onnxruntime: %w", err)
	}
	return ort.DestroyEnvironment, nil
}

// ModelInfo is what a model version says of itself.
type ModelInfo struct {
	Version   string
	TrainedAt time.Time
	Features  []string // input columns, in order
	Products  []string // the products the model scores; the rules score the others
	Files     []string
	// Reasons is how its reasons are found: ReasonsContributions or
	// ReasonsPerturbation.
	Reasons string
}

// How a model's reason codes are found.
const (
	// ReasonsContributions reads the model's contributions output [N, F, P]:
	// per feature, its exact term in each product's log-odds.
	ReasonsContributions = "contributions"
	// ReasonsPerturbation measures, for an item kept in a decision, how
	// much each feature raises the product's log-odds against the
	// reference customer (Manifest.Reference; a missing value by default):
	// one more model call, of one row per feature, for that item's file.
	ReasonsPerturbation = "perturbation"
)

// ONNXOptions configures an ONNX scorer.
type ONNXOptions struct {
	// Workers is how many calls may run at once; each worker owns its
	// sessions and tensors. Default 4.
	Workers int
	// BatchSize is the rows per call for a batch; default 256.
	BatchSize int
	// FeatureReasons maps a model feature to the reason code it gives when
	// it raises a product's score; unmapped features give no reason.
	FeatureReasons map[string]string
	// Rules score the catalog's products the model leaves out; without
	// them, the model must score every product.
	Rules Scorer
	// NoContributions ignores a contributions output: the reasons are
	// measured by perturbation (to compare the two methods).
	NoContributions bool
	// Separate runs each file as a session of its own rather than merged
	// into one graph (to compare the two).
	Separate bool
	// Probe, when set, is a batch of rows of the feature schema scored
	// before the model is accepted: every score must be a probability, one
	// row within Budget and the batch within BatchBudget (medians of a few
	// calls).
	Probe               []float32
	Budget, BatchBudget time.Duration
	// Pace is a pause after each session a load creates (creating one
	// takes a core for some milliseconds), so that a version loaded beside
	// live traffic leaves the CPU to it in between; 0: none.
	Pace time.Duration
}

// Scorer is the method set every scorer shares.
type Scorer interface {
	Score(ctx context.Context, x []float32, n int, out []float32) (Scored, error)
}

// ONNX scores with a model version in ONNX Runtime: one or more files,
// each giving some products' propensities, and the rules for the products
// the version leaves out. Each session runs on one intra-op and one
// inter-op thread. It is safe for concurrent use: a call borrows a worker,
// and no session or tensor is ever shared between goroutines.
type ONNX struct {
	info     ModelInfo
	pace     time.Duration // pause after each session a load creates
	schemaN  int           // features per input row (the full schema)
	cols     []int         // model input column j reads schema column cols[j]
	missing  *float32
	ref      []float32 // per model input column, the reference value
	parts    []part
	partOf   []int  // catalog product -> index in parts, -1 for the rules
	byRules  []bool // catalog product -> scored by the rules
	rules    Scorer
	products int
	batch    int
	workers  chan *worker
	all      []*worker
	sessions []session
	explains bool     // exact contributions (one part, nbp's contract)
	reasons  []string // per model feature, its reason code or ""
	perturb  []int    // the model features with a reason code
	// perturbAt is, per model feature, 1 + its index in perturb (0 for none).
	perturbAt []int
	states    sync.Pool
}

// part is one file of a version.
type part struct {
	file             string
	onnx             []byte
	input, output    string
	contrib          string // the contributions output, "" for none
	width            int    // output columns
	outCols, catalog []int  // output column outCols[i] is catalog product catalog[i]
	// session and colOff place the part in its session: its first
	// column among the columns of the session's parts.
	session, colOff int
}

// worker owns, per batch size, one input tensor and one session per part
// bound to it.
type worker struct {
	sizes [3]*sized // one row, a batch, a perturbation
	ro    *ort.RunOptions
	// terminate ends the run under way (the context of the call that
	// borrowed the worker ended), then says so on terminated: made once,
	// so that a call allocates neither.
	terminate  func()
	terminated chan struct{}
	stop       func() bool // the borrowing call's context.AfterFunc
}

const (
	sizeOne = iota
	sizeMany
	sizeProbe
)

type sized struct {
	rows int
	in   *ort.Tensor[float32]
	runs []run // one per session
}

// run is one session bound to the input and to one output per part it
// scores.
type run struct {
	session *ort.AdvancedSession
	outs    []*ort.Tensor[float32] // per part of the session
	contrib *ort.Tensor[float32]   // nil when the model does not explain
}

// session is one ONNX session of a version: a file, or every file merged
// into one graph, and the parts it scores.
type session struct {
	onnx    []byte
	input   string
	outputs []string // per part
	parts   []int
	cols    int // output columns nbp reads, all parts
}

// contractManifest reads the metadata of a file of nbp's own contract
// (written by cmd/nbp-train) as its manifest.
func contractManifest(onnx []byte, file string) (*Manifest, error) {
	md, err := ort.GetModelMetadataWithONNXData(onnx)
	if err != nil {
		return nil, fmt.Errorf("%w: read model: %w", ErrMismatch, err)
	}
	defer md.Destroy()
	get := func(key string) (string, error) {
		v, ok, err := md.LookupCustomMetadataMap(key)
		if err != nil {
			return "", err
		}
		if !ok {
			return "", fmt.Errorf("model metadata %q missing (a model without nbp's metadata needs a %s)", key, ManifestFile)
		}
		return v, nil
	}
	m := &Manifest{}
	e := ManifestEntry{File: file, Output: outputPropensity}
	var errs []error
	if s, err := get(metaFeatureNames); err != nil {
		errs = append(errs, err)
	} else if err := json.Unmarshal([]byte(s), &m.Features); err != nil {
		errs = append(errs, fmt.Errorf("model metadata %q: %w", metaFeatureNames, err))
	}
	if s, err := get(metaProductIDs); err != nil {
		errs = append(errs, err)
	} else if err := json.Unmarshal([]byte(s), &e.Products); err != nil {
		errs = append(errs, fmt.Errorf("model metadata %q: %w", metaProductIDs, err))
	}
	if m.Version, err = get(metaModelVersion); err != nil {
		errs = append(errs, err)
	}
	if s, err := get(metaTrainedAt); err != nil {
		errs = append(errs, err)
	} else if m.TrainedAt, err = time.Parse(time.RFC3339, s); err != nil {
		errs = append(errs, fmt.Errorf("model metadata %q: %w", metaTrainedAt, err))
	}
	m.Files = []ManifestEntry{e}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMismatch, err)
	}
	return m, nil
}

// Open loads the model version at path: a folder with a manifest and the
// files it names, a folder with one file of nbp's own contract, or such a
// file (see NewONNX).
func Open(path string, schema, products []string, o ONNXOptions) (*ONNX, error) {
	man, data, err := readVersion(path)
	if err != nil {
		return nil, err
	}
	m, err := newONNX(man, data, schema, products, o)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", path, err)
	}
	return m, nil
}

// LoadONNX loads a model file of nbp's own contract (see Open).
func LoadONNX(path string, schema, products []string, o ONNXOptions) (*ONNX, error) {
	return Open(path, schema, products, o)
}

// NewONNX builds a scorer from the bytes of a model file of nbp's own
// contract: input features, outputs propensity and optionally
// contributions, its metadata naming the columns (see package train).
func NewONNX(onnx []byte, schema, products []string, o ONNXOptions) (*ONNX, error) {
	man, err := contractManifest(onnx, "model.onnx")
	if err != nil {
		return nil, err
	}
	return newONNX(man, map[string][]byte{"model.onnx": onnx}, schema, products, o)
}

// newONNX checks a version against the feature schema (the ordered
// columns of an input row) and the catalog's product ids, builds its
// sessions and, with a probe, checks its scores and latency. Every problem
// is reported; the error wraps ErrMismatch, ErrBadOutput or ErrTooSlow.
func newONNX(man *Manifest, data map[string][]byte, schema, products []string, o ONNXOptions) (*ONNX, error) {
	m := &ONNX{schemaN: len(schema), products: len(products), batch: o.BatchSize, missing: man.Missing, rules: o.Rules, pace: o.Pace}
	m.info = ModelInfo{Version: man.Version, TrainedAt: man.TrainedAt, Features: man.Features}
	if m.batch <= 0 {
		m.batch = defaultBatchSize
	}
	if err := m.match(man, data, schema, products, o); err != nil {
		return nil, err
	}
	m.reasons = make([]string, len(man.Features))
	m.ref = make([]float32, len(man.Features))
	m.perturbAt = make([]int, len(man.Features))
	for j, f := range man.Features {
		m.reasons[j] = o.FeatureReasons[f]
		if m.reasons[j] != "" {
			m.perturb = append(m.perturb, j)
			m.perturbAt[j] = len(m.perturb)
		}
		m.ref[j] = float32(math.NaN())
		if v, ok := man.Reference[f]; ok {
			m.ref[j] = v
		}
	}
	m.info.Reasons = ReasonsPerturbation
	if m.explains {
		m.info.Reasons = ReasonsContributions
	}
	n := o.Workers
	if n <= 0 {
		n = defaultMaxWorkers
	}
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("session options: %w", err)
	}
	defer opts.Destroy()
	if err := opts.SetIntraOpNumThreads(1); err != nil {
		return nil, err
	}
	if err := opts.SetInterOpNumThreads(1); err != nil {
		return nil, err
	}
	m.group(o.Separate)
	m.workers = make(chan *worker, n)
	for i := 0; i < n; i++ {
		w, err := m.newWorker(opts)
		if err != nil {
			m.Close() // every worker made so far is idle in the pool
			return nil, err
		}
		m.all = append(m.all, w)
		m.workers <- w
	}
	for i := range m.parts {
		m.parts[i].onnx = nil // the sessions hold the model now
	}
	for i := range m.sessions {
		m.sessions[i].onnx = nil
	}
	if o.Probe != nil {
		if err := m.probe(o.Probe, o.Budget, o.BatchBudget); err != nil {
			m.Close()
			return nil, err
		}
	}
	return m, nil
}

// match maps the version's inputs and outputs onto the schema and the
// catalog, and reads every file's inputs and outputs.
func (m *ONNX) match(man *Manifest, data map[string][]byte, schema, products []string, o ONNXOptions) error {
	var diffs []string
	col := make(map[string]int, len(schema))
	for i, s := range schema {
		col[s] = i
	}
	m.cols = make([]int, len(man.Features))
	for j, f := range man.Features {
		c, ok := col[f]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("the model reads feature %q, which the feature schema lacks", f))
		}
		m.cols[j] = c
	}
	pos := make(map[string]int, len(products))
	for i, p := range products {
		pos[p] = i
	}
	m.partOf = make([]int, len(products))
	for k := range m.partOf {
		m.partOf[k] = -1
	}
	for _, e := range man.Files {
		p := part{file: e.File}
		ids := e.Products
		if e.Product != "" {
			ids = []string{e.Product}
		}
		for _, id := range ids {
			k, ok := pos[id]
			if !ok {
				diffs = append(diffs, fmt.Sprintf("%s scores product %q, which the catalog lacks", e.File, id))
				continue
			}
			if m.partOf[k] >= 0 {
				diffs = append(diffs, fmt.Sprintf("%s scores product %q, which %s scores too", e.File, id, m.parts[m.partOf[k]].file))
				continue
			}
			m.partOf[k] = len(m.parts)
			m.info.Products = append(m.info.Products, id)
		}
		if err := p.read(data[e.File], e, len(man.Features), o.NoContributions); err != nil {
			diffs = append(diffs, fmt.Sprintf("%s: %v", e.File, err))
		}
		for i, id := range ids {
			if k, ok := pos[id]; ok && m.partOf[k] == len(m.parts) {
				c := i
				if e.Product != "" {
					c = 1
					if e.Column != nil {
						c = *e.Column
					}
				}
				p.outCols, p.catalog = append(p.outCols, c), append(p.catalog, k)
			}
		}
		m.parts = append(m.parts, p)
		m.info.Files = append(m.info.Files, e.File)
	}
	m.byRules = make([]bool, len(products))
	var left []string
	for k, id := range products {
		if m.partOf[k] < 0 {
			m.byRules[k] = true
			left = append(left, id)
		}
	}
	if len(left) > 0 && m.rules == nil {
		for _, id := range left {
			diffs = append(diffs, fmt.Sprintf("the catalog has product %q, which the model does not score (and no rules stand in)", id))
		}
	}
	if len(left) == 0 {
		m.byRules = nil
	}
	m.explains = len(m.parts) == 1 && m.parts[0].contrib != ""
	if len(diffs) > 0 {
		slices.Sort(diffs)
		return fmt.Errorf("%w: model %s against the schema and catalog:\n  %s", ErrMismatch, m.info.Version, strings.Join(diffs, "\n  "))
	}
	return nil
}

// read checks one file's input and output and finds the output to read,
// removing a ZipMap in front of it.
func (p *part) read(onnx []byte, e ManifestEntry, features int, noContrib bool) error {
	ins, outs, err := ort.GetInputOutputInfoWithONNXData(onnx)
	if err != nil {
		return fmt.Errorf("not an ONNX model ONNX Runtime can read: %w", err)
	}
	var errs []error
	if len(ins) != 1 {
		errs = append(errs, fmt.Errorf("%d inputs, want one float [N, %d]", len(ins), features))
	} else if in := ins[0]; in.OrtValueType != ort.ONNXTypeTensor || in.DataType != ort.TensorElementDataTypeFloat || len(in.Dimensions) != 2 || in.Dimensions[1] != int64(features) {
		errs = append(errs, fmt.Errorf("input %q is %s, want float [N, %d] (the manifest's %d features)", in.Name, typeOf(&in), features, features))
	} else {
		p.input = in.Name
	}
	width := len(e.Products)
	if e.Product != "" {
		width = 2
	}
	find := func(name string) *ort.InputOutputInfo {
		for i := range outs {
			if outs[i].Name == name {
				return &outs[i]
			}
		}
		return nil
	}
	var out *ort.InputOutputInfo
	switch {
	case e.Output != "":
		if out = find(e.Output); out == nil {
			errs = append(errs, fmt.Errorf("no output %q", e.Output))
		}
	case find(outputPropensity) != nil:
		out = find(outputPropensity)
	default:
		var tensors, seqs []*ort.InputOutputInfo
		for i := range outs {
			o := &outs[i]
			switch {
			case o.OrtValueType == ort.ONNXTypeSequence:
				seqs = append(seqs, o)
			case o.OrtValueType == ort.ONNXTypeTensor && o.DataType == ort.TensorElementDataTypeFloat && len(o.Dimensions) == 2 && o.Dimensions[1] == int64(width):
				tensors = append(tensors, o)
			}
		}
		switch {
		case len(tensors) == 1:
			out = tensors[0]
		case len(tensors) == 0 && len(seqs) == 1:
			out = seqs[0]
		default:
			errs = append(errs, fmt.Errorf("%d float [N, %d] outputs and %d sequences: name the probabilities in the manifest (output)", len(tensors), width, len(seqs)))
		}
	}
	if out != nil && out.OrtValueType == ort.ONNXTypeSequence {
		stripped, name, err := stripZipMap(onnx, out.Name)
		if err == nil {
			// Read again without the ZipMap: the same checks, on the tensor.
			return p.read(stripped, ManifestEntry{File: e.File, Product: e.Product, Products: e.Products, Output: name, Column: e.Column}, features, noContrib)
		}
		errs = append(errs, err)
		out = nil
	}
	if out != nil {
		if out.OrtValueType != ort.ONNXTypeTensor || out.DataType != ort.TensorElementDataTypeFloat || len(out.Dimensions) != 2 || out.Dimensions[1] != int64(width) {
			errs = append(errs, fmt.Errorf("output %q is %s, want float probabilities [N, %d]", out.Name, typeOf(out), width))
		} else {
			p.output, p.width = out.Name, width
		}
	}
	if c := find(outputContrib); c != nil && e.Product == "" && !noContrib {
		if c.DataType != ort.TensorElementDataTypeFloat || len(c.Dimensions) != 3 || c.Dimensions[1] != int64(features) || c.Dimensions[2] != int64(width) {
			errs = append(errs, fmt.Errorf("output %q is %s, want float [N, %d, %d]", outputContrib, typeOf(c), features, width))
		} else {
			p.contrib = c.Name
		}
	}
	p.onnx = onnx
	return errors.Join(errs...)
}

func (m *ONNX) newWorker(opts *ort.SessionOptions) (*worker, error) {
	ro, err := ort.NewRunOptions()
	if err != nil {
		return nil, fmt.Errorf("run options: %w", err)
	}
	w := &worker{ro: ro, terminated: make(chan struct{}, 1)}
	w.terminate = func() {
		_ = w.ro.Terminate()
		w.terminated <- struct{}{}
	}
	rows := [3]int{1, m.batch, 1 + len(m.perturb)}
	for i, r := range rows {
		if i == sizeProbe && (m.explains || len(m.perturb) == 0) {
			continue
		}
		if w.sizes[i], err = m.bind(opts, r); err != nil {
			w.destroy()
			return nil, err
		}
	}
	return w, nil
}

func (m *ONNX) bind(opts *ort.SessionOptions, rows int) (*sized, error) {
	F := int64(len(m.cols))
	in, err := ort.NewEmptyTensor[float32](ort.NewShape(int64(rows), F))
	if err != nil {
		return nil, fmt.Errorf("input tensor: %w", err)
	}
	s := &sized{rows: rows, in: in}
	for _, ss := range m.sessions {
		s.runs = append(s.runs, run{})
		r := &s.runs[len(s.runs)-1]
		var outs []ort.Value
		for _, pi := range ss.parts {
			t, err := ort.NewEmptyTensor[float32](ort.NewShape(int64(rows), int64(m.parts[pi].width)))
			if err != nil {
				s.destroy()
				return nil, fmt.Errorf("output tensor: %w", err)
			}
			r.outs, outs = append(r.outs, t), append(outs, t)
		}
		names := slices.Clone(ss.outputs)
		if m.explains {
			if r.contrib, err = ort.NewEmptyTensor[float32](ort.NewShape(int64(rows), F, int64(m.parts[0].width))); err != nil {
				s.destroy()
				return nil, fmt.Errorf("contributions tensor: %w", err)
			}
			names, outs = append(names, m.parts[0].contrib), append(outs, r.contrib)
		}
		if r.session, err = ort.NewAdvancedSessionWithONNXData(ss.onnx, []string{ss.input}, names,
			[]ort.Value{in}, outs, opts); err != nil {
			s.destroy()
			return nil, fmt.Errorf("onnx session: %w", err)
		}
		if m.pace > 0 {
			time.Sleep(m.pace)
		}
	}
	return s, nil
}

// group puts the parts into sessions: several files are merged into one
// graph, so that a call is one session run, not one per file; files that
// cannot be merged run as sessions of their own.
func (m *ONNX) group(separate bool) {
	one := func(pi int) session {
		p := &m.parts[pi]
		return session{onnx: p.onnx, input: p.input, outputs: []string{p.output}, parts: []int{pi}}
	}
	m.sessions = nil
	if len(m.parts) > 1 && !m.explains && !separate {
		files, ins, outs := make([][]byte, len(m.parts)), make([]string, len(m.parts)), make([]string, len(m.parts))
		for i, p := range m.parts {
			files[i], ins[i], outs[i] = p.onnx, p.input, p.output
		}
		if merged, names, err := mergeGraphs(files, ins, outs); err == nil {
			all := make([]int, len(m.parts))
			for i := range all {
				all[i] = i
			}
			m.sessions = []session{{onnx: merged, input: mergedInput, outputs: names, parts: all}}
		}
	}
	if m.sessions == nil {
		for pi := range m.parts {
			m.sessions = append(m.sessions, one(pi))
		}
	}
	for si := range m.sessions {
		ss := &m.sessions[si]
		for _, pi := range ss.parts {
			p := &m.parts[pi]
			p.session, p.colOff = si, ss.cols
			ss.cols += len(p.outCols)
		}
	}
}

// Sessions returns how many ONNX sessions a call runs: one, unless files
// could not be merged.
func (m *ONNX) Sessions() int { return len(m.sessions) }

func (s *sized) destroy() {
	if s == nil {
		return
	}
	for _, r := range s.runs {
		if r.session != nil {
			r.session.Destroy()
		}
		for _, t := range append(r.outs, r.contrib) {
			if t != nil {
				t.Destroy()
			}
		}
	}
	if s.in != nil {
		s.in.Destroy()
	}
}

func (w *worker) destroy() {
	for _, s := range w.sizes {
		s.destroy()
	}
	if w.ro != nil {
		w.ro.Destroy()
	}
}

// StopsOnCancel reports that a call ends soon after its context does: the
// run is terminated in ONNX Runtime (see Guarded). A call stuck inside the
// runtime still holds one of the Workers, so at most that many callers can
// be held by a runtime that ignores termination.
func (m *ONNX) StopsOnCancel() bool { return true }

// Info returns what the model says of itself.
func (m *ONNX) Info() ModelInfo { return m.info }

// Version returns the model's version.
func (m *ONNX) Version() string { return m.info.Version }

// Close waits for the calls in flight to end, then releases every session.
// The scorer must not be used after.
func (m *ONNX) Close() {
	for range m.all {
		w := <-m.workers
		w.destroy()
	}
	m.all = nil
}

// borrow takes a free worker until ctx ends, and arranges for the run to
// be terminated in ONNX Runtime when ctx ends; give it back with give.
func (m *ONNX) borrow(ctx context.Context) (*worker, error) {
	var w *worker
	select {
	case w = <-m.workers:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for a model worker: %w", ctx.Err())
	}
	if err := ctx.Err(); err != nil {
		m.workers <- w
		return nil, fmt.Errorf("model: %w", err)
	}
	if err := w.ro.UnsetTerminate(); err != nil {
		m.workers <- w
		return nil, err
	}
	w.stop = context.AfterFunc(ctx, w.terminate)
	return w, nil
}

// give puts a borrowed worker back, only after a started Terminate has
// finished, so that it never hits the next caller's run.
func (m *ONNX) give(w *worker) {
	if !w.stop() {
		<-w.terminated
	}
	w.stop = nil
	m.workers <- w
}

// Score scores n rows of the feature schema. It waits for a free worker
// until ctx is done, and a call in ONNX Runtime is terminated when ctx is.
// An output that is not a probability is an error wrapping ErrBadOutput.
// The products the model leaves out are scored by the rules, and
// Scored.ByRules says which.
func (m *ONNX) Score(ctx context.Context, x []float32, n int, out []float32) (Scored, error) {
	if err := checkShape(x, n, m.schemaN, out, m.products); err != nil {
		return Scored{}, err
	}
	w, err := m.borrow(ctx)
	if err != nil {
		return Scored{}, err
	}
	defer m.give(w)
	st := m.state(n, x)
	s := w.sizes[sizeOne]
	if n > 1 {
		s = w.sizes[sizeMany]
	}
	for start := 0; start < n; start += s.rows {
		rows := min(s.rows, n-start)
		m.fill(s, x[start*m.schemaN:], rows)
		if err := m.run(ctx, w, s, rows, out[start*m.products:]); err != nil {
			m.states.Put(st)
			return Scored{}, err
		}
		if st.contrib != nil {
			size := len(m.cols) * m.parts[0].width
			copy(st.contrib[start*size:(start+rows)*size], s.runs[0].contrib.GetData())
		}
	}
	if m.byRules != nil {
		// The rules score every product; keep those the model leaves out.
		rs, err := m.rules.Score(ctx, st.x, n, st.rulesOut)
		if err != nil {
			m.states.Put(st)
			return Scored{}, fmt.Errorf("rules for the products the model leaves out: %w", err)
		}
		st.rulesExplain = rs.Explain
		for i := 0; i < n; i++ {
			for k, r := range m.byRules {
				if r {
					out[i*m.products+k] = st.rulesOut[i*m.products+k]
				}
			}
		}
	}
	return Scored{Strategy: StrategyModel, Version: m.info.Version, ByRules: m.byRules,
		Explain: st.explain, Release: st.release}, nil
}

// fill writes rows of the schema into the worker's input, in the model's
// columns.
func (m *ONNX) fill(s *sized, x []float32, rows int) {
	in := s.in.GetData()
	F := len(m.cols)
	for i := 0; i < rows; i++ {
		row := x[i*m.schemaN:]
		dst := in[i*F : (i+1)*F]
		for j, c := range m.cols {
			dst[j] = row[c]
		}
		if m.missing != nil {
			for j, v := range dst {
				if v != v {
					dst[j] = *m.missing
				}
			}
		}
	}
	clear(in[rows*F:]) // padding rows of a short last chunk
}

// run runs every part on the worker's input and writes the rows'
// propensities into out, in catalog order.
func (m *ONNX) run(ctx context.Context, w *worker, s *sized, rows int, out []float32) error {
	for si := range m.sessions {
		r := &s.runs[si]
		if err := r.session.RunWithOptions(w.ro); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("model run: %w", ctx.Err())
			}
			return fmt.Errorf("model run: %w", err)
		}
		for oi, pi := range m.sessions[si].parts {
			p := &m.parts[pi]
			res := r.outs[oi].GetData()
			for i := 0; i < rows; i++ {
				for j, c := range p.outCols {
					v := res[i*p.width+c]
					if !(v >= 0 && v <= 1) {
						return fmt.Errorf("%w: %v for product %s (%s)", ErrBadOutput, v, m.productID(p.catalog[j]), p.file)
					}
					out[i*m.products+p.catalog[j]] = v
				}
			}
		}
	}
	return nil
}

func (m *ONNX) productID(k int) string {
	// info.Products is in parts order; find k's id through the parts.
	i := 0
	for _, p := range m.parts {
		for _, c := range p.catalog {
			if c == k {
				return m.info.Products[i]
			}
			i++
		}
	}
	return fmt.Sprint(k)
}

// typeOf names an input's or output's type for a message: float [N, 2],
// int64 [N], sequence.
func typeOf(v *ort.InputOutputInfo) string {
	if v.OrtValueType != ort.ONNXTypeTensor {
		return strings.ToLower(strings.TrimPrefix(v.OrtValueType.String(), "ONNXType"))
	}
	dims := make([]string, len(v.Dimensions))
	for i, d := range v.Dimensions {
		dims[i] = fmt.Sprint(d)
		if d < 0 {
			dims[i] = "N"
		}
	}
	return strings.ToLower(strings.TrimPrefix(v.DataType.String(), "ONNX_TENSOR_ELEMENT_DATA_TYPE_")) + " [" + strings.Join(dims, ", ") + "]"
}
