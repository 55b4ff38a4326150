package model

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// ModelInfo is what a model file says of itself.
type ModelInfo struct {
	Version   string
	TrainedAt time.Time
	Features  []string // input columns, in order
	Products  []string // output columns, in order
	// Explains is set when the model has the contributions output
	// [N, F, P]: per feature, its term in each product's log-odds.
	Explains bool
}

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
}

// ONNX scores with the trained propensity model in ONNX Runtime. Each
// session runs on one intra-op and one inter-op thread. It is safe for
// concurrent use: a call borrows a worker, and no session or tensor is ever
// shared between goroutines.
type ONNX struct {
	info     ModelInfo
	schemaN  int   // features per input row (the full schema)
	cols     []int // model input column j reads schema column cols[j]
	perm     []int // model output column j is catalog product perm[j]
	products int
	batch    int
	workers  chan *worker
	all      []*worker
	explains bool      // the model has the contributions output
	reasons  []string  // per model feature, its reason code or ""
	contribs sync.Pool // *[]float32, kept for Explain until Release
}

// worker owns one session per batch size, bound to its tensors.
type worker struct {
	one, many *binding
	ro        *ort.RunOptions
}

type binding struct {
	rows    int
	session *ort.AdvancedSession
	in      *ort.Tensor[float32]
	out     *ort.Tensor[float32]
	contrib *ort.Tensor[float32] // nil when the model does not explain
}

// ReadModelInfo reads a model file's metadata and checks its input and
// output against the contract.
func ReadModelInfo(onnx []byte) (ModelInfo, error) {
	var info ModelInfo
	md, err := ort.GetModelMetadataWithONNXData(onnx)
	if err != nil {
		return info, fmt.Errorf("read model: %w", err)
	}
	defer md.Destroy()
	get := func(key string) (string, error) {
		v, ok, err := md.LookupCustomMetadataMap(key)
		if err != nil {
			return "", err
		}
		if !ok {
			return "", fmt.Errorf("model metadata %q missing", key)
		}
		return v, nil
	}
	var errs []error
	if s, err := get(metaFeatureNames); err != nil {
		errs = append(errs, err)
	} else if err := json.Unmarshal([]byte(s), &info.Features); err != nil {
		errs = append(errs, fmt.Errorf("model metadata %q: %w", metaFeatureNames, err))
	}
	if s, err := get(metaProductIDs); err != nil {
		errs = append(errs, err)
	} else if err := json.Unmarshal([]byte(s), &info.Products); err != nil {
		errs = append(errs, fmt.Errorf("model metadata %q: %w", metaProductIDs, err))
	}
	if info.Version, err = get(metaModelVersion); err != nil {
		errs = append(errs, err)
	}
	if s, err := get(metaTrainedAt); err != nil {
		errs = append(errs, err)
	} else if info.TrainedAt, err = time.Parse(time.RFC3339, s); err != nil {
		errs = append(errs, fmt.Errorf("model metadata %q: %w", metaTrainedAt, err))
	}
	ins, outs, err := ort.GetInputOutputInfoWithONNXData(onnx)
	if err != nil {
		errs = append(errs, fmt.Errorf("read model inputs: %w", err))
	} else {
		info.Explains, err = checkIO(ins, outs, len(info.Features), len(info.Products))
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return info, fmt.Errorf("%w: %w", ErrMismatch, err)
	}
	return info, nil
}

func checkIO(ins, outs []ort.InputOutputInfo, f, p int) (explains bool, err error) {
	find := func(list []ort.InputOutputInfo, name string) *ort.InputOutputInfo {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
		return nil
	}
	in := find(ins, inputFeatures)
	if in == nil || len(ins) != 1 {
		return false, fmt.Errorf("model must have exactly one input %q", inputFeatures)
	}
	if in.DataType != ort.TensorElementDataTypeFloat || len(in.Dimensions) != 2 || in.Dimensions[1] != int64(f) {
		return false, fmt.Errorf("input %q is %s %v, want float [N, %d]", inputFeatures, in.DataType, in.Dimensions, f)
	}
	out := find(outs, outputPropensity)
	if out == nil {
		return false, fmt.Errorf("model has no output %q", outputPropensity)
	}
	if out.DataType != ort.TensorElementDataTypeFloat || len(out.Dimensions) != 2 || out.Dimensions[1] != int64(p) {
		return false, fmt.Errorf("output %q is %s %v, want float [N, %d]", outputPropensity, out.DataType, out.Dimensions, p)
	}
	c := find(outs, outputContrib)
	if c == nil {
		return false, nil
	}
	if c.DataType != ort.TensorElementDataTypeFloat || len(c.Dimensions) != 3 || c.Dimensions[1] != int64(f) || c.Dimensions[2] != int64(p) {
		return false, fmt.Errorf("output %q is %s %v, want float [N, %d, %d]", outputContrib, c.DataType, c.Dimensions, f, p)
	}
	return true, nil
}

// LoadONNX loads the model at path (see NewONNX).
func LoadONNX(path string, schema, products []string, o ONNXOptions) (*ONNX, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	m, err := NewONNX(b, schema, products, o)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", path, err)
	}
	return m, nil
}

// NewONNX builds a scorer from a model file's bytes. schema is the feature
// schema (the ordered columns of an input row) and products the catalog's
// product ids in order. The model must read only features the schema has
// and score exactly the catalog's products; otherwise the error wraps
// ErrMismatch and names every difference.
func NewONNX(onnx []byte, schema, products []string, o ONNXOptions) (*ONNX, error) {
	info, err := ReadModelInfo(onnx)
	if err != nil {
		return nil, err
	}
	m := &ONNX{info: info, schemaN: len(schema), products: len(products), batch: o.BatchSize}
	if m.batch <= 0 {
		m.batch = defaultBatchSize
	}
	if err := m.match(schema, products); err != nil {
		return nil, err
	}
	m.explains = info.Explains
	m.reasons = make([]string, len(info.Features))
	for j, f := range info.Features {
		m.reasons[j] = o.FeatureReasons[f]
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
	m.workers = make(chan *worker, n)
	for i := 0; i < n; i++ {
		w, err := m.newWorker(onnx, opts)
		if err != nil {
			m.Close() // every worker made so far is idle in the pool
			return nil, err
		}
		m.all = append(m.all, w)
		m.workers <- w
	}
	return m, nil
}

func (m *ONNX) match(schema, products []string) error {
	var diffs []string
	col := make(map[string]int, len(schema))
	for i, s := range schema {
		col[s] = i
	}
	m.cols = make([]int, len(m.info.Features))
	for j, f := range m.info.Features {
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
	m.perm = make([]int, len(m.info.Products))
	seen := make(map[string]bool, len(m.info.Products))
	for j, p := range m.info.Products {
		k, ok := pos[p]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("the model scores product %q, which the catalog lacks", p))
		}
		if seen[p] {
			diffs = append(diffs, fmt.Sprintf("the model scores product %q twice", p))
		}
		seen[p] = true
		m.perm[j] = k
	}
	for _, p := range products {
		if !seen[p] {
			diffs = append(diffs, fmt.Sprintf("the catalog has product %q, which the model does not score", p))
		}
	}
	if len(diffs) > 0 {
		slices.Sort(diffs)
		return fmt.Errorf("%w: model %s against the schema and catalog:\n  %s", ErrMismatch, m.info.Version, strings.Join(diffs, "\n  "))
	}
	return nil
}

func (m *ONNX) newWorker(onnx []byte, opts *ort.SessionOptions) (*worker, error) {
	ro, err := ort.NewRunOptions()
	if err != nil {
		return nil, fmt.Errorf("run options: %w", err)
	}
	w := &worker{ro: ro}
	if w.one, err = m.bind(onnx, opts, 1); err != nil {
		w.destroy()
		return nil, err
	}
	if w.many, err = m.bind(onnx, opts, m.batch); err != nil {
		w.destroy()
		return nil, err
	}
	return w, nil
}

func (m *ONNX) bind(onnx []byte, opts *ort.SessionOptions, rows int) (*binding, error) {
	F, P := int64(len(m.cols)), int64(len(m.perm))
	in, err := ort.NewEmptyTensor[float32](ort.NewShape(int64(rows), F))
	if err != nil {
		return nil, fmt.Errorf("input tensor: %w", err)
	}
	b := &binding{rows: rows, in: in}
	if b.out, err = ort.NewEmptyTensor[float32](ort.NewShape(int64(rows), P)); err != nil {
		b.destroy()
		return nil, fmt.Errorf("output tensor: %w", err)
	}
	names, outs := []string{outputPropensity}, []ort.Value{b.out}
	if m.explains {
		if b.contrib, err = ort.NewEmptyTensor[float32](ort.NewShape(int64(rows), F, P)); err != nil {
			b.destroy()
			return nil, fmt.Errorf("contributions tensor: %w", err)
		}
		names, outs = append(names, outputContrib), append(outs, b.contrib)
	}
	if b.session, err = ort.NewAdvancedSessionWithONNXData(onnx, []string{inputFeatures}, names,
		[]ort.Value{in}, outs, opts); err != nil {
		b.destroy()
		return nil, fmt.Errorf("onnx session: %w", err)
	}
	return b, nil
}

func (b *binding) destroy() {
	if b == nil {
		return
	}
	if b.session != nil {
		b.session.Destroy()
	}
	for _, t := range []*ort.Tensor[float32]{b.in, b.out, b.contrib} {
		if t != nil {
			t.Destroy()
		}
	}
}

func (w *worker) destroy() {
	w.one.destroy()
	w.many.destroy()
	if w.ro != nil {
		w.ro.Destroy()
	}
}

// StopsOnCancel reports that a call ends soon after its context does: the
// run is terminated in ONNX Runtime (see Guarded). A call stuck inside the
// runtime still holds one of the Workers, so at most that many callers can
// be held by a runtime that ignores termination.
func (m *ONNX) StopsOnCancel() bool { return true }

// Info returns the model's metadata.
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

// Score scores n rows of the feature schema. It waits for a free worker
// until ctx is done, and a call in ONNX Runtime is terminated when ctx is.
// An output that is not a probability is an error wrapping ErrBadOutput.
func (m *ONNX) Score(ctx context.Context, x []float32, n int, out []float32) (Scored, error) {
	if err := checkShape(x, n, m.schemaN, out, m.products); err != nil {
		return Scored{}, err
	}
	var w *worker
	select {
	case w = <-m.workers:
	case <-ctx.Done():
		return Scored{}, fmt.Errorf("wait for a model worker: %w", ctx.Err())
	}
	defer func() { m.workers <- w }()
	if err := ctx.Err(); err != nil {
		return Scored{}, fmt.Errorf("model: %w", err)
	}
	if err := w.ro.UnsetTerminate(); err != nil {
		return Scored{}, err
	}
	// Terminate the run when ctx ends. The worker goes back to the pool only
	// after a started Terminate has finished, so that it never hits the
	// next caller's run.
	terminated := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = w.ro.Terminate()
		close(terminated)
	})
	defer func() {
		if !stop() {
			<-terminated
		}
	}()

	b := w.one
	if n > 1 {
		b = w.many
	}
	var contrib []float32 // n × F × P in model order, kept for Explain
	var cp *[]float32
	if m.explains {
		size := n * len(m.cols) * len(m.perm)
		cp, _ = m.contribs.Get().(*[]float32)
		if cp == nil || cap(*cp) < size {
			b := make([]float32, size)
			cp = &b
		}
		contrib = (*cp)[:size]
	}
	for start := 0; start < n; start += b.rows {
		rows := min(b.rows, n-start)
		if err := m.run(ctx, w, b, x[start*m.schemaN:], rows, out[start*m.products:]); err != nil {
			if cp != nil {
				m.contribs.Put(cp)
			}
			return Scored{}, err
		}
		if contrib != nil {
			size := len(m.cols) * len(m.perm)
			copy(contrib[start*size:(start+rows)*size], b.contrib.GetData())
		}
	}
	sc := Scored{Strategy: StrategyModel, Version: m.info.Version}
	if contrib != nil {
		sc.Explain = m.explainer(contrib)
		sc.Release = func() { m.contribs.Put(cp) }
	}
	return sc, nil
}

// explainer returns the reason codes of the features that raised a
// product's log-odds the most, strongest first, at most three, each code
// once.
func (m *ONNX) explainer(contrib []float32) func(row, product int, dst []string) []string {
	F, P := len(m.cols), len(m.perm)
	model := make([]int, m.products) // catalog index -> model output column
	for j, k := range m.perm {
		model[k] = j
	}
	return func(row, product int, dst []string) []string {
		j := model[product]
		base := row * F * P
		var top [3]struct {
			code string
			v    float32
		}
		for f := 0; f < F; f++ {
			code := m.reasons[f]
			v := contrib[base+f*P+j]
			if code == "" || !(v > 0) {
				continue
			}
			// Keep the strongest contribution per code, in a top three.
			pos := -1
			for i := range top {
				if top[i].code == code {
					pos = i
					break
				}
			}
			if pos >= 0 {
				if v <= top[pos].v {
					continue
				}
				top[pos].v = v
			} else {
				last := len(top) - 1
				if top[last].code != "" && v <= top[last].v {
					continue
				}
				top[last].code, top[last].v = code, v
				pos = last
			}
			for pos > 0 && (top[pos-1].code == "" || top[pos].v > top[pos-1].v) {
				top[pos], top[pos-1] = top[pos-1], top[pos]
				pos--
			}
		}
		for _, t := range top {
			if t.code != "" {
				dst = append(dst, t.code)
			}
		}
		return dst
	}
}

func (m *ONNX) run(ctx context.Context, w *worker, b *binding, x []float32, rows int, out []float32) error {
	in := b.in.GetData()
	F := len(m.cols)
	for i := 0; i < rows; i++ {
		row := x[i*m.schemaN:]
		dst := in[i*F : (i+1)*F]
		for j, c := range m.cols {
			dst[j] = row[c]
		}
	}
	clear(in[rows*F:]) // padding rows of a short last chunk
	if err := b.session.RunWithOptions(w.ro); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("model run: %w", ctx.Err())
		}
		return fmt.Errorf("model run: %w", err)
	}
	res := b.out.GetData()
	P := len(m.perm)
	for i := 0; i < rows; i++ {
		for j, k := range m.perm {
			p := res[i*P+j]
			if !(p >= 0 && p <= 1) {
				return fmt.Errorf("%w: %v for product %s", ErrBadOutput, p, m.info.Products[j])
			}
			out[i*m.products+k] = p
		}
	}
	return nil
}
