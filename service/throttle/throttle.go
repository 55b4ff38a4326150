// Package throttle is the caller's half of nbp's overload protection:
// adaptive client-side throttling, as described in Google's SRE book
// (chapter 21, "Handling Overload").
//
// nbp sheds what it cannot serve with a quick 503, but a shed request is
// not free: it is read, parsed and answered on the same CPU that serves
// the others. Where serving a request costs only a few times more than
// refusing it, as with nbp, refusals alone eat the capacity they protect:
// at twice the load nbp can serve, most of the CPU goes to saying no. A
// caller that refuses locally the share of its requests nbp would refuse
// anyway keeps that CPU for the requests nbp serves.
//
// Each caller keeps, over a sliding window, the requests its application
// attempted and the ones nbp accepted (answered in time, neither 503 nor
// 429), and refuses a new request locally with probability
//
//	max(0, (requests − K·accepts) / (requests + 1))
//
// capped at 90%.
// While nbp accepts everything the probability is zero. When it accepts
// only part, the caller lets through about K times what nbp accepts, so
// nbp still sees a little more than it serves, and the share let through
// grows by about K a window once nbp accepts it all: the throttle lets up
// within seconds of the overload passing.
package throttle

import (
	"math/rand/v2"
	"sync"
	"time"
)

// Config sets a Throttle.
type Config struct {
	// K is how many times the requests nbp accepts a caller still sends;
	// at least 1. Lower wastes less of nbp's CPU on 503s during an
	// overload; higher lets up faster after it: the share sent can only
	// grow by about K each window, as requests refused locally are
	// requests nbp did not accept. Default 1.2: nbp's refusals cost about
	// a quarter of a served request, so little slack is worth keeping.
	K float64
	// Window is how far back requests and accepts are counted; short, so
	// that the caller lets up within seconds once nbp can take its load.
	// Default 1s.
	Window time.Duration
	// Buckets is how many slices the window moves by. Default 10.
	Buckets int
	// MaxReject caps the share refused, so that some requests still reach
	// nbp when it refuses them all: without them nothing would tell the
	// caller it is back. Default 0.9.
	MaxReject float64
	// Now is the clock; default time.Now (tests set their own).
	Now func() time.Time
	// Rand returns a number in [0, 1); default math/rand/v2's Float64.
	Rand func() float64
}

// Throttle decides which requests a caller sends to nbp. Its methods are
// safe for concurrent use.
type Throttle struct {
	k      float64
	maxP   float64
	bucket time.Duration
	now    func() time.Time
	rand   func() float64

	mu       sync.Mutex
	ring     []counts
	head     int       // the bucket now counting
	headEnds time.Time // when it stops
	sum      counts    // over the ring
}

type counts struct{ requests, accepts float64 }

// New returns a Throttle with c's settings, defaults filled in.
func New(c Config) *Throttle {
	if c.K < 1 {
		c.K = 1.2
	}
	if c.Window <= 0 {
		c.Window = time.Second
	}
	if c.Buckets <= 0 {
		c.Buckets = 10
	}
	if c.MaxReject <= 0 || c.MaxReject > 1 {
		c.MaxReject = 0.9
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	t := &Throttle{k: c.K, maxP: c.MaxReject, bucket: c.Window / time.Duration(c.Buckets), now: c.Now, rand: c.Rand, ring: make([]counts, c.Buckets)}
	t.headEnds = t.now().Add(t.bucket)
	return t
}

// Allow counts an attempted request and reports whether to send it. A
// request it refuses should fail at once, as nbp's 503 would (code
// overloaded); one it allows must be followed by Done.
func (t *Throttle) Allow() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.advance()
	p := t.probability()
	t.ring[t.head].requests++
	t.sum.requests++
	return p <= 0 || t.rand() >= p
}

// Done records the outcome of a request Allow let through: accepted when
// nbp answered it within the caller's deadline with neither 503 nor 429.
// A transport error or a timeout is not accepted.
func (t *Throttle) Done(accepted bool) {
	if !accepted {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.advance()
	t.ring[t.head].accepts++
	t.sum.accepts++
}

// RejectProbability is the share of new requests Allow refuses now.
func (t *Throttle) RejectProbability() float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.advance()
	return max(0, t.probability())
}

func (t *Throttle) probability() float64 {
	return min(t.maxP, (t.sum.requests-t.k*t.sum.accepts)/(t.sum.requests+1))
}

// advance moves the window to now, emptying the buckets it leaves.
func (t *Throttle) advance() {
	now := t.now()
	if now.Before(t.headEnds) {
		return
	}
	steps := int(now.Sub(t.headEnds)/t.bucket) + 1
	if steps >= len(t.ring) {
		clear(t.ring)
		t.sum = counts{}
		t.headEnds = t.headEnds.Add(time.Duration(steps) * t.bucket)
		return
	}
	for range steps {
		t.head = (t.head + 1) % len(t.ring)
		t.sum.requests -= t.ring[t.head].requests
		t.sum.accepts -= t.ring[t.head].accepts
		t.ring[t.head] = counts{}
	}
	t.headEnds = t.headEnds.Add(time.Duration(steps) * t.bucket)
}
