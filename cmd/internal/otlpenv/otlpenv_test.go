package otlpenv

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestWanted(t *testing.T) {
	tests := []struct {
		name            string
		env             map[string]string
		traces, metrics bool
	}{
		{"nothing set: off", nil, false, false},
		{"endpoint: both", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, true, true},
		{"traces endpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, true, false},
		{"metrics endpoint", map[string]string{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://collector:4318/v1/metrics"}, false, true},
		{"exporters otlp", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "otlp"}, true, true},
		{"a list naming otlp", map[string]string{"OTEL_METRICS_EXPORTER": "prometheus, OTLP"}, false, true},
		{"none wins over the endpoint", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, false, false},
		{"prometheus alone: no push", map[string]string{"OTEL_METRICS_EXPORTER": "prometheus", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, true, false},
		{"sdk disabled", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "otlp"}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string { return tt.env[k] }
			if got := Wanted(getenv, "TRACES"); got != tt.traces {
				t.Errorf("traces = %v, want %v", got, tt.traces)
			}
			if got := Wanted(getenv, "METRICS"); got != tt.metrics {
				t.Errorf("metrics = %v, want %v", got, tt.metrics)
			}
		})
	}
}

func TestErrorHandlerLogsJSONAtMostOnceASecond(t *testing.T) {
	var buf bytes.Buffer
	h := ErrorHandler(slog.New(slog.NewJSONHandler(&buf, nil)))
	for range 50 {
		h.Handle(errors.New("traces export: connection refused"))
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	// One second's budget, or two when the loop straddles a second.
	if len(lines) < 1 || len(lines) > 2 {
		t.Fatalf("%d lines for 50 errors within a moment:\n%s", len(lines), buf.String())
	}
	var rec struct {
		Level, Msg, Error string
	}
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil || rec.Level != "WARN" || rec.Error != "traces export: connection refused" {
		t.Fatalf("line %q: %+v %v", lines[0], rec, err)
	}
}
