package main

import (
	"testing"
	"time"

	"github.com/directops/nbp/cmd/internal/otlpenv/otlptest"
	"github.com/directops/nbp/service/apitest"
)

// TestOTLPExport runs the server with an OTLP endpoint: its metrics and
// spans reach the collector, and nothing it sends holds a customer id.
func TestOTLPExport(t *testing.T) {
	col := otlptest.New(t)
	otel := map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": col.URL,
		"OTEL_METRIC_EXPORT_INTERVAL": "100", // ms
		"OTEL_BSP_SCHEDULE_DELAY":     "50",  // ms
	}
	for k, v := range otel {
		t.Setenv(k, v) // the exporters read the process's environment
	}
	base, stop := start(t, []string{"-demo", "-demo-n", "100", "-demo-dir", t.TempDir(), "-addr", "127.0.0.1:0"}, testEnv(t, otel))
	client := apitest.Client(t)
	ids := []string{"C000000001", "C000000002", "C000000003"}
	for _, id := range ids {
		resp, err := client.Get(base + "/v1/customers/" + id + "/recommendations?channel=wecom_agent")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", id, resp.StatusCode)
		}
	}
	col.Wait(t, []string{"http.server.request.duration", "nbp.decisions", "nbp.model.info", "nbp.redis.command.duration"},
		[]string{"GET /v1/customers/:customer_id/recommendations", "nbp.features.read", "nbp.score", "nbp.finish"}, 10*time.Second)
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
	if held := col.Holding(ids...); len(held) > 0 {
		t.Errorf("the exports hold customer ids %v", held)
	}
}
