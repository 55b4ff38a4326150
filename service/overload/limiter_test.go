package overload_test

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/directops/nbp/service/api"
	"github.com/directops/nbp/service/overload"
)

// simLimiter drives a limiter with a fake clock and a fake CPU: each
// window, demand requests try to get in, and the scheduling delay the
// window shows is cpu(admitted).
type simLimiter struct {
	l     *overload.Limiter
	now   time.Time
	delay time.Duration
	quiet bool // no scheduling samples this window
}

const simWindow = 50 * time.Millisecond

func newSimLimiter(adaptive bool) *simLimiter {
	s := &simLimiter{now: time.Unix(1_700_000_000, 0)}
	s.l = overload.NewLimiter(overload.LimiterConfig{
		Adaptive: adaptive, Min: 4, Max: 256, Window: simWindow, Target: 2 * time.Millisecond,
		Now:   func() time.Time { return s.now },
		Delay: func() (time.Duration, bool) { return s.delay, !s.quiet },
	})
	return s
}

// run plays windows of load and returns the last window's admitted count
// and the mean delay of the last half of the windows.
func (s *simLimiter) run(windows, demand int, cpu func(admitted int) time.Duration) (int, time.Duration) {
	var k int
	var sum time.Duration
	for w := range windows {
		k = 0
		for range demand {
			if s.l.Acquire() {
				k++
			}
		}
		s.delay = cpu(k)
		if w >= windows/2 {
			sum += s.delay
		}
		s.now = s.now.Add(simWindow)
		for range k {
			s.l.Release()
		}
	}
	return k, sum / time.Duration(windows-windows/2)
}

// saturated is a CPU that runs 20 decisions at once without queueing;
// past that, goroutines wait for it in proportion.
func saturated(k int) time.Duration {
	return max(100*time.Microsecond, time.Duration(k-20)*200*time.Microsecond)
}

func TestAdaptiveLimiterKeepsTheRunQueueShort(t *testing.T) {
	s := newSimLimiter(true)
	// Light load: the cap stays where it is, no one is shed.
	s.run(40, 5, saturated)
	if got := s.l.Limit(); got != 256 || s.l.Shed() != 0 {
		t.Fatalf("limit %d, %d shed after light load; want 256 and none", got, s.l.Shed())
	}
	// Overload: far more demand than the CPU can take. The cap falls
	// until the scheduling delay is near its 2ms target.
	admitted, delay := s.run(200, 1000, saturated)
	if delay > 3*time.Millisecond || admitted < 20 {
		t.Fatalf("under overload: %d admitted with a %s delay, want the delay near 2ms with the CPU busy (20+)", admitted, delay)
	}
	if s.l.Shed() == 0 {
		t.Fatal("nothing shed under overload")
	}
	// The overload passes: the cap grows back.
	s.run(100, 1000, func(int) time.Duration { return 100 * time.Microsecond })
	if got := s.l.Limit(); got != 256 {
		t.Fatalf("limit %d once the CPU is idle again, want back to 256", got)
	}
}

// A slow dependency (Redis black-holed) makes decisions wait without
// loading the CPU: nothing may be shed for it.
func TestAdaptiveLimiterIgnoresSlowDependencies(t *testing.T) {
	s := newSimLimiter(true)
	admitted, _ := s.run(200, 200, func(int) time.Duration { return 50 * time.Microsecond })
	if admitted != 200 || s.l.Shed() != 0 {
		t.Fatalf("%d of 200 admitted, %d shed, with an idle CPU", admitted, s.l.Shed())
	}
}

func TestAdaptiveLimiterHoldsWithoutSamples(t *testing.T) {
	s := newSimLimiter(true)
	s.run(40, 1000, saturated)
	before := s.l.Limit()
	s.quiet = true
	s.run(40, 1000, func(int) time.Duration { return time.Second })
	if got := s.l.Limit(); got != before {
		t.Fatalf("limit moved from %d to %d on windows without samples", before, got)
	}
}

func TestFixedLimiterStaysAtMax(t *testing.T) {
	s := newSimLimiter(false)
	admitted, _ := s.run(100, 1000, saturated)
	if admitted != 256 || s.l.Limit() != 256 {
		t.Fatalf("fixed limiter admitted %d with limit %d, want 256", admitted, s.l.Limit())
	}
}

// saturateCPU runs four busy goroutines per CPU, each spinning spin
// iterations and then yielding, so that every yield queues behind the
// others, until stop is called.
func saturateCPU(spin int) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 * runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
					for i := 0; i < spin; i++ {
						_ = i * i
					}
					runtime.Gosched()
				}
			}
		})
	}
	return func() {
		close(done)
		wg.Wait()
	}
}

// The default signal, the Go scheduler's latency, rises when goroutines
// queue for the CPU.
func TestLimiterReadsTheSchedulerDelay(t *testing.T) {
	l := overload.NewLimiter(overload.LimiterConfig{Adaptive: true, Min: 1, Max: 64, Window: 10 * time.Millisecond, Target: 50 * time.Microsecond})
	stop := saturateCPU(200_000)
	deadline := time.Now().Add(5 * time.Second)
	for l.Limit() > 32 && time.Now().Before(deadline) {
		if l.Acquire() {
			l.Release()
		}
		time.Sleep(time.Millisecond)
	}
	stop()
	if got := l.Limit(); got > 32 {
		t.Fatalf("limit %d after 5s of a saturated CPU, want it cut below 32", got)
	}
}

func TestLimiterConcurrentUse(t *testing.T) {
	l := overload.NewLimiter(overload.LimiterConfig{Adaptive: true, Min: 2, Max: 8, Window: time.Millisecond})
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted, shed := 0, 0
	for range 16 {
		wg.Go(func() {
			a, s := 0, 0
			for range 2000 {
				if !l.Acquire() {
					s++
					continue
				}
				a++
				if n := l.InFlight(); n > 8 {
					t.Errorf("%d in flight, max 8", n)
				}
				l.Release()
			}
			mu.Lock()
			admitted, shed = admitted+a, shed+s
			mu.Unlock()
		})
	}
	wg.Wait()
	// Every refusal is counted once, and every slot comes back.
	if l.InFlight() != 0 || admitted == 0 || int64(shed) != l.Shed() {
		t.Fatalf("in flight %d after all released; admitted %d, shed %d, the limiter counted %d shed", l.InFlight(), admitted, shed, l.Shed())
	}
}

func TestLimiterCPUBusy(t *testing.T) {
	s := newSimLimiter(false) // a fixed limiter reads the delay too
	if s.l.CPUBusy() {
		t.Fatal("busy before any window")
	}
	s.run(3, 10, func(int) time.Duration { return 10 * time.Millisecond })
	if !s.l.CPUBusy() {
		t.Fatal("not busy after windows with a 10ms delay (target 2ms)")
	}
	s.now = s.now.Add(time.Second)
	if s.l.CPUBusy() {
		t.Fatal("still busy on a window a second old")
	}
	s.run(3, 10, func(int) time.Duration { return 100 * time.Microsecond })
	if s.l.CPUBusy() {
		t.Fatal("busy after windows with a 0.1ms delay")
	}
}

// TestLimiterLendsSlots: a decision waiting on the store lends its slot,
// so that another gets in past a full cap; it takes it back whatever the
// cap; no more than eight times the cap are lent at once; and none while
// the CPU is busy, when the cap must hold, nor within a second of it.
func TestLimiterLendsSlots(t *testing.T) {
	s := newSimLimiter(false)
	s.l = overload.NewLimiter(overload.LimiterConfig{Min: 4, Max: 4, Window: simWindow, Target: 2 * time.Millisecond,
		Now: func() time.Time { return s.now }, Delay: func() (time.Duration, bool) { return s.delay, !s.quiet }})
	for range 4 {
		if !s.l.Acquire() {
			t.Fatal("refused under the cap")
		}
	}
	if s.l.Acquire() {
		t.Fatal("admitted past the cap")
	}
	lent := 0
	for s.l.LendSlot() { // every admitted decision, then those admitted in their place
		lent++
		if !s.l.Acquire() {
			t.Fatalf("refused with %d slots lent", lent)
		}
		if lent > 100 {
			break
		}
	}
	if lent != 32 || s.l.Waiting() != 32 {
		t.Fatalf("lent %d slots (%d waiting), want 8 times the cap: 32", lent, s.l.Waiting())
	}
	if s.l.InFlight() != 4 || s.l.Acquire() {
		t.Fatalf("%d in flight besides those waiting, and still admitting", s.l.InFlight())
	}
	for range lent {
		s.l.ReturnSlot()
	}
	if s.l.InFlight() != 4+lent || s.l.Waiting() != 0 {
		t.Fatalf("after the reads: %d in flight, %d waiting; want %d and 0", s.l.InFlight(), s.l.Waiting(), 4+lent)
	}
	if s.l.Acquire() {
		t.Fatal("admitted while the slots given back keep it past the cap")
	}
	for range 4 + lent {
		s.l.Release()
	}
	if !s.l.Acquire() {
		t.Fatal("refused once every decision ended")
	}
	s.l.Release()

	// A busy CPU: nothing is lent.
	s.run(3, 2, func(int) time.Duration { return 10 * time.Millisecond })
	if !s.l.CPUBusy() {
		t.Fatal("not busy after windows with a 10ms delay (target 2ms)")
	}
	if !s.l.Acquire() {
		t.Fatal("refused with nothing under way")
	}
	if s.l.LendSlot() {
		t.Fatal("a slot lent while the CPU is busy")
	}
	s.run(2, 2, func(int) time.Duration { return 100 * time.Microsecond })
	if s.l.CPUBusy() || s.l.LendSlot() {
		t.Fatal("a slot lent right after the CPU was busy")
	}
	s.now = s.now.Add(time.Second)
	s.run(2, 2, func(int) time.Duration { return 100 * time.Microsecond })
	if !s.l.LendSlot() {
		t.Fatal("no slot lent a second after the CPU was last busy")
	}
	s.l.ReturnSlot()
	s.l.Release()
}

// When the cap is not what overloads the CPU (each decision is short, and
// it is the arrivals that queue), the limiter lets in a share of them
// only, and all of them again once the queue is gone.
func TestAdaptiveLimiterAdmitsAShare(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	var delay time.Duration
	l := overload.NewLimiter(overload.LimiterConfig{
		Adaptive: true, Min: 256, Max: 256, Window: simWindow, Target: 2 * time.Millisecond,
		Now:   func() time.Time { return now },
		Delay: func() (time.Duration, bool) { return delay, true },
	})
	// 200 arrive each window, far under the cap of 256; the CPU takes 100
	// a window without queueing.
	cpu := func(admitted int) time.Duration {
		return max(100*time.Microsecond, time.Duration(admitted-100)*200*time.Microsecond)
	}
	var sum, windows int
	for w := range 400 {
		admitted := 0
		for range 200 {
			if l.Acquire() {
				admitted++
				l.Release()
			}
		}
		delay = cpu(admitted)
		now = now.Add(simWindow) // the next window's first call closes this one
		if w >= 200 {
			sum += admitted
			windows++
		}
	}
	if mean := sum / windows; mean < 80 || mean > 120 {
		t.Fatalf("%d admitted a window on average, want about the 100 the CPU takes", mean)
	}
	if got := l.Admitted(); got >= 1 {
		t.Fatalf("admitted share %.2f under overload, want below 1", got)
	}
	for range 20 {
		delay = 100 * time.Microsecond
		now = now.Add(simWindow)
		if l.Acquire() {
			l.Release()
		}
	}
	if got := l.Admitted(); got != 1 {
		t.Fatalf("admitted share %.2f once the queue is gone, want 1", got)
	}
}

// A fixed limiter with a guard keeps its cap, sheds nothing while the CPU
// queue stays under the guard (over the adaptive target or not), and lets
// in only a share of the arrivals once the queue passes it.
func TestFixedLimiterGuard(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	var delay time.Duration
	newLimiter := func(guard time.Duration) *overload.Limiter {
		return overload.NewLimiter(overload.LimiterConfig{
			Max: 256, Window: simWindow, Target: 2 * time.Millisecond, Guard: guard,
			Now:   func() time.Time { return now },
			Delay: func() (time.Duration, bool) { return delay, true },
		})
	}
	// play sends 200 requests a window, which stay under way until it
	// ends, and returns the mean admitted over the second half; cpu gives
	// each window's delay from its admissions.
	play := func(l *overload.Limiter, windows int, cpu func(admitted int) time.Duration) int {
		var sum, n int
		for w := range windows {
			admitted := 0
			for range 200 {
				if l.Acquire() {
					admitted++
				}
			}
			delay = cpu(admitted)
			now = now.Add(simWindow) // the first Release closes the window
			for range admitted {
				l.Release()
			}
			if w >= windows/2 {
				sum += admitted
				n++
			}
		}
		return sum / n
	}
	// The CPU takes 100 a window without queueing; past that, the queue
	// grows by 0.2ms a request.
	cpu := func(admitted int) time.Duration {
		return max(100*time.Microsecond, time.Duration(admitted-100)*200*time.Microsecond)
	}

	l := newLimiter(4 * time.Millisecond)
	if got := play(l, 100, func(int) time.Duration { return 3 * time.Millisecond }); got != 200 || l.Shed() != 0 {
		t.Fatalf("a 3ms queue under the 4ms guard: %d of 200 admitted a window, %d shed; want all, none", got, l.Shed())
	}
	if got := play(l, 400, cpu); got < 100 || got > 140 {
		t.Fatalf("%d admitted a window past the guard, want the 100 the CPU takes, plus the queue the guard allows (120)", got)
	}
	if l.Limit() != 256 || l.Admitted() >= 1 {
		t.Fatalf("limit %d, admitted share %.2f past the guard; want the cap kept at 256 and a share below 1", l.Limit(), l.Admitted())
	}
	if l.Shed() == 0 || l.ShedFor(overload.ShedShare) != l.Shed() {
		t.Fatalf("%d shed, %d of them for the share; want all of them", l.Shed(), l.ShedFor(overload.ShedShare))
	}
	// The queue empties: every request is let in again.
	play(l, 20, func(int) time.Duration { return 100 * time.Microsecond })
	if l.Admitted() != 1 {
		t.Fatalf("admitted share %.2f once the queue is gone, want 1", l.Admitted())
	}

	unguarded := newLimiter(0)
	if got := play(unguarded, 100, cpu); got != 200 || unguarded.Shed() != 0 {
		t.Fatalf("without a guard: %d of 200 admitted a window, %d shed; want all under the cap", got, unguarded.Shed())
	}

	// A long queue with few decisions under way is not nbp's doing:
	// refusing them would not shorten it.
	few := newLimiter(4 * time.Millisecond)
	for range 100 {
		held := 0
		for range 10 { // under Min (16)
			if few.Acquire() {
				held++
			}
		}
		delay = 50 * time.Millisecond
		now = now.Add(simWindow)
		for range held {
			few.Release()
		}
	}
	if few.Shed() != 0 || few.Admitted() != 1 {
		t.Fatalf("10 under way with a 50ms queue: %d shed, admitted share %.2f; want none shed", few.Shed(), few.Admitted())
	}
}

// The server's limiter guards the deadline by default: with goroutines
// queueing for the CPU past RequestTimeout/20 and its decisions under way,
// it lets in only a share of the arrivals, and keeps its cap; with
// ShedDelay negative, or with few decisions under way, it does not.
func TestServerLimiterGuardsByDefault(t *testing.T) {
	cfg := api.HTTPConfig{RequestTimeout: 20 * time.Millisecond}
	guarded, idle := api.NewServerLimiter(cfg), api.NewServerLimiter(cfg)
	cfg.ShedDelay = -1
	off := api.NewServerLimiter(cfg)
	busy := 16 * runtime.GOMAXPROCS(0) // the server limiter's Min
	for _, l := range []*overload.Limiter{guarded, off} {
		for range busy {
			if !l.Acquire() {
				t.Fatal("shed before any load")
			}
		}
	}
	stop := saturateCPU(4_000_000) // a few ms a turn
	deadline := time.Now().Add(10 * time.Second)
	for guarded.Admitted() == 1 && time.Now().Before(deadline) {
		for _, l := range []*overload.Limiter{guarded, off, idle} {
			if l.Acquire() {
				l.Release()
			}
		}
		time.Sleep(time.Millisecond)
	}
	stop()
	if guarded.Admitted() == 1 {
		t.Fatal("the default limiter let every request in after 10s of a saturated CPU")
	}
	if want := 32 * runtime.GOMAXPROCS(0); guarded.Limit() != want {
		t.Fatalf("the default limiter's cap moved to %d, want it fixed at %d", guarded.Limit(), want)
	}
	for name, l := range map[string]*overload.Limiter{"with ShedDelay negative": off, "with one request under way at a time": idle} {
		if l.Admitted() != 1 || l.Shed() != 0 {
			t.Errorf("%s: admitted share %.2f, %d shed; want every request let in", name, l.Admitted(), l.Shed())
		}
	}
}

// Where the server knows how long each request waited to be read, the
// limiter sheds the late ones while most of a window's requests waited
// (and only then), keeps the ones read in time, and leaves the admitted
// share alone: the wait, not a share at random, decides.
func TestLimiterShedsRequestsThatWaited(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	delay := 50 * time.Millisecond // the scheduler's delay, way past the guard
	l := overload.NewLimiter(overload.LimiterConfig{
		Min: 4, Max: 1000, Window: simWindow, Target: 2 * time.Millisecond,
		Guard: 4 * time.Millisecond, QueueWait: 10 * time.Millisecond,
		Now:   func() time.Time { return now },
		Delay: func() (time.Duration, bool) { return delay, true },
	})
	// window offers one request for each wait, and returns how many were
	// admitted; they stay under way until the window ends.
	window := func(waits ...time.Duration) int {
		admitted := 0
		for _, w := range waits {
			if l.AcquireWaited(w, true) {
				admitted++
			}
		}
		now = now.Add(simWindow) // the first Release closes the window
		for range admitted {
			l.Release()
		}
		return admitted
	}
	repeat := func(n int, w time.Duration) []time.Duration {
		ws := make([]time.Duration, n)
		for i := range ws {
			ws[i] = w
		}
		return ws
	}

	// Requests read within half of QueueWait: no queue, nothing shed.
	for range 5 {
		if got := window(repeat(40, 4*time.Millisecond)...); got != 40 {
			t.Fatalf("%d of 40 read in 4ms admitted, want all", got)
		}
	}
	// Most wait over half of QueueWait, none past it: nothing shed yet.
	for range 5 {
		if got := window(repeat(40, 8*time.Millisecond)...); got != 40 {
			t.Fatalf("%d of 40 read in 8ms admitted, want all", got)
		}
	}
	if !l.CPUBusy() {
		t.Fatal("CPUBusy false while most requests waited to be read")
	}
	// Now half wait past it: those are shed, the others let in.
	mixed := append(repeat(20, 3*time.Millisecond), repeat(20, 30*time.Millisecond)...)
	for range 5 {
		if got := window(mixed...); got != 20 {
			t.Fatalf("%d of 40 admitted, half of them read late; want the 20 read in time", got)
		}
	}
	if l.Shed() != 100 || l.ShedFor(overload.ShedWait) != 100 || l.Admitted() != 1 {
		t.Fatalf("%d shed, admitted share %.2f; want the 100 read late, and every request read in time let in despite a 50ms scheduling delay", l.Shed(), l.Admitted())
	}
	// The queue is gone: late stragglers are let in again.
	window(repeat(40, time.Millisecond)...)
	if got := window(repeat(40, 30*time.Millisecond)...); got != 40 {
		t.Fatalf("%d of 40 admitted in the window after a short queue, want all", got)
	}
	// One late window is a pause, not yet a queue; two in a row are.
	if got := window(repeat(40, 30*time.Millisecond)...); got != 40 {
		t.Fatalf("%d of 40 admitted after a single late window, want all", got)
	}
	if got := window(repeat(40, 30*time.Millisecond)...); got != 0 {
		t.Fatalf("%d of 40 late requests admitted after two late windows, want none", got)
	}
	window(repeat(40, time.Millisecond)...)
	// Fewer than Min in a window is no queue of nbp's making.
	window(repeat(40, time.Millisecond)...)
	shed := l.Shed()
	for range 5 {
		window(repeat(3, 30*time.Millisecond)...)
	}
	if l.Shed() != shed {
		t.Fatalf("%d of 3 a window shed, want none", l.Shed()-shed)
	}
	// A queue seen long ago says nothing of now.
	for range 2 {
		window(repeat(40, 30*time.Millisecond)...)
	}
	shed = l.Shed()
	now = now.Add(3 * simWindow)
	if !l.AcquireWaited(30*time.Millisecond, true) {
		t.Fatal("a late request shed on a queue three windows old")
	}
	l.Release()
	if l.Shed() != shed {
		t.Fatal("shed count moved")
	}

	// QueueWait 0: no request is shed for its wait.
	off := overload.NewLimiter(overload.LimiterConfig{Min: 4, Max: 1000, Window: simWindow, Now: func() time.Time { return now }, Delay: func() (time.Duration, bool) { return 0, true }})
	for range 5 {
		for range 40 {
			if !off.AcquireWaited(time.Second, true) {
				t.Fatal("shed for its wait with QueueWait 0")
			}
		}
		now = now.Add(simWindow)
		for range 40 {
			off.Release()
		}
	}
}
