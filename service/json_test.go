package service

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestAuditAppendJSONMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 11, 27, 3, 4, 5, 123456789, time.UTC)
	for i, r := range []AuditRecord{
		{},
		{DecisionID: "01KB", At: at, Channel: "app_feed", CustomerHash: "abc", ModelVersion: "m<1>", CatalogVersion: "c",
			ConfigVersion: "v\"1", Strategy: "model", Degraded: true, DegradedReasons: []string{"features_stale"},
			FeatureStatus: "stale", FeaturesHash: "ff00",
			Items: []AuditItem{{Rank: 1, ProductID: "WM_CASH", Propensity: 0.1234, Priority: 1e-7, Reasons: []string{"IDLE_BALANCE"}}, {Rank: 2}}},
		{At: at.Truncate(time.Second), DegradedReasons: []string{}, Items: []AuditItem{}},
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

func TestDecisionIDCarriesItsTime(t *testing.T) {
	at := time.Date(2031, 6, 15, 4, 0, 0, 123e6, time.UTC)
	before, after := at.UnixMilli(), at.UnixMilli()
	id := NewDecisionID(at)
	if !ValidDecisionID(id) {
		t.Fatalf("%q is not a decision id", id)
	}
	if ms := decisionMillis(id); ms < before || ms > after {
		t.Fatalf("%s carries %d, made between %d and %d", id, ms, before, after)
	}
}
