package service_test

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/features/demobank"
	"github.com/directops/nbp/features/redistest"
	"github.com/directops/nbp/model"
	"github.com/directops/nbp/model/modeltest"
	"github.com/directops/nbp/model/train"
	"github.com/directops/nbp/service"
	"github.com/directops/nbp/service/audit"
	"github.com/directops/nbp/service/telemetry"
)

var redisServer *redistest.Server

func TestMain(m *testing.M) {
	stop, err := modeltest.StartRuntime()
	if err != nil {
		fmt.Fprintln(os.Stderr, "service tests:", err)
		os.Exit(1)
	}
	// The Redis-down tests make go-redis complain on every dial.
	redis.SetLogger(telemetry.NewRedisLogger(slog.New(slog.DiscardHandler)))
	redisServer, err = redistest.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "service tests:", err)
		os.Exit(1)
	}
	code := m.Run()
	redisServer.Stop()
	_ = stop()
	os.Exit(code)
}

// testNow is the clock of every test: the demo bank's export date, noon in
// China.
var testNow = time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)

// testModel is the model the tests run with: the committed one, or with
// NBP_TEST_MODEL=trees the catalog's rules as per-product tree ensembles
// (a bank's export form, with two products left to the rules), so that
// the property tests and the fault suite run with either in force (make
// test runs both).
var testModel = os.Getenv("NBP_TEST_MODEL")

// openTestModel opens the test model for the catalog.
func openTestModel(t testing.TB, cat *catalog.Catalog, rules *model.Rules) *model.ONNX {
	t.Helper()
	o := model.ONNXOptions{Workers: 2, FeatureReasons: cat.FeatureReasons, Rules: rules}
	var path string
	switch testModel {
	case "":
		var err error
		if path, err = modeltest.ModelPath(); err != nil {
			t.Fatal(err)
		}
	case "trees":
		return treeModel(t, cat, rules)
	default:
		t.Fatalf("NBP_TEST_MODEL=%q: want empty or trees", testModel)
	}
	m, err := model.Open(path, features.Names(), cat.ProductIDs(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// treeModel is the catalog's rules as per-product tree ensembles (version
// rules-trees-test), two products left to the rules, one file with its
// ZipMap.
func treeModel(t testing.TB, cat *catalog.Catalog, rules *model.Rules) *model.ONNX {
	t.Helper()
	var left []string
	for _, id := range []string{"CC_YOUTH", "INS_ACCIDENT"} {
		if _, err := cat.Product(id); err == nil {
			left = append(left, id)
		}
	}
	dir, err := train.WriteRulesTrees(t.TempDir(), cat, train.TreeVersion{Version: "rules-trees-test", Columns: features.Names(),
		Leave: left, ZipMap: []string{"TD_1Y"}, TrainedAt: testNow})
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Open(dir, features.Names(), cat.ProductIDs(), model.ONNXOptions{Workers: 2, FeatureReasons: cat.FeatureReasons, Rules: rules})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// env is a pipeline on a real Redis holding a demo bank, with the real model.
type env struct {
	cat      *catalog.Catalog
	store    *features.Store
	rdb      redis.UniversalClient
	onnx     *model.ONNX
	rules    *model.Rules
	bank     *demobank.Bank
	ids      []string
	vecs     map[string]features.Vector
	prefix   string
	pipeline *service.Pipeline
	// shadows receives what the shadow would have served, when there is one.
	shadows chan *service.ShadowDecision
}

type envOptions struct {
	customers int
	scorer    func(e *env) service.Scorer // default: the guarded model
	down      bool                        // the store points at a port nobody listens on
	// scorerRules scores with the rules alone (no ONNX sessions): for fuzzing.
	scorerRules bool
	// now is the clock; default testNow. The demo bank is built as of its
	// day.
	now func() time.Time
	// cat is the catalog; default the embedded one.
	cat *catalog.Catalog
	// decisionIDs makes real decision ids (NewDecisionID) rather than
	// numbered test ones.
	decisionIDs bool
	// challenger, when set, ranks challengerShare of the customers.
	challenger      func(e *env) service.Scorer
	challengerShare float64
	// shadow, when set, shadows shadowShare of the champion's decisions
	// (with a queue roomy enough to drop none); the env runs it.
	shadow      func(e *env) service.Scorer
	shadowShare float64
	shadowQueue int // default 100,000
	// featureLogShare is PipelineConfig.FeatureLogShare.
	featureLogShare float64
	// hook, when set, sees every command the pipeline's Redis client sends.
	hook redis.Hook
	// meters and tracers, when set, record the pipeline's telemetry.
	meters  metric.MeterProvider
	tracers trace.TracerProvider
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	cat := o.cat
	if cat == nil {
		var err error
		if cat, err = catalog.Default(); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{cat: cat, prefix: redistest.Prefix(t), vecs: make(map[string]features.Vector)}
	addr := redisServer.Addr
	if o.down {
		port, err := redistest.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		addr = fmt.Sprintf("127.0.0.1:%d", port)
	}
	// Roomy timeouts: a loaded CI machine must not turn a slow answer into
	// a degraded decision. Tests of the deadlines set their own.
	roomy := features.Timeouts{Dial: 2 * time.Second, Read: 2 * time.Second, Write: 2 * time.Second, Pool: 2 * time.Second}
	e.rdb = redis.NewUniversalClient(features.RedisOptions([]string{addr}, "", roomy))
	t.Cleanup(func() { _ = e.rdb.Close() })
	if o.hook != nil {
		e.rdb.AddHook(o.hook)
	}
	if o.now == nil {
		o.now = func() time.Time { return testNow }
	}
	e.store = features.NewStore(e.rdb, features.Options{Prefix: e.prefix, Now: o.now})
	var err error
	e.bank, err = demobank.New(42, o.now().Truncate(24*time.Hour), cat)
	if err != nil {
		t.Fatal(err)
	}
	if o.customers > 0 {
		e.ids = make([]string, o.customers)
		vs := make([]features.Vector, o.customers)
		for i := range vs {
			e.ids[i], vs[i] = e.bank.Customer(i)
			e.vecs[e.ids[i]] = vs[i]
		}
		if !o.down {
			// Load through a working client even when the pipeline's is down.
			good := features.NewStore(redisServer.Client(t), features.Options{Prefix: e.prefix})
			for start := 0; start < len(vs); start += 1000 {
				end := min(start+1000, len(vs))
				if err := good.PutMany(context.Background(), e.ids[start:end], vs[start:end]); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	e.rules, err = model.NewRules(cat, features.Names())
	if err != nil {
		t.Fatal(err)
	}
	e.onnx = openTestModel(t, cat, e.rules)
	var scorer service.Scorer = model.NewGuarded(e.onnx, e.rules, len(cat.Products), model.GuardOptions{Budget: time.Second})
	if o.scorer != nil {
		scorer = o.scorer(e)
	}
	if o.scorerRules {
		scorer = e.rules
	}
	var seq atomic.Int64
	newID := func(time.Time) string { return fmt.Sprintf("01TEST%020d", seq.Add(1)) }
	if o.decisionIDs {
		newID = nil
	}
	pc := service.PipelineConfig{
		Catalog: cat, Store: e.store, Scorer: scorer,
		FeatureTimeout:  2 * time.Second,
		Now:             o.now,
		MeterProvider:   o.meters,
		TracerProvider:  o.tracers,
		NewID:           newID,
		FeatureLogShare: o.featureLogShare,
	}
	if o.challenger != nil {
		pc.Challenger, pc.ChallengerShare, pc.ChallengerKey = o.challenger(e), o.challengerShare, []byte("test key")
	}
	if o.shadow != nil {
		e.shadows = make(chan *service.ShadowDecision, 100000)
		pc.Shadow, pc.ShadowShare, pc.ShadowQueue = o.shadow(e), o.shadowShare, cmp.Or(o.shadowQueue, 100000)
		pc.ShadowVersion = func() string { return "shadow-test" }
		pc.ShadowSink = func(sd *service.ShadowDecision) { e.shadows <- sd }
	}
	e.pipeline, err = service.NewPipeline(pc)
	if err != nil {
		t.Fatal(err)
	}
	if o.shadow != nil {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { e.pipeline.RunShadow(ctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	return e
}

// audit returns an audit log on the test Redis, under the env's prefix,
// closed when the test ends.
func (e *env) audit(t testing.TB) *audit.Log {
	t.Helper()
	return newAudit(t, e.rdb, audit.Options{Prefix: e.prefix, Linger: time.Millisecond})
}

// newAudit returns an audit log closed when the test ends.
func newAudit(t testing.TB, rdb redis.UniversalClient, o audit.Options) *audit.Log {
	t.Helper()
	if o.Hasher == nil {
		o.Hasher = audit.NewHasher([]byte("test key"))
	}
	a, err := audit.New(rdb, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.Close(ctx)
	})
	return a
}
