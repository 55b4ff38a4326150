// Package service is the decision pipeline and its HTTP face.
//
// Pipeline answers, for one customer or a batch of them, which products to
// offer on a channel, in what order, with what words: it reads the features,
// scores them, applies the catalog's hard policies (eligibility,
// applicability, suitability, consent), arbitrates by priority with a cap per
// category, and renders the copy. The online API and the nightly batch call
// the same Pipeline, so both get the same decision for the same customer,
// model and data.
package service

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/model"
	"github.com/directops/nbp/service/telemetry"
)

// MaxLimit is the most items a decision may hold.
const MaxLimit = 10

// Degraded reasons a decision may carry.
const (
	ReasonFeaturesUnavailable = "features_unavailable" // Redis down or slow: nothing about the customer is known
	ReasonFeaturesStale       = "features_stale"       // the vector is older than the store's max age
	ReasonFeaturesCorrupt     = "features_corrupt"     // the vector could not be decoded
	ReasonModelFallback       = "model_fallback"       // the rules scored instead of the model
)

// FeatureStatusUnavailable is a decision's feature status when the store
// could not be read; the others are features.Status names.
const FeatureStatusUnavailable = "unavailable"

// ErrInvalidRequest is wrapped by Decide for a request it cannot serve.
var ErrInvalidRequest = errors.New("invalid request")

// FeatureStore reads customer vectors.
type FeatureStore interface {
	// ReadManyRun reads vectors, contact states and, when run is not "",
	// the customers' offers in that batch run, in one round trip.
	ReadManyRun(ctx context.Context, ids []string, run string, dst []features.Record) error
}

// Scorer scores n feature vectors (see package model).
type Scorer interface {
	Score(ctx context.Context, x []float32, n int, out []float32) (model.Scored, error)
}

// Request asks for one customer's decision.
type Request struct {
	CustomerID string
	Channel    catalog.Channel
	Limit      int
}

// Decision is the answer to a Request.
type Decision struct {
	ID              string
	At              time.Time
	CustomerID      string
	Channel         catalog.Channel
	Strategy        model.Strategy // what ranked the list
	ModelVersion    string         // which model version or rule set ranked the list
	CatalogVersion  string
	ConfigVersion   string // of the arbitration (business values, weights, levers) in force
	Degraded        bool
	DegradedReasons []string
	Items           []Item
	// FeatureStatus is what the read found (found, stale, not_found,
	// corrupt, unavailable); FeaturesHash identifies the vector used, for
	// the audit trail, without revealing it.
	FeatureStatus string
	FeaturesHash  string
	// Features are the feature values the decision was made on (the
	// schema's, not the salutation), for the feature log: set for a
	// sampled share of the decisions on known features and for every batch
	// decision when PipelineConfig.FeatureLogShare is over 0, nil otherwise.
	// Personal data: never logged, traced or measured.
	Features []float32
}

// Item is one ranked offer.
type Item struct {
	Rank       int
	Product    *catalog.Product
	Propensity float64
	Priority   float64
	Copy       catalog.Copy
	Reasons    []Reason // one to three
	// ScoredBy is what scored the product: the decision's strategy, or
	// the rules for a product the model in force leaves out.
	ScoredBy model.Strategy
}

// Reason says, in a few Chinese words, why a product is offered. It never
// carries a customer's values.
type Reason struct {
	Code string
	Text string
}

// MaxReasons caps the reasons of an item.
const MaxReasons = 3

// PipelineConfig wires a Pipeline.
type PipelineConfig struct {
	Catalog *catalog.Catalog
	Store   FeatureStore
	// Scorer ranks personalised decisions: the guarded model, or the rules
	// alone when the server runs without a model.
	Scorer Scorer
	// FeatureTimeout bounds the feature read within a request's deadline;
	// default 40ms. When it passes, the decision goes on without features.
	FeatureTimeout time.Duration
	// Now is the clock of every decision, and of the events and statistics
	// served beside them: what "today" is for sale windows, levers, risk
	// assessments, contact caps and the control group; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
	// NewID makes the id of a decision made at the given time; default
	// NewDecisionID.
	NewID func(at time.Time) string
	// Challenger, when set, ranks the decisions of ChallengerShare of the
	// personalised customers outside the control group, chosen by a keyed
	// hash of their id (ChallengerKey) so that a customer stays in it:
	// strategy challenger, the challenger's version, every policy the same.
	Challenger      Scorer
	ChallengerShare float64
	ChallengerKey   []byte
	// ChallengerOff, when set and true, sends the challenger's share to
	// the champion: the challenger has been promoted.
	ChallengerOff func() bool
	// Shadow, when set, scores ShadowShare of the champion's decisions (a
	// sample of requests) on a worker of its own (RunShadow), off every
	// answer's path: what it would have served goes to ShadowSink, and
	// ShadowReport compares it with the champion. A full queue (ShadowQueue
	// decisions, default 1024) drops the sample, and counts it.
	Shadow        Scorer
	ShadowVersion func() string
	ShadowShare   float64
	ShadowQueue   int
	ShadowSink    func(*ShadowDecision)
	// FeatureLogShare, in (0, 1], is the share of decisions on known
	// features that carry their feature values (Decision.Features) for the
	// feature log, sampled at random; every batch decision carries them.
	// 0: none does.
	FeatureLogShare float64
	// MeterProvider counts decisions by strategy and channel, and
	// degraded ones by reason; nil counts nothing.
	MeterProvider metric.MeterProvider
	// TracerProvider traces the steps of a decision (spans
	// nbp.features.read, nbp.score and nbp.finish) under the caller's
	// span; nil traces nothing.
	TracerProvider trace.TracerProvider
}

// Pipeline makes decisions. It is safe for concurrent use.
type Pipeline struct {
	cat             *catalog.Catalog
	profile         *features.Profile
	store           FeatureStore
	scorer          Scorer
	prior           *model.Prior
	featureTimeout  time.Duration
	now             func() time.Time
	log             *slog.Logger
	newID           func(at time.Time) string
	controlVersion  string
	challenger      Scorer
	challengerCut   uint64 // buckets below it are the challenger's
	challengerKey   []byte
	challengerOff   func() bool
	shadow          *shadow // nil without one
	featureLogShare float64
	scratches       sync.Pool // *scratch
	arb             atomic.Pointer[catalog.Arbitration]
	run             atomic.Pointer[string] // the batch run whose lists back up the model
	tel             *decisionTelemetry
}

// SetBatchRun names the completed batch run whose precomputed lists stand
// in, before the rules, when the model cannot score ("" for none).
func (p *Pipeline) SetBatchRun(run string) { p.run.Store(&run) }

func (p *Pipeline) batchRun() string {
	if r := p.run.Load(); r != nil {
		return *r
	}
	return ""
}

// SetArbitration puts new business values, context weights and levers in
// force. Decisions under way finish with the old ones; none fails.
func (p *Pipeline) SetArbitration(a *catalog.Arbitration) { p.arb.Store(a) }

// Arbitration returns the arbitration in force.
func (p *Pipeline) Arbitration() *catalog.Arbitration { return p.arb.Load() }

// NewPipeline checks the catalog against the feature schema and returns the
// pipeline.
func NewPipeline(c PipelineConfig) (*Pipeline, error) {
	if c.Catalog == nil || c.Store == nil || c.Scorer == nil {
		return nil, fmt.Errorf("pipeline: catalog, store and scorer are required")
	}
	prof, err := features.NewProfile(c.Catalog)
	if err != nil {
		return nil, err
	}
	p := &Pipeline{
		cat:            c.Catalog,
		profile:        prof,
		store:          c.Store,
		scorer:         c.Scorer,
		prior:          model.NewPrior(c.Catalog),
		featureTimeout: c.FeatureTimeout,
		now:            c.Now,
		log:            c.Logger,
		newID:          c.NewID,
	}
	if p.featureTimeout <= 0 {
		p.featureTimeout = 40 * time.Millisecond
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.newID == nil {
		p.newID = NewDecisionID
	}
	if p.tel, err = newDecisionTelemetry(c.MeterProvider, c.TracerProvider); err != nil {
		return nil, fmt.Errorf("pipeline: telemetry: %w", err)
	}
	p.controlVersion = "control@" + c.Catalog.Version
	if c.Challenger != nil {
		if !(c.ChallengerShare > 0 && c.ChallengerShare <= 0.5) || len(c.ChallengerKey) == 0 {
			return nil, fmt.Errorf("pipeline: a challenger needs a share in (0, 0.5] and a key")
		}
		p.challenger, p.challengerKey, p.challengerOff = c.Challenger, c.ChallengerKey, c.ChallengerOff
		p.challengerCut = uint64(c.ChallengerShare*10000 + 0.5)
	}
	if c.Shadow != nil {
		if p.shadow, err = newShadow(&c, len(c.Catalog.Products)); err != nil {
			return nil, err
		}
	}
	if !(c.FeatureLogShare >= 0 && c.FeatureLogShare <= 1) {
		return nil, fmt.Errorf("pipeline: feature log share %v: want one in [0, 1]", c.FeatureLogShare)
	}
	p.featureLogShare = c.FeatureLogShare
	p.arb.Store(c.Catalog.DefaultArbitration())
	return p, nil
}

// Now returns the time on the pipeline's clock.
func (p *Pipeline) Now() time.Time { return p.now() }

// Catalog returns the pipeline's catalog.
func (p *Pipeline) Catalog() *catalog.Catalog { return p.cat }

func (p *Pipeline) check(r Request) error {
	switch {
	case !features.ValidID(r.CustomerID):
		return fmt.Errorf("%w: malformed customer id", ErrInvalidRequest)
	case r.Channel >= catalog.NumChannels:
		return fmt.Errorf("%w: %w", ErrInvalidRequest, catalog.ErrUnknownChannel)
	case r.Limit < 1 || r.Limit > MaxLimit:
		return fmt.Errorf("%w: limit %d outside 1..%d", ErrInvalidRequest, r.Limit, MaxLimit)
	}
	return nil
}

// SlotLender lends a decision's concurrency slot while it waits on the
// store (Limiter.LendSlot).
type SlotLender interface {
	LendSlot() bool
	ReturnSlot()
}

type slotLenderKey struct{}

// WithSlotLender returns ctx carrying l, for Decide to lend the
// decision's slot while it reads the store.
func WithSlotLender(ctx context.Context, l SlotLender) context.Context {
	return context.WithValue(ctx, slotLenderKey{}, l)
}

// Decide makes one customer's decision. The feature read is bounded by the
// pipeline's FeatureTimeout; when the store cannot answer, the decision is a
// degraded, non-personalised list that every customer may be shown. It
// fails only for an invalid request (ErrInvalidRequest) or when ctx ends.
func (p *Pipeline) Decide(ctx context.Context, r Request) (Decision, error) {
	if err := p.check(r); err != nil {
		return Decision{}, err
	}
	fctx, cancel := context.WithTimeout(ctx, p.featureTimeout)
	fctx, span := p.tel.start(fctx, spanFeaturesRead)
	var rec [1]features.Record
	err := p.readLending(ctx, fctx, r.CustomerID, rec[:])
	endSpan(span, err)
	cancel()
	if err != nil && ctx.Err() != nil {
		return Decision{}, ctx.Err()
	}
	in := [1]input{{req: r, rec: &rec[0], unavailable: err != nil}}
	return p.decide(ctx, in[:])
}

// readLending reads one customer's record within fctx, lending the
// decision's slot meanwhile when ctx carries a lender; the slot comes
// back however the read ends, a panic included.
func (p *Pipeline) readLending(ctx, fctx context.Context, id string, dst []features.Record) error {
	if l, _ := ctx.Value(slotLenderKey{}).(SlotLender); l != nil && l.LendSlot() {
		defer l.ReturnSlot()
	}
	return p.store.ReadManyRun(fctx, []string{id}, p.batchRun(), dst)
}

// DecideMany makes the decisions of a batch with one pipelined feature read
// and one scoring call per scorer. out receives one decision per request.
// The decisions equal what Decide returns for each request alone.
func (p *Pipeline) DecideMany(ctx context.Context, reqs []Request, out []Decision) error {
	if len(out) < len(reqs) {
		return fmt.Errorf("decide many: %d requests, room for %d", len(reqs), len(out))
	}
	ids := make([]string, len(reqs))
	for i, r := range reqs {
		if !features.ValidID(r.CustomerID) { // no key is built of a malformed id
			return fmt.Errorf("request %d: %w: malformed customer id", i, ErrInvalidRequest)
		}
		ids[i] = r.CustomerID
	}
	recs, err := p.Read(ctx, ids)
	if err != nil {
		return err
	}
	return p.DecideRecords(ctx, reqs, recs, out)
}

// Records is what one read of the store returned for a batch of
// customers, to decide on (see Read and DecideRecords).
type Records struct {
	recs        []features.Record
	unavailable bool
}

// Read reads the customers' features, contact states and batch lists in
// one round trip. A store that cannot answer is not an error: the
// decisions will be degraded. It fails only when ctx ends.
func (p *Pipeline) Read(ctx context.Context, ids []string) (Records, error) {
	recs := make([]features.Record, len(ids))
	sctx, span := p.tel.start(ctx, spanFeaturesRead)
	if span != nil {
		span.SetAttributes(attribute.Int("customers", len(ids)))
	}
	err := p.store.ReadManyRun(sctx, ids, p.batchRun(), recs)
	endSpan(span, err)
	if err != nil && ctx.Err() != nil {
		return Records{}, ctx.Err()
	}
	return Records{recs: recs, unavailable: err != nil}, nil
}

// DecideRecords decides on records read before (Read, for the same ids in
// the same order), so that a batch can read the next page while it
// decides this one. The decisions equal DecideMany's.
func (p *Pipeline) DecideRecords(ctx context.Context, reqs []Request, r Records, out []Decision) error {
	if len(out) < len(reqs) || len(r.recs) != len(reqs) {
		return fmt.Errorf("decide records: %d requests, %d records, room for %d", len(reqs), len(r.recs), len(out))
	}
	ins := make([]input, len(reqs))
	for i := range reqs {
		if err := p.check(reqs[i]); err != nil {
			return fmt.Errorf("request %d: %w", i, err)
		}
		ins[i] = input{req: reqs[i], rec: &r.recs[i], unavailable: r.unavailable}
	}
	return p.decideInto(ctx, ins, out)
}

// input is one customer's request with what the store returned.
type input struct {
	req         Request
	rec         *features.Record
	unavailable bool
}

// known reports whether the customer's features could be read and used.
func (in *input) known() bool { return !in.unavailable && in.rec.Status.Usable() }

// personalised reports whether the customer's own features rank the list.
func (in *input) personalised() bool {
	return in.known() && !in.rec.Vector.Flag(features.PersonalisationOptOut)
}

func (p *Pipeline) decide(ctx context.Context, ins []input) (Decision, error) {
	var d [1]Decision
	if err := p.decideInto(ctx, ins, d[:]); err != nil {
		return Decision{}, err
	}
	return d[0], nil
}

func (p *Pipeline) decideInto(ctx context.Context, ins []input, out []Decision) error {
	P := len(p.cat.Products)
	F := int(features.NumFields)
	now := p.now()
	sc := p.scratch(len(ins))
	defer p.scratches.Put(sc)
	arb := p.arb.Load() // one arbitration for the whole call
	scores := sc.scores
	kind := sc.kind

	// Score the personalised rows in one call per scorer (the champion,
	// the challenger); the control group and the others get the prior.
	rows, crows := sc.rows, sc.crows
	row := sc.row // position of a personalised input in its scored batch
	for i := range ins {
		switch {
		case !ins[i].personalised():
			kind[i] = kindPrior
		case p.inControl(ins[i].req.CustomerID, now):
			kind[i] = kindControl
		case p.inChallenger(ins[i].req.CustomerID):
			kind[i] = kindChallenger
			row[i] = len(crows)
			crows = append(crows, i)
		default:
			kind[i] = kindScored
			row[i] = len(rows)
			rows = append(rows, i)
		}
	}
	sc.rows, sc.crows = rows, crows
	// Each call has its own part of the scratch: a scorer's Explain may
	// read its rows until Release.
	scored, err := p.score(ctx, p.scorer, ins, rows, sc.x[:len(rows)*F], sc.ps[:len(rows)*P], scores)
	if err != nil {
		return err
	}
	if scored.Release != nil {
		defer scored.Release() // after every decision's reasons are made
	}
	var challenged model.Scored
	if len(crows) > 0 {
		x, ps := sc.x[len(rows)*F:(len(rows)+len(crows))*F], sc.ps[len(rows)*P:(len(rows)+len(crows))*P]
		if challenged, err = p.score(ctx, p.challenger, ins, crows, x, ps, scores); err != nil {
			return err
		}
		if challenged.Release != nil {
			defer challenged.Release()
		}
		if challenged.Strategy == model.StrategyModel {
			challenged.Strategy = model.StrategyChallenger
		}
	}
	_, span := p.tel.start(ctx, spanFinish)
	defer endSpan(span, nil)
	for i := range ins {
		by := model.Scored{Strategy: model.StrategyNonPersonalised, Version: p.prior.Version()}
		switch kind[i] {
		case kindScored:
			by = scored
		case kindChallenger:
			by, kind[i] = challenged, kindScored
		case kindControl:
			by = model.Scored{Strategy: model.StrategyControl, Version: p.controlVersion}
		}
		if kind[i] == kindScored && scored.Fallback && len(ins[i].rec.Batch) > 0 {
			// The model failed: last night's list ranks before the rules do.
			kind[i] = kindBatch
			by.Strategy, by.Version = model.StrategyBatch, "batch@"+p.batchRun()
		}
		if kind[i] != kindScored {
			copy(scores[i*P:(i+1)*P], p.prior.Rates())
		}
		out[i] = p.finish(&ins[i], kind[i], by, row[i], scores[i*P:(i+1)*P], sc, arb, now)
		p.tel.count(ctx, &out[i])
		if p.shadow != nil && kind[i] == kindScored && by.Strategy == model.StrategyModel && !by.Fallback {
			p.shadow.offer(&ins[i], &out[i], scores[i*P:(i+1)*P], arb, now)
		}
	}
	if span != nil && len(ins) == 1 {
		span.SetAttributes(DecisionAttributes(&out[0])...)
	}
	return nil
}

// score scores the given rows of ins with one scorer call and copies their
// scores into scores (rows of P, by input).
func (p *Pipeline) score(ctx context.Context, s Scorer, ins []input, rows []int, x, ps, scores []float32) (model.Scored, error) {
	if len(rows) == 0 {
		return model.Scored{}, nil
	}
	P, F := len(p.cat.Products), int(features.NumFields)
	for j, i := range rows {
		copy(x[j*F:], ins[i].rec.Vector.Values[:])
	}
	sctx, span := p.tel.start(ctx, spanScore)
	scored, err := s.Score(sctx, x, len(rows), ps)
	if span != nil {
		span.SetAttributes(attribute.Int("rows", len(rows)), telemetry.AttrStrategy.String(string(scored.Strategy)), telemetry.AttrModel.String(scored.Version), attribute.Bool("fallback", scored.Fallback))
	}
	endSpan(span, err)
	if err != nil {
		return model.Scored{}, fmt.Errorf("score: %w", err)
	}
	for j, i := range rows {
		copy(scores[i*P:(i+1)*P], ps[j*P:(j+1)*P])
	}
	return scored, nil
}

// scratch holds a call's working memory, reused across calls.
type scratch struct {
	scores, x, ps []float32
	kind          []decisionKind
	row, rows     []int
	crows         []int // the challenger's
	held          []bool
	cands         []cand
	perCat        []catCount
}

type cand struct {
	k        int
	priority float64
}

type catCount struct {
	cat string
	n   int
}

func (p *Pipeline) scratch(n int) *scratch {
	P, F := len(p.cat.Products), int(features.NumFields)
	s, _ := p.scratches.Get().(*scratch)
	if s == nil {
		s = &scratch{}
	}
	grow := func(b []float32, size int) []float32 {
		if cap(b) < size {
			return make([]float32, size)
		}
		return b[:size]
	}
	s.scores, s.x, s.ps = grow(s.scores, n*P), grow(s.x, n*F), grow(s.ps, n*P)
	if cap(s.kind) < n {
		s.kind, s.row = make([]decisionKind, n), make([]int, n)
	}
	s.kind, s.row, s.rows, s.crows = s.kind[:n], s.row[:n], s.rows[:0], s.crows[:0]
	if cap(s.held) < P {
		s.held, s.cands = make([]bool, P), make([]cand, 0, P)
	}
	s.held = s.held[:P]
	return s
}

type decisionKind uint8

const (
	kindPrior      decisionKind = iota // non-personalised: the catalog's prior
	kindScored                         // ranked by the scorer (model or rules)
	kindControl                        // the control group: eligible products in random order
	kindBatch                          // the model failed: the batch run's list, still filtered
	kindChallenger                     // ranked by the challenger (then finished as kindScored)
)

// inChallenger reports whether the customer is in the challenger's share:
// a keyed hash of the id (HMAC-SHA256), the same from day to day and
// across restarts with the same key, unguessable without it.
func (p *Pipeline) inChallenger(id string) bool {
	if p.challenger == nil || p.challengerOff != nil && p.challengerOff() {
		return false
	}
	h := hmac.New(sha256.New, p.challengerKey)
	_, _ = h.Write([]byte("nbp-challenger|"))
	_, _ = h.Write([]byte(id))
	var sum [sha256.Size]byte
	return binary.BigEndian.Uint64(h.Sum(sum[:0]))%10000 < p.challengerCut
}

// inControl reports whether the customer is in this month's control
// group: a stable hash of the id and the month (China time) under the
// catalog's control share.
func (p *Pipeline) inControl(id string, now time.Time) bool {
	share := p.cat.Policy.ControlShare
	if share <= 0 {
		return false
	}
	return controlBucket(id, now) < uint64(share*10000+0.5)
}

// controlBucket is the customer's bucket in [0, 10000) for the month.
func controlBucket(id string, now time.Time) uint64 {
	y, m, _ := now.In(catalog.Zone()).Date()
	var buf [7]byte // 2006-01
	b := strconv.AppendInt(buf[:0], int64(y), 10)
	b = append(b, '-', byte('0'+m/10), byte('0'+m%10))
	h := fnv1a(fnvOffset, "nbp-control|")
	h = fnv1a(h, b)
	h = fnv1a(h, "|")
	return fnv1a(h, id) % 10000
}

// controlOrder is a random order, fixed for the customer and the day so
// that a decision can be replayed.
func controlOrder(id string, now time.Time, n int) []int {
	var buf [10]byte // 2006-01-02
	day := now.In(catalog.Zone()).AppendFormat(buf[:0], time.DateOnly)
	h := fnv1a(fnvOffset, "nbp-control-order|")
	h = fnv1a(h, day)
	h = fnv1a(h, "|")
	h = fnv1a(h, id)
	return rand.New(rand.NewPCG(h, 0)).Perm(n)
}

// fnvOffset starts a 64-bit FNV-1a hash (hash/fnv's New64a), which
// fnv1a continues without an allocation.
const fnvOffset = 14695981039346656037

func fnv1a[T string | []byte](h uint64, s T) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// finish applies the policies, arbitrates and renders one decision.
func (p *Pipeline) finish(in *input, kind decisionKind, sc model.Scored, row int, scores []float32, mem *scratch, arb *catalog.Arbitration, now time.Time) Decision {
	d := Decision{
		ID:             p.newID(now),
		At:             now,
		CustomerID:     in.req.CustomerID,
		Channel:        in.req.Channel,
		Strategy:       sc.Strategy,
		ModelVersion:   sc.Version,
		CatalogVersion: p.cat.Version,
		ConfigVersion:  arb.Version,
	}
	switch {
	case in.unavailable:
		d.DegradedReasons = append(d.DegradedReasons, ReasonFeaturesUnavailable)
	case in.rec.Status == features.Stale:
		d.DegradedReasons = append(d.DegradedReasons, ReasonFeaturesStale)
	case in.rec.Status == features.Corrupt:
		d.DegradedReasons = append(d.DegradedReasons, ReasonFeaturesCorrupt)
	}
	if (kind == kindScored || kind == kindBatch) && sc.Fallback {
		d.DegradedReasons = append(d.DegradedReasons, ReasonModelFallback)
	}
	d.Degraded = len(d.DegradedReasons) > 0

	cu := catalog.Customer{}
	salutation := ""
	if in.known() {
		cu = p.profile.Customer(&in.rec.Vector, mem.held)
		if in.personalised() {
			salutation = in.rec.Vector.Salutation
		}
	}
	if !in.unavailable {
		cu.Contact = p.profile.ContactHistory(in.rec.Contact)
	}
	d.FeatureStatus = in.rec.Status.String()
	if in.unavailable {
		d.FeatureStatus = FeatureStatusUnavailable
	}
	if in.known() {
		d.FeaturesHash = features.Hash(&in.rec.Vector)
		if share := p.featureLogShare; share > 0 && (in.req.Channel == catalog.Batch || rand.Float64() < share) {
			d.Features = slices.Clone(in.rec.Vector.Values[:])
		}
	}
	ch := in.req.Channel

	cands := mem.cands[:0]
	for k := range p.cat.Products {
		pr := &p.cat.Products[k]
		if p.cat.Check(pr, &cu, ch, now) != catalog.ExclusionNone {
			continue
		}
		prio := float64(scores[k]) * arb.Factor(pr, ch, now)
		cands = append(cands, cand{k: k, priority: prio})
	}
	if kind == kindBatch {
		// The batch run's order; what it ranked still passes today's filters.
		cands = byBatchRank(cands, p.cat, in.rec.Batch)
	} else if kind == kindControl {
		// No ranking at all: a random order, and no priority to report.
		order := controlOrder(in.req.CustomerID, now, len(cands))
		ks := make([]int, len(cands))
		for i := range cands {
			ks[i] = cands[i].k
		}
		for i, j := range order {
			cands[i] = cand{k: ks[j]}
		}
	} else {
		// Highest priority first; ties go to the catalog order, so that
		// the same inputs always give the same list.
		slices.SortFunc(cands, func(a, b cand) int {
			if c := cmp.Compare(b.priority, a.priority); c != 0 {
				return c
			}
			return cmp.Compare(a.k, b.k)
		})
	}
	mem.cands = cands
	perCat := mem.perCat[:0]
	d.Items = make([]Item, 0, in.req.Limit)
	// One backing array holds every item's reasons, MaxReasons each.
	reasons := make([]Reason, in.req.Limit*MaxReasons)
	for _, c := range cands {
		if len(d.Items) == in.req.Limit {
			break
		}
		pr := &p.cat.Products[c.k]
		if !takeCategory(&perCat, pr.Category, p.cat.Policy.MaxPerCategory) {
			continue
		}
		cp, _ := p.cat.Render(pr, ch, salutation)
		by := sc.Strategy
		if kind == kindScored && sc.ByRules != nil && sc.ByRules[c.k] {
			by = model.StrategyRules
		}
		at := len(d.Items) * MaxReasons
		d.Items = append(d.Items, Item{
			Rank:       len(d.Items) + 1,
			Product:    pr,
			Propensity: float64(scores[c.k]),
			Priority:   c.priority,
			Copy:       cp,
			Reasons:    p.reasons(kind, sc, row, c.k, reasons[at:at:at+MaxReasons]),
			ScoredBy:   by,
		})
	}
	mem.perCat = perCat
	return d
}

// byBatchRank keeps the candidates the batch list names, in its order.
func byBatchRank(cands []cand, cat *catalog.Catalog, list []string) []cand {
	out := cands[:0:0]
	for _, id := range list {
		for _, c := range cands {
			if cat.Products[c.k].ID == id {
				out = append(out, c)
				break
			}
		}
	}
	return out
}

// takeCategory counts one more item of a category, unless the category
// already has max.
func takeCategory(counts *[]catCount, cat string, max int) bool {
	for i := range *counts {
		if (*counts)[i].cat == cat {
			if (*counts)[i].n >= max {
				return false
			}
			(*counts)[i].n++
			return true
		}
	}
	*counts = append(*counts, catCount{cat: cat, n: 1})
	return true
}

// reasons turns the scorer's explanation of one product into one to three
// reasons with their texts.
func (p *Pipeline) reasons(kind decisionKind, sc model.Scored, row, k int, rs []Reason) []Reason {
	var codes [8]string
	list := codes[:0]
	switch {
	case kind == kindControl:
		list = append(list, catalog.ReasonGeneral)
	case sc.Explain != nil:
		list = sc.Explain(row, k, list)
	}
	for _, code := range list {
		text, ok := p.cat.Reasons[code]
		if !ok || slices.ContainsFunc(rs, func(r Reason) bool { return r.Code == code }) {
			continue
		}
		rs = append(rs, Reason{Code: code, Text: text})
		if len(rs) == MaxReasons {
			break
		}
	}
	if len(rs) == 0 {
		rs = append(rs, Reason{Code: catalog.ReasonGeneral, Text: p.cat.Reasons[catalog.ReasonGeneral]})
	}
	return rs
}

// Round4 rounds a score to the four decimals that answers and batch rows
// report.
func Round4(x float64) float64 {
	const k = 1e4
	if x < 0 {
		return -float64(int64(-x*k+0.5)) / k
	}
	return float64(int64(x*k+0.5)) / k
}
