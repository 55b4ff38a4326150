package api

import (
	"math"

	"github.com/directops/nbp/model"
	"github.com/directops/nbp/service"
)

// Uplift is what ranking achieved over the control group on one channel:
// a rate under strategy model against the same rate under control, with a
// 95% confidence interval for their difference (Newcombe's hybrid score
// interval, method 10 of Newcombe 1998, built from the two Wilson score
// intervals: sound for small counts and rates near 0, where the Wald
// interval is not).
type Uplift struct {
	Channel            string  `json:"channel"`
	Metric             string  `json:"metric"` // click_through_rate or conversion_rate
	ModelImpressions   int64   `json:"model_impressions"`
	ControlImpressions int64   `json:"control_impressions"`
	Model              float64 `json:"model"`
	Control            float64 `json:"control"`
	Difference         float64 `json:"difference"` // model - control
	Low                float64 `json:"ci_low"`
	High               float64 `json:"ci_high"`
}

// z95 is the standard normal quantile of a two-sided 95% interval.
const z95 = 1.959963984540054

// wilson returns the Wilson score interval of x successes in n trials.
func wilson(x, n int64, z float64) (lo, hi float64) {
	p, fn, z2 := float64(x)/float64(n), float64(n), z*z
	mid := (p + z2/(2*fn)) / (1 + z2/fn)
	half := z / (1 + z2/fn) * math.Sqrt(p*(1-p)/fn+z2/(4*fn*fn))
	return max(0, mid-half), min(1, mid+half)
}

// newcombe returns p1 - p2 and its hybrid score interval at z, for x1 of
// n1 against x2 of n2; ok is false when either n is 0.
func newcombe(x1, n1, x2, n2 int64, z float64) (d, lo, hi float64, ok bool) {
	if n1 <= 0 || n2 <= 0 {
		return 0, 0, 0, false
	}
	p1, p2 := float64(x1)/float64(n1), float64(x2)/float64(n2)
	l1, u1 := wilson(x1, n1, z)
	l2, u2 := wilson(x2, n2, z)
	d = p1 - p2
	lo = d - math.Sqrt((p1-l1)*(p1-l1)+(u2-p2)*(u2-p2))
	hi = d + math.Sqrt((u1-p1)*(u1-p1)+(p2-l2)*(p2-l2))
	return d, lo, hi, true
}

// uplifts compares strategy model with strategy control on each channel
// that has impressions under both: click-through and conversion.
func uplifts(rows []StatsRow) []Uplift {
	out := []Uplift{}
	for _, c := range compare(rows, model.StrategyModel, model.StrategyControl) {
		out = append(out, Uplift{Channel: c.Channel, Metric: c.Metric, ModelImpressions: c.ArmImpressions, ControlImpressions: c.BaselineImpressions,
			Model: c.ArmRate, Control: c.BaselineRate, Difference: c.Difference, Low: c.Low, High: c.High})
	}
	return out
}

// Comparison is one strategy's rate against another's on one channel,
// with the 95% interval of their difference (as Uplift): the challenger
// against the champion (model), and against the control group.
type Comparison struct {
	Channel             string  `json:"channel"`
	Metric              string  `json:"metric"` // click_through_rate or conversion_rate
	Arm                 string  `json:"arm"`
	Baseline            string  `json:"baseline"`
	ArmImpressions      int64   `json:"arm_impressions"`
	BaselineImpressions int64   `json:"baseline_impressions"`
	ArmRate             float64 `json:"arm_rate"`
	BaselineRate        float64 `json:"baseline_rate"`
	Difference          float64 `json:"difference"` // arm - baseline
	Low                 float64 `json:"ci_low"`
	High                float64 `json:"ci_high"`
}

// challengerComparisons compares the challenger with the champion and
// with the control group.
func challengerComparisons(rows []StatsRow) []Comparison {
	return append(compare(rows, model.StrategyChallenger, model.StrategyModel),
		compare(rows, model.StrategyChallenger, model.StrategyControl)...)
}

// compare compares two strategies on each channel that has impressions
// under both, from the rows of every product (not an agent's or a team's).
func compare(rows []StatsRow, arm, baseline model.Strategy) []Comparison {
	type counts struct{ imp, clicks, conv int64 }
	by := map[string]*[2]counts{} // channel -> arm, baseline
	var channels []string
	for _, r := range rows {
		i := -1
		switch model.Strategy(r.Strategy) {
		case arm:
			i = 0
		case baseline:
			i = 1
		}
		if i < 0 || r.AgentID != "" || r.Team != "" {
			continue
		}
		c := by[r.Channel]
		if c == nil {
			c = &[2]counts{}
			by[r.Channel] = c
			channels = append(channels, r.Channel)
		}
		c[i].imp += r.Impressions
		c[i].clicks += r.Clicks
		c[i].conv += r.Conversions
	}
	out := []Comparison{}
	for _, ch := range channels {
		c := by[ch]
		for _, m := range []struct {
			name   string
			x1, x2 int64
		}{{"click_through_rate", c[0].clicks, c[1].clicks}, {"conversion_rate", c[0].conv, c[1].conv}} {
			d, lo, hi, ok := newcombe(m.x1, c[0].imp, m.x2, c[1].imp, z95)
			if !ok {
				continue
			}
			out = append(out, Comparison{Channel: ch, Metric: m.name, Arm: string(arm), Baseline: string(baseline),
				ArmImpressions: c[0].imp, BaselineImpressions: c[1].imp,
				ArmRate: service.Round4(float64(m.x1) / float64(c[0].imp)), BaselineRate: service.Round4(float64(m.x2) / float64(c[1].imp)),
				Difference: service.Round4(d), Low: service.Round4(lo), High: service.Round4(hi)})
		}
	}
	return out
}
