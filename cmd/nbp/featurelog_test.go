package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/directops/nbp/features"
	"github.com/directops/nbp/features/demobank"
	"github.com/directops/nbp/features/redistest"
	"github.com/directops/nbp/service/api"
	"github.com/directops/nbp/service/apitest"
	"github.com/directops/nbp/service/audit"
)

// TestFeatureLogKeepsTheServedFeatures: with -feature-log at share 1, every
// decision's features are kept under the feature log's own keys, with the
// decision's id, strategy, model version and items, and the customer
// only as the audit's keyed hash; the audit record, which the API shows,
// holds none of them.
func TestFeatureLogKeepsTheServedFeatures(t *testing.T) {
	prefix := redistest.Prefix(t)
	base, _ := start(t, []string{"-demo", "-demo-n", "200", "-demo-dir", t.TempDir(), "-demo-traffic=false", "-addr", "127.0.0.1:0",
		"-feature-log", "-feature-log-share", "1", "-feature-log-retention", "720h"},
		testEnv(t, map[string]string{"NBP_REDIS_PREFIX": prefix, "NBP_AUDIT_KEY": "feature log test key"}))
	client := apitest.Client(t)
	id := demobank.ID(7)
	r := recommend(t, client, base+"/v1/customers/"+id+"/recommendations?channel=app_feed&limit=3")

	rdb := redisServer.Client(t)
	flog, err := audit.New(rdb, audit.Options{Prefix: prefix + "featlog:"})
	if err != nil {
		t.Fatal(err)
	}
	defer flog.Close(context.Background())
	var rec audit.Record
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		rec, err = flog.Get(context.Background(), r.DecisionID)
		if err == nil || !errors.Is(err, audit.ErrNotFound) || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("feature log record of %s: %v", r.DecisionID, err)
	}
	if rec.Features == nil || rec.Features.Schema != features.SchemaVersion || len(rec.Features.Values) != int(features.NumFields) {
		t.Fatalf("features %+v", rec.Features)
	}
	known := 0
	for _, v := range rec.Features.Values {
		if !math.IsNaN(float64(v)) {
			known++
		}
	}
	if known == 0 || rec.Strategy != r.Strategy || rec.ModelVersion != r.ModelVersion || len(rec.Items) != len(r.Items) ||
		rec.Items[0].ProductID != r.Items[0].ProductID || rec.CustomerHash == "" || strings.Contains(rec.CustomerHash, id) {
		t.Errorf("feature log record %+v, answer %+v", rec, r)
	}
	if ttl := rdb.TTL(context.Background(), firstKey(t, rdb, prefix+"featlog:decisions:*")).Val(); ttl <= 0 || ttl > 720*time.Hour {
		t.Errorf("feature log TTL %s, want at most -feature-log-retention", ttl)
	}

	// The audit record the API shows holds no features.
	resp, err := client.Get(base + "/v1/decisions/" + r.DecisionID)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var dr api.DecisionRecord
	if err := json.Unmarshal(body, &dr); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if dr.Features != nil || strings.Contains(string(body), `"features"`) {
		t.Errorf("the audit record shows features: %s", body)
	}
}

// firstKey returns a key matching pattern, failing when there is none.
func firstKey(t *testing.T, rdb *redis.Client, pattern string) string {
	t.Helper()
	keys, err := rdb.Keys(context.Background(), pattern).Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("no key matches %s: %v", pattern, err)
	}
	return keys[0]
}

// TestFeatureLogSettings: the feature log is off unless asked for, and a
// share out of (0, 1] is refused with the rest of the configuration.
func TestFeatureLogSettings(t *testing.T) {
	env := testEnv(t, nil)
	c, err := parseConfig(nil, env)
	if err != nil || c.Audit.FeatureLog || c.Audit.FeatureLogRetention != 90*24*time.Hour {
		t.Errorf("defaults: %+v %v", c.Audit, err)
	}
	for _, share := range []string{"0", "-0.1", "1.5", "NaN"} {
		if _, err := parseConfig([]string{"-feature-log", "-feature-log-share", share}, env); err == nil || !strings.Contains(err.Error(), "-feature-log-share") {
			t.Errorf("share %s: %v", share, err)
		}
	}
	if _, err := parseConfig([]string{"-feature-log", "-feature-log-retention", "0s"}, env); err == nil {
		t.Error("a retention of 0 taken")
	}
}
