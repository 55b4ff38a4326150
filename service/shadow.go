package service

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
)

// ShadowDecision is what the shadow version would have served for a
// decision the champion made: never served, kept for comparison.
type ShadowDecision struct {
	// Served is the decision as it was served (by the champion).
	Served Decision
	// Shadow is the shadow version's decision on the same features,
	// contact history, arbitration and clock, every policy applied; its id
	// is the served decision's. Its reasons are not computed (general).
	Shadow Decision
	// Top3Overlap is the share of the served top three (or fewer) that
	// the shadow's top three holds too.
	Top3Overlap float64
	// RankCorrelation is Spearman's rank correlation of the two versions'
	// priorities over the products the customer was eligible for; NaN
	// with fewer than two.
	RankCorrelation float64
	// Champion and ShadowScores are both versions' propensities, by
	// catalog product.
	Champion, ShadowScores []float32
}

// ShadowReport sums up the comparison since the server started.
type ShadowReport struct {
	Version string  // the shadow version
	Share   float64 // of the champion's decisions it scores
	// Compared counts decisions scored by both; Dropped those sampled but
	// not compared because the shadow's queue was full (the answer never
	// waits for it); Failed those the shadow could not score (its breaker
	// open, an error: its rules stood in, which is not worth comparing).
	Compared, Dropped, Failed int64
	// Top3Overlap and SameTop3 are the mean overlap of the top three and
	// the share of decisions whose top three are the same products in the
	// same order; RankCorrelation the mean Spearman correlation (over the
	// decisions with two eligible products or more).
	Top3Overlap, SameTop3, RankCorrelation float64
	Products                               []ProductDrift
}

// ProductDrift is how one product's propensity moves from the champion to
// the shadow, on the same customers.
type ProductDrift struct {
	Product  string
	Champion float64 // mean propensity from the champion
	Shadow   float64 // mean propensity from the shadow
	// MeanAbsDiff is the mean absolute difference, customer by customer.
	MeanAbsDiff float64
}

// shadowJob is a sampled decision waiting for the shadow: its own copy of
// what the champion decided on.
type shadowJob struct {
	in     input
	rec    features.Record
	served Decision
	scores []float32 // the champion's, by product
	arb    *catalog.Arbitration
	now    time.Time
}

// shadow scores a sampled share of the champion's decisions with another
// version, on a worker of its own.
type shadow struct {
	scorer   Scorer
	version  func() string
	cut      uint64 // samples below it, out of 10,000, are shadowed
	share    float64
	queue    chan *shadowJob
	sink     func(*ShadowDecision)
	dropped  atomic.Int64
	failed   atomic.Int64
	mu       sync.Mutex
	compared int64
	sumTop3  float64
	same     int64
	sumRho   float64
	nRho     int64
	sumChamp []float64
	sumShad  []float64
	sumAbs   []float64
}

// shadowBatch is the most sampled decisions the shadow scores in one call.
const shadowBatch = 64

// offer queues the decision for the shadow when it is sampled; it never
// blocks.
func (s *shadow) offer(in *input, served *Decision, scores []float32, arb *catalog.Arbitration, now time.Time) {
	if rand.Uint64N(10000) >= s.cut {
		return
	}
	j := &shadowJob{in: *in, rec: *in.rec, served: *served, scores: slices.Clone(scores), arb: arb, now: now}
	// The store may reuse what it read into: keep copies.
	j.rec.Contact, j.rec.Batch = maps.Clone(in.rec.Contact), nil
	j.in.rec = &j.rec
	select {
	case s.queue <- j:
	default:
		s.dropped.Add(1)
	}
}

// RunShadow scores the sampled decisions with the shadow version until ctx
// ends; without it running, they are dropped and counted. Without a shadow
// it returns at once.
func (p *Pipeline) RunShadow(ctx context.Context) {
	s := p.shadow
	if s == nil {
		return
	}
	jobs := make([]*shadowJob, 0, shadowBatch)
	for {
		jobs = jobs[:0]
		select {
		case <-ctx.Done():
			return
		case j := <-s.queue:
			jobs = append(jobs, j)
		}
	fill:
		for len(jobs) < shadowBatch {
			select {
			case j := <-s.queue:
				jobs = append(jobs, j)
			default:
				break fill
			}
		}
		p.runShadow(ctx, jobs)
	}
}

// shadowTimeout bounds one shadow call: it is off every answer's path.
const shadowTimeout = 2 * time.Second

func (p *Pipeline) runShadow(ctx context.Context, jobs []*shadowJob) {
	s := p.shadow
	P, F := len(p.cat.Products), int(features.NumFields)
	mem := p.scratch(len(jobs))
	defer p.scratches.Put(mem)
	x, ps := mem.x[:len(jobs)*F], mem.ps[:len(jobs)*P]
	for i, j := range jobs {
		copy(x[i*F:], j.rec.Vector.Values[:])
	}
	sctx, cancel := context.WithTimeout(ctx, shadowTimeout)
	scored, err := s.scorer.Score(sctx, x, len(jobs), ps)
	cancel()
	if scored.Release != nil {
		defer scored.Release()
	}
	if err != nil || scored.Fallback {
		s.failed.Add(int64(len(jobs)))
		return
	}
	// Ranking only: the shadow's reasons would cost CPU beside live
	// requests, and nobody reads them.
	scored.Explain = nil
	for i, j := range jobs {
		sd := &ShadowDecision{Served: j.served, Champion: j.scores, ShadowScores: slices.Clone(ps[i*P : (i+1)*P])}
		sd.Shadow = p.finish(&j.in, kindScored, scored, i, sd.ShadowScores, mem, j.arb, j.now)
		sd.Shadow.ID = j.served.ID
		sd.Top3Overlap = topOverlap(&sd.Served, &sd.Shadow, 3)
		sd.RankCorrelation = p.rankCorrelation(mem.cands, j)
		s.add(sd)
		if s.sink != nil {
			s.sink(sd)
		}
	}
}

// topOverlap is the share of a's first k items that b's first k hold.
func topOverlap(a, b *Decision, k int) float64 {
	na := min(k, len(a.Items))
	if na == 0 {
		if len(b.Items) == 0 {
			return 1
		}
		return 0
	}
	hit := 0
	for _, x := range a.Items[:na] {
		for _, y := range b.Items[:min(k, len(b.Items))] {
			if x.Product == y.Product {
				hit++
				break
			}
		}
	}
	return float64(hit) / float64(na)
}

// rankCorrelation is Spearman's correlation between the champion's and the
// shadow's priorities over the shadow's candidates (the products the
// customer is eligible for: the same for both).
func (p *Pipeline) rankCorrelation(cands []cand, j *shadowJob) float64 {
	n := len(cands)
	if n < 2 {
		return math.NaN()
	}
	a, b := make([]float64, n), make([]float64, n)
	for i, c := range cands {
		pr := &p.cat.Products[c.k]
		a[i] = float64(j.scores[c.k]) * j.arb.Factor(pr, j.in.req.Channel, j.now)
		b[i] = c.priority
	}
	return spearman(a, b)
}

// spearman is the Pearson correlation of the ranks (ties get their mean
// rank); NaN when either side is constant.
func spearman(a, b []float64) float64 {
	ra, rb := ranks(a), ranks(b)
	var ma, mb float64
	for i := range ra {
		ma += ra[i]
		mb += rb[i]
	}
	ma /= float64(len(ra))
	mb /= float64(len(rb))
	var sab, saa, sbb float64
	for i := range ra {
		da, db := ra[i]-ma, rb[i]-mb
		sab += da * db
		saa += da * da
		sbb += db * db
	}
	if saa == 0 || sbb == 0 {
		return math.NaN()
	}
	return sab / math.Sqrt(saa*sbb)
}

func ranks(v []float64) []float64 {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(x, y int) int { return cmp.Compare(v[x], v[y]) })
	r := make([]float64, len(v))
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && v[idx[j+1]] == v[idx[i]] {
			j++
		}
		mean := float64(i+j)/2 + 1
		for k := i; k <= j; k++ {
			r[idx[k]] = mean
		}
		i = j + 1
	}
	return r
}

func (s *shadow) add(sd *ShadowDecision) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.compared++
	s.sumTop3 += sd.Top3Overlap
	if sameTop(&sd.Served, &sd.Shadow, 3) {
		s.same++
	}
	if !math.IsNaN(sd.RankCorrelation) {
		s.sumRho += sd.RankCorrelation
		s.nRho++
	}
	for k := range sd.Champion {
		c, sh := float64(sd.Champion[k]), float64(sd.ShadowScores[k])
		s.sumChamp[k] += c
		s.sumShad[k] += sh
		s.sumAbs[k] += math.Abs(sh - c)
	}
}

// sameTop reports whether a and b have the same first k products in the
// same order.
func sameTop(a, b *Decision, k int) bool {
	na, nb := min(k, len(a.Items)), min(k, len(b.Items))
	if na != nb {
		return false
	}
	for i := range na {
		if a.Items[i].Product != b.Items[i].Product {
			return false
		}
	}
	return true
}

// ShadowReport returns the comparison so far; nil without a shadow.
func (p *Pipeline) ShadowReport() *ShadowReport {
	s := p.shadow
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &ShadowReport{Version: s.version(), Share: s.share, Compared: s.compared, Dropped: s.dropped.Load(), Failed: s.failed.Load()}
	if s.compared > 0 {
		n := float64(s.compared)
		r.Top3Overlap, r.SameTop3 = s.sumTop3/n, float64(s.same)/n
		for k := range p.cat.Products {
			r.Products = append(r.Products, ProductDrift{Product: p.cat.Products[k].ID,
				Champion: s.sumChamp[k] / n, Shadow: s.sumShad[k] / n, MeanAbsDiff: s.sumAbs[k] / n})
		}
	}
	if s.nRho > 0 {
		r.RankCorrelation = s.sumRho / float64(s.nRho)
	}
	return r
}

// newShadow checks and builds the pipeline's shadow.
func newShadow(c *PipelineConfig, products int) (*shadow, error) {
	if !(c.ShadowShare > 0 && c.ShadowShare <= 1) {
		return nil, errShadowShare
	}
	q := c.ShadowQueue
	if q <= 0 {
		q = 1024
	}
	version := c.ShadowVersion
	if version == nil {
		version = func() string { return "" }
	}
	return &shadow{scorer: c.Shadow, version: version, share: c.ShadowShare, cut: uint64(c.ShadowShare*10000 + 0.5),
		queue: make(chan *shadowJob, q), sink: c.ShadowSink,
		sumChamp: make([]float64, products), sumShad: make([]float64, products), sumAbs: make([]float64, products)}, nil
}

var errShadowShare = errors.New("pipeline: a shadow needs a share in (0, 1]")
