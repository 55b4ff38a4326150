package audit

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestAuditAppendJSONMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 11, 27, 3, 4, 5, 123456789, time.UTC)
	for i, r := range []Record{
		{},
		{DecisionID: "01KB", At: at, Channel: "app_feed", CustomerHash: "abc", ModelVersion: "m<1>", CatalogVersion: "c",
			ConfigVersion: "v\"1", Strategy: "model", Degraded: true, DegradedReasons: []string{"features_stale"},
			FeatureStatus: "stale", FeaturesHash: "ff00",
			Items: []Item{{Rank: 1, ProductID: "WM_CASH", Propensity: 0.1234, Priority: 1e-7, Reasons: []string{"IDLE_BALANCE"}}, {Rank: 2}}},
		{At: at.Truncate(time.Second), DegradedReasons: []string{}, Items: []Item{}},
		{At: at, Items: []Item{}, Features: &Features{Schema: 1, Values: FeatureValues{0, 1.5, float32(math.NaN()), -3e-9, 1e22, 123456.7}}},
	} {
		want, err := json.Marshal(&r)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(string(want), string(r.AppendJSON(nil))); diff != "" {
			t.Errorf("case %d (-encoding/json +AppendJSON):\n%s", i, diff)
		}
	}
}

// TestFeatureValuesRoundTrip: NaN, a missing value, is null and back.
func TestFeatureValuesRoundTrip(t *testing.T) {
	in := FeatureValues{1, float32(math.NaN()), 0.25}
	b, err := json.Marshal(in)
	if err != nil || string(b) != "[1,null,0.25]" {
		t.Fatalf("%s %v", b, err)
	}
	var out FeatureValues
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if len(out) != 3 || out[0] != 1 || !math.IsNaN(float64(out[1])) || out[2] != 0.25 {
		t.Errorf("read back %v", out)
	}
}
