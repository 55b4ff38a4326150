package batch

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/service"
)

// Options configure one shard of a batch run.
type Options struct {
	RunID string
	// Limit is the offers per customer; default 3.
	Limit int
	// Chunk is the customers asked of the feature store per page (a page is
	// decided in one call); default 512.
	Chunk int
	// Segment is the chunks per output part and checkpoint; default 32.
	Segment int
	// Shard and Shards split the customers by a stable hash of their id.
	Shard, Shards int
	// Volume caps the offers of a product in the whole run (all shards).
	Volume map[string]int
	// Resume continues from the shard's checkpoint. Without it, a run that
	// already has one is refused.
	Resume bool
	// TTL is how long the run's results and state are kept; default 72h.
	TTL time.Duration
	// Progress, when set, is told of each checkpoint.
	Progress func(Checkpoint)
	// Size, when set, is told the shard's customers as the session
	// starts, when the customer index can count them.
	Size func(customers int64)
	// ModelVersion is the version the pipeline scores with, recorded at the
	// run's start; a shard with another one is refused (ErrModelChanged).
	ModelVersion string
	// MeterProvider, when set, receives the run's progress metrics
	// (nbp.batch.*: customers, offers, pages, parts and shards done,
	// errors by stage, the shard's progress, start and checkpoint times);
	// nil records none.
	MeterProvider metric.MeterProvider
}

// PartWriter receives one output part. Commit makes it visible (the part
// is complete); Abort throws it away.
type PartWriter interface {
	Write(rows []Row) error
	Commit() error
	Abort()
}

// CustomerPager lists a shard's customers a page at a time, in a fixed
// order, from a cursor ("" first, "" again at the end), resumable from any
// cursor it returned.
type CustomerPager interface {
	PageIDs(ctx context.Context, cursor string, count int64, shard, shards int) ([]string, string, error)
}

// ErrRunExists is returned when a run already has a checkpoint for the
// shard and Resume is not set.
var ErrRunExists = errors.New("the run already has progress for this shard")

// Runner scores every customer of a shard through the pipeline (the
// same decisions the online API makes for channel=batch), writes each
// customer's offers to Redis under the run, streams the rows to output
// parts, and checkpoints after each part so that a killed run resumes
// where it stopped and ends with the same output as an uninterrupted one.
type Runner struct {
	p     *service.Pipeline
	store *Store
	pager CustomerPager
}

// NewRunner returns a runner.
func NewRunner(p *service.Pipeline, store *Store, pager CustomerPager) *Runner {
	return &Runner{p: p, store: store, pager: pager}
}

func (o *Options) defaults() error {
	if o.Limit <= 0 {
		o.Limit = 3
	}
	if o.Chunk <= 0 {
		o.Chunk = 512
	}
	if o.Segment <= 0 {
		o.Segment = 32
	}
	if o.Shards <= 0 {
		o.Shards = 1
	}
	if o.TTL <= 0 {
		o.TTL = 72 * time.Hour
	}
	switch {
	case o.RunID == "" || !validRunID(o.RunID):
		return fmt.Errorf("run id %q: want 1 to 64 letters, digits, dots, dashes or underscores", o.RunID)
	case o.Shard < 0 || o.Shard >= o.Shards:
		return fmt.Errorf("shard %d of %d", o.Shard, o.Shards)
	case o.Limit > service.MaxLimit:
		return fmt.Errorf("limit %d above %d", o.Limit, service.MaxLimit)
	}
	return nil
}

func validRunID(s string) bool {
	if len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// Run runs the shard to its end (or until ctx ends: then it returns the
// error and the checkpoint stands). open makes the output part of a name.
// It returns the shard's final checkpoint and whether this shard, as the
// last of the run, flipped the pointer to it.
func (r *Runner) Run(ctx context.Context, o Options, open func(name string) (PartWriter, error)) (Checkpoint, bool, error) {
	if err := o.defaults(); err != nil {
		return Checkpoint{}, false, err
	}
	tel, err := newBatchTelemetry(o.MeterProvider)
	if err != nil {
		return Checkpoint{}, false, fmt.Errorf("batch telemetry: %w", err)
	}
	shardKey := strconv.Itoa(o.Shard) + "/" + strconv.Itoa(o.Shards)
	ck, err := r.store.LoadCheckpoint(ctx, o.RunID, shardKey)
	if err != nil {
		tel.failed(ctx, batchStageCheckpoint, &Checkpoint{})
		return Checkpoint{}, false, err
	}
	switch {
	case ck != nil && !o.Resume:
		return *ck, false, fmt.Errorf("%w: run %s shard %s (use resume)", ErrRunExists, o.RunID, shardKey)
	case ck == nil:
		ck = &Checkpoint{Products: map[string]int{}, Strategy: map[string]int{}}
	}
	if err := r.store.Started(ctx, o.RunID, o.Shards, time.Now(), o.TTL, o.ModelVersion); err != nil {
		tel.failed(ctx, batchStageCheckpoint, ck)
		return *ck, false, err
	}
	var size int64
	if tel != nil || o.Size != nil {
		size = shardSize(ctx, &o, ck, r.pager)
	}
	if o.Size != nil && size > 0 {
		o.Size(size)
	}
	tel.start(ctx, &o, ck, size)
	// fail counts the error that stops the run and returns it with the
	// checkpoint that stands.
	fail := func(stage string, err error) (Checkpoint, bool, error) {
		tel.failed(ctx, stage, ck)
		return *ck, false, err
	}
	finish := func() (Checkpoint, bool, error) {
		flipped, err := r.store.FinishShard(ctx, o.RunID, o.Shard, o.Shards, o.TTL)
		if err != nil {
			return fail(batchStageFinish, err)
		}
		tel.finished(ctx, ck, flipped)
		return *ck, flipped, nil
	}
	if ck.Done {
		// A finished shard changes nothing; make sure the run is finished too.
		return finish()
	}
	spare := o.Limit
	if len(o.Volume) > 0 {
		spare = service.MaxLimit // candidates to fall back on when a product runs out
	}
	// One page is read ahead while the current one is decided: Redis and
	// the CPU work at the same time. Pages come in cursor order.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pages := make(chan page, 1)
	go r.readAhead(ctx, o, ck.Cursor, pages)
	// A decided page is settled (volume, results to Redis, the part) on a
	// goroutine of its own while the next page is decided: two buffers
	// each, one page in flight at most, settled in cursor order.
	var outs [2][]service.Decision
	var rowBufs [2][]Row
	for {
		name := fmt.Sprintf("part-%04d-of-%04d-%06d", o.Shard, o.Shards, ck.Segment)
		part, err := open(name)
		if err != nil {
			return fail(batchStageOutput, fmt.Errorf("open %s: %w", name, err))
		}
		next := *ck
		next.Products, next.Strategy = copyCounts(ck.Products), copyCounts(ck.Strategy)
		settled := make(chan stageErr, 1)
		inFlight := false
		wait := func() stageErr {
			if !inFlight {
				return stageErr{}
			}
			inFlight = false
			return <-settled
		}
		abort := func(stage string, err error) (Checkpoint, bool, error) {
			wait()
			part.Abort()
			return fail(stage, err)
		}
		for c := 0; c < o.Segment; c++ {
			pg, ok := <-pages
			if !ok {
				return abort(batchStageInterrupted, ctx.Err())
			}
			if pg.err != nil {
				return abort(batchStageRead, pg.err)
			}
			if len(pg.ids) > 0 {
				began := time.Now()
				reqs := make([]service.Request, len(pg.ids))
				for i, id := range pg.ids {
					reqs[i] = service.Request{CustomerID: id, Channel: catalog.Batch, Limit: spare}
				}
				b := c % 2
				if cap(outs[b]) < len(reqs) {
					outs[b] = make([]service.Decision, len(reqs))
				}
				out := outs[b][:len(reqs)]
				if err := r.p.DecideRecords(ctx, reqs, pg.recs, out); err != nil {
					return abort(batchStageDecide, err)
				}
				if se := wait(); se.err != nil { // the page before, settled
					return abort(se.stage, se.err)
				}
				chunkID := shardKey + "@" + pg.start
				inFlight = true
				go func() {
					rows, err := r.settle(ctx, o, chunkID, out, rowBufs[b][:0], &next)
					rowBufs[b] = rows
					if err != nil {
						settled <- stageErr{batchStageResults, err}
						return
					}
					if err := part.Write(rows); err != nil {
						settled <- stageErr{batchStageOutput, err}
						return
					}
					tel.page(ctx, out, time.Since(began), &next)
					settled <- stageErr{}
				}()
			}
			next.Cursor = pg.next
			if pg.next == "" {
				break
			}
		}
		if se := wait(); se.err != nil {
			part.Abort()
			return fail(se.stage, se.err)
		}
		if err := part.Commit(); err != nil {
			return fail(batchStageOutput, fmt.Errorf("commit %s: %w", name, err))
		}
		next.Segment++
		next.Done = next.Cursor == ""
		if err := r.store.SaveCheckpoint(ctx, o.RunID, shardKey, &next, o.TTL); err != nil {
			return fail(batchStageCheckpoint, err)
		}
		*ck = next
		tel.saved(ctx, ck)
		if o.Progress != nil {
			o.Progress(*ck)
		}
		if ck.Done {
			return finish()
		}
	}
}

// stageErr is a settled page's error and the stage it failed in.
type stageErr struct {
	stage string
	err   error
}

// page is one page of a shard's customers, read.
type page struct {
	start, next string // the cursor it was read from, and the next one
	ids         []string
	recs        service.Records
	err         error
}

// readAhead pages through the shard from cursor, reading each page's
// records, until the last page or ctx ends; then it closes pages.
func (r *Runner) readAhead(ctx context.Context, o Options, cursor string, pages chan<- page) {
	defer close(pages)
	for {
		pg := page{start: cursor}
		pg.ids, pg.next, pg.err = r.pager.PageIDs(ctx, cursor, int64(o.Chunk), o.Shard, o.Shards)
		if pg.err == nil && len(pg.ids) > 0 {
			pg.recs, pg.err = r.p.Read(ctx, pg.ids)
		}
		select {
		case pages <- pg:
		case <-ctx.Done():
			return
		}
		if pg.err != nil || pg.next == "" {
			return
		}
		cursor = pg.next
	}
}

// settle applies the volume limits to a chunk's decisions, writes each
// customer's offers to Redis and returns the output rows.
func (r *Runner) settle(ctx context.Context, o Options, chunkID string, ds []service.Decision, rows []Row, ck *Checkpoint) ([]Row, error) {
	offers := make(map[string][]string, len(ds))
	if len(o.Volume) > 0 {
		cands := make([][2]any, len(ds))
		for i := range ds {
			ps := make([]string, len(ds[i].Items))
			for j, it := range ds[i].Items {
				ps[j] = it.Product.ID
			}
			cands[i] = [2]any{ds[i].CustomerID, ps}
		}
		var err error
		if offers, err = r.store.ReserveVolume(ctx, o.RunID, chunkID, o.Limit, o.Volume, cands, o.TTL); err != nil {
			return rows, err
		}
		for i := range ds {
			keep(&ds[i], offers[ds[i].CustomerID])
		}
	} else {
		for i := range ds {
			if len(ds[i].Items) > o.Limit {
				ds[i].Items = ds[i].Items[:o.Limit]
			}
			ps := make([]string, len(ds[i].Items))
			for j, it := range ds[i].Items {
				ps[j] = it.Product.ID
			}
			offers[ds[i].CustomerID] = ps
		}
	}
	if err := r.store.WriteResults(ctx, o.RunID, offers, o.TTL); err != nil {
		return rows, err
	}
	for i := range ds {
		d := &ds[i]
		ck.Customers++
		ck.Strategy[string(d.Strategy)]++
		if len(d.Items) == 0 {
			ck.Skipped++
		}
		for _, it := range d.Items {
			ck.Products[it.Product.ID]++
		}
		rows = Rows(rows, o.RunID, d)
	}
	ck.Rows += len(rows)
	return rows, nil
}

// keep narrows a decision to the chosen products, in rank order, ranks
// renumbered.
func keep(d *service.Decision, chosen []string) {
	items := d.Items[:0]
	for _, it := range d.Items {
		for _, p := range chosen {
			if it.Product.ID == p {
				it.Rank = len(items) + 1
				items = append(items, it)
				break
			}
		}
	}
	d.Items = items
}

func copyCounts(m map[string]int) map[string]int {
	c := make(map[string]int, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
