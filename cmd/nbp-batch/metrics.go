package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus/push"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/directops/nbp/cmd/internal/otlpenv"
	"github.com/directops/nbp/cmd/internal/prommetrics"
)

// pushJob is the Pushgateway job the batch pushes to; each shard is its
// own group (label instance, shard-I-of-N), so shards do not overwrite
// each other, and tonight's run replaces last night's.
const pushJob = "nbp-batch"

// metrics is the job's telemetry: the run's progress (nbp.batch.*), its
// decisions (nbp.decisions*) and its Redis commands (nbp.redis.*), read
// by a Prometheus registry served at -metrics-addr while the job runs
// and/or pushed to -metrics-push when it ends, and over OTLP when the
// OTEL_* variables ask for it. A nil *metrics is off.
type metrics struct {
	pm     *prommetrics.Metrics
	srv    *http.Server
	served chan error
	push   string
	linger time.Duration
	// instance is the push's grouping label: the shard.
	instance string
	stdout   io.Writer
}

// startMetrics serves or pushes the metrics when the configuration asks
// for them (-metrics-addr, -metrics-push, or the OTEL_* variables asking
// for an OTLP push); nil when it does not.
func startMetrics(cfg settings, stdout io.Writer) (*metrics, error) {
	if cfg.metricsAddr == "" && cfg.metricsPush == "" && !cfg.metricsOTLP {
		return nil, nil
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", "nbp-batch")))
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	var readers []sdkmetric.Reader
	if cfg.metricsOTLP {
		r, err := otlpenv.MetricReader(context.Background())
		if err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
		readers = append(readers, r)
		fmt.Fprintln(stdout, "metrics: pushed over OTLP/HTTP (OTEL_* variables)")
	}
	pm, err := prommetrics.New(res, readers...)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	m := &metrics{pm: pm, push: cfg.metricsPush, linger: cfg.metricsLinger, stdout: stdout,
		instance: "shard-" + strconv.Itoa(cfg.opts.Shard) + "-of-" + strconv.Itoa(cfg.opts.Shards)}
	if cfg.metricsAddr == "" {
		return m, nil
	}
	ln, err := net.Listen("tcp", cfg.metricsAddr)
	if err != nil {
		_ = pm.Shutdown(context.Background())
		return nil, fmt.Errorf("-metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", pm.Handler)
	m.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}
	m.served = make(chan error, 1)
	go func() { m.served <- m.srv.Serve(ln) }()
	fmt.Fprintf(stdout, "metrics: http://%s/metrics\n", ln.Addr())
	return m, nil
}

// provider is where the job records its metrics: nil when they are off.
func (m *metrics) provider() metric.MeterProvider {
	if m == nil {
		return nil
	}
	return m.pm.Provider
}

// finish pushes the final values, serves them for -metrics-linger more
// (or until ctx ends) so that a last scrape sees them, and stops.
func (m *metrics) finish(ctx context.Context, log *slog.Logger) {
	if m == nil {
		return
	}
	// The job's context may have ended (SIGTERM): the final push and the
	// shutdown get a little time of their own.
	bg := context.WithoutCancel(ctx)
	if m.push != "" {
		pctx, cancel := context.WithTimeout(bg, 10*time.Second)
		err := push.New(m.push, pushJob).Grouping("instance", m.instance).Gatherer(m.pm.Registry).PushContext(pctx)
		cancel()
		if err != nil {
			// The run's outcome stands: a monitoring outage does not fail it.
			log.Warn("metrics push", slog.String("error", err.Error()))
		}
	}
	if m.srv != nil && m.linger > 0 && ctx.Err() == nil {
		fmt.Fprintf(m.stdout, "metrics: serving the final values for %s\n", m.linger)
		t := time.NewTimer(m.linger)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	sctx, cancel := context.WithTimeout(bg, 5*time.Second)
	defer cancel()
	if m.srv != nil {
		if err := m.srv.Shutdown(sctx); err != nil {
			log.Warn("metrics server shutdown", slog.String("error", err.Error()))
		}
		if err := <-m.served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("metrics server", slog.String("error", err.Error()))
		}
	}
	if err := m.pm.Shutdown(sctx); err != nil {
		log.Warn("metrics shutdown", slog.String("error", err.Error()))
	}
}
