package audit

import (
	"encoding/json"
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
