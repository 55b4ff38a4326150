// Package prommetrics builds the OpenTelemetry MeterProvider of an nbp
// command whose metrics a Prometheus registry gathers, with the Go runtime
// and process collectors: served in the Prometheus text format (Handler,
// at /metrics), or pushed to a Pushgateway (Registry is a Gatherer).
package prommetrics

import (
	"context"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
)

// Metrics is a MeterProvider read by a Prometheus registry. Nothing is
// global: the registry is not Prometheus's default one.
type Metrics struct {
	Provider *sdkmetric.MeterProvider
	Registry *prometheus.Registry
	// Handler serves the registry in the Prometheus text format.
	Handler http.Handler
}

// New returns a MeterProvider describing itself with res (service.name,
// service.version: the target_info series) and the registry that reads
// it. Readers, when given, read it too (an OTLP push, say). Shut it down
// when done: that flushes them.
func New(res *resource.Resource, readers ...sdkmetric.Reader) (*Metrics, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	opts := []sdkmetric.Option{sdkmetric.WithReader(exp), sdkmetric.WithResource(res)}
	for _, r := range readers {
		opts = append(opts, sdkmetric.WithReader(r))
	}
	return &Metrics{
		Provider: sdkmetric.NewMeterProvider(opts...),
		Registry: reg,
		Handler:  promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
	}, nil
}

// Shutdown stops the MeterProvider; the registry then reports nothing
// more from it.
func (m *Metrics) Shutdown(ctx context.Context) error { return m.Provider.Shutdown(ctx) }
