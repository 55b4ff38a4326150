package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/features/demobank"
	"github.com/directops/nbp/model"
	"github.com/directops/nbp/model/modeltest"
	"github.com/directops/nbp/model/train"
	"github.com/directops/nbp/service/api"
	"github.com/directops/nbp/service/apitest"
)

// testModelDir is a model directory with the committed model (in force),
// the catalog's rules as per-product tree ensembles, and a version with a
// missing file.
func testModelDir(t *testing.T) (dir, lr, trees string) {
	t.Helper()
	dir = t.TempDir()
	committed, err := modeltest.ModelPath()
	if err != nil {
		t.Fatal(err)
	}
	lr = filepath.Base(filepath.Dir(committed))
	for _, name := range []string{"propensity.onnx", model.CardFile} {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(committed), name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, lr), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, lr, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	trees = "trees-1"
	if _, err := train.WriteRulesTrees(dir, cat, train.TreeVersion{Version: trees, Columns: features.Names(), TrainedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := train.WriteRulesTrees(dir, cat, train.TreeVersion{Version: "gone-1", Columns: features.Names(), TrainedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "gone-1", "TD_3M.onnx")); err != nil {
		t.Fatal(err)
	}
	if err := model.Dir(dir).SetCurrent(lr); err != nil {
		t.Fatal(err)
	}
	return dir, lr, trees
}

func putModel(t *testing.T, client *http.Client, base, version string) (int, api.ErrorResponse) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, base+"/v1/admin/model", strings.NewReader(`{"version":"`+version+`"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e api.ErrorResponse
	_ = json.Unmarshal(b, &e)
	return resp.StatusCode, e
}

func readyVersion(t *testing.T, client *http.Client, base string) string {
	t.Helper()
	resp, err := client.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h api.HealthResponse
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return h.ModelVersion
}

// TestModelSwapsUnderTraffic swaps the model ten times through the admin
// endpoint while customers are served: no request fails or falls back to
// the rules, and a version that cannot load leaves the one in force.
func TestModelSwapsUnderTraffic(t *testing.T) {
	dir, lr, trees := testModelDir(t)
	// Budgets roomy enough that a call descheduled on a busy machine (the
	// race detector, six callers on two cores) is not what falls back:
	// this test is about the swaps.
	base, _ := start(t, []string{"-demo", "-demo-n", "500", "-demo-dir", t.TempDir(), "-demo-traffic=false", "-addr", "127.0.0.1:0",
		"-request-timeout", "2s", "-feature-timeout", "1s", "-model-budget", "1s"},
		testEnv(t, map[string]string{"NBP_MODEL": dir}))
	client := apitest.Client(t)
	if v := readyVersion(t, client, base); v != lr {
		t.Fatalf("in force %q, want %q", v, lr)
	}
	var served, failed, fellBack, byRules atomic.Int64
	versions := sync.Map{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			plain := &http.Client{Timeout: 2 * time.Second}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := demobank.ID(1 + (g*97+i)%500)
				resp, err := plain.Get(base + "/v1/customers/" + id + "/recommendations?channel=app_feed&limit=5")
				if err != nil {
					failed.Add(1)
					continue
				}
				var r api.RecommendationResponse
				err = json.NewDecoder(resp.Body).Decode(&r)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
					continue
				}
				served.Add(1)
				versions.Store(r.ModelVersion, true)
				for _, reason := range r.DegradedReasons {
					if reason == "model_fallback" {
						fellBack.Add(1)
					}
				}
				for _, it := range r.Items {
					if it.ScoredBy == "rules" {
						byRules.Add(1)
					}
				}
			}
		}()
	}
	for i := range 10 {
		v := trees
		if i%2 == 1 {
			v = lr
		}
		if code, e := putModel(t, client, base, v); code != 200 {
			t.Fatalf("PUT %s: %d %+v", v, code, e)
		}
		if got := readyVersion(t, client, base); got != v {
			t.Fatalf("after PUT %s, /readyz says %s", v, got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || fellBack.Load() != 0 || served.Load() < 100 {
		t.Errorf("%d served, %d failed, %d fell back to the rules during the swaps", served.Load(), failed.Load(), fellBack.Load())
	}
	if _, ok := versions.Load(trees); !ok {
		t.Error("no answer came from the tree ensembles")
	}
	t.Logf("%d answers during 10 swaps, none failed", served.Load())

	// Refused: a version with a missing file, one that does not exist.
	code, e := putModel(t, client, base, "gone-1")
	if code != 422 || e.Error.Code != api.CodeModelRefused || !strings.Contains(e.Error.Message, "TD_3M.onnx") {
		t.Errorf("missing file: %d %+v", code, e)
	}
	if code, e := putModel(t, client, base, "nope"); code != 404 || e.Error.Code != api.CodeUnknownVersion {
		t.Errorf("unknown version: %d %+v", code, e)
	}
	if v := readyVersion(t, client, base); v != lr {
		t.Errorf("a refused version moved the model to %s", v)
	}
	resp, err := client.Get(base + "/v1/admin/model")
	if err != nil {
		t.Fatal(err)
	}
	var ms api.ModelsResponse
	_ = json.NewDecoder(resp.Body).Decode(&ms)
	resp.Body.Close()
	if ms.InForce != lr || len(ms.Versions) != 3 {
		t.Errorf("GET /v1/admin/model: %+v", ms)
	}
	// The pointer file, edited by hand, is followed.
	if err := os.WriteFile(filepath.Join(dir, model.PointerFile), []byte(trees+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for readyVersion(t, client, base) != trees {
		if time.Now().After(deadline) {
			t.Fatal("the pointer file's change was not followed")
		}
		time.Sleep(100 * time.Millisecond)
	}
	resp, err = client.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	scrape, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`result="refused",version="gone-1"} 1`,
		`nbp_model_info{catalog_version=`, `model_version="` + trees + `"`} {
		// An unknown version is no label: names from a request are not.
		if bytes.Contains(scrape, []byte(`version="nope"`)) {
			t.Error("an unknown version became a metric label")
		}
		if !bytes.Contains(scrape, []byte(want)) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(scrape, "nbp_model"))
		}
	}
}

func grepLines(b []byte, s string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestChallengerIsMeasured serves a challenger to a share of the demo's
// customers, a week of simulated traffic included: its decisions say so,
// and the statistics compare it with the champion and the control group.
func TestChallengerIsMeasured(t *testing.T) {
	dir, lr, trees := testModelDir(t)
	base, _ := start(t, []string{"-demo", "-demo-n", "2000", "-demo-dir", t.TempDir(), "-addr", "127.0.0.1:0",
		"-challenger", trees, "-challenger-share", "0.3"},
		testEnv(t, map[string]string{"NBP_MODEL": dir, "NBP_AUDIT_KEY": "a key"}))
	client := apitest.Client(t)
	versions := map[string]int{}
	for i := 1; i <= 200; i++ {
		r := recommend(t, client, base+"/v1/customers/"+demobank.ID(i)+"/recommendations?channel=app_feed&limit=3")
		versions[r.Strategy+" "+r.ModelVersion]++
		again := recommend(t, client, base+"/v1/customers/"+demobank.ID(i)+"/recommendations?channel=app_feed&limit=3")
		if again.Strategy != r.Strategy {
			t.Fatalf("%s: %s, then %s: the challenger's share is not sticky", demobank.ID(i), r.Strategy, again.Strategy)
		}
	}
	if versions["challenger "+trees] < 30 || versions["model "+lr] < 90 {
		t.Errorf("decisions by strategy and version: %v", versions)
	}
	now := time.Now().In(catalog.Zone())
	resp, err := client.Get(base + "/v1/stats?from=" + now.AddDate(0, 0, -7).Format(time.DateOnly) + "&to=" + now.Format(time.DateOnly))
	if err != nil {
		t.Fatal(err)
	}
	var st api.StatsResponse
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || len(st.Challenger) == 0 {
		t.Fatalf("stats: %v, challenger comparisons %+v", err, st.Challenger)
	}
	for _, c := range st.Challenger {
		t.Logf("%s %s: challenger %.4f (%d impressions) against %s %.4f (%d): %+.4f [%+.4f, %+.4f]", c.Channel, c.Metric,
			c.ArmRate, c.ArmImpressions, c.Baseline, c.BaselineRate, c.BaselineImpressions, c.Difference, c.Low, c.High)
		if c.Arm != "challenger" || (c.Baseline != "model" && c.Baseline != "control") || c.ArmImpressions == 0 || !(c.Low <= c.Difference && c.Difference <= c.High) {
			t.Errorf("comparison %+v", c)
		}
	}
	// Promoted, it is the champion: its share goes back to the model.
	if code, e := putModel(t, client, base, trees); code != 200 {
		t.Fatalf("promote: %d %+v", code, e)
	}
	for i := 1; i <= 50; i++ {
		r := recommend(t, client, base+"/v1/customers/"+demobank.ID(i)+"/recommendations?channel=app_feed&limit=3")
		if r.Strategy == "challenger" || (r.Strategy == "model" && r.ModelVersion != trees) {
			t.Fatalf("after the promotion: %s by %s", r.Strategy, r.ModelVersion)
		}
	}
}

// TestShadowIsCompared shadows every model decision with the tree
// ensembles: the answers are the champion's, each decision's record shows
// what the shadow would have served, and the comparison is reported.
func TestShadowIsCompared(t *testing.T) {
	dir, lr, trees := testModelDir(t)
	base, _ := start(t, []string{"-demo", "-demo-n", "500", "-demo-dir", t.TempDir(), "-addr", "127.0.0.1:0",
		"-shadow", trees, "-shadow-share", "1"},
		testEnv(t, map[string]string{"NBP_MODEL": dir, "NBP_AUDIT_KEY": "a key"}))
	client := apitest.Client(t)
	var ids []string // of model decisions that offer something
	for i := 1; i <= 100; i++ {
		r := recommend(t, client, base+"/v1/customers/"+demobank.ID(i)+"/recommendations?channel=wecom_agent&limit=3")
		if r.Strategy == "model" && r.ModelVersion != lr {
			t.Fatalf("served by %s", r.ModelVersion)
		}
		if r.Strategy == "model" && len(r.Items) > 0 {
			ids = append(ids, r.DecisionID)
		}
	}
	var ms api.ModelsResponse
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get(base + "/v1/admin/model")
		if err != nil {
			t.Fatal(err)
		}
		ms = api.ModelsResponse{}
		_ = json.NewDecoder(resp.Body).Decode(&ms)
		resp.Body.Close()
		if ms.Shadow != nil && ms.Shadow.Compared >= int64(len(ids)) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s := ms.Shadow; s == nil || s.Version != trees || s.Compared < int64(len(ids)) || s.Dropped != 0 || s.Failed != 0 || len(s.Products) == 0 ||
		!(s.Top3Overlap > 0 && s.Top3Overlap <= 1) || !(s.RankCorrelation > -1 && s.RankCorrelation <= 1) {
		t.Fatalf("%d model decisions; shadow report %+v", len(ids), ms.Shadow)
	}
	t.Logf("shadow over %d decisions: top-3 overlap %.3f, same top 3 %.3f, rank correlation %.3f", ms.Shadow.Compared,
		ms.Shadow.Top3Overlap, ms.Shadow.SameTop3, ms.Shadow.RankCorrelation)
	// Each decision's record carries what the shadow would have served.
	var rec api.DecisionRecord
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := client.Get(base + "/v1/decisions/" + ids[len(ids)-1])
		if err != nil {
			t.Fatal(err)
		}
		rec = api.DecisionRecord{}
		_ = json.NewDecoder(resp.Body).Decode(&rec)
		resp.Body.Close()
		if rec.Shadow != nil || time.Now().After(deadline) {
			break
		}
	}
	if rec.Shadow == nil || rec.ModelVersion != lr || rec.Shadow.ModelVersion != trees || rec.Shadow.DecisionID != rec.DecisionID ||
		rec.Shadow.CustomerHash != rec.CustomerHash || len(rec.Items) == 0 || len(rec.Shadow.Items) == 0 {
		t.Fatalf("decision record %+v, shadow %+v", rec.Record, rec.Shadow)
	}
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	scrape, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`result="compared",shadow_version="` + trees + `"}`,
		`nbp_shadow_agreement{measure="top3_overlap"`, `product="TD_1Y",shadow_version="` + trees + `"}`} {
		if !bytes.Contains([]byte(grepLines(scrape, "nbp_shadow")), []byte(want)) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(scrape, "nbp_shadow"))
		}
	}
}
