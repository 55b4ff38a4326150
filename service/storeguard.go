package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/directops/nbp/features"
)

// ErrStoreOpen is returned, wrapped, by a GuardedStore whose breaker is
// open: the read was not even tried.
var ErrStoreOpen = errors.New("feature store breaker open")

// GuardedStore puts a circuit breaker in front of a FeatureStore. After
// ConsecutiveFailures reads in a row fail (refused, cut, or past their
// budget), it stops sending reads for OpenFor and answers at once that
// the store is unavailable, so every decision goes degraded in
// microseconds instead of each waiting out its feature budget against a
// black-holed Redis. Then a few reads probe; when they succeed, it
// closes. A read cancelled by its caller (the client went away) is no
// verdict on the store.
type GuardedStore struct {
	store FeatureStore
	cb    *gobreaker.CircuitBreaker[struct{}]
}

// StoreGuardOptions tunes a GuardedStore. Zero values take the defaults.
type StoreGuardOptions struct {
	// ConsecutiveFailures trips the breaker; default 5.
	ConsecutiveFailures uint32
	// OpenFor is how long it stays open before probing; default 1s.
	OpenFor time.Duration
	// Probes is how many reads may probe at once while half-open, and how
	// many must succeed to close it; default 3.
	Probes uint32
	// OnStateChange is told of every change (logs, metrics).
	OnStateChange func(from, to gobreaker.State)
	// CPUBusy, when set, reports whether goroutines queue for the CPU
	// (Limiter.CPUBusy). A read past its budget then says more about our
	// CPU than about Redis, and does not count against it: otherwise an
	// overload would trip the breaker and turn every answer degraded.
	// Refused or cut connections always count.
	CPUBusy func() bool
}

// NewGuardedStore guards store.
func NewGuardedStore(store FeatureStore, o StoreGuardOptions) *GuardedStore {
	if o.ConsecutiveFailures == 0 {
		o.ConsecutiveFailures = 5
	}
	if o.OpenFor <= 0 {
		o.OpenFor = time.Second
	}
	if o.Probes == 0 {
		o.Probes = 3
	}
	st := gobreaker.Settings{
		Name:        "feature-store",
		MaxRequests: o.Probes,
		Timeout:     o.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= o.ConsecutiveFailures },
		IsExcluded: func(err error) bool {
			// The caller's own cancellation says nothing of the store.
			if errors.Is(err, context.Canceled) {
				return true
			}
			return o.CPUBusy != nil && isTimeout(err) && o.CPUBusy()
		},
	}
	if o.OnStateChange != nil {
		st.OnStateChange = func(_ string, from, to gobreaker.State) { o.OnStateChange(from, to) }
	}
	return &GuardedStore{store: store, cb: gobreaker.NewCircuitBreaker[struct{}](st)}
}

// ReadManyRun reads through the breaker.
func (g *GuardedStore) ReadManyRun(ctx context.Context, ids []string, run string, dst []features.Record) error {
	_, err := g.cb.Execute(func() (struct{}, error) {
		return struct{}{}, g.store.ReadManyRun(ctx, ids, run, dst)
	})
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return fmt.Errorf("%w: %w", ErrStoreOpen, err)
	}
	return err
}

// isTimeout reports whether err is a read that ran out of time.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// State is the breaker's state.
func (g *GuardedStore) State() gobreaker.State { return g.cb.State() }
