package service_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/model"
	"github.com/directops/nbp/service"
)

// violations checks one decision against the banking rules, recomputed here
// from the customer's raw vector rather than through the catalog's Check,
// so that the property does not trust the code it tests.
func violations(cat *catalog.Catalog, req service.Request, d *service.Decision, v *features.Vector, known bool) []string {
	var bad []string
	add := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }
	if len(d.Items) > req.Limit {
		add("%d items for limit %d", len(d.Items), req.Limit)
	}
	perCat := map[string]int{}
	for i, it := range d.Items {
		p := it.Product
		if it.Rank != i+1 {
			add("item %d has rank %d", i, it.Rank)
		}
		if i > 0 && it.Priority > d.Items[i-1].Priority {
			add("%s: priority %v above the item before", p.ID, it.Priority)
		}
		perCat[p.Category]++
		if perCat[p.Category] > cat.Policy.MaxPerCategory {
			add("%s: more than %d of category %s", p.ID, cat.Policy.MaxPerCategory, p.Category)
		}
		if !p.Eligibility.Channels[req.Channel] {
			add("%s: not offered on %s", p.ID, req.Channel)
		}
		if !p.SaleWindow.Contains(d.At) {
			add("%s: outside its sale window", p.ID)
		}
		lim := req.Channel.Limits()
		if n := utf8.RuneCountInString(it.Copy.Title); n > lim.Title || n == 0 {
			add("%s: title of %d runes", p.ID, n)
		}
		if n := utf8.RuneCountInString(it.Copy.Body); n > lim.Body || n == 0 {
			add("%s: body of %d runes", p.ID, n)
		}
		if lim.BodyWithDisclaimer > 0 && utf8.RuneCountInString(it.Copy.Body+it.Copy.Disclaimer) > lim.BodyWithDisclaimer {
			add("%s: body and warning over %d runes", p.ID, lim.BodyWithDisclaimer)
		}
		if it.Copy.Disclaimer != cat.Categories[p.Category].Disclaimer {
			add("%s: disclaimer %q", p.ID, it.Copy.Disclaimer)
		}
		if len(it.Reasons) < 1 || len(it.Reasons) > 3 {
			add("%s: %d reasons", p.ID, len(it.Reasons))
		}
		for _, r := range it.Reasons {
			if r.Text == "" || r.Text != cat.Reasons[r.Code] || strings.ContainsAny(r.Text, "0123456789元%¥") {
				add("%s: reason %+v", p.ID, r)
			}
		}
		needsConsent := p.RequiresConsent || cat.Channels[req.Channel].RequiresConsent
		if !known {
			// Nothing is known: nothing that needs knowing may be offered.
			if p.Risk > 0 {
				add("%s: investment product (%s) without customer data", p.ID, p.Risk)
			}
			if needsConsent {
				add("%s: needs consent, customer data unavailable", p.ID)
			}
			if p.Eligibility.MinAge > 18 || p.Eligibility.MaxAge > 0 || len(p.Eligibility.Regions) > 0 || p.Eligibility.MinKYC > 1 {
				add("%s: restricted eligibility without customer data", p.ID)
			}
			continue
		}
		age := v.Get(features.Age)
		if age != age || age < float64(p.Eligibility.MinAge) || p.Eligibility.MaxAge > 0 && age > float64(p.Eligibility.MaxAge) {
			add("%s: age %v outside %d..%d", p.ID, age, p.Eligibility.MinAge, p.Eligibility.MaxAge)
		}
		if len(p.Eligibility.Regions) > 0 {
			ok := false
			for _, r := range p.Eligibility.Regions {
				ok = ok || r == v.RegionCode()
			}
			if !ok {
				add("%s: region %q not eligible", p.ID, v.RegionCode())
			}
		}
		if k := v.Get(features.KYCLevel); !(k >= float64(p.Eligibility.MinKYC)) {
			add("%s: KYC %v below %d", p.ID, k, p.Eligibility.MinKYC)
		}
		if p.HeldWhen != "" {
			f, _ := features.Lookup(p.HeldWhen)
			if v.Values[f] == 1 {
				add("%s: already held", p.ID)
			}
		}
		if p.Risk > 0 {
			tol := v.Values[features.RiskTolerance]
			until := v.Values[features.RiskAssessedUntil]
			switch {
			case !(tol >= 1):
				add("%s (%s): customer never assessed", p.ID, p.Risk)
			case until != until:
				add("%s (%s): no assessment date", p.ID, p.Risk)
			case float64(p.Risk) > float64(tol):
				add("%s (%s): above tolerance C%v", p.ID, p.Risk, tol)
			}
			// Valid through the stored day, China time.
			stored := time.Unix(int64(until)*86400, 0).UTC()
			expiry := time.Date(stored.Year(), stored.Month(), stored.Day()+1, 0, 0, 0, 0, catalog.Zone())
			if until == until && !d.At.Before(expiry) {
				add("%s (%s): assessment expired %s", p.ID, p.Risk, expiry)
			}
			if age >= 65 && p.Risk > catalog.RiskLevel(3) {
				add("%s (%s): above R3 for a customer of %v", p.ID, p.Risk, age)
			}
		}
		if needsConsent && v.Values[features.MarketingConsent] != 1 {
			add("%s: needs marketing consent", p.ID)
		}
	}
	return bad
}

// failingModel is a model that always errors: the rules must take over.
type failingModel struct{}

func (failingModel) Score(context.Context, []float32, int, []float32) (model.Scored, error) {
	return model.Scored{}, errors.New("injected model failure")
}

func TestSuitabilityInvariantOnEveryPath(t *testing.T) {
	const n = 10000
	paths := []struct {
		name     string
		opts     envOptions
		strategy string // expected for a personalised customer
		reason   string // expected degraded reason, if any
	}{
		{"model", envOptions{customers: n}, string(model.StrategyModel), ""},
		{"rules", envOptions{customers: n, scorer: func(e *env) service.Scorer { return e.rules }}, string(model.StrategyRules), ""},
		{"model failing", envOptions{customers: n, scorer: func(e *env) service.Scorer {
			return model.NewGuarded(failingModel{}, e.rules, len(e.cat.Products), model.GuardOptions{})
		}}, string(model.StrategyRules), service.ReasonModelFallback},
		{"redis down", envOptions{customers: n, down: true}, string(model.StrategyNonPersonalised), service.ReasonFeaturesUnavailable},
		// A challenger ranks 30% of the customers outside the control
		// group: the catalog's rules as per-product tree ensembles, a
		// bank's export form, with two products left to the rules.
		{"challenger", envOptions{customers: n, challengerShare: 0.3, challenger: func(e *env) service.Scorer {
			return model.NewGuarded(treeModel(t, e.cat, e.rules), e.rules, len(e.cat.Products), model.GuardOptions{Budget: time.Second})
		}}, string(model.StrategyModel), ""},
		// A shadow, the same tree ensembles, scores every decision of the
		// champion off the answer's path: what it would have served
		// obeys every rule too.
		{"shadow", envOptions{customers: n, shadowShare: 1, shadow: func(e *env) service.Scorer {
			return model.NewGuarded(treeModel(t, e.cat, e.rules), e.rules, len(e.cat.Products), model.GuardOptions{Budget: time.Second})
		}}, string(model.StrategyModel), ""},
	}
	for _, path := range paths {
		t.Run(path.name, func(t *testing.T) {
			e := newEnv(t, path.opts)
			offered := map[string]int{}
			controls, challengers, modelled := 0, 0, 0
			for ch := catalog.Channel(0); ch < catalog.NumChannels; ch++ {
				reqs := make([]service.Request, 0, 500)
				out := make([]service.Decision, 500)
				for start := 0; start < n; start += 500 {
					reqs = reqs[:0]
					for i := start; i < start+500; i++ {
						reqs = append(reqs, service.Request{CustomerID: e.ids[i], Channel: ch, Limit: 1 + i%service.MaxLimit})
					}
					if err := e.pipeline.DecideMany(context.Background(), reqs, out); err != nil {
						t.Fatal(err)
					}
					for i, req := range reqs {
						d := &out[i]
						v := e.vecs[req.CustomerID]
						known := !path.opts.down
						if bad := violations(e.cat, req, d, &v, known); len(bad) > 0 {
							t.Fatalf("%s on %s (%s): %v", req.CustomerID, ch, d.Strategy, bad)
						}
						optOut := v.Flag(features.PersonalisationOptOut)
						if d.Strategy == model.StrategyModel {
							modelled++
						}
						want := path.strategy
						if optOut && known {
							want = string(model.StrategyNonPersonalised)
						}
						if d.Strategy == model.StrategyControl && known && !optOut {
							controls++
							continue
						}
						if d.Strategy == model.StrategyChallenger && path.opts.challenger != nil && !optOut {
							challengers++
							if d.ModelVersion != "rules-trees-test" {
								t.Fatalf("%s: a challenger decision by %s", req.CustomerID, d.ModelVersion)
							}
							want = string(model.StrategyChallenger)
						}
						if string(d.Strategy) != want {
							t.Fatalf("%s: strategy %q, want %q", req.CustomerID, d.Strategy, want)
						}
						if path.reason != "" && !(optOut && path.reason == service.ReasonModelFallback) {
							if len(d.DegradedReasons) == 0 || d.DegradedReasons[0] != path.reason || !d.Degraded {
								t.Fatalf("%s: degraded %v %v, want %s", req.CustomerID, d.Degraded, d.DegradedReasons, path.reason)
							}
						}
						for _, it := range d.Items {
							offered[it.Product.Category]++
						}
					}
				}
			}
			if path.opts.shadow != nil {
				checkShadows(t, e, modelled)
			}
			if c := path.opts.challengerShare; c > 0 {
				if share := float64(challengers) / float64(3*n); share < c*0.85 || share > c*1.05 {
					t.Errorf("challenger share %.4f, want about %.2f of the customers outside the control group", share, c)
				}
			}
			if path.opts.down && controls > 0 {
				t.Fatalf("%d control decisions without customer data", controls)
			}
			if share := float64(controls) / float64(3*n); !path.opts.down && (share < 0.01 || share > 0.03) {
				t.Errorf("control share %.4f, want about 0.02", share)
			}
			// The property must not hold vacuously.
			if path.opts.down {
				if len(offered) == 0 {
					t.Fatal("nothing offered while Redis is down: the safe list is empty")
				}
				return
			}
			for _, c := range []string{"wealth", "fund", "deposit", "insurance", "credit_card"} {
				if offered[c] == 0 {
					t.Errorf("no %s product offered to any of %d customers", c, n)
				}
			}
		})
	}
}

// checkShadows waits for the shadow's decisions of the champion's want
// decisions (those the model ranked) and checks
// each against the rules, as served to the same customer.
func checkShadows(t *testing.T, e *env, want int) {
	t.Helper()
	got, differ := 0, 0
	timeout := time.After(2 * time.Minute)
	for {
		r := e.pipeline.ShadowReport()
		if int(r.Compared+r.Dropped+r.Failed) >= want && len(e.shadows) == 0 {
			if r.Dropped != 0 || r.Failed != 0 || got != want {
				t.Fatalf("shadow: %d compared (%d seen), %d dropped, %d failed; want %d compared", r.Compared, got, r.Dropped, r.Failed, want)
			}
			break
		}
		select {
		case sd := <-e.shadows:
			got++
			d, served := &sd.Shadow, &sd.Served
			if d.ID != served.ID || d.CustomerID != served.CustomerID || d.ModelVersion != "rules-trees-test" || d.Strategy != model.StrategyModel {
				t.Fatalf("shadow decision %s %s %s %s of %s", d.ID, d.CustomerID, d.Strategy, d.ModelVersion, served.ID)
			}
			v := e.vecs[d.CustomerID]
			req := service.Request{CustomerID: d.CustomerID, Channel: d.Channel, Limit: service.MaxLimit}
			if bad := violations(e.cat, req, d, &v, true); len(bad) > 0 {
				t.Fatalf("shadow of %s on %s: %v", d.CustomerID, d.Channel, bad)
			}
			if len(d.Items) != len(served.Items) && !categoryCapped(e.cat, d, served) {
				t.Fatalf("shadow of %s: %d items, served %d", d.CustomerID, len(d.Items), len(served.Items))
			}
			if sd.Top3Overlap < 1 {
				differ++
			}
		case <-timeout:
			t.Fatalf("shadow: %d of %d decisions after 2 minutes", got, want)
		}
	}
	r := e.pipeline.ShadowReport()
	t.Logf("shadow: %d compared, top-3 overlap %.3f, same top 3 %.3f, rank correlation %.3f; %d with another top 3",
		r.Compared, r.Top3Overlap, r.SameTop3, r.RankCorrelation, differ)
	if r.Version != "shadow-test" || len(r.Products) != len(e.cat.Products) || !(r.RankCorrelation > 0.2) || !(r.Top3Overlap > 0.3) {
		t.Errorf("shadow report %+v", r)
	}
}

// categoryCapped reports whether either decision hit the per-category
// cap, which lets two rankings keep different numbers of items.
func categoryCapped(cat *catalog.Catalog, ds ...*service.Decision) bool {
	for _, d := range ds {
		n := map[string]int{}
		for _, it := range d.Items {
			if n[it.Product.Category]++; n[it.Product.Category] == cat.Policy.MaxPerCategory {
				return true
			}
		}
	}
	return false
}

func TestDecideManyEqualsDecide(t *testing.T) {
	const n = 2000
	e := newEnv(t, envOptions{customers: n})
	reqs := make([]service.Request, n)
	for i := range reqs {
		reqs[i] = service.Request{CustomerID: e.ids[i], Channel: catalog.Channel(i % int(catalog.NumChannels)), Limit: 5}
	}
	// Cold starts are decided the same way too.
	reqs[7].CustomerID, reqs[8].CustomerID = "NEVER_SEEN_1", "NEVER_SEEN_2"
	many := make([]service.Decision, n)
	if err := e.pipeline.DecideMany(context.Background(), reqs, many); err != nil {
		t.Fatal(err)
	}
	for i, req := range reqs {
		one, err := e.pipeline.Decide(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		a, b := summary(&one), summary(&many[i])
		if a != b {
			t.Fatalf("%s: Decide and DecideMany differ:\n one: %s\nmany: %s", req.CustomerID, a, b)
		}
	}
}

func summary(d *service.Decision) string {
	s := fmt.Sprintf("%s %s %s %v %v |", d.CustomerID, d.Strategy, d.ModelVersion, d.Degraded, d.DegradedReasons)
	for _, it := range d.Items {
		s += fmt.Sprintf(" %d:%s:%.6f:%.6f:%s/%s", it.Rank, it.Product.ID, it.Propensity, it.Priority, it.Copy.Title, it.Copy.Body)
	}
	return s
}

func TestControlGroup(t *testing.T) {
	e := newEnv(t, envOptions{customers: 3000})
	// The share, over 100,000 ids, is the configured 2% within tolerance;
	// membership is stable within a month and changes between months.
	ids := make([]service.Request, 0, 1000)
	out := make([]service.Decision, 1000)
	inControl := 0
	for i := 0; i < 3000; i += 1000 {
		ids = ids[:0]
		for j := i; j < i+1000; j++ {
			ids = append(ids, service.Request{CustomerID: e.ids[j], Channel: catalog.WecomAgent, Limit: 5})
		}
		if err := e.pipeline.DecideMany(context.Background(), ids, out); err != nil {
			t.Fatal(err)
		}
		for _, d := range out {
			if d.Strategy != model.StrategyControl {
				continue
			}
			inControl++
			if d.ModelVersion != "control@"+e.cat.Version {
				t.Fatalf("control model version %q", d.ModelVersion)
			}
			for _, it := range d.Items {
				if it.Priority != 0 || it.Reasons[0].Code != catalog.ReasonGeneral {
					t.Fatalf("control item %+v", it)
				}
			}
		}
	}
	if inControl == 0 {
		t.Fatal("no control decision among 3,000 customers")
	}
	share := service.ControlShareOf(e.pipeline, 100000, testNow)
	if share < 0.018 || share > 0.022 {
		t.Fatalf("control share over 100,000 ids: %.4f, want 0.02 ± 0.002", share)
	}
	next := service.ControlShareOf(e.pipeline, 100000, testNow.AddDate(0, 1, 0))
	if next < 0.018 || next > 0.022 {
		t.Fatalf("next month's share: %.4f", next)
	}
	if same := service.ControlOverlap(e.pipeline, 100000, testNow, testNow.AddDate(0, 0, 1)); same != 1 {
		t.Fatalf("membership changed within the month: overlap %.3f", same)
	}
	if moved := service.ControlOverlap(e.pipeline, 100000, testNow, testNow.AddDate(0, 1, 0)); moved > 0.2 {
		t.Fatalf("the same customers are in control next month: overlap %.3f", moved)
	}
}

func TestReasonsComeFromTheScorer(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rules bool
	}{{"model", false}, {"rules", true}} {
		t.Run(tc.name, func(t *testing.T) {
			o := envOptions{customers: 500}
			if tc.rules {
				o.scorer = func(e *env) service.Scorer { return e.rules }
			}
			e := newEnv(t, o)
			fromModel := map[string]bool{catalog.ReasonGeneral: true}
			for _, code := range e.cat.FeatureReasons {
				fromModel[code] = true
			}
			specific := 0
			for _, id := range e.ids {
				d, err := e.pipeline.Decide(context.Background(), service.Request{CustomerID: id, Channel: catalog.WecomAgent, Limit: 3})
				if err != nil {
					t.Fatal(err)
				}
				if d.Strategy != model.StrategyModel && d.Strategy != model.StrategyRules {
					continue
				}
				for _, it := range d.Items {
					for _, r := range it.Reasons {
						allowed := fromModel[r.Code]
						if tc.rules || it.ScoredBy == model.StrategyRules {
							allowed = r.Code == catalog.ReasonGeneral
							for _, s := range it.Product.Rules.Signals {
								allowed = allowed || s.Weight > 0 && s.Code == r.Code
							}
						}
						if !allowed {
							t.Fatalf("%s %s: reason %s does not come from the %s", id, it.Product.ID, r.Code, tc.name)
						}
						if r.Code != catalog.ReasonGeneral {
							specific++
						}
					}
				}
			}
			if specific == 0 {
				t.Fatal("only generic reasons")
			}
		})
	}
}
