package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/directops/nbp/cmd/internal/prommetrics"
)

// telemetry is the process's metrics and traces: a MeterProvider read by
// the Prometheus exporter (served at /metrics), and a TracerProvider that
// exports over OTLP/HTTP only when the standard OTEL_* variables ask for
// it. Nothing is global.
type telemetry struct {
	meters  *sdkmetric.MeterProvider
	tracers trace.TracerProvider
	metrics http.Handler
	// otlp reports whether spans are exported.
	otlp     bool
	shutdown []func(context.Context) error
}

// tracesWanted reports whether the environment asks for OTLP traces:
// OTEL_TRACES_EXPORTER=otlp, or an OTLP endpoint with no other exporter
// named. OTEL_SDK_DISABLED=true and OTEL_TRACES_EXPORTER=none turn them off.
func tracesWanted(getenv func(string) string) bool {
	if strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true") {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER"))) {
	case "otlp":
		return true
	case "":
		return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
	default: // none, console, anything else: not exported
		return false
	}
}

func newTelemetry(ctx context.Context, getenv func(string) string, version string) (*telemetry, error) {
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		attribute.String("service.name", "nbp"), attribute.String("service.version", version)))
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	t := &telemetry{}
	pm, err := prommetrics.New(res)
	if err != nil {
		return nil, fmt.Errorf("telemetry: %w", err)
	}
	t.meters, t.metrics = pm.Provider, pm.Handler
	t.shutdown = append(t.shutdown, pm.Shutdown)

	if !tracesWanted(getenv) {
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
	t.tracers, t.otlp = tp, true
	t.shutdown = append(t.shutdown, tp.Shutdown)
	return t, nil
}

// close flushes and stops the providers.
func (t *telemetry) close(ctx context.Context) error {
	var errs []error
	for i := len(t.shutdown) - 1; i >= 0; i-- {
		errs = append(errs, t.shutdown[i](ctx))
	}
	return errors.Join(errs...)
}

// observeModel publishes the model's identity (nbp_model_info, always 1)
// and, when there is a breaker, its state (0 closed, 1 half-open, 2 open).
func observeModel(mp metric.MeterProvider, modelVersion, catalogVersion string, state func() gobreaker.State) error {
	m := mp.Meter("github.com/directops/nbp/cmd/nbp")
	info := metric.WithAttributeSet(attribute.NewSet(
		attribute.String("model_version", modelVersion), attribute.String("catalog_version", catalogVersion)))
	_, err := m.Int64ObservableGauge("nbp.model.info",
		metric.WithDescription("The model and catalog in use: always 1, named by its labels."),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(1, info)
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
