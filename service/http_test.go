package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/directops/nbp/model"
	"github.com/directops/nbp/service"
	"github.com/directops/nbp/service/api"
	"github.com/directops/nbp/service/apitest"
	"github.com/directops/nbp/service/overload"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func newServer(t testing.TB, e *env) *api.Server {
	t.Helper()
	return api.NewServer(api.ServerConfig{
		Pipeline: e.pipeline,
		HTTP:     api.HTTPConfig{RequestTimeout: time.Second},
		Checks: []api.Check{
			{Name: "redis", Run: e.store.Ping},
			{Name: "model", Run: func(context.Context) error { return nil }},
		},
		Events:   e.store,
		Contacts: e.store,
		Audit:    e.audit(t),
	})
}

// takeEverySlot fills l to its cap, so that the next request is shed,
// and returns what gives the slots back.
func takeEverySlot(l *overload.Limiter) (release func()) {
	held := 0
	for ; l.Acquire(); held++ {
	}
	return func() {
		for range held {
			l.Release()
		}
	}
}

func do(t testing.TB, s *api.Server, method, target string) (int, []byte) {
	t.Helper()
	status, _, body := doHeader(t, s, method, target)
	return status, body
}

// doHeader is do with the answer's header.
func doHeader(t testing.TB, s *api.Server, method, target string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := apitest.Test(t, s.App(), req, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s %s: content type %q", method, target, ct)
	}
	return resp.StatusCode, resp.Header, body
}

func TestRecommendErrors(t *testing.T) {
	e := newEnv(t, envOptions{customers: 10})
	s := newServer(t, e)
	long := strings.Repeat("C", 65)
	tests := []struct {
		name, method, target string
		status               int
		code                 string
	}{
		{"missing channel", "GET", "/v1/customers/C000000001/recommendations", 400, api.CodeInvalidChannel},
		{"unknown channel", "GET", "/v1/customers/C000000001/recommendations?channel=sms", 400, api.CodeInvalidChannel},
		{"empty channel", "GET", "/v1/customers/C000000001/recommendations?channel=", 400, api.CodeInvalidChannel},
		{"channel twice", "GET", "/v1/customers/C000000001/recommendations?channel=app_feed&channel=batch", 400, api.CodeInvalidChannel},
		{"channel wrong case", "GET", "/v1/customers/C000000001/recommendations?channel=APP_FEED", 400, api.CodeInvalidChannel},
		{"limit zero", "GET", "/v1/customers/C000000001/recommendations?channel=app_feed&limit=0", 400, api.CodeInvalidLimit},
		{"limit eleven", "GET", "/v1/customers/C000000001/recommendations?channel=app_feed&limit=11", 400, api.CodeInvalidLimit},
		{"limit negative", "GET", "/v1/customers/C000000001/recommendations?channel=app_feed&limit=-1", 400, api.CodeInvalidLimit},
		{"limit text", "GET", "/v1/customers/C000000001/recommendations?channel=app_feed&limit=three", 400, api.CodeInvalidLimit},
		{"limit fraction", "GET", "/v1/customers/C000000001/recommendations?channel=app_feed&limit=2.5", 400, api.CodeInvalidLimit},
		{"limit empty", "GET", "/v1/customers/C000000001/recommendations?channel=app_feed&limit=", 400, api.CodeInvalidLimit},
		{"limit huge", "GET", "/v1/customers/C000000001/recommendations?channel=app_feed&limit=99999999999999999999", 400, api.CodeInvalidLimit},
		{"limit twice", "GET", "/v1/customers/C000000001/recommendations?channel=app_feed&limit=2&limit=3", 400, api.CodeInvalidLimit},
		{"unknown parameter", "GET", "/v1/customers/C000000001/recommendations?channel=app_feed&limt=3", 400, api.CodeUnknownParameter},
		{"id too long", "GET", "/v1/customers/" + long + "/recommendations?channel=app_feed", 400, api.CodeInvalidCustomerID},
		{"id with braces", "GET", "/v1/customers/C%7B1%7D/recommendations?channel=app_feed", 400, api.CodeInvalidCustomerID},
		{"id with space", "GET", "/v1/customers/C%201/recommendations?channel=app_feed", 400, api.CodeInvalidCustomerID},
		{"id with Chinese", "GET", "/v1/customers/%E5%BC%A0%E4%B8%89/recommendations?channel=app_feed", 400, api.CodeInvalidCustomerID},
		{"id with colon", "GET", "/v1/customers/nbp:x/recommendations?channel=app_feed", 400, api.CodeInvalidCustomerID},
		{"unknown route", "GET", "/v1/products", 404, api.CodeNotFound},
		{"trailing slash", "GET", "/v1/customers/C000000001/recommendations/?channel=app_feed", 404, api.CodeNotFound},
		{"empty id", "GET", "/v1/customers//recommendations?channel=app_feed", 404, api.CodeNotFound},
		{"wrong method", "POST", "/v1/customers/C000000001/recommendations?channel=app_feed", 405, api.CodeMethodNotAllowed},
		{"delete", "DELETE", "/v1/customers/C000000001/recommendations?channel=app_feed", 405, api.CodeMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := do(t, s, tt.method, tt.target)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, body)
			}
			var er api.ErrorResponse
			if err := json.Unmarshal(body, &er); err != nil {
				t.Fatalf("not the JSON error shape: %s", body)
			}
			if er.Error.Code != tt.code || er.Error.Message == "" {
				t.Fatalf("error %+v, want code %s", er.Error, tt.code)
			}
		})
	}
}

func TestRecommendShape(t *testing.T) {
	e := newEnv(t, envOptions{customers: 200})
	s := newServer(t, e)
	sawNullRisk, sawRisk := false, false
	for _, id := range e.ids[:200] {
		status, body := do(t, s, "GET", "/v1/customers/"+id+"/recommendations?channel=wecom_agent&limit=5")
		if status != 200 {
			t.Fatalf("%s: %d %s", id, status, body)
		}
		var raw map[string]any
		if err := json.Unmarshal(body, &raw); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"customer_id", "channel", "decision_id", "model_version", "strategy", "degraded", "degraded_reasons", "items"} {
			if _, ok := raw[k]; !ok {
				t.Fatalf("%s: no %q in %s", id, k, body)
			}
		}
		if raw["degraded_reasons"] == nil || raw["items"] == nil {
			t.Fatalf("%s: null list in %s", id, body)
		}
		for _, it := range raw["items"].([]any) {
			item := it.(map[string]any)
			if item["risk_level"] == nil {
				sawNullRisk = true
			} else {
				sawRisk = true
			}
			cp := item["copy"].(map[string]any)
			for _, k := range []string{"title", "body", "cta", "disclaimer"} {
				if _, ok := cp[k]; !ok {
					t.Fatalf("%s: copy without %s", id, k)
				}
			}
		}
	}
	if !sawNullRisk || !sawRisk {
		t.Errorf("risk_level: saw null %v, saw a level %v", sawNullRisk, sawRisk)
	}
}

func TestRecommendColdStartAndFallback(t *testing.T) {
	t.Run("cold start", func(t *testing.T) {
		e := newEnv(t, envOptions{customers: 1})
		status, body := do(t, newServer(t, e), "GET", "/v1/customers/NEW_CUSTOMER/recommendations?channel=app_feed")
		var r api.RecommendationResponse
		if err := json.Unmarshal(body, &r); status != 200 || err != nil {
			t.Fatalf("%d %v %s", status, err, body)
		}
		if r.Strategy != string(model.StrategyNonPersonalised) || r.Degraded || len(r.Items) == 0 {
			t.Fatalf("cold start: %s", body)
		}
	})
	t.Run("model failing", func(t *testing.T) {
		e := newEnv(t, envOptions{customers: 50, scorer: func(e *env) service.Scorer {
			return model.NewGuarded(failingModel{}, e.rules, len(e.cat.Products), model.GuardOptions{})
		}})
		s := newServer(t, e)
		for _, id := range e.ids {
			_, body := do(t, s, "GET", "/v1/customers/"+id+"/recommendations?channel=app_feed")
			var r api.RecommendationResponse
			if err := json.Unmarshal(body, &r); err != nil {
				t.Fatal(err)
			}
			if r.Strategy == string(model.StrategyNonPersonalised) || r.Strategy == string(model.StrategyControl) {
				continue // opted out, or in the control group
			}
			if r.Strategy != string(model.StrategyRules) || !r.Degraded || r.DegradedReasons[0] != service.ReasonModelFallback {
				t.Fatalf("%s: %s", id, body)
			}
		}
	})
	t.Run("redis down", func(t *testing.T) {
		e := newEnv(t, envOptions{customers: 1, down: true})
		s := newServer(t, e)
		status, body := do(t, s, "GET", "/v1/customers/C000000001/recommendations?channel=app_feed")
		var r api.RecommendationResponse
		if err := json.Unmarshal(body, &r); status != 200 || err != nil {
			t.Fatalf("%d %v %s", status, err, body)
		}
		if !r.Degraded || r.DegradedReasons[0] != service.ReasonFeaturesUnavailable || r.Strategy != string(model.StrategyNonPersonalised) {
			t.Fatalf("redis down: %s", body)
		}
		if status, body := do(t, s, "GET", "/readyz"); status != 503 || !bytes.Contains(body, []byte(`"redis":"failing"`)) {
			t.Fatalf("readyz with redis down: %d %s", status, body)
		}
	})
}

func TestHealth(t *testing.T) {
	e := newEnv(t, envOptions{})
	s := newServer(t, e)
	if status, body := do(t, s, "GET", "/healthz"); status != 200 || !bytes.Contains(body, []byte(`"ok"`)) {
		t.Fatalf("healthz: %d %s", status, body)
	}
	status, body := do(t, s, "GET", "/readyz")
	var h api.HealthResponse
	if err := json.Unmarshal(body, &h); status != 200 || err != nil {
		t.Fatalf("readyz: %d %s", status, body)
	}
	if diff := cmp.Diff(api.HealthResponse{Status: "ready", Checks: map[string]string{"redis": "ok", "model": "ok"}}, h); diff != "" {
		t.Fatal(diff)
	}
}

// TestRecommendGolden pins whole responses, copy included, for a few demo
// customers on each channel. Refresh with: go test ./service -run Golden -update
func TestRecommendGolden(t *testing.T) {
	e := newEnv(t, envOptions{customers: 40})
	s := newServer(t, e)
	got := map[string]json.RawMessage{}
	for _, id := range []string{"C000000001", "C000000002", "C000000005", "C000000011", "C000000023", "C000000037"} {
		for _, ch := range []string{"app_feed", "wecom_agent", "batch"} {
			_, body := do(t, s, "GET", "/v1/customers/"+id+"/recommendations?channel="+ch+"&limit=3")
			var r api.RecommendationResponse
			if err := json.Unmarshal(body, &r); err != nil {
				t.Fatal(err)
			}
			r.DecisionID = "(varies)"
			b, _ := json.MarshalIndent(r, "", "  ")
			got[id+" "+ch] = b
		}
	}
	path := filepath.Join("testdata", "recommendations.golden.json")
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(b)+"\n"); diff != "" {
		t.Errorf("responses differ from %s (-want +got):\n%s", path, diff)
	}
}

// slowScorer holds every call for a while, to keep a request in flight.
type slowScorer struct {
	inner service.Scorer
	delay time.Duration
}

func (s slowScorer) Score(ctx context.Context, x []float32, n int, out []float32) (model.Scored, error) {
	time.Sleep(s.delay)
	return s.inner.Score(ctx, x, n, out)
}

func TestGracefulShutdown(t *testing.T) {
	e := newEnv(t, envOptions{customers: 5, scorer: func(e *env) service.Scorer { return slowScorer{e.rules, 300 * time.Millisecond} }})
	s := newServer(t, e)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	base := "http://" + ln.Addr().String()

	// An idle keep-alive connection must not hold the shutdown.
	idleConns := &http.Transport{MaxIdleConnsPerHost: 1}
	t.Cleanup(idleConns.CloseIdleConnections)
	idle := &http.Client{Transport: apitest.Transport(t, idleConns)}
	resp, err := idle.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	// A request in flight must finish.
	inflight := make(chan int, 1)
	client := apitest.Client(t)
	go func() {
		resp, err := client.Get(base + "/v1/customers/C000000001/recommendations?channel=app_feed")
		if err != nil {
			inflight <- -1
			return
		}
		resp.Body.Close()
		inflight <- resp.StatusCode
	}()
	// The request holds its slot for the slow scorer's 300ms.
	for deadline := time.Now().Add(5 * time.Second); s.Limiter().InFlight() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the request never got under way")
		}
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("shutdown took %s with an idle keep-alive connection", took)
	}
	if code := <-inflight; code != 200 {
		t.Fatalf("in-flight request got %d", code)
	}
	if err := <-served; err != nil {
		t.Fatalf("serve: %v", err)
	}
}

func TestOverloadIsShedQuickly(t *testing.T) {
	e := newEnv(t, envOptions{customers: 5, scorer: func(e *env) service.Scorer { return slowScorer{e.rules, 300 * time.Millisecond} }})
	s := api.NewServer(api.ServerConfig{Pipeline: e.pipeline, HTTP: api.HTTPConfig{RequestTimeout: 2 * time.Second, MaxInFlight: 4}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(ln) }()
	defer s.Shutdown(context.Background())
	url := "http://" + ln.Addr().String() + "/v1/customers/C000000001/recommendations?channel=app_feed"
	client := apitest.Client(t)
	type result struct {
		status int
		retry  string
		code   string
		took   time.Duration
	}
	results := make(chan result, 20)
	send := func() {
		start := time.Now()
		resp, err := client.Get(url)
		if err != nil {
			results <- result{status: -1}
			return
		}
		var er api.ErrorResponse
		_ = json.NewDecoder(resp.Body).Decode(&er)
		resp.Body.Close()
		results <- result{resp.StatusCode, resp.Header.Get("Retry-After"), er.Error.Code, time.Since(start)}
	}
	// Four decisions fill the limit (a decision holds its slot once its
	// feature read is done: here, while the slow scorer runs); then
	// sixteen more arrive.
	for range 4 {
		go send()
	}
	for deadline := time.Now().Add(5 * time.Second); s.Limiter().InFlight() < 4; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d decisions under way after 5s, want 4", s.Limiter().InFlight())
		}
	}
	for range 16 {
		go send()
	}
	ok, shed := 0, 0
	for i := 0; i < 20; i++ {
		r := <-results
		switch r.status {
		case 200:
			ok++
		case 503:
			shed++
			if r.retry == "" || r.code != api.CodeOverloaded || r.took > 150*time.Millisecond {
				t.Errorf("shed request: %+v, want a quick 503 overloaded with Retry-After", r)
			}
		default:
			t.Errorf("status %d", r.status)
		}
	}
	if ok != 4 || shed != 16 || s.Limiter().Shed() != int64(shed) || s.Limiter().ShedFor(overload.ShedInFlight) != int64(shed) {
		t.Fatalf("%d served, %d shed (counted %d) with 4 in flight allowed, want 4 and 16", ok, shed, s.Limiter().Shed())
	}
}
