// Package otlptest is a fake OTLP/HTTP collector for the commands' tests.
package otlptest

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Collector keeps every export it gets: the raw bodies, and the names of
// the metrics and spans in them. Point OTEL_EXPORTER_OTLP_ENDPOINT at URL.
type Collector struct {
	URL     string
	mu      sync.Mutex
	bodies  [][]byte
	metrics []string
	spans   []string
}

// New starts a collector, closed when the test ends.
func New(t testing.TB) *Collector {
	c := &Collector{}
	srv := httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(srv.Close)
	c.URL = srv.URL
	return c
}

func (c *Collector) serve(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err == nil {
		err = c.add(r.URL.Path, b)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
}

func (c *Collector) add(path string, b []byte) error {
	var names []string
	dst := &c.metrics
	switch path {
	case "/v1/metrics":
		var req colmetrics.ExportMetricsServiceRequest
		if err := proto.Unmarshal(b, &req); err != nil {
			return err
		}
		for _, rm := range req.ResourceMetrics {
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					names = append(names, m.Name)
				}
			}
		}
	case "/v1/traces":
		var req coltrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &req); err != nil {
			return err
		}
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					names = append(names, s.Name)
				}
			}
		}
		dst = &c.spans
	default:
		return fmt.Errorf("no such OTLP path: %s", path)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bodies = append(c.bodies, b)
	*dst = append(*dst, names...)
	return nil
}

// Has reports whether every metric and span named has arrived.
func (c *Collector) Has(metrics, spans []string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range metrics {
		if !slices.Contains(c.metrics, m) {
			return false
		}
	}
	for _, s := range spans {
		if !slices.Contains(c.spans, s) {
			return false
		}
	}
	return true
}

// Wait fails the test unless every metric and span named arrives within
// timeout.
func (c *Collector) Wait(t testing.TB, metrics, spans []string, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !c.Has(metrics, spans); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			c.mu.Lock()
			defer c.mu.Unlock()
			t.Fatalf("after %s the collector has metrics %v and spans %v; want %v and %v", timeout, c.metrics, c.spans, metrics, spans)
		}
	}
}

// Holding returns the strings of s that some export holds, byte for byte.
func (c *Collector) Holding(s ...string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var found []string
	for _, x := range s {
		for _, b := range c.bodies {
			if bytes.Contains(b, []byte(x)) {
				found = append(found, x)
				break
			}
		}
	}
	return found
}
