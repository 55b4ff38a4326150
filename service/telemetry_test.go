package service_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/directops/nbp/service/api"
	"github.com/directops/nbp/service/apitest"
	"github.com/directops/nbp/service/audit"
	"github.com/directops/nbp/service/telemetry"
)

// get sends one request to the server's app, checks the answer against
// openapi.json, and returns the status and body.
func get(t *testing.T, s *api.Server, path string) (int, string) {
	t.Helper()
	resp, err := apitest.Test(t, s.App(), httptest.NewRequest(http.MethodGet, path, nil), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// scrapeAfterTraffic serves a few 200s, 400s, a 404, a degraded
// decision and a shed request, then returns the /metrics scrape and every
// customer id used.
func scrapeAfterTraffic(t *testing.T) (string, []string) {
	t.Helper()
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	hook, err := telemetry.NewRedisHook(mp)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{customers: 12, meters: mp, hook: hook})
	auditLog := newAudit(t, e.rdb, audit.Options{Prefix: e.prefix, Linger: time.Millisecond, SpillDir: t.TempDir()})
	if err := audit.Observe(mp, auditLog); err != nil {
		t.Fatal(err)
	}
	s := api.NewServer(api.ServerConfig{Pipeline: e.pipeline, MeterProvider: mp,
		Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		Audit:   auditLog})

	// One customer's vector is corrupt: a degraded decision.
	corrupt := e.ids[11]
	if err := redisServer.Client(t).Set(context.Background(), e.store.Key(corrupt), "not a vector", 0).Err(); err != nil {
		t.Fatal(err)
	}
	requests := []struct {
		path string
		want int
	}{
		{"/v1/customers/" + corrupt + "/recommendations?channel=app_feed", 200},
		{"/v1/customers/" + e.ids[1] + "/recommendations?channel=nowhere", 400},
		{"/v1/customers/" + e.ids[2] + "/recommendations?channel=app_feed&limit=99", 400},
		{"/v1/customers/" + e.ids[3] + "/recommendation?channel=app_feed", 404},
		{"/healthz", 200},
	}
	for i := 0; i < 10; i++ {
		ch := "app_feed"
		if i%3 == 0 {
			ch = "wecom_agent"
		}
		requests = append(requests, struct {
			path string
			want int
		}{"/v1/customers/" + e.ids[i] + "/recommendations?channel=" + ch, 200})
	}
	for _, r := range requests {
		if code, body := get(t, s, r.path); code != r.want {
			t.Fatalf("GET %s: %d, want %d: %s", r.path, code, r.want, body)
		}
	}
	// Every slot taken: one request shed.
	release := takeEverySlot(s.Limiter())
	if code, body := get(t, s, "/v1/customers/"+e.ids[4]+"/recommendations?channel=wecom_agent"); code != 503 {
		t.Fatalf("with every slot taken: %d %s, want a 503", code, body)
	}
	release()
	code, body := get(t, s, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	return body, e.ids
}

// hasSeries reports whether the scrape has a sample of the metric with at
// least these labels.
func hasSeries(scrape, name string, labels map[string]string) bool {
	for _, line := range strings.Split(scrape, "\n") {
		rest, ok := strings.CutPrefix(line, name+"{")
		if !ok {
			continue
		}
		all := true
		for k, v := range labels {
			if !strings.Contains(rest, k+`="`+v+`"`) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

func TestMetricsScrape(t *testing.T) {
	scrape, ids := scrapeAfterTraffic(t)
	const rec = "/v1/customers/:customer_id/recommendations"
	tests := []struct {
		name   string
		metric string
		labels map[string]string
	}{
		{"recommendation 200", "http_server_request_duration_seconds_bucket", map[string]string{"http_route": rec, "channel": "app_feed", "http_response_status_code": "200", "le": "0.0005"}},
		{"recommendation 200 wecom", "http_server_request_duration_seconds_count", map[string]string{"http_route": rec, "channel": "wecom_agent", "http_response_status_code": "200"}},
		{"bad channel: no channel label", "http_server_request_duration_seconds_count", map[string]string{"http_route": rec, "channel": "", "http_response_status_code": "400"}},
		{"bad limit", "http_server_request_duration_seconds_count", map[string]string{"http_route": rec, "channel": "app_feed", "http_response_status_code": "400"}},
		{"no route: no path", "http_server_request_duration_seconds_count", map[string]string{"http_route": "unmatched", "channel": "", "http_response_status_code": "404"}},
		{"healthz", "http_server_request_duration_seconds_count", map[string]string{"http_route": "/healthz", "channel": "", "http_response_status_code": "200"}},
		{"recommendation shed", "http_server_request_duration_seconds_count", map[string]string{"http_route": rec, "channel": "wecom_agent", "http_response_status_code": "503"}},
		{"decisions", "nbp_decisions_total", map[string]string{"strategy": "model", "channel": "app_feed"}},
		{"degraded", "nbp_decisions_degraded_total", map[string]string{"reason": "features_corrupt"}},
		{"shed: in flight", "nbp_requests_shed_total", map[string]string{"reason": "in_flight"}},
		{"shed: wait", "nbp_requests_shed_total", map[string]string{"reason": "wait"}},
		{"shed: share", "nbp_requests_shed_total", map[string]string{"reason": "share"}},
		{"redis latency", "nbp_redis_command_duration_seconds_count", map[string]string{"command": "pipeline"}},
		{"audit spilled", "nbp_audit_records_spilled_total", nil},
		{"audit replayed", "nbp_audit_records_replayed_total", nil},
		{"audit lost", "nbp_audit_records_lost_total", nil},
		{"audit spill size", "nbp_audit_spill_size_bytes", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !hasSeries(scrape, tt.metric, tt.labels) {
				t.Errorf("no %s with %v in\n%s", tt.metric, tt.labels, scrape)
			}
		})
	}
	for _, id := range ids {
		if strings.Contains(scrape, id) {
			t.Errorf("the scrape holds customer id %s", id)
		}
	}
	if strings.Contains(scrape, "{"+ids[0]) || strings.Contains(scrape, ":f\"") {
		t.Error("the scrape holds a Redis key")
	}
	apitest.LintMetrics(t, scrape, "NBP_METRICS_SCRAPE")
}

func TestTraceSpans(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	e := newEnv(t, envOptions{customers: 3, tracers: tp})
	s := api.NewServer(api.ServerConfig{Pipeline: e.pipeline, TracerProvider: tp})
	id := e.ids[1]
	if code, body := get(t, s, "/v1/customers/"+id+"/recommendations?channel=wecom_agent"); code != 200 {
		t.Fatalf("%d: %s", code, body)
	}
	spans := exp.GetSpans()
	var root *tracetest.SpanStub
	for i := range spans {
		if spans[i].SpanKind == trace.SpanKindServer {
			root = &spans[i]
		}
	}
	if root == nil {
		t.Fatalf("no server span among %d", len(spans))
	}
	if want := "GET /v1/customers/:customer_id/recommendations"; root.Name != want {
		t.Errorf("request span %q, want %q", root.Name, want)
	}
	children := map[string]bool{}
	for _, sp := range spans {
		if sp.Parent.SpanID() == root.SpanContext.SpanID() {
			children[sp.Name] = true
		}
	}
	for _, want := range []string{"nbp.features.read", "nbp.score", "nbp.finish"} {
		if !children[want] {
			t.Errorf("no child span %s of the request span; children: %v", want, children)
		}
	}
	attrs := map[string]string{}
	for _, kv := range root.Attributes {
		attrs[string(kv.Key)] = kv.Value.String()
	}
	for k, want := range map[string]string{"channel": "wecom_agent", "strategy": "model", "http.route": "/v1/customers/:customer_id/recommendations", "http.response.status_code": "200"} {
		if attrs[k] != want {
			t.Errorf("request span %s=%q, want %q", k, attrs[k], want)
		}
	}
	if attrs["model_version"] == "" {
		t.Error("request span has no model_version")
	}
	for _, sp := range spans {
		if strings.Contains(sp.Name, id) {
			t.Errorf("span name %q holds the customer id", sp.Name)
		}
		for _, kv := range sp.Attributes {
			if v := kv.Value.String(); strings.Contains(v, id) {
				t.Errorf("span %s attribute %s=%q holds the customer id", sp.Name, kv.Key, v)
			}
		}
	}
}
