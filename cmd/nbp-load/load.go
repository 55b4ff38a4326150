package main

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/directops/nbp/service/throttle"
)

// issueFunc sends one request and returns its HTTP status, or an error
// when there is no response (refused, timed out, cut). A status other
// than 200 counts as an error too. A 200 that says it is degraded comes
// with errDegraded: an answer, but not a personalised one.
type issueFunc func() (status int, err error)

// errDegraded marks a 200 whose body says "degraded": true.
var errDegraded = errors.New("degraded answer")

// errThrottled marks a request the caller's throttle refused: never sent.
var errThrottled = errors.New("refused by the caller's throttle")

// throttled makes the workers of f callers that throttle themselves with
// th, as service/throttle tells nbp's callers to: a request th refuses
// fails at once; one it lets through is accepted when nbp answers it 200
// within the deadline (degraded or not), as a caller with that timeout
// would see it.
func throttled(th *throttle.Throttle, f issuerFactory) issuerFactory {
	return func(worker int) issueFunc {
		issue := f(worker)
		return func() (int, error) {
			if !th.Allow() {
				return 0, errThrottled
			}
			sent := time.Now()
			status, err := issue()
			th.Done(status == 200 && time.Since(sent) <= goodputDeadline)
			return status, err
		}
	}
}

// issuerFactory makes the issueFunc of one worker goroutine, which may
// keep buffers and a random source of its own.
type issuerFactory func(worker int) issueFunc

// goodputDeadline is the server's request deadline: a 200 later than this
// is not good output.
const goodputDeadline = 100 * time.Millisecond

// tally is what one worker saw. Workers keep their own; merge adds them.
type tally struct {
	latency    histogram
	admitted   histogram // latency of the 200s alone
	shed       histogram // latency of the 503s alone
	ok         uint64
	okInTime   uint64 // 200s within the deadline (goodput)
	degraded   uint64 // of the 200s, degraded ones
	fullInTime uint64 // 200s within the deadline and not degraded
	errors     uint64
	throttled  uint64         // refused by the caller's own throttle, never sent
	statuses   map[int]uint64 // by HTTP status; 0 is a transport error
	classes    map[string]uint64
	firstErr   string
}

func newTally() *tally {
	return &tally{statuses: make(map[int]uint64), classes: make(map[string]uint64)}
}

func (t *tally) record(d time.Duration, status int, err error) {
	if errors.Is(err, errThrottled) {
		t.throttled++
		return
	}
	t.latency.record(d)
	t.statuses[status]++
	if status == 200 && (err == nil || errors.Is(err, errDegraded)) {
		t.ok++
		t.admitted.record(d)
		if err != nil {
			t.degraded++
		}
		if d <= goodputDeadline {
			t.okInTime++
			if err == nil {
				t.fullInTime++
			}
		}
		return
	}
	if status == 503 {
		t.shed.record(d)
	}
	t.errors++
	t.classes[errorClass(status, err)]++
	if t.firstErr == "" {
		if err != nil {
			t.firstErr = err.Error()
		} else {
			t.firstErr = "unexpected status"
		}
	}
}

// errorClass names a failure for counting: the status, or for a failure
// with no response, the transport error's message (which names no
// request-specific value in fasthttp), cut short.
func errorClass(status int, err error) string {
	if status != 0 {
		// With the error code of nbp's JSON error, when the body has one.
		class := "status " + strconv.Itoa(status)
		if err != nil {
			const key = `"code":"`
			msg := err.Error()
			if i := strings.Index(msg, key); i >= 0 {
				code, _, _ := strings.Cut(msg[i+len(key):], `"`)
				class += " " + code
			}
		}
		return class
	}
	if err == nil {
		return "no status"
	}
	msg := err.Error()
	if len(msg) > 90 {
		msg = msg[:90] + "..."
	}
	return msg
}

func (t *tally) merge(o *tally) {
	t.latency.merge(&o.latency)
	t.admitted.merge(&o.admitted)
	t.shed.merge(&o.shed)
	t.ok += o.ok
	t.okInTime += o.okInTime
	t.degraded += o.degraded
	t.fullInTime += o.fullInTime
	t.errors += o.errors
	t.throttled += o.throttled
	for s, n := range o.statuses {
		t.statuses[s] += n
	}
	for c, n := range o.classes {
		t.classes[c] += n
	}
	if t.firstErr == "" {
		t.firstErr = o.firstErr
	}
}

// closedResult is the outcome of a closed-loop run.
type closedResult struct {
	tally
	window time.Duration // the measured window (shorter when interrupted)
}

// runClosed runs workers goroutines that each send a request as soon as
// the previous one is answered, for warmup and then dur. Only requests
// sent after the warm-up are counted; latency runs from the actual send.
func runClosed(ctx context.Context, workers int, warmup, dur time.Duration, issuer issuerFactory) closedResult {
	start := time.Now()
	measureFrom := start.Add(warmup)
	end := measureFrom.Add(dur)
	var stopped atomic.Bool // cheaper than ctx.Err on every request
	defer context.AfterFunc(ctx, func() { stopped.Store(true) })()
	tallies := make([]*tally, workers)
	var wg sync.WaitGroup
	for w := range workers {
		t := newTally()
		tallies[w] = t
		issue := issuer(w)
		wg.Go(func() {
			for !stopped.Load() {
				sent := time.Now()
				if !sent.Before(end) {
					return
				}
				status, err := issue()
				if sent.Before(measureFrom) {
					continue
				}
				t.record(time.Since(sent), status, err)
			}
		})
	}
	wg.Wait()
	res := closedResult{tally: *newTally(), window: measuredWindow(measureFrom, end)}
	for _, t := range tallies {
		res.merge(t)
	}
	return res
}

// measuredWindow is the part of [from, end) that has passed.
func measuredWindow(from, end time.Time) time.Duration {
	now := time.Now()
	if now.After(end) {
		now = end
	}
	return max(0, now.Sub(from))
}

// openResult is the outcome of an open-loop run.
type openResult struct {
	tally
	window    time.Duration
	scheduled uint64    // requests the schedule called for in the window
	dropped   uint64    // of those, not sent: every worker was busy
	sendLag   histogram // actual send time minus scheduled time
	fromSend  histogram // latency from the actual send, as a closed loop counts it
}

// tickTime returns when request i of a schedule of rate requests a second
// starting at start is due. Computing every tick from start, rather than
// adding an interval to the previous one, keeps rounding from drifting.
func tickTime(start time.Time, i int64, rate float64) time.Time {
	return start.Add(time.Duration(float64(i) * float64(time.Second) / rate))
}

// numTicks returns how many requests a schedule of rate a second sends in d.
func numTicks(d time.Duration, rate float64) int64 {
	return int64(d.Seconds() * rate)
}

// runOpen sends requests at a fixed rate for warmup and then dur, whatever
// the answers take: a dispatcher hands each due request to an idle worker
// of a pool of size pool, or counts it dropped when none is idle. Latency
// runs from the time the request was due, not the time it was sent, so a
// late send (a stalled dispatcher, a busy CPU) counts against the server
// like a queue would: the measurement is free of coordinated omission.
func runOpen(ctx context.Context, rate float64, pool int, warmup, dur time.Duration, issuer issuerFactory) openResult {
	return runOpenTicks(ctx, rate, pool, warmup, dur, true, issuer)
}

// runOpenCoarse is runOpen for rates where the dispatcher's own cost
// matters more than sub-millisecond sends: it sleeps on Go timers (about
// a millisecond here) and sends every request that fell due meanwhile in
// one go, instead of waking on its own thread for each. Sends are then up
// to a millisecond late, which the latencies include, as always; in
// exchange the dispatcher costs a fraction of the CPU, which at tens of
// thousands of requests a second decides whether the generator keeps up.
func runOpenCoarse(ctx context.Context, rate float64, pool int, warmup, dur time.Duration, issuer issuerFactory) openResult {
	return runOpenTicks(ctx, rate, pool, warmup, dur, false, issuer)
}

func runOpenTicks(ctx context.Context, rate float64, pool int, warmup, dur time.Duration, precise bool, issuer issuerFactory) openResult {
	jobs := make(chan time.Time) // unbuffered: a send succeeds only when a worker waits
	type workerTally struct {
		*tally
		lag, fromSend histogram
	}
	tallies := make([]*workerTally, pool)
	var start, measureFrom time.Time // set before the first job is sent
	var wg, ready sync.WaitGroup
	ready.Add(pool)
	for w := range pool {
		t := &workerTally{tally: newTally()}
		tallies[w] = t
		issue := issuer(w)
		wg.Go(func() {
			ready.Done()
			for due := range jobs {
				sent := time.Now()
				status, err := issue()
				if due.Before(measureFrom) {
					continue
				}
				done := time.Now()
				t.record(done.Sub(due), status, err)
				t.lag.record(sent.Sub(due))
				t.fromSend.record(done.Sub(sent))
			}
		})
	}

	// Start the clock once every worker runs, so that the first requests
	// are not dropped for want of workers that merely have not started.
	ready.Wait()
	start = time.Now()
	measureFrom = start.Add(warmup)
	end := measureFrom.Add(dur)
	sleep := time.Sleep
	if precise {
		defer precisionThread()()
		sleep = preciseSleep
	}
	var scheduled, dropped uint64
	total := numTicks(warmup+dur, rate)
	for i := int64(0); i < total && ctx.Err() == nil; {
		due := tickTime(start, i, rate)
		if wait := time.Until(due); wait > 0 {
			sleep(min(wait, 10*time.Millisecond)) // short, to notice ctx
			continue
		}
		measured := !due.Before(measureFrom)
		if measured {
			scheduled++
		}
		select {
		case jobs <- due:
		default:
			if measured {
				dropped++
			}
		}
		i++
	}
	close(jobs)
	wg.Wait()

	res := openResult{tally: *newTally(), window: measuredWindow(measureFrom, end), scheduled: scheduled, dropped: dropped}
	for _, t := range tallies {
		res.merge(t.tally)
		res.sendLag.merge(&t.lag)
		res.fromSend.merge(&t.fromSend)
	}
	return res
}
