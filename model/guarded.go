package model

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
)

// GuardOptions configures Guarded.
type GuardOptions struct {
	// Budget is the latency budget of one model call; a call over it counts
	// as a failure and the rules answer instead. Default 20ms.
	Budget time.Duration
	// BatchBudget is the budget of a call of more than one row; default 2s.
	BatchBudget time.Duration
	// ConsecutiveFailures trips the breaker; default 5.
	ConsecutiveFailures uint32
	// FailureRatio trips the breaker once MinRequests calls were counted in
	// the current interval; defaults 0.5 and 20.
	FailureRatio float64
	MinRequests  uint32
	// Interval clears the counts while closed; default 10s.
	Interval time.Duration
	// OpenFor is how long the breaker stays open before it lets probes
	// through (gobreaker's Timeout); default 5s.
	OpenFor time.Duration
	// Probes is how many calls a half-open breaker lets through; default 3.
	Probes uint32
	// OnStateChange, when set, is told of every breaker transition.
	OnStateChange func(from, to gobreaker.State)
}

// The default budgets of GuardOptions.
const (
	DefaultBudget      = 20 * time.Millisecond
	DefaultBatchBudget = 2 * time.Second
)

func (o *GuardOptions) defaults() {
	if o.Budget <= 0 {
		o.Budget = DefaultBudget
	}
	if o.BatchBudget <= 0 {
		o.BatchBudget = DefaultBatchBudget
	}
	if o.ConsecutiveFailures == 0 {
		o.ConsecutiveFailures = 5
	}
	if o.FailureRatio <= 0 {
		o.FailureRatio = 0.5
	}
	if o.MinRequests == 0 {
		o.MinRequests = 20
	}
	if o.Interval <= 0 {
		o.Interval = 10 * time.Second
	}
	if o.OpenFor <= 0 {
		o.OpenFor = 5 * time.Second
	}
	if o.Probes == 0 {
		o.Probes = 3
	}
}

// Guarded puts the model behind a circuit breaker, with the rules as
// fallback. A model call that fails, returns a non-probability or misses
// its latency budget is answered by the rules and counted as a failure;
// enough failures open the breaker, and while it is open the rules answer at
// once. After OpenFor, a few probes go to the model again, and their
// success closes the breaker.
type Guarded struct {
	model    Scorer
	rules    Scorer
	cb       *gobreaker.CircuitBreaker[Scored]
	opts     GuardOptions
	products int
	bufs     sync.Pool // *[]float32 scratch for the model's input and output
	inline   bool      // the model stops on cancel: no goroutine per call
}

// NewGuarded guards model with rules. products is the number of products a
// row scores.
func NewGuarded(model, rules Scorer, products int, o GuardOptions) *Guarded {
	o.defaults()
	g := &Guarded{model: model, rules: rules, opts: o, products: products}
	if c, ok := model.(Cancellable); ok && c.StopsOnCancel() {
		g.inline = true
	}
	g.cb = gobreaker.NewCircuitBreaker[Scored](gobreaker.Settings{
		Name:        "model",
		MaxRequests: o.Probes,
		Interval:    o.Interval,
		Timeout:     o.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= o.ConsecutiveFailures ||
				c.Requests >= o.MinRequests && float64(c.TotalFailures) >= o.FailureRatio*float64(c.Requests)
		},
		// A caller that gave up says nothing about the model's health.
		IsExcluded: func(err error) bool { return errors.Is(err, errCallerGone) },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if o.OnStateChange != nil {
				o.OnStateChange(from, to)
			}
		},
	})
	return g
}

var errCallerGone = errors.New("caller gone")

// State returns the breaker's state.
func (g *Guarded) State() gobreaker.State { return g.cb.State() }

// Score scores with the model when the breaker allows it and the model
// answers within budget; otherwise with the rules, and the Scored says so.
// It fails only when the rules fail (a bad shape) or ctx is done.
func (g *Guarded) Score(ctx context.Context, x []float32, n int, out []float32) (Scored, error) {
	if n < 0 || len(out) < n*g.products {
		return Scored{}, fmt.Errorf("%w: %d rows, %d outputs of %d products", ErrShape, n, len(out), g.products)
	}
	budget := g.opts.Budget
	if n > 1 {
		budget = g.opts.BatchBudget
	}
	sc, err := g.cb.Execute(func() (Scored, error) { return g.callModel(ctx, x, n, out, budget) })
	if err == nil {
		return sc, nil
	}
	if ctx.Err() != nil {
		return Scored{}, ctx.Err()
	}
	sc, rerr := g.rules.Score(ctx, x, n, out)
	if rerr != nil {
		return Scored{}, fmt.Errorf("rules after model failure (%v): %w", err, rerr)
	}
	sc.Fallback = true
	sc.Cause = cause(err)
	return sc, nil
}

// callModel runs the model within its budget: on the caller's goroutine
// when it stops on cancel (Cancellable), otherwise on its own goroutine, so
// that a model that hangs cannot hold the caller past the budget. The model
// reads a copy of x and writes to a scratch buffer, copied to out only when
// every value is a probability: an abandoned call never touches the
// caller's memory.
func (g *Guarded) callModel(ctx context.Context, x []float32, n int, out []float32, budget time.Duration) (Scored, error) {
	size := n * g.products
	in := len(x)
	bp, _ := g.bufs.Get().(*[]float32)
	if bp == nil || cap(*bp) < size+in {
		b := make([]float32, size+in)
		bp = &b
	}
	buf := (*bp)[:size]
	xc := (*bp)[size : size+in]
	copy(xc, x)
	x = xc
	mctx, cancel := context.WithTimeout(ctx, budget)
	var r result
	if g.inline {
		// The model stops when its context ends: run it here, without a
		// hand-off to another goroutine on every request.
		r = g.run(mctx, x, n, buf)
		late := mctx.Err() != nil // before cancel, which would set it
		cancel()
		if r.err == nil && late && ctx.Err() == nil {
			r.err = fmt.Errorf("%w (%s)", ErrTooSlow, budget)
		}
	} else {
		done := make(chan result, 1)
		go func() { done <- g.run(mctx, x, n, buf) }()
		select {
		case r = <-done:
			cancel()
		case <-mctx.Done():
			cancel()
			// Leave the buffer to the abandoned call; it is garbage once it ends.
			if ctx.Err() != nil {
				return Scored{}, fmt.Errorf("%w: %w", errCallerGone, ctx.Err())
			}
			return Scored{}, fmt.Errorf("%w (%s)", ErrTooSlow, budget)
		}
	}
	if r.err != nil {
		g.bufs.Put(bp)
		if ctx.Err() != nil {
			return Scored{}, fmt.Errorf("%w: %w", errCallerGone, ctx.Err())
		}
		if errors.Is(r.err, context.DeadlineExceeded) {
			return Scored{}, fmt.Errorf("%w: %w", ErrTooSlow, r.err)
		}
		return Scored{}, r.err
	}
	for i, p := range buf {
		if !(p >= 0 && p <= 1) {
			g.bufs.Put(bp)
			return Scored{}, fmt.Errorf("%w: %v at %d", ErrBadOutput, p, i)
		}
	}
	copy(out[:size], buf)
	g.bufs.Put(bp)
	return r.sc, nil
}

type result struct {
	sc  Scored
	err error
}

// run calls the model; a model that panics is a failing model, not a dead
// server.
func (g *Guarded) run(ctx context.Context, x []float32, n int, buf []float32) (r result) {
	defer func() {
		if p := recover(); p != nil {
			r = result{err: fmt.Errorf("model panicked: %v", p)}
		}
	}()
	sc, err := g.model.Score(ctx, x, n, buf)
	return result{sc, err}
}

// Cancellable is implemented by scorers that stop promptly when their
// context ends (the ONNX scorer terminates its run). Guarded calls them on
// the caller's goroutine; any other scorer runs on a goroutine of its own,
// so that one that hangs cannot hold the caller past the budget.
type Cancellable interface {
	StopsOnCancel() bool
}

func cause(err error) string {
	switch {
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		return "breaker_open"
	case errors.Is(err, ErrTooSlow):
		return "too_slow"
	case errors.Is(err, ErrBadOutput):
		return "bad_output"
	default:
		return "error"
	}
}
