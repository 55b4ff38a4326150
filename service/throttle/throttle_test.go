package throttle_test

import (
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/directops/nbp/service/throttle"
)

// clock is a hand-moved clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time         { return c.t }
func (c *clock) add(d time.Duration)    { c.t = c.t.Add(d) }
func newClock() *clock                  { return &clock{t: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)} }
func seeded(seed uint64) func() float64 { return rand.New(rand.NewPCG(seed, 1)).Float64 }

// server accepts at most capacity requests per step.
type server struct {
	capacity int
	used     int
}

func (s *server) serve() bool {
	if s.used >= s.capacity {
		return false
	}
	s.used++
	return true
}

// TestThrottleTracksCapacity offers a simulated server more than it can
// take and checks that the caller sends about K times what it accepts,
// and that the server's accepts stay at its capacity: the throttle
// refuses locally what the server would refuse, no more.
func TestThrottleTracksCapacity(t *testing.T) {
	for _, tc := range []struct {
		name     string
		k        float64
		offered  int // per 100ms step
		capacity int
	}{
		{"twice the capacity, K 1.2", 1.2, 200, 100},
		{"four times, K 1.2", 1.2, 400, 100},
		{"twice, K 1.05", 1.05, 200, 100},
		{"twice, K 2", 2, 200, 100},
		{"under capacity", 1.2, 80, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			th := throttle.New(throttle.Config{K: tc.k, Now: c.now, Rand: seeded(1)})
			srv := &server{capacity: tc.capacity}
			var sent, accepted int
			const steps, warm = 300, 50 // 30s, the first 5s not counted
			for step := range steps {
				srv.used = 0
				for range tc.offered {
					if !th.Allow() {
						continue
					}
					ok := srv.serve()
					th.Done(ok)
					if step >= warm {
						sent++
						if ok {
							accepted++
						}
					}
				}
				c.add(100 * time.Millisecond)
			}
			n := float64(steps - warm)
			wantAccepted := float64(min(tc.offered, tc.capacity))
			if got := float64(accepted) / n; got < 0.97*wantAccepted {
				t.Errorf("accepted %.1f a step, want about %.0f (the capacity): the throttle refuses too much", got, wantAccepted)
			}
			wantSent := min(float64(tc.offered), tc.k*wantAccepted)
			if got := float64(sent) / n; math.Abs(got-wantSent) > 0.05*wantSent {
				t.Errorf("sent %.1f a step, want about %.1f (K times the accepts, at most the offer)", got, wantSent)
			}
		})
	}
}

// TestThrottleLetsUp checks how fast a caller sends its whole load again
// once nbp accepts it all: after an overload, and after an outage where
// nbp refused everything.
func TestThrottleLetsUp(t *testing.T) {
	for _, tc := range []struct {
		name     string
		capacity int // accepted per 100ms step, of an offer of 100
		minP     float64
		within   time.Duration
	}{
		// Over a 1s window at K 1.2 the share sent grows about 40% a second.
		{"after an overload", 25, 0.6, 5 * time.Second},
		// From the 10% still sent.
		{"after an outage", 0, 0.9, 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			th := throttle.New(throttle.Config{Now: c.now, Rand: seeded(2)})
			step := 100 * time.Millisecond
			for range 600 { // a minute
				srv := &server{capacity: tc.capacity}
				for range 100 {
					if th.Allow() {
						th.Done(srv.serve())
					}
				}
				c.add(step)
			}
			if p := th.RejectProbability(); p < tc.minP || p > 0.9 {
				t.Fatalf("after a minute, reject probability %.2f, want from %.2f to 0.9 (the cap)", p, tc.minP)
			}
			// nbp recovers: every request sent is accepted.
			var took time.Duration
			for th.RejectProbability() > 0 {
				if took > time.Minute {
					t.Fatalf("a minute after nbp recovered, still refusing %.2f of requests", th.RejectProbability())
				}
				for range 100 {
					if th.Allow() {
						th.Done(true)
					}
				}
				c.add(step)
				took += step
			}
			if took > tc.within {
				t.Errorf("took %s to stop refusing after nbp recovered, want under %s", took, tc.within)
			}
			t.Logf("let up %s after nbp recovered", took)
		})
	}
}

func TestThrottleForgetsAfterSilence(t *testing.T) {
	c := newClock()
	th := throttle.New(throttle.Config{Now: c.now})
	for range 50 {
		th.Done(th.Allow() && false)
	}
	if th.RejectProbability() == 0 {
		t.Fatal("nothing accepted, yet nothing refused")
	}
	c.add(time.Hour)
	if p := th.RejectProbability(); p != 0 {
		t.Fatalf("an hour of silence later, reject probability %.3f, want 0", p)
	}
}

func TestThrottleNeverRefusesWhileAllAccepted(t *testing.T) {
	c := newClock()
	th := throttle.New(throttle.Config{Now: c.now, Rand: func() float64 { return 0 }})
	for i := range 10000 {
		if !th.Allow() {
			t.Fatalf("request %d refused though every earlier one was accepted", i)
		}
		th.Done(true)
		c.add(time.Millisecond)
	}
}

func TestThrottleDefaults(t *testing.T) {
	c := newClock()
	// K under 1 would refuse even when all is accepted; it takes the default.
	th := throttle.New(throttle.Config{K: 0.5, Now: c.now, Rand: func() float64 { return 0 }})
	for range 100 {
		if !th.Allow() {
			t.Fatal("refused with every request accepted: K below 1 was kept")
		}
		th.Done(true)
	}
}

// TestThrottleConcurrent has many callers at once use one throttle, on a
// clock that stands still, and checks that no count was lost: the
// probability must be the one the requests and accepts made.
func TestThrottleConcurrent(t *testing.T) {
	c := newClock()
	th := throttle.New(throttle.Config{Now: c.now, Rand: func() float64 { return 0.95 }})
	var accepted atomic.Int64
	var wg sync.WaitGroup
	const callers, each = 8, 2000
	for g := range callers {
		wg.Go(func() {
			for i := range each {
				if th.Allow() {
					ok := (i+g)%3 == 0
					if ok {
						accepted.Add(1)
					}
					th.Done(ok)
				}
			}
		})
	}
	wg.Wait()
	requests := float64(callers * each)
	want := min(0.9, max(0, (requests-1.2*float64(accepted.Load()))/(requests+1)))
	if got := th.RejectProbability(); math.Abs(got-want) > 1e-9 {
		t.Fatalf("reject probability %.6f, want %.6f from %g requests and %d accepts: counts were lost", got, want, requests, accepted.Load())
	}
}
