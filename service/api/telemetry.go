package api

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/service/overload"
	"github.com/directops/nbp/service/telemetry"
)

// routeUnmatched is the route label of a request no route matched: its
// path is never used, since it may hold a customer id.
const routeUnmatched = "unmatched"

// httpTelemetry measures and traces the HTTP requests of a Server.
type httpTelemetry struct {
	tracer   trace.Tracer
	tracing  bool
	latency  metric.Float64Histogram
	routes   map[string]uint8 // known route patterns, by path
	patterns []string
	opts     *telemetry.OptionCache[httpKey]
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
	t.tracer, t.tracing = telemetry.Tracer(tp)
	m := telemetry.Meter(mp)
	var err error
	t.latency, err = m.Float64Histogram("http.server.request.duration",
		metric.WithDescription("Time to answer an HTTP request, by route pattern, channel (recommendations only) and status code."),
		metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(telemetry.LatencyBuckets()...))
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
	t.opts = telemetry.NewOptionCache(func(k httpKey) []attribute.KeyValue {
		ch := ""
		if k.channel > 0 {
			ch = catalog.Channel(k.channel - 1).String()
		}
		return []attribute.KeyValue{telemetry.AttrRoute.String(t.patterns[k.route]), telemetry.AttrChannel.String(ch), telemetry.AttrStatus.Int(int(k.status))}
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
	t.latency.Record(c.UserContext(), time.Since(start).Seconds(), t.opts.Get(k).Rec...)
	if span != nil {
		route := t.patterns[k.route]
		span.SetName(c.Method() + " " + route)
		span.SetAttributes(telemetry.AttrRoute.String(route), telemetry.AttrStatus.Int(int(k.status)))
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
