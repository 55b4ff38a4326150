package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/directops/nbp/cmd/internal/otlpenv/otlptest"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/features/redistest"
	"github.com/directops/nbp/service/apitest"
)

// syncBuffer is a bytes.Buffer a test reads while run writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// pushed is what a Pushgateway received.
type pushed struct {
	method, path string
	body         []byte
}

// seriesSum adds the values of the series of name whose labels hold every
// one of labels (`key="value"`), and says how many there were.
func seriesSum(t *testing.T, scrape, name string, labels ...string) (float64, int) {
	t.Helper()
	var sum float64
	n := 0
lines:
	for _, line := range strings.Split(scrape, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(rest, l) {
				continue lines
			}
		}
		v, err := strconv.ParseFloat(rest[strings.LastIndexByte(rest, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		sum += v
		n++
	}
	return sum, n
}

// TestBatchMetricsEndpoint runs the job with -metrics-addr, -metrics-linger
// and -metrics-push, scrapes the final values while it lingers, lints them
// with promtool when it is installed (make metrics-check writes the scrape
// to NBP_BATCH_METRICS_SCRAPE and lints it too), and checks the push.
func TestBatchMetricsEndpoint(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	prefix := redistest.Prefix(t)
	rdb := redis.NewClient(&redis.Options{Addr: redisServer.Addr})
	defer rdb.Close()
	const n = 300
	ids := loadBank(t, features.NewStore(rdb, features.Options{Prefix: prefix}), 7, n)

	pushes := make(chan pushed, 4)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		pushes <- pushed{r.Method, r.URL.Path, body}
		w.WriteHeader(http.StatusOK)
	}))
	defer gw.Close()
	env := map[string]string{"REDIS_ADDR": redisServer.Addr, "NBP_REDIS_PREFIX": prefix,
		"NBP_METRICS_ADDR": "127.0.0.1:0", "NBP_METRICS_PUSHGATEWAY": gw.URL}
	args := []string{"-run", "m1", "-out", t.TempDir(), "-format", "csv", "-chunk", "50", "-segment", "2",
		"-rules-only", "-metrics-linger", "10m"}
	var stdout syncBuffer
	done := make(chan error, 1)
	go func() { done <- runAt(ctx, testClock, args, func(k string) string { return env[k] }, &stdout) }()

	// The job says when it lingers: the run is over, the push done.
	deadline := time.Now().Add(5 * time.Minute)
	for !strings.Contains(stdout.String(), "serving the final values") {
		select {
		case err := <-done:
			t.Fatalf("the job ended without lingering: %v\n%s", err, stdout.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the job did not end\n%s", stdout.String())
		}
	}
	var p pushed
	select {
	case p = <-pushes:
	default:
		t.Errorf("nothing pushed")
	}
	m := regexp.MustCompile(`metrics: (http://\S+/metrics)`).FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("no metrics address in\n%s", stdout.String())
	}
	res, err := http.Get(m[1])
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %d %v", res.StatusCode, err)
	}
	scrape := string(b)
	cancel() // stops the lingering
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v\n%s", err, stdout.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("the job kept lingering after its context ended")
	}
	if !strings.Contains(stdout.String(), "run m1 complete") {
		t.Fatalf("summary:\n%s", stdout.String())
	}

	tests := []struct {
		name   string
		metric string
		labels []string
		want   float64
	}{
		{"customers", "nbp_batch_customers_total", nil, n},
		{"offered customers", "nbp_batch_customers_total", []string{`outcome="offered"`}, -1},
		{"shard customers", "nbp_batch_shard_customers", nil, n},
		{"shard size", "nbp_batch_shard_size", nil, n},
		{"progress", "nbp_batch_shard_progress_ratio", nil, 1},
		{"pages", "nbp_batch_pages_total", nil, n / 50},
		{"page durations", "nbp_batch_page_duration_seconds_count", nil, n / 50},
		{"shards", "nbp_batch_shards_total", nil, 1},
		{"runs completed", "nbp_batch_runs_completed_total", nil, 1},
		{"info", "nbp_batch_info", []string{`run_id="m1"`, `shard="0/1"`}, 1},
		{"start time", "nbp_batch_start_time_seconds", nil, -1},
		{"checkpoint time", "nbp_batch_checkpoint_time_seconds", nil, -1},
		{"duration", "nbp_batch_duration_seconds", nil, -1},
		{"decisions", "nbp_decisions_total", []string{`channel="batch"`}, n},
		{"redis commands", "nbp_redis_command_duration_seconds_count", []string{`command="pipeline"`}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, series := seriesSum(t, scrape, tt.metric, tt.labels...)
			switch {
			case series == 0:
				t.Errorf("no %s %v in\n%s", tt.metric, tt.labels, scrape)
			case tt.want >= 0 && got != tt.want:
				t.Errorf("%s %v: %v, want %v", tt.metric, tt.labels, got, tt.want)
			case tt.want < 0 && got <= 0:
				t.Errorf("%s %v: %v, want more than 0", tt.metric, tt.labels, got)
			}
		})
	}
	if got, _ := seriesSum(t, scrape, "nbp_batch_errors_total"); got != 0 {
		t.Errorf("%v errors", got)
	}
	if got, _ := seriesSum(t, scrape, "nbp_redis_command_errors_total"); got != 0 {
		t.Errorf("%v Redis command errors:\n%s", got, scrape)
	}
	for _, id := range ids {
		if strings.Contains(scrape, id) {
			t.Fatalf("the scrape holds customer id %s", id)
		}
	}

	if p.method != http.MethodPut || p.path != "/metrics/job/"+pushJob+"/instance/shard-0-of-1" ||
		!bytes.Contains(p.body, []byte("nbp_batch_customers_total")) {
		t.Errorf("push: %s %s, %d bytes", p.method, p.path, len(p.body))
	}

	apitest.LintMetrics(t, scrape, "NBP_BATCH_METRICS_SCRAPE")
}

// TestBatchOTLPMetrics runs a job whose OTEL_* variables ask for an OTLP
// push, with no scrape address and no Pushgateway: its final values reach
// the collector when it ends, and hold no customer id.
func TestBatchOTLPMetrics(t *testing.T) {
	col := otlptest.New(t)
	// A long interval: only the push at the end can deliver in time.
	otel := map[string]string{"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": col.URL + "/v1/metrics", "OTEL_METRIC_EXPORT_INTERVAL": "3600000"}
	for k, v := range otel {
		t.Setenv(k, v) // the exporter reads the process's environment
	}
	prefix := redistest.Prefix(t)
	rdb := redis.NewClient(&redis.Options{Addr: redisServer.Addr})
	defer rdb.Close()
	ids := loadBank(t, features.NewStore(rdb, features.Options{Prefix: prefix}), 11, 120)
	env := map[string]string{"REDIS_ADDR": redisServer.Addr, "NBP_REDIS_PREFIX": prefix}
	for k, v := range otel {
		env[k] = v
	}
	var stdout syncBuffer
	args := []string{"-run", "o1", "-out", t.TempDir(), "-format", "csv", "-chunk", "40", "-rules-only"}
	if err := runAt(context.Background(), testClock, args, func(k string) string { return env[k] }, &stdout); err != nil {
		t.Fatalf("run: %v\n%s", err, stdout.String())
	}
	if !strings.Contains(stdout.String(), "pushed over OTLP") {
		t.Errorf("the job did not say it pushes over OTLP:\n%s", stdout.String())
	}
	col.Wait(t, []string{"nbp.batch.customers", "nbp.batch.runs.completed", "nbp.decisions", "nbp.redis.command.duration"}, nil, time.Second)
	if held := col.Holding(ids...); len(held) > 0 {
		t.Errorf("the exports hold customer ids %v", held)
	}
}
