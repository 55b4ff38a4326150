package service

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/service/overload"
)

// InstrumentationName names the meter and the tracer of this package.
const InstrumentationName = "github.com/directops/nbp/service"

// LatencyBuckets are the bounds, in seconds, of the request and Redis
// latency histograms: 0.5ms to 1s.
var LatencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}

// Telemetry attributes. None carries a customer id, a key or a feature
// value: only route patterns, channels, status codes, strategies, reasons,
// versions and Redis command names.
const (
	attrRoute    = attribute.Key("http.route")
	attrStatus   = attribute.Key("http.response.status_code")
	attrChannel  = attribute.Key("channel")
	attrStrategy = attribute.Key("strategy")
	attrReason   = attribute.Key("reason")
	attrCommand  = attribute.Key("command")
	attrModel    = attribute.Key("model_version")
	attrReasons  = attribute.Key("degraded_reasons")
	attrStatusF  = attribute.Key("feature_status")
)

// The spans of a decision's steps, children of the caller's span.
const (
	spanFeaturesRead = "nbp.features.read"
	spanScore        = "nbp.score"
	spanFinish       = "nbp.finish" // policies, arbitration and copy
)

// routeUnmatched is the route label of a request no route matched: its
// path is never used, since it may hold a customer id.
const routeUnmatched = "unmatched"

// tracerOf returns the provider's tracer and whether it records at all: a
// nil or no-op provider costs nothing on the request path.
func tracerOf(tp trace.TracerProvider) (trace.Tracer, bool) {
	if tp == nil {
		return tracenoop.NewTracerProvider().Tracer(InstrumentationName), false
	}
	if _, ok := tp.(tracenoop.TracerProvider); ok {
		return tp.Tracer(InstrumentationName), false
	}
	return tp.Tracer(InstrumentationName), true
}

func meterOf(mp metric.MeterProvider) metric.Meter {
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	return mp.Meter(InstrumentationName)
}

// labelOpts are the precomputed options of one label set.
type labelOpts struct {
	rec []metric.RecordOption
	add []metric.AddOption
}

// optionCache hands out precomputed measurement options for a small,
// bounded set of label combinations: a read is one atomic load and a map
// lookup, with no allocation; a write copies the map (a few dozen happen
// in a process's life).
type optionCache[K comparable] struct {
	mu    sync.Mutex
	m     atomic.Pointer[map[K]labelOpts]
	attrs func(K) []attribute.KeyValue
}

func newOptionCache[K comparable](f func(K) []attribute.KeyValue) *optionCache[K] {
	c := &optionCache[K]{attrs: f}
	m := map[K]labelOpts{}
	c.m.Store(&m)
	return c
}

func (c *optionCache[K]) get(k K) labelOpts {
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
	o := labelOpts{rec: []metric.RecordOption{opt}, add: []metric.AddOption{opt}}
	m := make(map[K]labelOpts, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[k] = o
	c.m.Store(&m)
	return o
}

// httpTelemetry measures and traces the HTTP requests of a Server.
type httpTelemetry struct {
	tracer   trace.Tracer
	tracing  bool
	latency  metric.Float64Histogram
	routes   map[string]uint8 // known route patterns, by path
	patterns []string
	opts     *optionCache[httpKey]
	// recommend is the index of the recommendation route in patterns.
	recommend uint8
}

type httpKey struct {
	route   uint8 // index in patterns; 0 is unmatched
	channel uint8 // channel+1 on the recommendation route, 0 otherwise
	status  uint16
}

func newHTTPTelemetry(s *Server, mp metric.MeterProvider, tp trace.TracerProvider) (*httpTelemetry, error) {
	t := &httpTelemetry{patterns: []string{routeUnmatched}, routes: map[string]uint8{}}
	t.tracer, t.tracing = tracerOf(tp)
	m := meterOf(mp)
	var err error
	t.latency, err = m.Float64Histogram("http.server.request.duration",
		metric.WithDescription("Time to answer an HTTP request, by route pattern, channel (recommendations only) and status code."),
		metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(LatencyBuckets...))
	if err != nil {
		return nil, err
	}
	shedBy := make([]metric.ObserveOption, 0, int(overload.NumShedReasons))
	for r := range overload.NumShedReasons {
		shedBy = append(shedBy, metric.WithAttributes(attribute.String("reason", r.String())))
	}
	_, err = m.Int64ObservableCounter("nbp.requests.shed",
		metric.WithDescription("Requests shed at once with 503 overloaded, by reason: in_flight (too many decisions under way), wait (waited too long to be read while requests queued), share (outside the share let in while the CPU queue was long)."),
		metric.WithUnit("{request}"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			for r := range overload.NumShedReasons {
				o.Observe(s.limiter.ShedFor(r), shedBy[r])
			}
			return nil
		}))
	if err != nil {
		return nil, err
	}
	_, err = m.Float64ObservableGauge("nbp.requests.admitted.ratio",
		metric.WithDescription("Share of arriving recommendation requests let in (below 1 while goroutines queue for the CPU)."),
		metric.WithUnit("1"),
		metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
			o.Observe(s.limiter.Admitted())
			return nil
		}))
	if err != nil {
		return nil, err
	}
	for _, g := range []struct {
		name, description string
		value             func() int
	}{
		{"nbp.requests.limit", "Decisions allowed under way at once before requests are shed (lowered by the adaptive limit while goroutines queue for the CPU).", s.limiter.Limit},
		{"nbp.requests.in_flight", "Decisions under way, but those waiting on the feature store with their slot lent.", s.limiter.InFlight},
		{"nbp.requests.waiting_store", "Decisions waiting on the feature store with their in-flight slot lent (not counted in nbp_requests_in_flight).", s.limiter.Waiting},
	} {
		value := g.value
		_, err = m.Int64ObservableGauge(g.name, metric.WithDescription(g.description), metric.WithUnit("{request}"),
			metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
				o.Observe(int64(value()))
				return nil
			}))
		if err != nil {
			return nil, err
		}
	}
	t.opts = newOptionCache(func(k httpKey) []attribute.KeyValue {
		ch := ""
		if k.channel > 0 {
			ch = catalog.Channel(k.channel - 1).String()
		}
		return []attribute.KeyValue{attrRoute.String(t.patterns[k.route]), attrChannel.String(ch), attrStatus.Int(int(k.status))}
	})
	return t, nil
}

// route registers a route pattern, so that its requests are labelled with
// it.
func (t *httpTelemetry) route(pattern string) {
	if _, ok := t.routes[pattern]; !ok {
		t.routes[pattern] = uint8(len(t.patterns))
		t.patterns = append(t.patterns, pattern)
	}
}

// middleware times every request, opens its span, and answers errors
// itself (through the server's error handler) so that the status it
// records is the one sent.
func (s *Server) observe(c *fiber.Ctx) error {
	t := s.tel
	start := time.Now()
	var span trace.Span
	if t.tracing {
		var ctx context.Context
		ctx, span = t.tracer.Start(c.UserContext(), "HTTP "+c.Method(), trace.WithSpanKind(trace.SpanKindServer))
		c.SetUserContext(ctx)
	}
	err := c.Next()
	if err != nil {
		if herr := s.errorHandler(c, err); herr != nil {
			_ = c.SendStatus(fiber.StatusInternalServerError)
		}
	}
	k := httpKey{route: t.routes[c.Route().Path], status: uint16(c.Response().StatusCode())}
	if k.route == t.recommend {
		k.channel = queryChannel(c)
	}
	t.latency.Record(c.UserContext(), time.Since(start).Seconds(), t.opts.get(k).rec...)
	if span != nil {
		route := t.patterns[k.route]
		span.SetName(c.Method() + " " + route)
		span.SetAttributes(attrRoute.String(route), attrStatus.Int(int(k.status)))
		if k.status >= 500 {
			span.SetStatus(codes.Error, "")
		}
		span.End()
	}
	return nil
}

// queryChannel is the request's channel, plus one, or 0 when it names
// none: the label never takes a value the caller made up.
func queryChannel(c *fiber.Ctx) uint8 {
	v := c.Context().QueryArgs().Peek("channel")
	for ch := catalog.Channel(0); ch < catalog.NumChannels; ch++ {
		if string(v) == ch.String() {
			return uint8(ch) + 1
		}
	}
	return 0
}

// decisionTelemetry counts decisions and traces the pipeline's steps.
type decisionTelemetry struct {
	tracer    trace.Tracer
	tracing   bool
	decisions metric.Int64Counter
	degraded  metric.Int64Counter
	byKind    *optionCache[decisionKey]
	byReason  *optionCache[string]
}

type decisionKey struct {
	strategy string
	channel  catalog.Channel
}

func newDecisionTelemetry(mp metric.MeterProvider, tp trace.TracerProvider) (*decisionTelemetry, error) {
	t := &decisionTelemetry{}
	t.tracer, t.tracing = tracerOf(tp)
	m := meterOf(mp)
	var err error
	t.decisions, err = m.Int64Counter("nbp.decisions",
		metric.WithDescription("Decisions made, by strategy and channel."), metric.WithUnit("{decision}"))
	if err != nil {
		return nil, err
	}
	t.degraded, err = m.Int64Counter("nbp.decisions.degraded",
		metric.WithDescription("Degraded decisions, by reason (a decision may have several)."), metric.WithUnit("{decision}"))
	if err != nil {
		return nil, err
	}
	t.byKind = newOptionCache(func(k decisionKey) []attribute.KeyValue {
		return []attribute.KeyValue{attrStrategy.String(k.strategy), attrChannel.String(k.channel.String())}
	})
	t.byReason = newOptionCache(func(r string) []attribute.KeyValue {
		return []attribute.KeyValue{attrReason.String(r)}
	})
	return t, nil
}

// count counts one decision. Strategies and reasons are the pipeline's
// constants, so the label sets stay few.
func (t *decisionTelemetry) count(ctx context.Context, d *Decision) {
	k := decisionKey{strategy: d.Strategy, channel: d.Channel}
	t.decisions.Add(ctx, 1, t.byKind.get(k).add...)
	for _, r := range d.DegradedReasons {
		t.degraded.Add(ctx, 1, t.byReason.get(r).add...)
	}
}

// start opens a child span of the pipeline when tracing is on; end it
// with endSpan.
func (t *decisionTelemetry) start(ctx context.Context, name string) (context.Context, trace.Span) {
	if !t.tracing {
		return ctx, nil
	}
	return t.tracer.Start(ctx, name)
}

func endSpan(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// decisionAttributes describe a decision on a span: never the customer.
func decisionAttributes(d *Decision) []attribute.KeyValue {
	return []attribute.KeyValue{
		attrChannel.String(d.Channel.String()),
		attrStrategy.String(d.Strategy),
		attrModel.String(d.ModelVersion),
		attribute.String("catalog_version", d.CatalogVersion),
		attrReasons.StringSlice(d.DegradedReasons),
		attrStatusF.String(d.FeatureStatus),
	}
}

// RedisHook measures the commands a go-redis client sends: latency and
// errors by command name ("pipeline" for a pipeline). Keys and values are
// never recorded. Attach it with AddHook.
//
// Answers go-redis deals with itself are not errors: the commands it
// sends on its own to set up a new connection (HELLO, AUTH, SELECT,
// READONLY, CLIENT SETINFO, CLIENT MAINT_NOTIFICATIONS...) pass through
// the hook, their latency is recorded, their errors are not (a refusal the
// client shrugs off is no failure; one it does not shrug off fails the
// connection, and so the command that wanted it, counted under its own
// name); nor is the NOSCRIPT of an EVALSHA, which a Script answers with
// EVAL.
type RedisHook struct {
	latency metric.Float64Histogram
	errs    metric.Int64Counter
	opts    *optionCache[string]
}

// NewRedisHook returns a hook recording to mp (nil: nowhere).
func NewRedisHook(mp metric.MeterProvider) (*RedisHook, error) {
	m := meterOf(mp)
	h := &RedisHook{opts: newOptionCache(func(cmd string) []attribute.KeyValue {
		return []attribute.KeyValue{attrCommand.String(cmd)}
	})}
	var err error
	h.latency, err = m.Float64Histogram("nbp.redis.command.duration",
		metric.WithDescription("Time of a Redis command or pipeline, by command name."),
		metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(LatencyBuckets...))
	if err != nil {
		return nil, err
	}
	h.errs, err = m.Int64Counter("nbp.redis.command.errors",
		metric.WithDescription("Redis commands or pipelines that failed (a missing key is not a failure), by command name."),
		metric.WithUnit("{command}"))
	if err != nil {
		return nil, err
	}
	return h, nil
}

// DialHook implements redis.Hook.
func (h *RedisHook) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook implements redis.Hook.
func (h *RedisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		h.record(ctx, cmd.Name(), start, redisFailure(cmd, err))
		return err
	}
}

// ProcessPipelineHook implements redis.Hook.
func (h *RedisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		if err == nil {
			for _, c := range cmds {
				if e := c.Err(); e != nil && !errors.Is(e, redis.Nil) {
					err = e
					break
				}
			}
		}
		// A failed command, or a failure no command holds (a Redis error
		// is always some command's).
		var rerr redis.Error
		bad := err != nil && !errors.Is(err, redis.Nil) && !errors.As(err, &rerr)
		setup := true
		for _, c := range cmds {
			bad = bad || redisFailure(c, c.Err())
			setup = setup && connSetup(c)
		}
		h.record(ctx, "pipeline", start, bad && !setup)
		return err
	}
}

func (h *RedisHook) record(ctx context.Context, cmd string, start time.Time, failed bool) {
	o := h.opts.get(cmd)
	h.latency.Record(ctx, time.Since(start).Seconds(), o.rec...)
	if failed {
		h.errs.Add(ctx, 1, o.add...)
	}
}

// redisFailure reports whether err, cmd's answer, is a failure: not a
// missing key, nor an answer go-redis deals with itself.
func redisFailure(cmd redis.Cmder, err error) bool {
	switch {
	case err == nil || errors.Is(err, redis.Nil) || connSetup(cmd):
		return false
	case redis.HasErrorPrefix(err, "NOSCRIPT"):
		n := cmd.Name()
		return n != "evalsha" && n != "evalsha_ro"
	}
	return true
}

// connSetup reports whether go-redis sends cmd to set up a connection:
// nbp itself sends none of these.
func connSetup(cmd redis.Cmder) bool {
	switch cmd.Name() {
	case "hello", "auth", "client", "select", "readonly":
		return true
	}
	return false
}

// ObserveAudit publishes what became of the audit records Redis could not
// take at once: spilled, replayed from the spill, lost; and the bytes
// waiting in the spill.
func ObserveAudit(mp metric.MeterProvider, a *AuditLog) error {
	m := meterOf(mp)
	var errs []error
	counter := func(name, description string, v func(AuditStats) int64) {
		_, err := m.Int64ObservableCounter(name, metric.WithDescription(description), metric.WithUnit("{record}"),
			metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
				o.Observe(v(a.Stats()))
				return nil
			}))
		errs = append(errs, err)
	}
	counter("nbp.audit.records.spilled", "Audit records written to the spill directory while Redis could not take them.",
		func(s AuditStats) int64 { return s.Spilled })
	counter("nbp.audit.records.replayed", "Audit records written from the spill directory to Redis once it could take them.",
		func(s AuditStats) int64 { return s.Replayed })
	counter("nbp.audit.records.lost", "Audit records never written: Redis failing with no spill directory, the spill full, the queue full, or a line torn by a crash.",
		func(s AuditStats) int64 { return s.Lost })
	_, err := m.Int64ObservableGauge("nbp.audit.spill.size", metric.WithDescription("Bytes of audit records waiting in the spill directory."),
		metric.WithUnit("By"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(a.Stats().SpillBytes)
			return nil
		}))
	return errors.Join(append(errs, err)...)
}
