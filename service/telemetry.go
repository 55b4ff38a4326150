package service

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/service/telemetry"
)

// The spans of a decision's steps, children of the caller's span.
const (
	spanFeaturesRead = "nbp.features.read"
	spanScore        = "nbp.score"
	spanFinish       = "nbp.finish" // policies, arbitration and copy
)

// decisionTelemetry counts decisions and traces the pipeline's steps.
type decisionTelemetry struct {
	tracer    trace.Tracer
	tracing   bool
	decisions metric.Int64Counter
	degraded  metric.Int64Counter
	byKind    *telemetry.OptionCache[decisionKey]
	byReason  *telemetry.OptionCache[string]
}

type decisionKey struct {
	strategy string
	channel  catalog.Channel
}

func newDecisionTelemetry(mp metric.MeterProvider, tp trace.TracerProvider) (*decisionTelemetry, error) {
	t := &decisionTelemetry{}
	t.tracer, t.tracing = telemetry.Tracer(tp)
	m := telemetry.Meter(mp)
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
	t.byKind = telemetry.NewOptionCache(func(k decisionKey) []attribute.KeyValue {
		return []attribute.KeyValue{telemetry.AttrStrategy.String(k.strategy), telemetry.AttrChannel.String(k.channel.String())}
	})
	t.byReason = telemetry.NewOptionCache(func(r string) []attribute.KeyValue {
		return []attribute.KeyValue{telemetry.AttrReason.String(r)}
	})
	return t, nil
}

// count counts one decision. Strategies and reasons are the pipeline's
// constants, so the label sets stay few.
func (t *decisionTelemetry) count(ctx context.Context, d *Decision) {
	k := decisionKey{strategy: string(d.Strategy), channel: d.Channel}
	t.decisions.Add(ctx, 1, t.byKind.Get(k).Add...)
	for _, r := range d.DegradedReasons {
		t.degraded.Add(ctx, 1, t.byReason.Get(r).Add...)
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

// DecisionAttributes describe a decision on a span: never the customer.
func DecisionAttributes(d *Decision) []attribute.KeyValue {
	return []attribute.KeyValue{
		telemetry.AttrChannel.String(d.Channel.String()),
		telemetry.AttrStrategy.String(string(d.Strategy)),
		telemetry.AttrModel.String(d.ModelVersion),
		attribute.String("catalog_version", d.CatalogVersion),
		telemetry.AttrReasons.StringSlice(d.DegradedReasons),
		telemetry.AttrFeatureStatus.String(d.FeatureStatus),
	}
}
