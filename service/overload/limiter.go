// Package overload keeps a server within what its CPUs can answer in time:
// a limit on decisions under way, shedding by the wait to be read (the
// kernel's receive stamps, on Linux) and by the CPU scheduler's delay.
package overload

import (
	"math"
	"math/rand/v2"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// Limiter caps the decisions under way: past the cap a request is shed at
// once, a quick 503 the caller can retry elsewhere rather than a slow
// answer for everyone. Past capacity it also lets in only a share of the
// arrivals while the CPU queue is long (the Go scheduler's delay), or sheds
// the requests that waited too long to be read (the kernel's receive time,
// see AcquireWaited), so that the admitted ones keep their deadline. The
// cap may adapt to the CPU queue (Adaptive). docs/overload.md gives the
// reasons and the measurements behind each rule.
type Limiter struct {
	cfg      LimiterConfig
	inFlight atomic.Int64
	// Decisions waiting on the store with their slot lent (LendSlot), and
	// how many may be at once: eight times Max.
	waiting    atomic.Int64
	maxWaiting int64
	// busyAt: when a window last closed behind, or with a scheduling
	// delay past Target (unix ns); 0: never.
	busyAt atomic.Int64
	limit  atomic.Int64
	shed   [NumShedReasons]atomic.Int64
	peak   atomic.Int64 // most decisions under way at once in the window
	due    atomic.Int64 // unix nanoseconds when the window closes
	// The last window's scheduling delay, and when it was read (unix ns).
	lastDelay, delayAt atomic.Int64

	// Requests of the window whose wait before being read is known, and
	// those of them that waited over half of QueueWait.
	waits, lateWaits atomic.Int64
	// behindAt: when the last window closed, if its requests and the
	// previous window's mostly waited (see Limiter), in unix nanoseconds;
	// 0 if they did not. lateStreak counts such windows in a row (under
	// mu).
	behindAt   atomic.Int64
	lateStreak int

	// admit is the share of requests let in (scaled to 1<<32: all),
	// lowered while the CPU queue stays long whatever the cap.
	admit atomic.Uint64

	mu       sync.Mutex // held by the one goroutine closing a window
	estimate float64    // the cap, unrounded
	fraction float64    // admit, unscaled
}

// LimiterConfig tunes a Limiter. Zero values take the defaults.
type LimiterConfig struct {
	// Adaptive turns adaptation on; otherwise the cap is Max.
	Adaptive bool
	// Min and Max bound the cap; defaults 16 and 256.
	Min, Max int
	// Window is the time between two adjustments; default 50ms.
	Window time.Duration
	// Target is the scheduling delay (90th percentile) tolerated before
	// the cap shrinks; default 5ms.
	Target time.Duration
	// MinShare is the least share of arriving requests let in; default
	// 0.3 (past about three times its capacity, the cap does the rest).
	MinShare float64
	// Guard is the scheduling delay past which a fixed limiter lets in
	// only a share of arriving requests (see Limiter); 0: never. An
	// adaptive limiter uses Target for that.
	Guard time.Duration
	// QueueWait is how long a request may wait before the server reads it
	// once requests queue (see Limiter); 0: no request is shed for its
	// wait.
	QueueWait time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Delay returns the 90th percentile of the scheduling delay since its
	// last call, and false when there were no samples; default: read
	// from the Go runtime (/sched/latencies:seconds).
	Delay func() (time.Duration, bool)
}

func (c *LimiterConfig) defaults() {
	if c.Min <= 0 {
		c.Min = 16
	}
	if c.Max <= 0 {
		c.Max = 256
	}
	c.Min = min(c.Min, c.Max)
	if c.Window <= 0 {
		c.Window = 50 * time.Millisecond
	}
	if c.Target <= 0 {
		c.Target = 5 * time.Millisecond
	}
	if !(c.MinShare > 0) || c.MinShare > 1 {
		c.MinShare = 0.3
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Delay == nil {
		c.Delay = newSchedDelay().p90
	}
}

// NewLimiter returns a limiter. An adaptive one starts at its maximum and
// finds its level within a few windows of load.
func NewLimiter(cfg LimiterConfig) *Limiter {
	cfg.defaults()
	l := &Limiter{cfg: cfg, estimate: float64(cfg.Max), fraction: 1, maxWaiting: 8 * int64(cfg.Max)}
	l.limit.Store(int64(cfg.Max))
	l.admit.Store(admitAll)
	l.due.Store(cfg.Now().Add(cfg.Window).UnixNano())
	return l
}

// Acquire admits a decision, or reports false when the cap is reached
// (the request is then counted shed). An admitted decision must be
// Released.
func (l *Limiter) Acquire() bool { return l.AcquireWaited(0, false) }

// AcquireWaited is Acquire for a request that waited wait before the
// server read it, when known: past QueueWait, and while requests queue,
// it is shed (see Limiter).
func (l *Limiter) AcquireWaited(wait time.Duration, known bool) bool {
	if known && l.cfg.QueueWait > 0 {
		l.waits.Add(1)
		if wait > l.cfg.QueueWait/2 {
			l.lateWaits.Add(1)
		}
		if wait > l.cfg.QueueWait && l.behind() {
			return l.reject(ShedWait)
		}
	}
	if a := l.admit.Load(); a < admitAll && uint64(rand.Uint32()) >= a {
		return l.reject(ShedShare)
	}
	n := l.inFlight.Add(1)
	if n > l.limit.Load() {
		l.inFlight.Add(-1)
		return l.reject(ShedInFlight)
	}
	if l.cfg.Adaptive { // only the adaptive cap grows on the peak
		for p := l.peak.Load(); n > p && !l.peak.CompareAndSwap(p, n); p = l.peak.Load() {
		}
	}
	return true
}

// reject counts a request shed for r; it is false, for Acquire to return.
func (l *Limiter) reject(r ShedReason) bool {
	l.shed[r].Add(1)
	l.maybeAdjust()
	return false
}

// Release ends an admitted decision.
func (l *Limiter) Release() {
	l.inFlight.Add(-1)
	l.maybeAdjust()
}

// CPUBusy reports whether the last window's scheduling delay passed the
// target, or its requests mostly waited to be read: goroutines queue for
// the CPU. A slow read is then likely ours, not Redis's. A window older
// than two is no evidence either way.
func (l *Limiter) CPUBusy() bool {
	if l.behind() {
		return true
	}
	at := l.delayAt.Load()
	return at != 0 && l.cfg.Now().UnixNano()-at < int64(2*l.cfg.Window) &&
		time.Duration(l.lastDelay.Load()) > l.cfg.Target
}

// behind reports whether the requests of a recent window mostly waited
// to be read (see Limiter). A window older than two says nothing: it is
// closed by the requests that follow it, and there may have been none.
func (l *Limiter) behind() bool {
	at := l.behindAt.Load()
	return at != 0 && l.cfg.Now().UnixNano()-at < int64(2*l.cfg.Window)
}

// maybeAdjust closes the window when it is due, in one goroutine; the
// others go on without waiting. A fixed limiter reads the delay too (for
// CPUBusy), but keeps its cap.
func (l *Limiter) maybeAdjust() {
	now := l.cfg.Now()
	if now.UnixNano() < l.due.Load() || !l.mu.TryLock() {
		return
	}
	defer l.mu.Unlock()
	if now.UnixNano() < l.due.Load() { // closed meanwhile
		return
	}
	l.due.Store(now.Add(l.cfg.Window).UnixNano())
	peak := l.peak.Swap(l.inFlight.Load())
	waits, late := l.waits.Swap(0), l.lateWaits.Swap(0)
	if waits >= int64(l.cfg.Min) && 2*late >= waits {
		l.lateStreak++
	} else {
		l.lateStreak = 0
	}
	if l.lateStreak >= 2 {
		l.behindAt.Store(now.UnixNano())
		l.busyAt.Store(now.UnixNano())
	} else {
		l.behindAt.Store(0)
	}
	delay, ok := l.cfg.Delay()
	if !ok {
		return
	}
	l.lastDelay.Store(int64(delay))
	l.delayAt.Store(now.UnixNano())
	if delay > l.cfg.Target {
		l.busyAt.Store(now.UnixNano())
	}
	threshold := l.cfg.Target
	if !l.cfg.Adaptive {
		if l.cfg.Guard <= 0 {
			return
		}
		threshold = l.cfg.Guard
		if l.inFlight.Load() < int64(l.cfg.Min) {
			// A queue nbp's own decisions do not make (other processes
			// on its CPUs, a slow test machine) is not shortened by
			// refusing the few there are.
			delay = 0
		}
	} else {
		l.estimate = nextLimit(l.estimate, delay, peak, l.cfg)
		l.limit.Store(int64(math.Round(l.estimate)))
	}
	if waits > 0 {
		// The wait of each request is known, and sheds the late ones
		// itself: a share let in at random would shed fresh ones too.
		delay = 0
	}
	l.fraction = nextFraction(l.fraction, delay, threshold, l.cfg.MinShare)
	l.admit.Store(uint64(l.fraction * admitAll))
}

// nextLimit is one step: the cap scaled down by how far the scheduling
// delay exceeds its target (never below half in one step), or, within
// target, grown by its square root when the window used at least half of
// it: an idle service must not earn a cap it has never shown it can take.
func nextLimit(cur float64, delay time.Duration, peak int64, cfg LimiterConfig) float64 {
	next := cur
	switch {
	case delay > cfg.Target:
		next = cur * max(0.5, float64(cfg.Target)/float64(delay))
	case float64(peak) >= cur/2:
		next = cur + math.Sqrt(cur)
	}
	return max(float64(cfg.Min), min(float64(cfg.Max), next))
}

// admitAll is the admit share of 1: every request may enter.
const admitAll = 1 << 32

// nextFraction is one step of the admitted share. A cap on decisions
// under way bounds the work admitted at once, not the work arriving: when
// even the answers to the excess (a 503 costs a read and a write) and the
// capped decisions keep the CPU queue long, requests wait before the
// server reads them, and the ones it admits miss their deadline. So while
// the delay stays over the threshold the share falls in proportion (by a
// fifth a window at most, down to floor), and it comes back by a tenth a
// window once the queue is short. The floor matters: the answers to the
// excess queue for the CPU too, and without it a share cut because of
// them would fall to nothing while they kept the delay up.
func nextFraction(cur float64, delay, threshold time.Duration, floor float64) float64 {
	if delay > threshold {
		return max(floor, cur*max(0.8, float64(threshold)/float64(delay)))
	}
	return min(1, cur+0.1)
}

// LendSlot lends an admitted decision's slot while it waits on the
// feature store, so that a store slow to answer (black-holed, the breaker
// not open yet) does not fill the cap with decisions using no CPU, and
// turn the requests behind them into 503s instead of degraded answers.
// It lends nothing within lendCooldown of the server being behind (see
// Limiter) or of a window whose scheduling delay passed Target: an
// overload is then the CPU's, and the cap must hold. (While nbp sheds the
// late requests, it is behind and not in turn; lending in between let in
// decisions enough to double the admitted ones' p99 at twice the peak,
// and slowed their reads past their budget.) Nor does it lend past
// maxWaiting decisions at once. When it reports true, ReturnSlot must
// follow: it takes the slot back whatever the cap, as the decision was
// admitted.
func (l *Limiter) LendSlot() bool {
	if at := l.busyAt.Load(); at != 0 && l.cfg.Now().UnixNano()-at < int64(lendCooldown) {
		return false
	}
	if l.waiting.Add(1) > l.maxWaiting {
		l.waiting.Add(-1)
		return false
	}
	l.inFlight.Add(-1)
	return true
}

// lendCooldown is how long after a busy window no slot is lent.
const lendCooldown = time.Second

// ReturnSlot ends a LendSlot.
func (l *Limiter) ReturnSlot() {
	l.inFlight.Add(1)
	l.waiting.Add(-1)
}

// Waiting is the number of decisions waiting on the feature store with
// their slot lent.
func (l *Limiter) Waiting() int { return int(l.waiting.Load()) }

// Admitted is the share of requests currently let in, 0 to 1.
func (l *Limiter) Admitted() float64 { return float64(l.admit.Load()) / admitAll }

// Limit is the current cap.
func (l *Limiter) Limit() int { return int(l.limit.Load()) }

// InFlight is the number of decisions under way.
func (l *Limiter) InFlight() int { return int(l.inFlight.Load()) }

// ShedReason says why a request was shed.
type ShedReason int

const (
	// ShedInFlight: the cap on decisions under way was reached.
	ShedInFlight ShedReason = iota
	// ShedWait: it waited past QueueWait to be read while requests queued.
	ShedWait
	// ShedShare: it fell outside the share let in while the CPU queue
	// was long.
	ShedShare
	NumShedReasons // how many reasons there are
)

// String is the reason's metric label.
func (r ShedReason) String() string {
	switch r {
	case ShedInFlight:
		return "in_flight"
	case ShedWait:
		return "wait"
	case ShedShare:
		return "share"
	}
	return "unknown"
}

// Shed is the number of requests shed so far.
func (l *Limiter) Shed() int64 {
	var n int64
	for i := range l.shed {
		n += l.shed[i].Load()
	}
	return n
}

// ShedFor is the number of requests shed so far for reason r.
func (l *Limiter) ShedFor(r ShedReason) int64 {
	if r < 0 || r >= NumShedReasons {
		return 0
	}
	return l.shed[r].Load()
}

// schedDelay reads the Go scheduler's latency histogram and returns
// quantiles of what was added since the last read.
type schedDelay struct {
	sample []metrics.Sample
	prev   []uint64
}

const schedLatencies = "/sched/latencies:seconds"

func newSchedDelay() *schedDelay {
	s := &schedDelay{sample: []metrics.Sample{{Name: schedLatencies}}}
	s.p90() // the baseline: what came before does not count
	return s
}

// p90 is the 90th percentile of the delays since the last call (the
// upper bound of its bucket), false when there were none. Not safe for
// concurrent use; the limiter calls it under its lock.
func (s *schedDelay) p90() (time.Duration, bool) {
	metrics.Read(s.sample)
	if s.sample[0].Value.Kind() != metrics.KindFloat64Histogram {
		return 0, false
	}
	h := s.sample[0].Value.Float64Histogram()
	if len(s.prev) != len(h.Counts) {
		s.prev = make([]uint64, len(h.Counts))
	}
	var total uint64
	for i, c := range h.Counts {
		total += c - s.prev[i]
	}
	defer copy(s.prev, h.Counts)
	if total == 0 {
		return 0, false
	}
	want := (total*9 + 9) / 10
	var seen uint64
	for i, c := range h.Counts {
		seen += c - s.prev[i]
		if seen >= want {
			up := h.Buckets[i+1]
			if math.IsInf(up, 1) {
				up = h.Buckets[i]
			}
			return time.Duration(up * float64(time.Second)), true
		}
	}
	return 0, false
}
