package api

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	r2 := "R2"
	cases := []RecommendationResponse{
		{},
		{CustomerID: "C1", Channel: "app_feed", DegradedReasons: []string{}, Items: []ItemResponse{}},
		{
			CustomerID: "C000000001", Channel: "wecom_agent", DecisionID: "01KB", ModelVersion: "m<1>&\"x\"",
			CatalogVersion: "v\\1\n\t\r\x00\x1f", Strategy: "model", Degraded: true,
			DegradedReasons: []string{"features_stale", "model_fallback"},
			Items: []ItemResponse{{
				Rank: 1, ProductID: "WM_CASH", Name: "天天理财现金管理", Category: "wealth", RiskLevel: &r2,
				Propensity: 0.1043, Priority: 1e-7,
				Copy:    CopyResponse{Title: "活钱也能打理", Body: "王女士，1元起购\u2028\u2029", CTA: "去看看", Disclaimer: "理财非存款，产品有风险，投资须谨慎"},
				Reasons: []ReasonResponse{{Code: "IDLE_BALANCE", Text: "活期资金较多"}},
			}, {
				Rank: 2, Name: "bad utf8 \xff\xfe end", Propensity: 123456789e20, Priority: -0.5,
			}},
		},
	}
	for _, f := range []float64{0, 1, 0.5, 1e-6, 9.99e-7, 1e20, 1e21, 123456.789, math.SmallestNonzeroFloat64, 0.30000000000000004} {
		cases = append(cases, RecommendationResponse{Items: []ItemResponse{{Propensity: f, Priority: -f}}})
	}
	for i, r := range cases {
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(string(want), string(r.AppendJSON(nil))); diff != "" {
			t.Errorf("case %d (-encoding/json +AppendJSON):\n%s", i, diff)
		}
	}
}
