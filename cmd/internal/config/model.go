package config

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/model"
	"github.com/directops/nbp/service"
)

// Model is the propensity model and the ONNX Runtime it runs on.
type Model struct {
	Path      string
	RulesOnly bool // score with the rules alone: no model, no runtime
	ORTLib    string
	Workers   int // concurrent model calls
	// Version, when set with a model directory, opens that version rather
	// than the one the pointer names, and does not follow the pointer (a
	// batch run keeps the version it started with).
	Version string
	// Challenger names a version of the model directory that ranks a
	// share of customers (ChallengerShare) beside the one in force.
	Challenger      string
	ChallengerShare float64
	// Shadow names a version of the model directory that scores a
	// sampled share of the champion's decisions (ShadowShare) off the
	// answer's path, for comparison only.
	Shadow      string
	ShadowShare float64
}

// Register adds -model, -rules-only, -challenger and -onnxruntime to fs.
func (m *Model) Register(fs *flag.FlagSet, env *Env) {
	fs.StringVar(&m.Path, "model", env.String("NBP_MODEL", "models"), "model directory (the version its CURRENT file names, swapped when it changes), a version's folder, or a model file (env NBP_MODEL)")
	fs.BoolVar(&m.RulesOnly, "rules-only", env.On("NBP_RULES_ONLY"), "score with the rules alone, without a model (env NBP_RULES_ONLY=1)")
	fs.StringVar(&m.Challenger, "challenger", env.String("NBP_CHALLENGER", ""), "a version of the model directory that ranks -challenger-share of the customers outside the control group, to compare with the one in force (env NBP_CHALLENGER)")
	fs.Float64Var(&m.ChallengerShare, "challenger-share", env.Float("NBP_CHALLENGER_SHARE", 0.1), "share of customers the challenger ranks, chosen by a keyed hash of their id (NBP_AUDIT_KEY) (env NBP_CHALLENGER_SHARE)")
	fs.StringVar(&m.ORTLib, "onnxruntime", env.String("ONNXRUNTIME_LIB", ".cache/onnxruntime/libonnxruntime.so.1"), "ONNX Runtime shared library (env ONNXRUNTIME_LIB)")
}

// RegisterShadow adds -shadow and -shadow-share: the server's alone, as
// the batch serves no live decisions to shadow.
func (m *Model) RegisterShadow(fs *flag.FlagSet, env *Env) {
	fs.StringVar(&m.Shadow, "shadow", env.String("NBP_SHADOW", ""), "a version of the model directory that scores -shadow-share of the model's decisions off the answer's path, never served: GET /v1/admin/model compares it with the one in force (env NBP_SHADOW)")
	fs.Float64Var(&m.ShadowShare, "shadow-share", env.Float("NBP_SHADOW_SHARE", 0.05), "share of the model's decisions the shadow scores, sampled at random (env NBP_SHADOW_SHARE)")
}

// Check makes the runtime's path absolute (as ONNX Runtime needs it) and
// reports what is missing; nothing is checked with the rules alone.
func (m *Model) Check() []error {
	if m.RulesOnly {
		return nil
	}
	var errs []error
	abs, err := filepath.Abs(m.ORTLib)
	if err != nil {
		errs = append(errs, fmt.Errorf("onnxruntime: %w", err))
	}
	m.ORTLib = abs
	if _, err := os.Stat(m.ORTLib); err != nil {
		errs = append(errs, fmt.Errorf("onnxruntime library %s not found: run .ci/fetch-onnxruntime (or make demo), or set ONNXRUNTIME_LIB", m.ORTLib))
	}
	if _, err := os.Stat(m.Path); err != nil {
		errs = append(errs, fmt.Errorf("model %s: %w (start with -rules-only to serve without a model)", m.Path, err))
	}
	return errs
}

// Scorer is what ranks personalised decisions: the model behind its
// breaker with the rules standing in, or the rules alone.
type Scorer struct {
	service.Scorer
	// Guarded is the breaker-guarded model; nil with the rules alone.
	Guarded *model.Guarded
	// Registry follows a model directory's pointer; nil for a fixed model
	// (a version's folder or file) or the rules alone.
	Registry *model.Registry
	// Challenger is the challenger version behind its own breaker; nil
	// without one.
	Challenger *Scorer
	// Shadow is the shadow version behind its own breaker; nil without
	// one.
	Shadow  *Scorer
	version func() string
	close   func()
}

// Version names the model version in force ("none (rules only)" without
// one).
func (s *Scorer) Version() string { return s.version() }

// Close releases the model's sessions and the runtime.
func (s *Scorer) Close() {
	if s.close != nil {
		s.close()
	}
}

// loadPace is the pause after each session a version's load creates: a
// swap under load then takes the CPU in slices of one session (a few
// milliseconds) rather than all of its sessions in a row.
const loadPace = 10 * time.Millisecond

// probeRows is the size of the batch a version scores before it is
// accepted.
const probeRows = 64

// Open loads the scorer for the catalog's products: the rules, and unless
// RulesOnly the model on its runtime, guarded by a breaker with o. Path
// is a model directory (the version its pointer names, followed by a
// Registry), a version's folder, or a model file of nbp's own contract. A
// version is validated before it serves: against the schema and catalog,
// and on a probe batch within o's budgets. Every binary that scores wires
// it here.
func (m *Model) Open(cat *catalog.Catalog, o model.GuardOptions, log *slog.Logger) (*Scorer, error) {
	rules, err := model.NewRules(cat, features.Names())
	if err != nil {
		return nil, err
	}
	if m.RulesOnly {
		return &Scorer{Scorer: rules, version: func() string { return "none (rules only)" }}, nil
	}
	stopRT, err := model.StartRuntime(m.ORTLib)
	if err != nil {
		return nil, err
	}
	budget, batchBudget := o.Budget, o.BatchBudget
	if budget <= 0 {
		budget = model.DefaultBudget
	}
	if batchBudget <= 0 {
		batchBudget = model.DefaultBatchBudget
	}
	open := func(path string) (*model.ONNX, error) {
		return model.Open(path, features.Names(), cat.ProductIDs(), model.ONNXOptions{Workers: max(m.Workers, 1),
			FeatureReasons: cat.FeatureReasons, Rules: rules, Probe: features.Probe(probeRows, 1),
			Budget: budget, BatchBudget: batchBudget, Pace: loadPace})
	}
	sc := &Scorer{}
	var scorer interface {
		model.Scorer
		Version() string
	}
	if model.IsDir(m.Path) && m.Version != "" {
		onnx, err := open(model.Dir(m.Path).Path(m.Version))
		if err != nil {
			_ = stopRT()
			return nil, fmt.Errorf("model version %s, pinned by the batch run: %w", m.Version, err)
		}
		scorer = onnx
		sc.close = func() {
			onnx.Close()
			_ = stopRT()
		}
	} else if model.IsDir(m.Path) {
		reg, err := model.OpenRegistry(model.Dir(m.Path), open, log)
		if err != nil {
			_ = stopRT()
			return nil, fmt.Errorf("%w\n(start with -rules-only to serve the rules scorer without a model)", err)
		}
		sc.Registry, scorer = reg, reg.Live()
		sc.close = func() {
			reg.Live().Close()
			_ = stopRT()
		}
	} else {
		onnx, err := open(m.Path)
		if err != nil {
			_ = stopRT()
			return nil, fmt.Errorf("%w\n(start with -rules-only to serve the rules scorer without a model)", err)
		}
		scorer = onnx
		sc.close = func() {
			onnx.Close()
			_ = stopRT()
		}
	}
	sc.Guarded = model.NewGuarded(scorer, rules, len(cat.Products), o)
	sc.Scorer, sc.version = sc.Guarded, scorer.Version
	// A challenger and a shadow: versions of the same directory, each
	// behind its own breaker, so that one failing falls back to the rules
	// without touching the champion's.
	side := func(what, version string) (*Scorer, error) {
		if !model.IsDir(m.Path) {
			return nil, fmt.Errorf("-%s %s: needs a model directory (-model DIR)", what, version)
		}
		onnx, err := open(model.Dir(m.Path).Path(version))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		closeAll := sc.close
		sc.close = func() {
			onnx.Close()
			closeAll()
		}
		g := model.NewGuarded(onnx, rules, len(cat.Products), o)
		return &Scorer{Scorer: g, Guarded: g, version: onnx.Version}, nil
	}
	if m.Challenger != "" {
		if sc.Challenger, err = side("challenger", m.Challenger); err != nil {
			sc.Close()
			return nil, err
		}
	}
	if m.Shadow != "" {
		if !(m.ShadowShare > 0 && m.ShadowShare <= 1) {
			sc.Close()
			return nil, fmt.Errorf("-shadow-share %v: want a share in (0, 1]", m.ShadowShare)
		}
		if sc.Shadow, err = side("shadow", m.Shadow); err != nil {
			sc.Close()
			return nil, err
		}
	}
	return sc, nil
}
