package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReport(t *testing.T) {
	u := func(n uint64) *uint64 { return &n }
	rep := &report{
		Machine:  machine{GoVersion: "go1.26", OS: "linux", Arch: "amd64", GOMAXPROCS: 2, NumCPU: 2},
		Settings: settings{DurationS: 10, WarmupS: 2, Concurrency: 32, Rate: 5000, Pool: 500, Rounds: 1, Customers: 10000, Redis: "private"},
		Closed: []runResult{
			{Target: "baseline", Round: 1, RPS: 40000, LatencyUS: latencySummary{P99: 2400}, CPUCores: map[string]float64{"load": 0.5, "server": 0.9}},
			{Target: "nbp", Round: 1, RPS: 16000, LatencyUS: latencySummary{P99: 6000}, CPUCores: map[string]float64{"other": 0.6}},
		},
		Open: []runResult{
			{Target: "nbp", TargetRate: 5000, WindowS: 10, RPS: 5000, LatencyUS: latencySummary{P99: 2700},
				Scheduled: u(50000), Dropped: u(3), SendLagUS: &latencySummary{P99: 700}, FromSendUS: &latencySummary{P99: 1800}},
		},
	}
	rep.finish()
	if rep.ThroughputRatio != 0.4 {
		t.Errorf("ratio %g, want 0.4", rep.ThroughputRatio)
	}
	notes := strings.Join(rep.Notes, "\n")
	for _, want := range []string{"40% of the baseline", "0.60 cores during the closed-loop (round 1) run of nbp", "p99 at 5000 req/s is 2.700 ms", "3 of 50000 scheduled requests dropped"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes do not say %q:\n%s", want, notes)
		}
	}

	var out bytes.Buffer
	rep.print(&out)
	for _, want := range []string{"throughput nbp/baseline: 0.40", "0.50/0.90/-/-", "2.700", "1.800"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table does not show %q:\n%s", want, out.String())
		}
	}

	path := filepath.Join(t.TempDir(), "r.json")
	if err := rep.writeJSON(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back report
	if err := json.Unmarshal(b, &back); err != nil || back.ThroughputRatio != 0.4 || *back.Open[0].Dropped != 3 {
		t.Errorf("JSON round trip: %v, %+v", err, back)
	}
}

func TestReportOverload(t *testing.T) {
	rep := &report{
		Settings: settings{DurationS: 10, WarmupS: 2, OverloadArgs: []string{"-adaptive-limit"}},
		Overload: &overloadResult{Target: "nbp-overload", PeakRPS: 4000, OfferedRPS: 8000, WindowS: 10, Scheduled: 80000,
			GoodputRPS: 2500, GoodputShare: 0.625, FullGoodputRPS: 2400, FullGoodputShare: 0.6, Shed: 50000},
		OverloadThrottled: &overloadResult{PeakRPS: 4000, OfferedRPS: 8000, WindowS: 10, Scheduled: 80000, ThrottleK: 1.2, Throttled: 30000,
			GoodputRPS: 5000, GoodputShare: 1.25, FullGoodputRPS: 5000, FullGoodputShare: 1.25, Shed: 5000},
	}
	rep.Overload.bracket(4200, 3800)
	rep.finish()
	if o := rep.Overload; o.ShareAround != 0.6 {
		t.Errorf("plain overload: share of the closed loop around it %g, want 2400/4000", o.ShareAround)
	}
	if o := rep.Overload; o.BestRPS != 5000 || o.FullShareOfBest != 0.48 {
		t.Errorf("plain overload: best %g, share of it %g; want 5000 and 0.48", o.BestRPS, o.FullShareOfBest)
	}
	if o := rep.OverloadThrottled; o.FullShareOfBest != 1 {
		t.Errorf("throttled overload: share of the best %g, want 1", o.FullShareOfBest)
	}
	notes := strings.Join(rep.Notes, "\n")
	for _, want := range []string{"overload: personalised goodput is 60% of the peak (below 80%)", "the closed loop did not saturate it",
		"overload: personalised goodput is 60% of the closed loop just before and after it (below 80%)"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes do not say %q:\n%s", want, notes)
		}
	}
	if strings.Contains(notes, "throttling at K 1.2: personalised goodput is") {
		t.Errorf("the throttled run is noted below 80%%:\n%s", notes)
	}
	var out bytes.Buffer
	rep.print(&out)
	for _, want := range []string{"overload, callers throttling at K 1.2: 8000 req/s offered", "refused by the callers' throttles (service/throttle), never sent: 30000 of 80000", "48% of the best rate nbp showed in this run, 5000 req/s", "offered to nbp-overload, started with -adaptive-limit too; the peak is nbp's",
		"60% of nbp's closed loop around the run: 4200 req/s just before, 3800 just after"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report does not show %q:\n%s", want, out.String())
		}
	}
}

func TestParseShed(t *testing.T) {
	scrape := `# HELP nbp_requests_shed_total Requests shed
# TYPE nbp_requests_shed_total counter
nbp_requests_shed_total{otel_scope_name="nbp",reason="in_flight"} 12
nbp_requests_shed_total{otel_scope_name="nbp",reason="wait"} 3.4e+06
nbp_requests_shed_total{otel_scope_name="nbp",reason="share"} 0
nbp_requests_limit{otel_scope_name="nbp"} 32
nbp_requests_shed_total{reason="broken"
`
	got := parseShed([]byte(scrape))
	want := map[string]int64{"in_flight": 12, "wait": 3_400_000, "share": 0}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if s := reasons(got); s != "in_flight 12, share 0, wait 3400000" {
		t.Fatalf("reasons: %q", s)
	}
}

// TestReportCompare: with -compare-args, nbp-b's closed-loop throughput
// is given over nbp's, the mean of the rounds each.
func TestReportCompare(t *testing.T) {
	rep := &report{
		Settings: settings{CompareArgs: []string{"-feature-log"}},
		Closed: []runResult{
			{Target: "nbp", Round: 1, RPS: 10000}, {Target: nbpCompareName, Round: 1, RPS: 9000},
			{Target: "nbp", Round: 2, RPS: 12000}, {Target: nbpCompareName, Round: 2, RPS: 11000},
		},
	}
	rep.finish()
	if want := 20000.0 / 22000; math.Abs(rep.CompareRatio-want) > 1e-9 {
		t.Errorf("ratio %g, want %g", rep.CompareRatio, want)
	}
	var out bytes.Buffer
	rep.print(&out)
	if !strings.Contains(out.String(), "throughput nbp-b/nbp: 0.909 (nbp-b: -compare-args -feature-log)") {
		t.Errorf("table:\n%s", out.String())
	}
}
