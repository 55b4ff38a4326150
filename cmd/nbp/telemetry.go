package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/directops/nbp/cmd/internal/otlpenv"
	"github.com/directops/nbp/cmd/internal/prommetrics"
	"github.com/directops/nbp/service"
	"github.com/directops/nbp/service/audit"
)

// exporters are the process's metrics and traces: a MeterProvider read by
// the Prometheus exporter (served at /metrics) and, when the standard
// OTEL_* variables ask for it, pushed over OTLP/HTTP too; and a
// TracerProvider that exports over OTLP/HTTP only when they ask for it.
// Nothing is global.
type exporters struct {
	meters  *sdkmetric.MeterProvider
	tracers trace.TracerProvider
	metrics http.Handler
	// otlpTraces and otlpMetrics report whether spans and metrics are
	// exported over OTLP.
	otlpTraces, otlpMetrics bool
	shutdown                []func(context.Context) error
}

func newTelemetry(ctx context.Context, getenv func(string) string, version string) (*exporters, error) {
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		attribute.String("service.name", "nbp"), attribute.String("service.version", version)))
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	t := &exporters{}
	var readers []sdkmetric.Reader
	if otlpenv.Wanted(getenv, "METRICS") {
		r, err := otlpenv.MetricReader(ctx)
		if err != nil {
			return nil, fmt.Errorf("telemetry: %w", err)
		}
		readers = append(readers, r)
		t.otlpMetrics = true
	}
	pm, err := prommetrics.New(res, readers...)
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	t.meters, t.metrics = pm.Provider, pm.Handler
	t.shutdown = append(t.shutdown, pm.Shutdown)

	if !otlpenv.Wanted(getenv, "TRACES") {
		t.tracers = tracenoop.NewTracerProvider()
		return t, nil
	}
	// The exporter reads OTEL_EXPORTER_OTLP_* (endpoint, headers,
	// timeout, TLS); the SDK reads OTEL_TRACES_SAMPLER and OTEL_BSP_*.
	spans, err := otlptracehttp.New(ctx)
	if err != nil {
		_ = t.close(ctx)
		return nil, fmt.Errorf("telemetry: otlp trace exporter: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(spans), sdktrace.WithResource(res))
	t.tracers, t.otlpTraces = tp, true
	t.shutdown = append(t.shutdown, tp.Shutdown)
	return t, nil
}

// close flushes and stops the providers.
func (t *exporters) close(ctx context.Context) error {
	var errs []error
	for i := len(t.shutdown) - 1; i >= 0; i-- {
		errs = append(errs, t.shutdown[i](ctx))
	}
	return errors.Join(errs...)
}

// observeModel publishes the model's identity (nbp_model_info, always 1)
// and, when there is a breaker, its state (0 closed, 1 half-open, 2 open).
func observeModel(mp metric.MeterProvider, modelVersion func() string, catalogVersion string, state func() gobreaker.State) error {
	m := mp.Meter("github.com/directops/nbp/cmd/nbp")
	_, err := m.Int64ObservableGauge("nbp.model.info",
		metric.WithDescription("The model version in force and the catalog: always 1, named by its labels."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(1, metric.WithAttributes(
				attribute.String("model_version", modelVersion()), attribute.String("catalog_version", catalogVersion)))
			return nil
		}))
	if err != nil || state == nil {
		return err
	}
	return observeBreaker(mp, "nbp.model.breaker.state",
		"The model's circuit breaker: 0 closed, 1 half-open (probing), 2 open (the rules answer).", state)
}

// observeBreaker publishes a circuit breaker's state as a gauge: 0 closed,
// 1 half-open, 2 open.
func observeBreaker(mp metric.MeterProvider, name, description string, state func() gobreaker.State) error {
	m := mp.Meter("github.com/directops/nbp/cmd/nbp")
	_, err := m.Int64ObservableGauge(name,
		metric.WithDescription(description),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			switch state() {
			case gobreaker.StateHalfOpen:
				o.Observe(1)
			case gobreaker.StateOpen:
				o.Observe(2)
			default:
				o.Observe(0)
			}
			return nil
		}))
	return err
}

// countModelLoads counts the model versions put in force, and those
// refused, by version (a handful: the model directory's folders).
func countModelLoads(mp metric.MeterProvider) (func(version string, err error), error) {
	c, err := mp.Meter("github.com/directops/nbp/cmd/nbp").Int64Counter("nbp.model.loads",
		metric.WithDescription("Model versions the server tried to put in force: result loaded, or refused (failed validation, missing or corrupt files; the version in force stayed)."))
	if err != nil {
		return nil, err
	}
	return func(version string, err error) {
		result := "loaded"
		if err != nil {
			result = "refused"
		}
		c.Add(context.Background(), 1, metric.WithAttributes(attribute.String("version", version), attribute.String("result", result)))
	}, nil
}

// observeShadow publishes the shadow's comparison with the model in
// force: decisions by result (compared; dropped, the queue full; failed,
// the shadow unable to score; lost, its record not kept), the mean
// top-three overlap and rank correlation, and each product's mean
// propensity drift (shadow minus champion).
func observeShadow(mp metric.MeterProvider, p *service.Pipeline, records *audit.Log) error {
	m := mp.Meter("github.com/directops/nbp/cmd/nbp")
	decisions, err := m.Int64ObservableCounter("nbp.shadow.decisions", metric.WithUnit("{decision}"),
		metric.WithDescription("Decisions of the model in force sampled for the shadow version, by result: compared, dropped (its queue full: the answer never waits), failed (it could not score), lost (its record not kept)."))
	if err != nil {
		return err
	}
	agreement, err := m.Float64ObservableGauge("nbp.shadow.agreement",
		metric.WithDescription("Mean agreement of the shadow version with the model in force since start, by measure: top3_overlap, same_top3, rank_correlation (Spearman, over the eligible products)."))
	if err != nil {
		return err
	}
	drift, err := m.Float64ObservableGauge("nbp.shadow.drift",
		metric.WithDescription("Mean propensity of the shadow version minus the model in force's, by product, on the same customers."))
	if err != nil {
		return err
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		r := p.ShadowReport()
		if r == nil {
			return nil
		}
		v := attribute.String("shadow_version", r.Version)
		for _, c := range []struct {
			result string
			n      int64
		}{{"compared", r.Compared}, {"dropped", r.Dropped}, {"failed", r.Failed}, {"lost", records.Stats().Lost}} {
			o.ObserveInt64(decisions, c.n, metric.WithAttributes(v, attribute.String("result", c.result)))
		}
		if r.Compared == 0 {
			return nil
		}
		for _, a := range []struct {
			measure string
			x       float64
		}{{"top3_overlap", r.Top3Overlap}, {"same_top3", r.SameTop3}, {"rank_correlation", r.RankCorrelation}} {
			o.ObserveFloat64(agreement, a.x, metric.WithAttributes(v, attribute.String("measure", a.measure)))
		}
		for _, d := range r.Products {
			o.ObserveFloat64(drift, d.Shadow-d.Champion, metric.WithAttributes(v, attribute.String("product", d.Product)))
		}
		return nil
	}, decisions, agreement, drift)
	return err
}
