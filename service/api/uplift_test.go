package api

import (
	"math"
	"testing"
)

// TestNewcombe checks the interval against Newcombe (1998), Table II: the
// hybrid score interval (method 10) of 56/70 - 48/80 is 0.0524 to 0.3339,
// and of 9/10 - 3/10 is 0.1705 to 0.8090.
func TestNewcombe(t *testing.T) {
	for _, tc := range []struct {
		x1, n1, x2, n2 int64
		lo, hi         float64
	}{
		{56, 70, 48, 80, 0.0524, 0.3339},
		{9, 10, 3, 10, 0.1705, 0.8090},
	} {
		d, lo, hi, ok := newcombe(tc.x1, tc.n1, tc.x2, tc.n2, z95)
		want := float64(tc.x1)/float64(tc.n1) - float64(tc.x2)/float64(tc.n2)
		if !ok || math.Abs(d-want) > 1e-12 || math.Abs(lo-tc.lo) > 1e-4 || math.Abs(hi-tc.hi) > 1e-4 {
			t.Errorf("%d/%d - %d/%d: %.4f (%.4f, %.4f), want (%.4f, %.4f)", tc.x1, tc.n1, tc.x2, tc.n2, d, lo, hi, tc.lo, tc.hi)
		}
	}
	if _, _, _, ok := newcombe(1, 10, 0, 0, z95); ok {
		t.Error("an interval without control impressions")
	}
	// Rates of 0 and 1 keep the interval inside [-1, 1].
	if _, lo, hi, _ := newcombe(0, 5, 5, 5, z95); lo < -1 || hi > 0 {
		t.Errorf("0/5 - 5/5: (%v, %v)", lo, hi)
	}
}

func TestUplifts(t *testing.T) {
	rows := []StatsRow{
		{ProductID: "A", Channel: "app_feed", Strategy: "model", Impressions: 1000, Clicks: 100, Conversions: 20},
		{ProductID: "B", Channel: "app_feed", Strategy: "model", Impressions: 1000, Clicks: 60, Conversions: 10},
		{ProductID: "A", Channel: "app_feed", Strategy: "control", Impressions: 500, Clicks: 25, Conversions: 5},
		{ProductID: "A", Channel: "app_feed", Strategy: "rules", Impressions: 9999, Clicks: 9999},
		{ProductID: "A", Channel: "wecom_agent", Strategy: "model", Impressions: 10, Clicks: 1},
	}
	got := uplifts(rows)
	if len(got) != 2 {
		t.Fatalf("%+v: want the app_feed pair only (wecom_agent has no control)", got)
	}
	ctr := got[0]
	if ctr.Metric != "click_through_rate" || ctr.ModelImpressions != 2000 || ctr.ControlImpressions != 500 ||
		ctr.Model != 0.08 || ctr.Control != 0.05 || ctr.Difference != 0.03 || !(ctr.Low < 0.03 && ctr.High > 0.03 && ctr.Low > 0) {
		t.Errorf("click-through uplift %+v", ctr)
	}
	if cvr := got[1]; cvr.Metric != "conversion_rate" || cvr.Difference != 0.005 || !(cvr.Low < 0 && cvr.High > 0) {
		t.Errorf("conversion uplift %+v: 30/2000 against 5/500 is no evidence either way", cvr)
	}
}

func TestChallengerComparisons(t *testing.T) {
	rows := []StatsRow{
		{ProductID: "A", Channel: "app_feed", Strategy: "model", Impressions: 4000, Clicks: 200},
		{ProductID: "A", Channel: "app_feed", Strategy: "challenger", Impressions: 1000, Clicks: 80},
		{ProductID: "A", Channel: "app_feed", Strategy: "control", Impressions: 500, Clicks: 20},
		{ProductID: "A", Channel: "app_feed", Strategy: "challenger", AgentID: "a1", Impressions: 99, Clicks: 99},
	}
	got := challengerComparisons(rows)
	if len(got) != 4 {
		t.Fatalf("%+v: want click-through and conversion, against the champion and the control", got)
	}
	vs := got[0]
	if vs.Arm != "challenger" || vs.Baseline != "model" || vs.ArmImpressions != 1000 || vs.BaselineImpressions != 4000 ||
		vs.ArmRate != 0.08 || vs.BaselineRate != 0.05 || vs.Difference != 0.03 || !(vs.Low > 0 && vs.High > 0.03) {
		t.Errorf("challenger against the champion %+v: 80/1000 against 200/4000 is a clear win", vs)
	}
	if c := got[2]; c.Baseline != "control" || c.BaselineImpressions != 500 || c.Difference != 0.04 {
		t.Errorf("challenger against the control %+v", c)
	}
	if len(challengerComparisons(rows[:1])) != 0 {
		t.Error("comparisons without a challenger")
	}
}
