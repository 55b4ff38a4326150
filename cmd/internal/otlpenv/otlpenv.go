// Package otlpenv reads the standard OTEL_* variables that turn OTLP
// export on for an nbp command, and builds the metric reader that pushes
// over OTLP/HTTP. The exporters read the rest of the variables (endpoint,
// headers, timeout, TLS) themselves.
package otlpenv

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/directops/nbp/service/telemetry"
)

// Wanted reports whether the environment asks for a signal (TRACES or
// METRICS) over OTLP: OTEL_<SIGNAL>_EXPORTER lists otlp, or names nothing
// while an OTLP endpoint is set (the general one or the signal's).
// OTEL_SDK_DISABLED=true, and an exporter list without otlp (none,
// console, prometheus), turn it off.
func Wanted(getenv func(string) string, signal string) bool {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false
	}
	list := strings.TrimSpace(getenv("OTEL_" + signal + "_EXPORTER"))
	if list == "" {
		return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT") != ""
	}
	for name := range strings.SplitSeq(list, ",") {
		if strings.EqualFold(strings.TrimSpace(name), "otlp") {
			return true
		}
	}
	return false
}

// MetricReader returns a reader that pushes metrics over OTLP/HTTP every
// OTEL_METRIC_EXPORT_INTERVAL (60s by default), and once more when its
// MeterProvider shuts down. The exporter reads OTEL_EXPORTER_OTLP_*
// (endpoint, headers, timeout, TLS) from the process's environment.
func MetricReader(ctx context.Context) (sdkmetric.Reader, error) {
	exp, err := otlpmetrichttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("otlp metric exporter: %w", err)
	}
	return sdkmetric.NewPeriodicReader(exp), nil
}

// ErrorHandler returns a handler for the errors OpenTelemetry reports
// (an export the collector refused, a collector out of reach) that logs
// them through log, as warnings, at most one a second with a count of the
// ones left out: the process's logs stay JSON, and a collector outage does
// not flood them. OpenTelemetry's error handler is global: set it once,
// with otel.SetErrorHandler, in main.
func ErrorHandler(log *slog.Logger) otel.ErrorHandler {
	s := &telemetry.LogSampler{PerSecond: 1}
	return otel.ErrorHandlerFunc(func(err error) {
		if ok, suppressed := s.Allow(time.Now()); ok {
			log.Warn("telemetry export", slog.String("error", err.Error()), slog.Int64("similar_lines_suppressed", suppressed))
		}
	})
}
