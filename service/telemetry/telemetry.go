// Package telemetry holds what nbp's metrics and traces share: the
// instrumentation scope, the latency buckets, the attribute keys, cached
// label sets that cost nothing per request, and the Redis client's hook.
// No attribute ever carries a customer id, a key or a feature value.
package telemetry

import (
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// InstrumentationName names the meter and the tracer of this package.
const InstrumentationName = "github.com/directops/nbp/service"

// latencyBuckets are the bounds, in seconds, of the request and Redis
// latency histograms: 0.5ms to 1s.
var latencyBuckets = [...]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}

// LatencyBuckets returns the bounds, in seconds, of the request and Redis
// latency histograms (0.5ms to 1s): a copy.
func LatencyBuckets() []float64 { return append([]float64(nil), latencyBuckets[:]...) }

// Telemetry attributes. None carries a customer id, a key or a feature
// value: only route patterns, channels, status codes, strategies, reasons,
// versions and Redis command names.
const (
	AttrRoute         = attribute.Key("http.route")
	AttrStatus        = attribute.Key("http.response.status_code")
	AttrChannel       = attribute.Key("channel")
	AttrStrategy      = attribute.Key("strategy")
	AttrReason        = attribute.Key("reason")
	AttrCommand       = attribute.Key("command")
	AttrModel         = attribute.Key("model_version")
	AttrReasons       = attribute.Key("degraded_reasons")
	AttrFeatureStatus = attribute.Key("feature_status")
)

// Tracer returns the provider's tracer and whether it records at all: a
// nil or no-op provider costs nothing on the request path.
func Tracer(tp trace.TracerProvider) (trace.Tracer, bool) {
	if tp == nil {
		return tracenoop.NewTracerProvider().Tracer(InstrumentationName), false
	}
	if _, ok := tp.(tracenoop.TracerProvider); ok {
		return tp.Tracer(InstrumentationName), false
	}
	return tp.Tracer(InstrumentationName), true
}

// Meter returns the provider's meter (nil: one that records nothing).
func Meter(mp metric.MeterProvider) metric.Meter {
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	return mp.Meter(InstrumentationName)
}

// LabelOpts are the precomputed options of one label set.
type LabelOpts struct {
	Rec []metric.RecordOption
	Add []metric.AddOption
}

// OptionCache hands out precomputed measurement options for a small,
// bounded set of label combinations: a read is one atomic load and a map
// lookup, with no allocation; a write copies the map (a few dozen happen
// in a process's life).
type OptionCache[K comparable] struct {
	mu    sync.Mutex
	m     atomic.Pointer[map[K]LabelOpts]
	attrs func(K) []attribute.KeyValue
}

// NewOptionCache returns a cache whose label set for k is f(k).
func NewOptionCache[K comparable](f func(K) []attribute.KeyValue) *OptionCache[K] {
	c := &OptionCache[K]{attrs: f}
	m := map[K]LabelOpts{}
	c.m.Store(&m)
	return c
}

// Get returns the options of k's label set.
func (c *OptionCache[K]) Get(k K) LabelOpts {
	if o, ok := (*c.m.Load())[k]; ok {
		return o
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.m.Load()
	if o, ok := old[k]; ok {
		return o
	}
	opt := metric.WithAttributeSet(attribute.NewSet(c.attrs(k)...))
	o := LabelOpts{Rec: []metric.RecordOption{opt}, Add: []metric.AddOption{opt}}
	m := make(map[K]LabelOpts, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[k] = o
	c.m.Store(&m)
	return o
}
