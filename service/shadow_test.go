package service_test

import (
	"context"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/model"
	"github.com/directops/nbp/service"
)

func TestShadowMeasures(t *testing.T) {
	for _, tc := range []struct {
		a, b []float64
		want float64
	}{
		{[]float64{1, 2, 3, 4}, []float64{10, 20, 30, 40}, 1},
		{[]float64{1, 2, 3, 4}, []float64{4, 3, 2, 1}, -1},
		{[]float64{1, 2, 3}, []float64{1, 3, 2}, 0.5},
		// Ties get their mean rank: ranks (1.5, 1.5, 3) against (1, 2, 3).
		{[]float64{5, 5, 7}, []float64{1, 2, 3}, 0.8660254},
	} {
		if got := service.Spearman(tc.a, tc.b); math.Abs(got-tc.want) > 1e-6 {
			t.Errorf("spearman(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
	if got := service.Spearman([]float64{1, 1}, []float64{1, 2}); !math.IsNaN(got) {
		t.Errorf("a constant side gives %v, want NaN", got)
	}
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	dec := func(ids ...string) *service.Decision {
		d := &service.Decision{}
		for _, id := range ids {
			p, err := cat.Product(id)
			if err != nil {
				t.Fatal(err)
			}
			d.Items = append(d.Items, service.Item{Product: p})
		}
		return d
	}
	a := dec("TD_1Y", "TD_3M", "CC_YOUTH", "INS_ACCIDENT")
	for _, tc := range []struct {
		b    *service.Decision
		want float64
	}{
		{dec("CC_YOUTH", "TD_1Y", "TD_3M"), 1},
		{dec("TD_1Y", "INS_ACCIDENT", "TD_3M"), 2.0 / 3},
		{dec("INS_ACCIDENT"), 0},
		{dec(), 0},
	} {
		if got := service.TopOverlap(a, tc.b, 3); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("overlap with %d items: %v, want %v", len(tc.b.Items), got, tc.want)
		}
	}
}

// laggingShadow is a shadow that takes its time.
type laggingShadow struct {
	service.Scorer
	delay time.Duration
	calls atomic.Int64
}

func (s *laggingShadow) Score(ctx context.Context, x []float32, n int, out []float32) (model.Scored, error) {
	s.calls.Add(1)
	time.Sleep(s.delay)
	return s.Scorer.Score(ctx, x, n, out)
}

// TestShadowNeverDelaysAnAnswer: a shadow slower than the traffic falls
// behind and drops samples, counted; the answers are the champion's, at
// the champion's pace.
func TestShadowNeverDelaysAnAnswer(t *testing.T) {
	var slow *laggingShadow
	e := newEnv(t, envOptions{customers: 300, shadowShare: 1, shadowQueue: 8, shadow: func(e *env) service.Scorer {
		slow = &laggingShadow{Scorer: e.rules, delay: 200 * time.Millisecond}
		return slow
	}})
	start := time.Now()
	for _, id := range e.ids {
		d, err := e.pipeline.Decide(context.Background(), service.Request{CustomerID: id, Channel: catalog.AppFeed, Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		if d.Strategy == model.StrategyRules {
			t.Fatalf("%s: ranked by the shadow's scorer", id)
		}
	}
	took := time.Since(start)
	r := e.pipeline.ShadowReport()
	// 300 decisions behind a shadow of 200 ms a call: had one waited for
	// it, they would take a minute.
	if took > 20*time.Second || r.Dropped == 0 {
		t.Fatalf("300 decisions in %v, %d samples dropped", took, r.Dropped)
	}
	t.Logf("300 decisions in %v; shadow: %d dropped, %d calls so far", took, r.Dropped, slow.calls.Load())
}
