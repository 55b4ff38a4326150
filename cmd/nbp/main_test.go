package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features/redistest"
	"github.com/directops/nbp/model/modeltest"
	"github.com/directops/nbp/service/api"
	"github.com/directops/nbp/service/apitest"
)

var redisServer *redistest.Server

func TestMain(m *testing.M) {
	var err error
	redisServer, err = redistest.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	redisServer.Stop()
	os.Exit(code)
}

// testEnv is the environment of a server under test: the test Redis, the
// fetched ONNX Runtime, the committed model.
func testEnv(t *testing.T, extra map[string]string) func(string) string {
	t.Helper()
	lib, err := modeltest.LibPath()
	if err != nil {
		t.Fatal(err)
	}
	mp, err := modeltest.ModelPath()
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"REDIS_ADDR":       redisServer.Addr,
		"ONNXRUNTIME_LIB":  lib,
		"NBP_MODEL":        mp,
		"NBP_REDIS_PREFIX": redistest.Prefix(t),
		"NBP_LOG_LEVEL":    "warn",
	}
	for k, v := range extra {
		env[k] = v
	}
	return func(k string) string { return env[k] }
}

// start runs the server and returns its base URL and a stop function that
// waits for run to return.
func start(t *testing.T, args []string, getenv func(string) string) (string, func() error) {
	t.Helper()
	return startAt(t, time.Now, args, getenv)
}

// startAt is start on the given clock.
func startAt(t *testing.T, now func() time.Time, args []string, getenv func(string) string) (string, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := runAt(ctx, now, args, getenv, pw)
		pw.CloseWithError(fmt.Errorf("run returned: %v", err))
		done <- err
	}()
	sc := bufio.NewScanner(pr)
	addr := ""
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		cancel()
		t.Fatalf("server did not start: %v", <-done)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	// A test that stops early still stops its server, so that the next
	// one can start the ONNX runtime again.
	stop := sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(15 * time.Second):
			return errors.New("run did not return after cancel")
		}
	})
	t.Cleanup(func() { _ = stop() })
	return "http://" + addr, stop
}

// recommend gets a recommendation, which must be a 200.
func recommend(t *testing.T, client *http.Client, url string) api.RecommendationResponse {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r api.RecommendationResponse
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%s: %d %v", url, resp.StatusCode, err)
	}
	return r
}

// TestDemoOnAnyDate starts the demo as of three days, the last after every
// sale window of the embedded catalog has closed: each still offers a
// spread of products, all on sale that day.
func TestDemoOnAnyDate(t *testing.T) {
	for _, day := range []string{"2026-11-27", "2027-06-15", "2031-06-15"} {
		t.Run(day, func(t *testing.T) {
			midnight, err := time.ParseInLocation(time.DateOnly, day, catalog.Zone())
			if err != nil {
				t.Fatal(err)
			}
			now := midnight.Add(9 * time.Hour)
			cat, err := catalog.DefaultAt(now)
			if err != nil {
				t.Fatal(err)
			}
			base, stop := startAt(t, func() time.Time { return now },
				[]string{"-demo", "-demo-n", "200", "-demo-dir", t.TempDir(), "-addr", "127.0.0.1:0"}, testEnv(t, nil))
			client := apitest.Client(t)
			offered, categories := map[string]bool{}, map[string]bool{}
			for i := range 30 {
				r := recommend(t, client, fmt.Sprintf("%s/v1/customers/C%09d/recommendations?channel=app_feed&limit=3", base, i))
				if r.CatalogVersion != cat.Version {
					t.Fatalf("catalog %s, want %s", r.CatalogVersion, cat.Version)
				}
				for _, it := range r.Items {
					p, err := cat.Product(it.ProductID)
					if err != nil || !p.SaleWindow.Contains(now) {
						t.Errorf("C%09d offered %s, not on sale on %s", i, it.ProductID, day)
					}
					offered[it.ProductID], categories[it.Category] = true, true
				}
			}
			if len(offered) < 8 || len(categories) < 4 {
				t.Errorf("30 customers were offered %d products in %d categories: %v", len(offered), len(categories), offered)
			}
			if err := stop(); err != nil {
				t.Fatalf("run: %v", err)
			}
		})
	}
}

func TestDemoEndToEnd(t *testing.T) {
	dir := t.TempDir()
	base, stop := start(t, []string{"-demo", "-demo-n", "500", "-demo-dir", dir, "-addr", "127.0.0.1:0"}, testEnv(t, nil))
	client := apitest.Client(t) // every answer checked against openapi.json
	for _, ch := range []string{"app_feed", "wecom_agent"} {
		r := recommend(t, client, base+"/v1/customers/C000000001/recommendations?channel="+ch+"&limit=3")
		if r.Strategy != "model" || len(r.Items) == 0 || r.ModelVersion == "" {
			t.Fatalf("%s: %+v", ch, r)
		}
	}
	resp, err := client.Get(base + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("readyz: %v %v", resp, err)
	}
	// The demo's WeCom contacts lead to their customers.
	resp, err = client.Get(base + "/v1/contacts/" + demoContact("C000000001"))
	if err != nil {
		t.Fatal(err)
	}
	var link api.ContactResponse
	err = json.NewDecoder(resp.Body).Decode(&link)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || link.CustomerID != "C000000001" {
		t.Fatalf("the demo contact: %d %+v %v", resp.StatusCode, link, err)
	}
	resp.Body.Close()
	resp, err = client.Get(base + "/metrics")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("metrics: %v %v", resp, err)
	}
	scrape, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`nbp_model_info{catalog_version="`, `nbp_model_breaker_state{`, `nbp_decisions_total{channel="wecom_agent"`,
		`nbp_redis_command_duration_seconds_count{command="pipeline"`, `http_server_request_duration_seconds_count{channel="app_feed"`, "go_goroutines "} {
		if !strings.Contains(string(scrape), want) {
			t.Errorf("the scrape has no %s", want)
		}
	}
	if strings.Contains(string(scrape), "C000000001") {
		t.Error("the scrape holds a customer id")
	}
	if _, err := os.Stat(filepath.Join(dir, "customers.csv")); err != nil {
		t.Errorf("the demo bank's CSV was not written: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
}

func TestRulesOnlyNeedsNoModel(t *testing.T) {
	base, stop := start(t, []string{"-demo", "-demo-n", "50", "-demo-dir", t.TempDir(), "-addr", "127.0.0.1:0", "-rules-only"},
		testEnv(t, map[string]string{"NBP_MODEL": "/nonexistent.onnx", "ONNXRUNTIME_LIB": "/nonexistent.so"}))
	resp, err := apitest.Client(t).Get(base + "/v1/customers/C000000001/recommendations?channel=app_feed")
	if err != nil {
		t.Fatal(err)
	}
	var r api.RecommendationResponse
	_ = json.NewDecoder(resp.Body).Decode(&r)
	resp.Body.Close()
	if r.Strategy != "rules" && r.Strategy != "non_personalised" {
		t.Fatalf("strategy %q", r.Strategy)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestStartupRefusals(t *testing.T) {
	// A catalog without a product the model scores (TD_3M, renamed). A
	// catalog product the model does not score is no refusal: the rules
	// score it.
	cat := map[string]any{}
	if err := json.Unmarshal(catalog.DefaultBytes(), &cat); err != nil {
		t.Fatal(err)
	}
	cat["products"].([]any)[0].(map[string]any)["id"] = "TD_5Y"
	mismatch := filepath.Join(t.TempDir(), "catalog.json")
	b, _ := json.Marshal(cat)
	if err := os.WriteFile(mismatch, b, 0o644); err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(t.TempDir(), "model.onnx")
	if err := os.WriteFile(corrupt, []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	badCatalog := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(badCatalog, []byte(`{"version": "x", "surprise": 1}`), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"model product the catalog lacks", []string{"-catalog", mismatch}, nil, []string{`"TD_3M", which the catalog lacks`}},
		{"corrupt model", nil, map[string]string{"NBP_MODEL": corrupt}, []string{"model", "-rules-only"}},
		{"missing model", nil, map[string]string{"NBP_MODEL": "/nonexistent/model.onnx"}, []string{"/nonexistent/model.onnx"}},
		{"bad catalog", []string{"-catalog", badCatalog}, nil, []string{`unknown field "surprise"`}},
		{"every config problem at once", []string{"-request-timeout", "10ms", "-feature-timeout", "20ms", "-model-workers", "0"},
			map[string]string{"NBP_STALE_AFTER": "soon"}, []string{"feature-timeout", "model-workers", "NBP_STALE_AFTER"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"-addr", "127.0.0.1:0"}, tt.args...)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := run(ctx, args, testEnv(t, tt.env), io.Discard)
			if err == nil {
				t.Fatal("started")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestDebugAddrServesProfiles: -debug-addr serves Go's profiles on a
// listener of its own, and the API's listener does not.
func TestDebugAddrServesProfiles(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	debugAddr := ln.Addr().String()
	ln.Close()
	base, _ := start(t, []string{"-demo", "-demo-n", "50", "-demo-dir", t.TempDir(), "-demo-traffic=false",
		"-addr", "127.0.0.1:0", "-debug-addr", debugAddr}, testEnv(t, nil))
	get := func(url string) int {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("http://" + debugAddr + "/debug/pprof/cmdline"); code != 200 {
		t.Errorf("debug listener: %d", code)
	}
	if code := get(base + "/debug/pprof/cmdline"); code == 200 {
		t.Error("the API serves the profiles")
	}
}
