package batch

import (
	"context"
	"errors"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/directops/nbp/service"
	"github.com/directops/nbp/service/telemetry"
)

// PageBuckets are the bounds, in seconds, of the batch page duration
// histogram: a page of a few hundred customers takes milliseconds to
// seconds.
var PageBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// The stages of a batch run an error is counted at (label stage of
// nbp.batch.errors).
const (
	batchStageCheckpoint  = "checkpoint"  // loading or saving the shard's checkpoint
	batchStageRead        = "read"        // listing or reading a page of customers
	batchStageDecide      = "decide"      // the decision pipeline
	batchStageResults     = "results"     // volume reservation and the offers written to Redis
	batchStageOutput      = "output"      // opening, writing or committing an output part
	batchStageFinish      = "finish"      // marking the shard done, flipping the pointer
	batchStageInterrupted = "interrupted" // the run's context ended (SIGTERM, deadline)
)

// Batch telemetry attributes: strategies, outcomes, product ids of the
// catalog and stages are few; the run id and shard label only
// nbp.batch.info, one series per process. Never a customer id.
const (
	attrOutcome = attribute.Key("outcome")
	attrProduct = attribute.Key("product")
	attrStage   = attribute.Key("stage")
	attrRunID   = attribute.Key("run_id")
	attrShard   = attribute.Key("shard")
)

// The outcomes of a customer in a batch run.
const (
	outcomeOffered = "offered"  // at least one offer
	outcomeNoOffer = "no_offer" // none left (policies, volume limits)
)

// shardCounter is a CustomerPager that can also count a shard's customers
// up front (features.Store can): the run's progress then has a total.
type shardCounter interface {
	CountIDs(ctx context.Context, shard, shards int) (int64, error)
}

// batchTelemetry measures one session of a batch run: what it has done
// (counters, this process only) and where the shard stands (gauges, with
// what earlier sessions of a resumed run did). A nil *batchTelemetry
// records nothing.
type batchTelemetry struct {
	customers  metric.Int64Counter
	offers     metric.Int64Counter
	pages      metric.Int64Counter
	parts      metric.Int64Counter
	shards     metric.Int64Counter
	runs       metric.Int64Counter
	errs       metric.Int64Counter
	pageTime   metric.Float64Histogram
	done       metric.Int64Gauge
	size       metric.Int64Gauge
	progress   metric.Float64Gauge
	started    metric.Float64Gauge
	checkpoint metric.Float64Gauge
	duration   metric.Float64Gauge
	info       metric.Int64Gauge

	byKind    *telemetry.OptionCache[batchKey]
	byProduct *telemetry.OptionCache[string]
	byStage   *telemetry.OptionCache[string]

	begin time.Time
	total int64 // the shard's customers when the run began; 0 when unknown
}

type batchKey struct {
	strategy string
	offered  bool
}

// newBatchTelemetry makes the instruments of a batch run on mp; nil mp
// gives a nil *batchTelemetry. Instruments of the same name on the same
// provider are the same instruments, so runs one after another in a
// process add to the same counters.
func newBatchTelemetry(mp metric.MeterProvider) (*batchTelemetry, error) {
	if mp == nil {
		return nil, nil
	}
	m := mp.Meter(telemetry.InstrumentationName)
	t := &batchTelemetry{begin: time.Now()}
	var errs []error
	counter := func(name, desc, unit string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithDescription(desc), metric.WithUnit(unit))
		errs = append(errs, err)
		return c
	}
	t.customers = counter("nbp.batch.customers", "Customers decided and written by this process's batch run, by strategy and outcome (offered, no_offer).", "{customer}")
	t.offers = counter("nbp.batch.offers", "Offers written by this process's batch run, by product.", "{offer}")
	t.pages = counter("nbp.batch.pages", "Pages of customers decided and written by this process's batch run.", "{page}")
	t.parts = counter("nbp.batch.parts", "Output parts committed by this process's batch run, each followed by a checkpoint.", "{part}")
	t.shards = counter("nbp.batch.shards", "Shards this process finished (or found finished).", "{shard}")
	t.runs = counter("nbp.batch.runs.completed", "Runs this process completed: its shard was the last, and readers now see the run.", "{run}")
	t.errs = counter("nbp.batch.errors", "Errors that stopped this process's batch run, by stage.", "{error}")
	var err error
	t.pageTime, err = m.Float64Histogram("nbp.batch.page.duration",
		metric.WithDescription("Time to decide a page of customers, write their offers to Redis and to the output part."),
		metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(PageBuckets...))
	errs = append(errs, err)
	t.done, err = m.Int64Gauge("nbp.batch.shard.customers",
		metric.WithDescription("Customers of the shard done so far, with those of earlier sessions of a resumed run."),
		metric.WithUnit("{customer}"))
	errs = append(errs, err)
	t.size, err = m.Int64Gauge("nbp.batch.shard.size",
		metric.WithDescription("Customers in the shard when the run began (absent when unknown)."),
		metric.WithUnit("{customer}"))
	errs = append(errs, err)
	t.progress, err = m.Float64Gauge("nbp.batch.shard.progress",
		metric.WithDescription("The shard's customers done over its size, 0 to 1 (absent while the size is unknown; 1 when done)."),
		metric.WithUnit("1"))
	errs = append(errs, err)
	t.started, err = m.Float64Gauge("nbp.batch.start.time",
		metric.WithDescription("When this process's batch run began, in seconds since the Unix epoch."),
		metric.WithUnit("s"))
	errs = append(errs, err)
	t.checkpoint, err = m.Float64Gauge("nbp.batch.checkpoint.time",
		metric.WithDescription("When this process last saved the shard's checkpoint, in seconds since the Unix epoch."),
		metric.WithUnit("s"))
	errs = append(errs, err)
	t.duration, err = m.Float64Gauge("nbp.batch.duration",
		metric.WithDescription("How long this process's batch run has run, or ran, in seconds."),
		metric.WithUnit("s"))
	errs = append(errs, err)
	t.info, err = m.Int64Gauge("nbp.batch.info",
		metric.WithDescription("The batch run this process works on: always 1, named by its labels run_id and shard (i/N)."))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	t.byKind = telemetry.NewOptionCache(func(k batchKey) []attribute.KeyValue {
		o := outcomeNoOffer
		if k.offered {
			o = outcomeOffered
		}
		return []attribute.KeyValue{telemetry.AttrStrategy.String(k.strategy), attrOutcome.String(o)}
	})
	t.byProduct = telemetry.NewOptionCache(func(p string) []attribute.KeyValue {
		return []attribute.KeyValue{attrProduct.String(p)}
	})
	t.byStage = telemetry.NewOptionCache(func(s string) []attribute.KeyValue {
		return []attribute.KeyValue{attrStage.String(s)}
	})
	return t, nil
}

// start records the run's identity and where the shard stands as the
// session starts, with the shard's size when known (0 otherwise).
func (t *batchTelemetry) start(ctx context.Context, o *Options, ck *Checkpoint, size int64) {
	if t == nil {
		return
	}
	t.started.Record(ctx, unixSeconds(t.begin))
	t.info.Record(ctx, 1, metric.WithAttributes(attrRunID.String(o.RunID),
		attrShard.String(strconv.Itoa(o.Shard)+"/"+strconv.Itoa(o.Shards))))
	if size > 0 {
		t.total = size
		t.size.Record(ctx, size)
	}
	t.at(ctx, ck)
}

// shardSize counts the shard's customers when pager can and the shard is
// not done; 0 when unknown (a failed count leaves it so: the run's own
// reads will report a Redis that is down).
func shardSize(ctx context.Context, o *Options, ck *Checkpoint, pager CustomerPager) int64 {
	c, ok := pager.(shardCounter)
	if !ok || ck.Done {
		return 0
	}
	n, err := c.CountIDs(ctx, o.Shard, o.Shards)
	if err != nil {
		return 0
	}
	return n
}

// at records where the shard stands.
func (t *batchTelemetry) at(ctx context.Context, ck *Checkpoint) {
	t.done.Record(ctx, int64(ck.Customers))
	switch {
	case ck.Done:
		t.progress.Record(ctx, 1)
	case t.total > 0:
		t.progress.Record(ctx, min(1, float64(ck.Customers)/float64(t.total)))
	}
	t.duration.Record(ctx, time.Since(t.begin).Seconds())
}

// page counts a page's customers and offers, once they are written, and
// where the shard stands after it.
func (t *batchTelemetry) page(ctx context.Context, ds []service.Decision, took time.Duration, ck *Checkpoint) {
	if t == nil {
		return
	}
	t.pages.Add(ctx, 1)
	t.pageTime.Record(ctx, took.Seconds())
	// Few label sets per page: add once per set, not once per customer.
	kinds := make(map[batchKey]int64, 4)
	products := make(map[string]int64, 8)
	for i := range ds {
		d := &ds[i]
		kinds[batchKey{strategy: string(d.Strategy), offered: len(d.Items) > 0}]++
		for _, it := range d.Items {
			products[it.Product.ID]++
		}
	}
	for k, n := range kinds {
		t.customers.Add(ctx, n, t.byKind.Get(k).Add...)
	}
	for p, n := range products {
		t.offers.Add(ctx, n, t.byProduct.Get(p).Add...)
	}
	t.at(ctx, ck)
}

// saved records a committed part and its checkpoint.
func (t *batchTelemetry) saved(ctx context.Context, ck *Checkpoint) {
	if t == nil {
		return
	}
	t.parts.Add(ctx, 1)
	t.checkpoint.Record(ctx, unixSeconds(time.Now()))
	t.at(ctx, ck)
}

// finished records a shard marked done, and a run completed when it
// flipped the pointer.
func (t *batchTelemetry) finished(ctx context.Context, ck *Checkpoint, flipped bool) {
	if t == nil {
		return
	}
	t.shards.Add(ctx, 1)
	if flipped {
		t.runs.Add(ctx, 1)
	}
	t.at(ctx, ck)
}

// failed counts the error that stopped the run at stage: as an
// interruption when the run's context ended.
func (t *batchTelemetry) failed(ctx context.Context, stage string, ck *Checkpoint) {
	if t == nil {
		return
	}
	if ctx.Err() != nil {
		stage = batchStageInterrupted
	}
	// Record with a context that has not ended: the run's may have.
	bg := context.WithoutCancel(ctx)
	t.errs.Add(bg, 1, t.byStage.Get(stage).Add...)
	t.at(bg, ck)
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
