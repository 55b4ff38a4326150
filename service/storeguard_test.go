package service_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/model"
	"github.com/directops/nbp/service"
	"github.com/directops/nbp/service/api"
)

// countingStore passes reads to the real store and counts them.
type countingStore struct {
	service.FeatureStore
	reads atomic.Int64
}

func (c *countingStore) ReadManyRun(ctx context.Context, ids []string, run string, dst []features.Record) error {
	c.reads.Add(1)
	return c.FeatureStore.ReadManyRun(ctx, ids, run, dst)
}

// The Redis breaker, on the real store behind the fault proxy: a
// black-holed Redis trips it after a few reads that each wait out their
// budget; then decisions go degraded without touching Redis; once Redis
// is back, a probe closes it and answers are personalised again.
func TestFaultRedisBreakerOpensAndCloses(t *testing.T) {
	fe := newFaultEnv(t, 20)
	counted := &countingStore{FeatureStore: features.NewStore(fe.client, features.Options{Prefix: fe.prefix, Now: func() time.Time { return testNow }})}
	var mu sync.Mutex
	var changes []gobreaker.State
	guarded := service.NewGuardedStore(counted, service.StoreGuardOptions{
		ConsecutiveFailures: 5, OpenFor: 300 * time.Millisecond, Probes: 1,
		OnStateChange: func(_, to gobreaker.State) {
			mu.Lock()
			changes = append(changes, to)
			mu.Unlock()
		},
	})
	p, err := service.NewPipeline(service.PipelineConfig{
		Catalog: fe.cat, Store: guarded, FeatureTimeout: featureTimeout,
		Scorer: model.NewGuarded(fe.onnx, fe.rules, len(fe.cat.Products), model.GuardOptions{Budget: time.Second}),
		Now:    func() time.Time { return testNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	s := api.NewServer(api.ServerConfig{Pipeline: p, HTTP: api.HTTPConfig{RequestTimeout: requestTimeout}})
	id := fe.ids[0]
	unavailable := func(a answer) bool {
		return a.status == 200 && slices.Contains(a.r.DegradedReasons, service.ReasonFeaturesUnavailable)
	}

	if a := recommendTimed(t, s, id, catalog.AppFeed); a.status != 200 || a.r.Degraded {
		t.Fatalf("before the fault: %d %s, want a personalised 200", a.status, a.body)
	}
	if err := fe.proxy.BlackHole(); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if a := recommendTimed(t, s, id, catalog.AppFeed); !unavailable(a) {
			t.Fatalf("black hole, request %d: %d %s, want a degraded 200", i, a.status, a.body)
		}
	}
	if st := guarded.State(); st != gobreaker.StateOpen {
		t.Fatalf("breaker %s after 5 reads into a black hole, want open", st)
	}
	before := counted.reads.Load()
	for i := range 20 {
		if a := recommendTimed(t, s, id, catalog.AppFeed); !unavailable(a) || a.took >= featureTimeout {
			t.Fatalf("breaker open, request %d: %d in %s, want a degraded 200 without waiting out the %s feature budget", i, a.status, a.took, featureTimeout)
		}
	}
	if n := counted.reads.Load() - before; n != 0 {
		t.Fatalf("%d reads reached Redis while the breaker was open", n)
	}

	if err := fe.proxy.Pass(); err != nil {
		t.Fatal(err)
	}
	// Past OpenFor the breaker lets a probe through.
	for deadline := time.Now().Add(5 * time.Second); guarded.State() == gobreaker.StateOpen; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the breaker stayed open 5s")
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		a := recommendTimed(t, s, id, catalog.AppFeed)
		if a.status == 200 && !a.r.Degraded {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("5s after Redis came back: %d %s, want a personalised 200", a.status, a.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := guarded.State(); st != gobreaker.StateClosed {
		t.Fatalf("breaker %s after a successful probe, want closed", st)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []gobreaker.State{gobreaker.StateOpen, gobreaker.StateHalfOpen, gobreaker.StateClosed}
	if !slices.Equal(changes[len(changes)-3:], want) {
		t.Fatalf("breaker went through %v, want it to end %v", changes, want)
	}
}

// A read its caller cancelled says nothing of the store: many of them
// leave the breaker closed.
func TestGuardedStoreIgnoresCallerCancellation(t *testing.T) {
	e := newEnv(t, envOptions{customers: 3})
	g := service.NewGuardedStore(e.store, service.StoreGuardOptions{ConsecutiveFailures: 2})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var rec [1]features.Record
	for range 10 {
		_ = g.ReadManyRun(ctx, e.ids[:1], "", rec[:])
	}
	if st := g.State(); st != gobreaker.StateClosed {
		t.Fatalf("breaker %s after reads cancelled by their caller, want closed", st)
	}
	if err := g.ReadManyRun(context.Background(), e.ids[:1], "", rec[:]); err != nil {
		t.Fatal(err)
	}
}

// Reads that time out while goroutines queue for the CPU say more about
// the server than about Redis: they do not trip the breaker.
func TestGuardedStoreCPUBusyTimeouts(t *testing.T) {
	fe := newFaultEnv(t, 5)
	store := features.NewStore(fe.client, features.Options{Prefix: fe.prefix})
	var busy atomic.Bool
	busy.Store(true)
	g := service.NewGuardedStore(store, service.StoreGuardOptions{ConsecutiveFailures: 3, CPUBusy: busy.Load})
	read := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		var rec [1]features.Record
		return g.ReadManyRun(ctx, fe.ids[:1], "", rec[:])
	}
	if err := fe.proxy.BlackHole(); err != nil {
		t.Fatal(err)
	}
	for range 6 {
		if err := read(); err == nil {
			t.Fatal("a read through a black hole succeeded")
		}
	}
	if st := g.State(); st != gobreaker.StateClosed {
		t.Fatalf("breaker %s after timeouts with the CPU busy, want closed", st)
	}
	busy.Store(false)
	for range 3 {
		_ = read()
	}
	if st := g.State(); st != gobreaker.StateOpen {
		t.Fatalf("breaker %s after 3 timeouts with the CPU idle, want open", st)
	}
}
