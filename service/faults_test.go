package service_test

// The fault suite: Redis refused, reset, black-holed, slow and cut
// mid-reply through a fault-injecting proxy; a model that errs, returns NaN,
// is slow or hangs; a SIGTERM under load; slow and abandoned clients. Each
// test fails when the behaviour it names breaks.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
	"go.uber.org/goleak"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/features/redistest"
	"github.com/directops/nbp/model"
	"github.com/directops/nbp/service"
	"github.com/directops/nbp/service/api"
	"github.com/directops/nbp/service/apitest"
	"github.com/directops/nbp/service/audit"
	"github.com/directops/nbp/service/overload"
)

// The production budgets: the request's deadline and the feature read's.
const (
	requestTimeout = 100 * time.Millisecond
	featureTimeout = 40 * time.Millisecond
	// deadlineSlack is how late past its deadline an answer may be on a
	// loaded two-core CI machine running the race detector.
	deadlineSlack = 50 * time.Millisecond
)

// faultEnv is a pipeline that reaches Redis through a fault-injecting
// proxy, with the production client timeouts (features.DefaultTimeouts)
// and feature budget, over the demo bank and the real model of env.
type faultEnv struct {
	*env
	proxy  *redistest.Proxy
	client redis.UniversalClient // the faulty pipeline's, through the proxy
	faulty *service.Pipeline
}

func newFaultEnv(t testing.TB, customers int) *faultEnv {
	t.Helper()
	e := newEnv(t, envOptions{customers: customers})
	px, rdb := proxiedRedis(t)
	now := func() time.Time { return testNow }
	p, err := service.NewPipeline(service.PipelineConfig{
		Catalog: e.cat,
		Store:   features.NewStore(rdb, features.Options{Prefix: e.prefix, Now: now}),
		// A roomy model budget: a slow CI machine must not turn a model
		// decision into a rules one where these tests expect the model.
		Scorer:         model.NewGuarded(e.onnx, e.rules, len(e.cat.Products), model.GuardOptions{Budget: time.Second}),
		FeatureTimeout: featureTimeout,
		Now:            now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &faultEnv{env: e, proxy: px, client: rdb, faulty: p}
}

// proxiedRedis returns a fault-injecting proxy in front of the test
// Redis and a client through it with the production timeouts, both
// closed when the test ends.
func proxiedRedis(t testing.TB) (*redistest.Proxy, redis.UniversalClient) {
	t.Helper()
	px, err := redistest.StartProxy(redisServer.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(px.Close)
	rdb := redis.NewUniversalClient(features.RedisOptions([]string{px.Addr}, "", features.DefaultTimeouts()))
	t.Cleanup(func() { _ = rdb.Close() })
	return px, rdb
}

// scoredIDs returns up to n customers whose decision on app_feed is ranked
// by the scorer (neither opted out, nor in the control group, nor a cold
// start), found through the env's own healthy pipeline.
func scoredIDs(t testing.TB, e *env, n int) []string {
	t.Helper()
	var ids []string
	for _, id := range e.ids {
		d, err := e.pipeline.Decide(context.Background(), service.Request{CustomerID: id, Channel: catalog.AppFeed, Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		if d.Strategy == model.StrategyModel || d.Strategy == model.StrategyRules {
			ids = append(ids, id)
			if len(ids) == n {
				return ids
			}
		}
	}
	if len(ids) == 0 {
		t.Fatal("no customer is ranked by the scorer")
	}
	return ids
}

// answer is one recommendation as the caller saw it.
type answer struct {
	status int
	took   time.Duration
	body   []byte
	r      api.RecommendationResponse
}

// recommendTimed asks for one customer's recommendations through the
// fiber app and times the answer.
func recommendTimed(t testing.TB, s *api.Server, id string, ch catalog.Channel) answer {
	t.Helper()
	target := "/v1/customers/" + id + "/recommendations?channel=" + ch.String() + "&limit=5"
	req, err := http.NewRequest("GET", target, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	resp, err := s.App().Test(req, 5000)
	if err != nil {
		t.Fatalf("%s: %v", target, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	a := answer{status: resp.StatusCode, took: time.Since(start), body: body}
	if err != nil {
		t.Fatal(err)
	}
	// Checked once timed: the check is not part of the answer's latency.
	apitest.Check(t, "GET", target, nil, resp.StatusCode, resp.Header, body)
	if a.status == http.StatusOK {
		if err := json.Unmarshal(body, &a.r); err != nil {
			t.Fatalf("%s: %v: %s", target, err, body)
		}
	}
	return a
}

// checkSafeForAnyone fails unless a list could be shown to any customer on
// the channel: nothing is known of them, so no investment product (no risk
// level), nothing that needs consent (the product's or the channel's), no
// restricted eligibility.
func checkSafeForAnyone(t testing.TB, cat *catalog.Catalog, ch catalog.Channel, a answer) {
	t.Helper()
	for _, it := range a.r.Items {
		p, err := cat.Product(it.ProductID)
		if err != nil {
			t.Errorf("%s: %v", ch, err)
			continue
		}
		switch {
		case it.RiskLevel != nil || p.Risk > 0:
			t.Errorf("%s: investment product %s (%v) offered with nothing known of the customer", ch, p.ID, p.Risk)
		case p.RequiresConsent || cat.Channels[ch].RequiresConsent:
			t.Errorf("%s: %s needs marketing consent, and nothing is known of the customer", ch, p.ID)
		case p.Eligibility.MinAge > 18 || p.Eligibility.MaxAge > 0 || len(p.Eligibility.Regions) > 0 || p.Eligibility.MinKYC > 1:
			t.Errorf("%s: %s has a restricted eligibility, and nothing is known of the customer", ch, p.ID)
		}
	}
	if cat.Channels[ch].RequiresConsent && len(a.r.Items) > 0 {
		t.Errorf("%s needs consent: %d items offered without knowing the customer's", ch, len(a.r.Items))
	}
}

// waitPersonalised waits until every customer's decision is ranked by the
// model again, undegraded.
func waitPersonalised(t testing.TB, s *api.Server, ids []string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for _, id := range ids {
		for {
			a := recommendTimed(t, s, id, catalog.AppFeed)
			if a.status == http.StatusOK && a.r.Strategy == string(model.StrategyModel) && !a.r.Degraded {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not personalised again %s after the fault ended: %d %s", id, within, a.status, a.body)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestFaultRedisAnswersDegradedInTime: whatever happens to Redis, every
// recommendation is a 200 before its deadline with a degraded list that is
// safe for anyone, and the model's decisions come back once Redis does;
// so do the audit records of the decisions made meanwhile (spilled to
// disk): every decision stays explainable.
func TestFaultRedisAnswersDegradedInTime(t *testing.T) {
	fe := newFaultEnv(t, 60)
	auditLog := newAudit(t, fe.client, auditOptions(fe.prefix, t.TempDir()))
	s := api.NewServer(api.ServerConfig{Pipeline: fe.faulty, HTTP: api.HTTPConfig{RequestTimeout: requestTimeout},
		Audit: auditLog})
	ids := scoredIDs(t, fe.env, 6)
	waitPersonalised(t, s, ids, 5*time.Second) // warm: the connection is open and healthy

	// One decision's reply on an open connection: cut in its middle. It
	// is measured on a server without the audit, whose writes share the
	// connection pool and the proxy, at its smallest of a few: a flush of
	// the warm-up's records may land in one of them.
	plain := api.NewServer(api.ServerConfig{Pipeline: fe.faulty, HTTP: api.HTTPConfig{RequestTimeout: requestTimeout}})
	reply := int64(math.MaxInt64)
	for range 5 {
		before := fe.proxy.BytesToClient()
		if a := recommendTimed(t, plain, ids[0], catalog.AppFeed); a.r.Degraded {
			t.Fatalf("healthy Redis, degraded answer: %s", a.body)
		}
		reply = min(reply, fe.proxy.BytesToClient()-before)
		time.Sleep(5 * time.Millisecond)
	}
	if reply < 20 {
		t.Fatalf("a decision read %d bytes from Redis", reply)
	}
	t.Logf("a decision reads %d bytes from Redis; the cut falls after %d", reply, reply/2)

	faults := []struct {
		name string
		set  func(*redistest.Proxy) error
	}{
		{"refused", (*redistest.Proxy).Refuse},
		{"reset", (*redistest.Proxy).Reset},
		{"black-holed", (*redistest.Proxy).BlackHole},
		// 60ms ± 20ms each way: a reply never comes within the 40ms budget.
		{"slow with jitter", func(p *redistest.Proxy) error { return p.Slow(60*time.Millisecond, 20*time.Millisecond) }},
		{"cut mid-reply", func(p *redistest.Proxy) error { return p.Cut(int(reply / 2)) }},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			if err := f.set(fe.proxy); err != nil {
				t.Fatal(err)
			}
			var slowest time.Duration
			var made []api.RecommendationResponse
			for _, id := range ids {
				for ch := range catalog.NumChannels {
					a := recommendTimed(t, s, id, ch)
					slowest = max(slowest, a.took)
					made = append(made, a.r)
					if a.status != http.StatusOK {
						t.Fatalf("%s %s: %d %s", id, ch, a.status, a.body)
					}
					if a.took > requestTimeout+deadlineSlack {
						t.Errorf("%s %s: answered after %s, deadline %s", id, ch, a.took, requestTimeout)
					}
					if !a.r.Degraded || !slices.Contains(a.r.DegradedReasons, service.ReasonFeaturesUnavailable) ||
						a.r.Strategy != string(model.StrategyNonPersonalised) {
						t.Fatalf("%s %s: want a degraded non-personalised list (features_unavailable): %s", id, ch, a.body)
					}
					if ch == catalog.AppFeed && len(a.r.Items) == 0 {
						t.Errorf("%s %s: an empty list; the degraded list offers what suits anyone", id, ch)
					}
					checkSafeForAnyone(t, fe.cat, ch, a)
				}
			}
			t.Logf("%d answers, slowest %s", len(ids)*int(catalog.NumChannels), slowest)

			if err := fe.proxy.Pass(); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			waitPersonalised(t, s, ids, 5*time.Second)
			t.Logf("personalised again after %s", time.Since(start))
			checkExplainable(t, s, auditLog, made)
		})
	}
}

// TestFaultRedisBlackHoleHoldsNoSlots: decisions waiting out their
// feature budget on a black-holed Redis do not fill the in-flight cap.
// With a cap of 8 and about 40 requests under way together, each is
// answered before its deadline with a degraded list, and none is shed.
func TestFaultRedisBlackHoleHoldsNoSlots(t *testing.T) {
	fe := newFaultEnv(t, 20)
	// The scheduler's delay reads 0: the CPU is never busy, whatever
	// else runs on the machine.
	lim := overload.NewLimiter(overload.LimiterConfig{Min: 8, Max: 8, Delay: func() (time.Duration, bool) { return 0, true }})
	s := api.NewServer(api.ServerConfig{Pipeline: fe.faulty, Limiter: lim, HTTP: api.HTTPConfig{RequestTimeout: requestTimeout}})
	ids := scoredIDs(t, fe.env, 5)
	waitPersonalised(t, s, ids, 5*time.Second)
	if err := fe.proxy.BlackHole(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fe.proxy.Pass() })

	type result struct {
		target string
		status int
		header http.Header
		body   []byte
		took   time.Duration
		err    error
	}
	// A millisecond apart: about 40 overlap in their 40ms feature budget,
	// and each has reached its read long before the cap's worth of
	// others comes (a stall of 8ms would be needed).
	results := make([]result, 60)
	var wg sync.WaitGroup
	for i := range results {
		time.Sleep(time.Millisecond)
		wg.Go(func() {
			r := &results[i]
			r.target = "/v1/customers/" + ids[i%len(ids)] + "/recommendations?channel=app_feed&limit=3"
			req, err := http.NewRequest("GET", r.target, nil)
			if err != nil {
				r.err = err
				return
			}
			start := time.Now()
			resp, err := s.App().Test(req, 5000)
			if err != nil {
				r.err = err
				return
			}
			r.body, r.err = io.ReadAll(resp.Body)
			resp.Body.Close()
			r.status, r.header, r.took = resp.StatusCode, resp.Header, time.Since(start)
		})
	}
	wg.Wait()
	var slowest time.Duration
	for _, r := range results {
		if r.err != nil {
			t.Fatalf("%s: %v", r.target, r.err)
		}
		apitest.Check(t, "GET", r.target, nil, r.status, r.header, r.body)
		var rr api.RecommendationResponse
		if r.status != http.StatusOK || json.Unmarshal(r.body, &rr) != nil || !rr.Degraded {
			t.Fatalf("%s: want a degraded 200: %d %s", r.target, r.status, r.body)
		}
		if r.took > requestTimeout+deadlineSlack {
			t.Errorf("%s: answered after %s, deadline %s", r.target, r.took, requestTimeout)
		}
		slowest = max(slowest, r.took)
	}
	if n := lim.Shed(); n != 0 {
		t.Fatalf("%d of %d requests shed while they waited on Redis", n, len(results))
	}
	if lim.InFlight() != 0 || lim.Waiting() != 0 {
		t.Fatalf("after the answers: %d in flight, %d waiting", lim.InFlight(), lim.Waiting())
	}
	t.Logf("%d degraded answers, about 40 under way together with a cap of 8, the slowest in %s", len(results), slowest)
}

// checkExplainable waits for the audit spill to be written to Redis, then
// fails unless each decision's audit record is served, and names what the
// caller was told.
func checkExplainable(t *testing.T, s *api.Server, auditLog *audit.Log, made []api.RecommendationResponse) {
	t.Helper()
	waitFor(t, 5*time.Second, "the audit spill written to Redis", func() bool {
		st := auditLog.Stats()
		return st.Replayed == st.Spilled && st.SpillBytes == 0
	})
	for _, r := range made {
		var status int
		var body []byte
		// The last ones may still be queued, and the first reads after a
		// fault may find a connection the fault broke.
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			if status, body = do(t, s, "GET", "/v1/decisions/"+r.DecisionID); status == http.StatusOK || time.Now().After(deadline) {
				break
			}
		}
		var rec audit.Record
		if status != http.StatusOK || json.Unmarshal(body, &rec) != nil {
			t.Fatalf("decision %s not explainable after the fault: %d %s", r.DecisionID, status, body)
		}
		if rec.Strategy != r.Strategy || rec.Degraded != r.Degraded || rec.ModelVersion != r.ModelVersion || len(rec.Items) != len(r.Items) {
			t.Fatalf("decision %s: the audit record %s does not say what the caller was told", r.DecisionID, body)
		}
	}
	st := auditLog.Stats()
	t.Logf("%d decisions explainable; audit records spilled %d, replayed %d, lost %d", len(made), st.Spilled, st.Replayed, st.Lost)
	if st.Lost != 0 {
		t.Fatalf("audit records lost: %+v", st)
	}
}

// TestFaultRedisBlackHoleLeaksNoGoroutines: requests through a black-holed
// Redis leave no goroutine behind, neither while the fault lasts nor once
// everything is closed.
func TestFaultRedisBlackHoleLeaksNoGoroutines(t *testing.T) {
	fe := newFaultEnv(t, 20)
	// What runs now (the env's Redis clients, closed when the test ends)
	// is not this test's concern; whatever starts from here on must end.
	ignore := goleak.IgnoreCurrent()
	s := api.NewServer(api.ServerConfig{Pipeline: fe.faulty, HTTP: api.HTTPConfig{RequestTimeout: requestTimeout}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	const workers = 16
	client := &http.Client{Transport: apitest.Transport(t, &http.Transport{MaxIdleConnsPerHost: workers}), Timeout: 5 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	base := "http://" + ln.Addr().String()

	// load sends n requests per worker, keep-alive, and checks each is a
	// degraded 200.
	load := func(n int) {
		t.Helper()
		var wg sync.WaitGroup
		var bad atomic.Int64
		var first atomic.Value // what the first bad answer was
		for w := 0; w < workers; w++ {
			wg.Go(func() {
				for i := 0; i < n; i++ {
					id := fe.ids[(w*n+i)%len(fe.ids)]
					resp, err := client.Get(base + "/v1/customers/" + id + "/recommendations?channel=app_feed")
					if err != nil {
						bad.Add(1)
						first.CompareAndSwap(nil, err.Error())
						continue
					}
					body, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					var r api.RecommendationResponse
					if err == nil {
						err = json.Unmarshal(body, &r)
					}
					if err != nil || resp.StatusCode != http.StatusOK || r.CustomerID != id ||
						!slices.Contains(r.DegradedReasons, service.ReasonFeaturesUnavailable) {
						bad.Add(1)
						first.CompareAndSwap(nil, fmt.Sprintf("%d %.300s", resp.StatusCode, body))
					}
				}
			})
		}
		wg.Wait()
		if n := bad.Load(); n > 0 {
			t.Fatalf("%d requests were not a degraded 200; the first: %v", n, first.Load())
		}
	}

	if err := fe.proxy.BlackHole(); err != nil {
		t.Fatal(err)
	}
	load(4) // every pool at its working size
	base0 := steadyGoroutines(3 * time.Second)
	load(20)
	// Whatever the requests left is gone shortly; a goroutine per request
	// would be hundreds.
	const slack = workers
	if n := settleGoroutines(base0+slack, 3*time.Second); n > base0+slack {
		t.Fatalf("%d goroutines after %d requests through a black hole, %d before", n, workers*20, base0)
	}
	t.Logf("goroutines: %d after warming up, %d after %d more requests; %d connections open through the proxy",
		base0, runtime.NumGoroutine(), workers*20, fe.proxy.Open())

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Second):
		t.Fatal("serve still running after shutdown")
	}
	client.CloseIdleConnections()
	_ = fe.client.Close()
	fe.proxy.Close()
	goleak.VerifyNone(t, ignore,
		// fasthttp's clock of the Date header: one per process, started by
		// the first request it serves.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		// The worker pool's cleaner sleeps MaxIdleWorkerDuration (10s)
		// between rounds, so it sees the stop up to 10s after Shutdown.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"))
}

// settleGoroutines waits until at most limit goroutines run, or for
// within, and returns how many run.
// steadyGoroutines waits until the number of goroutines is the same over
// five samples 10ms apart, or within has passed, and returns it.
func steadyGoroutines(within time.Duration) int {
	deadline := time.Now().Add(within)
	n, same := runtime.NumGoroutine(), 0
	for same < 5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		if m := runtime.NumGoroutine(); m == n {
			same++
		} else {
			n, same = m, 0
		}
	}
	return n
}

func settleGoroutines(limit int, within time.Duration) int {
	deadline := time.Now().Add(within)
	for {
		n := runtime.NumGoroutine()
		if n <= limit || time.Now().After(deadline) {
			return n
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// modelFault is what a faultyModel does.
type modelFault int32

const (
	modelHealthy modelFault = iota
	modelErrs
	modelNaN
	modelSlow  // over budget, and honours ctx
	modelHangs // ignores ctx, like a stuck native call, until released
)

// faultyModel is the real model with injected faults (as in model's own
// tests): it is the model that breaks, so the fault sits in front of it,
// and model.Guarded around it, as in production.
type faultyModel struct {
	inner   *model.ONNX
	mode    atomic.Int32
	release chan struct{} // closed when the test ends: hung calls return
}

func (f *faultyModel) Score(ctx context.Context, x []float32, n int, out []float32) (model.Scored, error) {
	switch modelFault(f.mode.Load()) {
	case modelErrs:
		return model.Scored{}, errors.New("onnxruntime: injected failure")
	case modelNaN:
		sc, err := f.inner.Score(ctx, x, n, out)
		out[0] = float32(math.NaN())
		return sc, err
	case modelSlow:
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return model.Scored{}, ctx.Err()
		}
	case modelHangs:
		<-f.release
	}
	return f.inner.Score(ctx, x, n, out)
}

// TestFaultModelAnsweredByTheRules: a model that errs, returns NaN, is slow
// or hangs is answered by the rules, in time, marked model_fallback, both
// before its breaker opens and after.
func TestFaultModelAnsweredByTheRules(t *testing.T) {
	const budget = 30 * time.Millisecond
	for _, mode := range []struct {
		name  string
		fault modelFault
	}{
		{"errors", modelErrs},
		{"NaN", modelNaN},
		{"slow", modelSlow},
		{"hangs", modelHangs},
	} {
		t.Run(mode.name, func(t *testing.T) {
			f := &faultyModel{release: make(chan struct{})}
			t.Cleanup(func() { close(f.release) })
			var g *model.Guarded
			e := newEnv(t, envOptions{customers: 60, scorer: func(e *env) service.Scorer {
				f.inner = e.onnx
				g = model.NewGuarded(f, e.rules, len(e.cat.Products), model.GuardOptions{Budget: budget, ConsecutiveFailures: 5})
				return g
			}})
			s := api.NewServer(api.ServerConfig{Pipeline: e.pipeline, HTTP: api.HTTPConfig{RequestTimeout: requestTimeout}})
			ids := scoredIDs(t, e, 12)
			f.mode.Store(int32(mode.fault))
			var slowest time.Duration
			for _, id := range ids { // more than ConsecutiveFailures: the breaker opens on the way
				a := recommendTimed(t, s, id, catalog.AppFeed)
				slowest = max(slowest, a.took)
				if a.status != http.StatusOK {
					t.Fatalf("%s: %d %s", id, a.status, a.body)
				}
				if a.r.Strategy != string(model.StrategyRules) || !slices.Contains(a.r.DegradedReasons, service.ReasonModelFallback) {
					t.Fatalf("%s: want the rules with model_fallback: %s", id, a.body)
				}
				if a.took > requestTimeout+deadlineSlack {
					t.Errorf("%s: answered after %s, deadline %s", id, a.took, requestTimeout)
				}
				if len(a.r.Items) == 0 {
					t.Errorf("%s: no items from the rules", id)
				}
			}
			if g.State() != gobreaker.StateOpen {
				t.Errorf("breaker %s after %d failing calls, want open", g.State(), len(ids))
			}
			t.Logf("%d answers, slowest %s", len(ids), slowest)
		})
	}
}

// pipelines counts the pipelines a Redis client runs: one per decision.
type pipelines struct{ n atomic.Int64 }

func (h *pipelines) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *pipelines) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *pipelines) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.n.Add(1); return next(ctx, cmds) }
}

// exitListener stands for the end of the process: once exit is called, a
// write on any connection it accepted fails, as it would with the process
// gone, and is counted.
type exitListener struct {
	net.Listener
	exited atomic.Bool
	late   atomic.Int64 // writes after exit
}

func (l *exitListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &exitConn{Conn: c, l: l}, nil
}

func (l *exitListener) exit() { l.exited.Store(true) }

type exitConn struct {
	net.Conn
	l *exitListener
}

func (c *exitConn) Write(b []byte) (int, error) {
	if c.l.exited.Load() {
		c.l.late.Add(1)
		return 0, net.ErrClosed
	}
	return c.Conn.Write(b)
}

// TestFaultShutdownUnderLoad does what cmd/nbp does on SIGTERM, under 200
// keep-alive requests a second: Shutdown, then the process ends. Every
// request the server began is answered 200, none is a 5xx, and Shutdown
// returns in time; requests sent after the listener closed are refused.
func TestFaultShutdownUnderLoad(t *testing.T) {
	began := &pipelines{}
	e := newEnv(t, envOptions{customers: 20, hook: began, scorer: func(e *env) service.Scorer {
		return slowScorer{e.rules, 40 * time.Millisecond} // requests stay in flight a while
	}})
	s := api.NewServer(api.ServerConfig{Pipeline: e.pipeline, HTTP: api.HTTPConfig{RequestTimeout: time.Second}})
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &exitListener{Listener: inner}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	base := "http://" + inner.Addr().String()
	client := &http.Client{Transport: apitest.Transport(t, &http.Transport{MaxIdleConnsPerHost: 64}), Timeout: 5 * time.Second}
	t.Cleanup(client.CloseIdleConnections)

	// ok: a 200 with the decision of the customer asked about.
	var ok, fiveXX, otherStatus, degraded, refused, dropped, answered atomic.Int64
	var mu sync.Mutex
	var dropErrs []string
	request := func(i int) {
		id := e.ids[i%len(e.ids)]
		resp, err := client.Get(base + "/v1/customers/" + id + "/recommendations?channel=app_feed")
		if err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				refused.Add(1)
				return
			}
			dropped.Add(1)
			mu.Lock()
			dropErrs = append(dropErrs, err.Error())
			mu.Unlock()
			return
		}
		var r api.RecommendationResponse
		derr := json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		answered.Add(1)
		switch {
		case resp.StatusCode == http.StatusOK && derr == nil && r.CustomerID == id:
			ok.Add(1)
			if r.Degraded {
				degraded.Add(1)
			}
		case resp.StatusCode >= 500:
			fiveXX.Add(1)
		default:
			otherStatus.Add(1)
		}
	}

	type shutdown struct {
		err      error
		took     time.Duration
		inFlight int64
	}
	done := make(chan shutdown, 1)
	var wg sync.WaitGroup
	tick := time.NewTicker(5 * time.Millisecond) // 200 a second
	defer tick.Stop()
	start, shutting := time.Now(), false
	for i := 0; time.Since(start) < time.Second; i++ {
		<-tick.C
		wg.Go(func() { request(i) })
		inFlight := began.n.Load() - answered.Load()
		if !shutting && time.Since(start) > 400*time.Millisecond && inFlight >= 3 {
			shutting = true
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				t0 := time.Now()
				err := s.Shutdown(ctx)
				took := time.Since(t0)
				ln.exit() // the process ends once Shutdown returns
				done <- shutdown{err, took, inFlight}
			}()
		}
	}
	wg.Wait()
	if !shutting {
		t.Fatalf("never 3 requests in flight in a second of load (%d began, %d answered)", began.n.Load(), answered.Load())
	}
	sd := <-done
	if sd.err != nil || sd.took > 5*time.Second {
		t.Fatalf("shutdown: %v after %s", sd.err, sd.took)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(time.Second):
		t.Fatal("serve still running after shutdown")
	}
	t.Logf("shutdown took %s with %d in flight; %d began, %d ok, %d refused, %d dropped before reaching the handler %q",
		sd.took, sd.inFlight, began.n.Load(), ok.Load(), refused.Load(), dropped.Load(), dropErrs)
	if n := ln.late.Load(); n > 0 {
		t.Errorf("%d writes after Shutdown returned: answers the process would not have sent", n)
	}
	if fiveXX.Load() > 0 || otherStatus.Load() > 0 || degraded.Load() > 0 {
		t.Errorf("%d 5xx, %d other statuses, %d degraded answers", fiveXX.Load(), otherStatus.Load(), degraded.Load())
	}
	// Every request the server began (one Redis read each) was answered
	// with a 200 before the process ended.
	if ok.Load() != began.n.Load() {
		t.Errorf("%d requests began, %d were answered 200", began.n.Load(), ok.Load())
	}
	if ok.Load() == 0 || refused.Load() == 0 {
		t.Errorf("%d answered, %d refused: want both (the listener closed under load)", ok.Load(), refused.Load())
	}
}

// TestFaultSlowClients: connections that are slow, stalled or abandoned
// are closed by the server within its timeouts, so that they cannot hold
// its resources.
func TestFaultSlowClients(t *testing.T) {
	const readTimeout, idleTimeout = 200 * time.Millisecond, 300 * time.Millisecond
	// Timers fire late, never early: the bounds above are roomy for a
	// loaded machine, the bounds below tight.
	const late = 400 * time.Millisecond
	e := newEnv(t, envOptions{})
	s := api.NewServer(api.ServerConfig{Pipeline: e.pipeline,
		HTTP: api.HTTPConfig{ReadTimeout: readTimeout, WriteTimeout: readTimeout, IdleTimeout: idleTimeout}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })

	// closedWithin reads from c until the server closes it and says when,
	// counted from start; it fails when c is still open after limit. What
	// the server sent before closing answers a request it never read whole
	// (a 408): it is checked against openapi.json.
	closedWithin := func(t *testing.T, c net.Conn, start time.Time, limit time.Duration) time.Duration {
		t.Helper()
		_ = c.SetReadDeadline(start.Add(limit + time.Second))
		var got bytes.Buffer
		n, err := io.Copy(&got, c)
		took := time.Since(start)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open after %s (%d bytes read)", took, n)
		}
		if took > limit {
			t.Fatalf("connection closed after %s, want within %s", took, limit)
		}
		if answers := apitest.CheckRaw(t, "GET", "", got.Bytes()); answers > 0 {
			t.Logf("%d answer(s) before the close, checked", answers)
		}
		return took
	}
	dial := func(t *testing.T) net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}

	t.Run("connects and sends nothing", func(t *testing.T) {
		c := dial(t)
		took := closedWithin(t, c, time.Now(), readTimeout+late)
		t.Logf("closed after %s", took)
	})
	t.Run("half a request line, then nothing", func(t *testing.T) {
		c := dial(t)
		start := time.Now()
		if _, err := io.WriteString(c, "GET /v1/customers/C0000"); err != nil {
			t.Fatal(err)
		}
		took := closedWithin(t, c, start, readTimeout+late)
		t.Logf("closed after %s", took)
	})
	t.Run("idle keep-alive", func(t *testing.T) {
		c := dial(t)
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: nbp\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		apitest.Check(t, "GET", "/healthz", nil, resp.StatusCode, resp.Header, body)
		if resp.StatusCode != http.StatusOK || resp.Close {
			t.Fatalf("healthz: %d, close %v: want a kept-alive 200", resp.StatusCode, resp.Close)
		}
		start := time.Now()
		_ = c.SetReadDeadline(start.Add(idleTimeout + late + time.Second))
		_, err = br.ReadByte()
		took := time.Since(start)
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			t.Fatalf("idle connection still open after %s", took)
		case err == nil:
			t.Fatal("the server sent something on an idle connection")
		case took < idleTimeout-50*time.Millisecond:
			t.Fatalf("idle connection closed after %s, before the idle timeout %s", took, idleTimeout)
		case took > idleTimeout+late:
			t.Fatalf("idle connection closed after %s, idle timeout %s", took, idleTimeout)
		}
		t.Logf("closed after %s idle", took)
	})
	t.Run("slowloris", func(t *testing.T) {
		c := dial(t)
		start := time.Now()
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: nbp\r\nX-Slow: "); err != nil {
			t.Fatal(err)
		}
		// One header byte every 100ms, never finishing the header.
		stop := make(chan struct{})
		trickled := make(chan int, 1)
		go func() {
			n := 0
			defer func() { trickled <- n }()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := c.Write([]byte{'a'}); err != nil {
						return
					}
					n++
				}
			}
		}()
		took := closedWithin(t, c, start, readTimeout+late)
		close(stop)
		t.Logf("cut after %s and %d trickled bytes", took, <-trickled)
	})
	t.Run("reads no answers", func(t *testing.T) {
		// Pipelined requests for a 20 KB document, answers never read: the
		// server's writes block once the socket buffers are full, and the
		// write timeout ends them.
		c := dial(t)
		// A small receive window, whatever the machine's TCP settings: the
		// server's writes block after a few megabytes at most.
		if err := c.(*net.TCPConn).SetReadBuffer(16 << 10); err != nil {
			t.Fatal(err)
		}
		const requests = 2000
		go func() {
			req := strings.Repeat("GET /openapi.json HTTP/1.1\r\nHost: nbp\r\n\r\n", requests)
			_, _ = io.WriteString(c, req)
		}()
		time.Sleep(readTimeout + late + 200*time.Millisecond)
		start := time.Now()
		_ = c.SetReadDeadline(start.Add(5 * time.Second))
		var got bytes.Buffer
		n, err := io.Copy(&got, c)
		drained := time.Since(start)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("a client that reads nothing still holds its connection (%d bytes read)", n)
		}
		if want := int64(requests * len(api.OpenAPI())); n >= want {
			t.Fatalf("read all %d bytes after stalling: the server waited for the reader", n)
		}
		// The answers sent whole before the server gave up.
		whole := apitest.CheckRaw(t, "GET", "/openapi.json", got.Bytes())
		t.Logf("closed: %d bytes read (%d whole answers), %s to drain", n, whole, drained)
	})
}
