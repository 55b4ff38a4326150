package model_test

import (
	"context"
	"errors"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/directops/nbp/features"
	"github.com/directops/nbp/model"
)

// faulty wraps the real model with injected faults: it is the model that
// breaks, so the fault sits in front of it.
type faulty struct {
	inner *model.ONNX
	mode  atomic.Int32
	calls atomic.Int32
	delay time.Duration
}

const (
	healthy int32 = iota
	failing
	slow
	nanOut
	hang
	panics
)

func (f *faulty) Score(ctx context.Context, x []float32, n int, out []float32) (model.Scored, error) {
	f.calls.Add(1)
	switch f.mode.Load() {
	case failing:
		return model.Scored{}, errors.New("onnxruntime: injected failure")
	case slow:
		select {
		case <-time.After(f.delay):
		case <-ctx.Done():
			return model.Scored{}, ctx.Err()
		}
	case hang:
		time.Sleep(f.delay) // ignores ctx, like a stuck native call
	case panics:
		var rows []float32
		_ = rows[n+7] // an index out of range, as a broken model might
	case nanOut:
		sc, err := f.inner.Score(ctx, x, n, out)
		out[0] = float32(math.NaN())
		return sc, err
	}
	return f.inner.Score(ctx, x, n, out)
}

func newGuarded(t *testing.T, o model.GuardOptions) (*model.Guarded, *faulty, []float32, int) {
	t.Helper()
	cat := defaultCatalog(t)
	f := &faulty{inner: committedModel(t, cat, 2), delay: 200 * time.Millisecond}
	rules, err := model.NewRules(cat, features.Names())
	if err != nil {
		t.Fatal(err)
	}
	return model.NewGuarded(f, rules, len(cat.Products), o), f, demoRows(t, cat, 1), len(cat.Products)
}

func TestGuardedFallsBackAndRecovers(t *testing.T) {
	g, f, x, P := newGuarded(t, model.GuardOptions{Budget: 50 * time.Millisecond, ConsecutiveFailures: 3, OpenFor: 100 * time.Millisecond, Probes: 1})
	out := make([]float32, P)
	score := func() model.Scored {
		t.Helper()
		sc, err := g.Score(context.Background(), x, 1, out)
		if err != nil {
			t.Fatal(err)
		}
		for k, p := range out {
			if !(p > 0 && p < 1) {
				t.Fatalf("product %d: %v is not a probability", k, p)
			}
		}
		return sc
	}
	if sc := score(); sc.Strategy != model.StrategyModel || sc.Fallback {
		t.Fatalf("healthy: %+v", sc)
	}

	f.mode.Store(failing)
	for i := 0; i < 3; i++ {
		if sc := score(); sc.Strategy != model.StrategyRules || !sc.Fallback || sc.Cause != "error" {
			t.Fatalf("failure %d: %+v", i, sc)
		}
	}
	if g.State() != gobreaker.StateOpen {
		t.Fatalf("breaker %v after 3 failures, want open", g.State())
	}
	calls := f.calls.Load()
	for i := 0; i < 20; i++ {
		if sc := score(); sc.Cause != "breaker_open" {
			t.Fatalf("open: %+v", sc)
		}
	}
	if f.calls.Load() != calls {
		t.Fatalf("the open breaker let %d calls through", f.calls.Load()-calls)
	}

	f.mode.Store(healthy)
	time.Sleep(150 * time.Millisecond) // past OpenFor: half-open
	if sc := score(); sc.Strategy != model.StrategyModel {
		t.Fatalf("probe: %+v", sc)
	}
	if g.State() != gobreaker.StateClosed {
		t.Fatalf("breaker %v after a good probe, want closed", g.State())
	}
}

func TestGuardedLatencyBudget(t *testing.T) {
	for _, mode := range []int32{slow, hang} {
		g, f, x, P := newGuarded(t, model.GuardOptions{Budget: 10 * time.Millisecond, ConsecutiveFailures: 2, OpenFor: time.Minute})
		f.mode.Store(mode)
		out := make([]float32, P)
		for i := 0; i < 2; i++ {
			start := time.Now()
			sc, err := g.Score(context.Background(), x, 1, out)
			took := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			if sc.Strategy != model.StrategyRules || sc.Cause != "too_slow" {
				t.Fatalf("mode %d: %+v", mode, sc)
			}
			// The rules answer at the budget, not when the model finally returns.
			if took > 150*time.Millisecond {
				t.Fatalf("mode %d: answered after %s, budget 10ms, model delay %s", mode, took, f.delay)
			}
		}
		if g.State() != gobreaker.StateOpen {
			t.Fatalf("mode %d: breaker %v after slow calls, want open", mode, g.State())
		}
	}
}

func TestGuardedBadOutput(t *testing.T) {
	g, f, x, P := newGuarded(t, model.GuardOptions{})
	f.mode.Store(nanOut)
	out := make([]float32, P)
	sc, err := g.Score(context.Background(), x, 1, out)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Strategy != model.StrategyRules || sc.Cause != "bad_output" {
		t.Fatalf("NaN from the model: %+v, want the rules with cause bad_output", sc)
	}
	for _, p := range out {
		if !(p > 0 && p < 1) {
			t.Fatalf("%v got through", p)
		}
	}
}

func TestGuardedModelPanic(t *testing.T) {
	g, f, x, P := newGuarded(t, model.GuardOptions{})
	f.mode.Store(panics)
	sc, err := g.Score(context.Background(), x, 1, make([]float32, P))
	if err != nil || sc.Strategy != model.StrategyRules || sc.Cause != "error" {
		t.Fatalf("a panicking model: %+v %v, want the rules", sc, err)
	}
}

func TestGuardedCallerGoneIsNotAFailure(t *testing.T) {
	g, f, x, P := newGuarded(t, model.GuardOptions{Budget: time.Second, ConsecutiveFailures: 1})
	f.mode.Store(slow)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	if _, err := g.Score(ctx, x, 1, make([]float32, P)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the caller's deadline", err)
	}
	if g.State() != gobreaker.StateClosed {
		t.Fatalf("a caller giving up tripped the breaker")
	}
}

// TestGuardedRealModelInline: the real model stops on cancel, so it runs
// on the caller's goroutine, and an exhausted budget still gives the rules.
func TestGuardedRealModelInline(t *testing.T) {
	cat := defaultCatalog(t)
	m := committedModel(t, cat, 1)
	rules, err := model.NewRules(cat, features.Names())
	if err != nil {
		t.Fatal(err)
	}
	x := demoRows(t, cat, 1)
	out := make([]float32, len(cat.Products))
	ok := model.NewGuarded(m, rules, len(cat.Products), model.GuardOptions{Budget: time.Second})
	if sc, err := ok.Score(context.Background(), x, 1, out); err != nil || sc.Strategy != model.StrategyModel {
		t.Fatalf("healthy: %+v %v", sc, err)
	}
	starved := model.NewGuarded(m, rules, len(cat.Products), model.GuardOptions{Budget: time.Nanosecond})
	sc, err := starved.Score(context.Background(), x, 1, out)
	if err != nil || sc.Strategy != model.StrategyRules || sc.Cause != "too_slow" {
		t.Fatalf("no budget: %+v %v, want the rules, too_slow", sc, err)
	}
}
