package service_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/directops/nbp/service"
	"github.com/directops/nbp/service/batch"
)

// batchMetrics is one collection of a ManualReader: every data point by
// instrument name (a histogram's point is its count).
type batchMetrics map[string][]batchPoint

type batchPoint struct {
	attrs attribute.Set
	value float64
}

func collectBatchMetrics(t *testing.T, r *sdkmetric.ManualReader) batchMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	m := batchMetrics{}
	for _, sm := range rm.ScopeMetrics {
		for _, in := range sm.Metrics {
			switch d := in.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					m[in.Name] = append(m[in.Name], batchPoint{p.Attributes, float64(p.Value)})
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					m[in.Name] = append(m[in.Name], batchPoint{p.Attributes, float64(p.Value)})
				}
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					m[in.Name] = append(m[in.Name], batchPoint{p.Attributes, p.Value})
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					m[in.Name] = append(m[in.Name], batchPoint{p.Attributes, float64(p.Count)})
				}
			default:
				t.Fatalf("%s: unexpected data %T", in.Name, in.Data)
			}
		}
	}
	return m
}

// sum adds the points of name whose labels include every one of match.
func (m batchMetrics) sum(name string, match ...attribute.KeyValue) float64 {
	var s float64
points:
	for _, p := range m[name] {
		for _, kv := range match {
			if v, ok := p.attrs.Value(kv.Key); !ok || v != kv.Value {
				continue points
			}
		}
		s += p.value
	}
	return s
}

// byLabel sums name's points by the value of one label.
func (m batchMetrics) byLabel(name string, key attribute.Key) map[string]int {
	out := map[string]int{}
	for _, p := range m[name] {
		v, _ := p.attrs.Value(key)
		out[v.String()] += int(p.value)
	}
	return out
}

func TestBatchMetrics(t *testing.T) {
	const customers, chunk = 700, 100
	e := newEnv(t, envOptions{customers: customers, scorer: func(e *env) service.Scorer { return e.rules }})
	r, _ := runner(e)
	ctx := context.Background()
	before := time.Now()

	// A whole run: every count of the checkpoint is in the metrics.
	whole := sdkmetric.NewManualReader()
	var parts memParts
	opts := batch.Options{RunID: "metered", Chunk: chunk, Segment: 2, MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(whole))}
	ck, flipped, err := r.Run(ctx, opts, parts.open)
	if err != nil || !flipped || ck.Customers != customers {
		t.Fatalf("run: %+v, flipped %v, %v", ck, flipped, err)
	}
	m := collectBatchMetrics(t, whole)
	pages := (customers + chunk - 1) / chunk
	exact := []struct {
		name string
		got  float64
		want int
	}{
		{"customers", m.sum("nbp.batch.customers"), customers},
		{"customers without an offer", m.sum("nbp.batch.customers", attribute.String("outcome", "no_offer")), ck.Skipped},
		{"customers with one", m.sum("nbp.batch.customers", attribute.String("outcome", "offered")), customers - ck.Skipped},
		{"offers", m.sum("nbp.batch.offers"), ck.Rows},
		{"pages", m.sum("nbp.batch.pages"), pages},
		{"page durations", m.sum("nbp.batch.page.duration"), pages},
		{"parts", m.sum("nbp.batch.parts"), ck.Segment},
		{"shards", m.sum("nbp.batch.shards"), 1},
		{"runs completed", m.sum("nbp.batch.runs.completed"), 1},
		{"errors", m.sum("nbp.batch.errors"), 0},
		{"shard customers", m.sum("nbp.batch.shard.customers"), customers},
		{"shard size", m.sum("nbp.batch.shard.size"), customers},
		{"progress", m.sum("nbp.batch.shard.progress"), 1},
		{"info", m.sum("nbp.batch.info", attribute.String("run_id", "metered"), attribute.String("shard", "0/1")), 1},
	}
	for _, c := range exact {
		if c.got != float64(c.want) {
			t.Errorf("%s: %v, want %d", c.name, c.got, c.want)
		}
	}
	if diff := cmp.Diff(ck.Strategy, m.byLabel("nbp.batch.customers", "strategy")); diff != "" {
		t.Errorf("customers by strategy (-checkpoint +metrics):\n%s", diff)
	}
	if diff := cmp.Diff(ck.Products, m.byLabel("nbp.batch.offers", "product")); diff != "" {
		t.Errorf("offers by product (-checkpoint +metrics):\n%s", diff)
	}
	start, saved := m.sum("nbp.batch.start.time"), m.sum("nbp.batch.checkpoint.time")
	if now := float64(time.Now().UnixNano()) / 1e9; start < float64(before.UnixNano())/1e9-1 || start > saved || saved > now+1 {
		t.Errorf("start %f, last checkpoint %f, now %f", start, saved, now)
	}
	if d := m.sum("nbp.batch.duration"); d <= 0 || d > time.Since(before).Seconds()+1 {
		t.Errorf("duration %f", d)
	}
	ids := map[string]bool{}
	for _, id := range e.ids {
		ids[id] = true
	}
	for name, ps := range m {
		for _, p := range ps {
			for _, kv := range p.attrs.ToSlice() {
				if ids[kv.Value.String()] {
					t.Errorf("%s is labelled with customer id %s", name, kv.Value.String())
				}
			}
		}
	}

	// Run again: a finished run adds no customers, only a shard found done.
	opts.Resume = true
	if _, _, err := r.Run(ctx, opts, parts.open); err != nil {
		t.Fatal(err)
	}
	m = collectBatchMetrics(t, whole)
	if got, shards := m.sum("nbp.batch.customers"), m.sum("nbp.batch.shards"); got != customers || shards != 2 {
		t.Errorf("after a re-run: %v customers, %v shards; want %d and 2", got, shards, customers)
	}

	// Interrupted after its first checkpoint, then resumed by another
	// process: the error is an interruption, the second session counts the
	// customers it did, and the shard's gauges count them all.
	first := sdkmetric.NewManualReader()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opts = batch.Options{RunID: "interrupted", Chunk: chunk, Segment: 2, MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(first)),
		Progress: func(batch.Checkpoint) { cancel() }}
	stopped, _, err := r.Run(cctx, opts, (&memParts{}).open)
	if !errors.Is(err, context.Canceled) || stopped.Customers == 0 || stopped.Customers == customers {
		t.Fatalf("interrupted run: %+v, %v", stopped, err)
	}
	m = collectBatchMetrics(t, first)
	if got := m.byLabel("nbp.batch.errors", "stage"); len(got) != 1 || got["interrupted"] != 1 {
		t.Errorf("errors of the interrupted run: %v", got)
	}
	if got := m.sum("nbp.batch.shard.customers"); got != float64(stopped.Customers) {
		t.Errorf("interrupted: shard customers %v, checkpoint %d", got, stopped.Customers)
	}
	second := sdkmetric.NewManualReader()
	opts.MeterProvider, opts.Progress, opts.Resume = sdkmetric.NewMeterProvider(sdkmetric.WithReader(second)), nil, true
	if ck, _, err := r.Run(ctx, opts, (&memParts{}).open); err != nil || ck.Customers != customers {
		t.Fatalf("resumed run: %+v, %v", ck, err)
	}
	m = collectBatchMetrics(t, second)
	if got, want := m.sum("nbp.batch.customers"), customers-stopped.Customers; got != float64(want) {
		t.Errorf("resumed session: %v customers, want %d", got, want)
	}
	if got, p := m.sum("nbp.batch.shard.customers"), m.sum("nbp.batch.shard.progress"); got != customers || p != 1 {
		t.Errorf("resumed shard: %v customers, progress %v", got, p)
	}
}
