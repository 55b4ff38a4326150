package service_test

import (
	"context"
	"errors"
	"fmt"
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
			expiry := time.Unix(int64(until)*86400, 0).UTC().Add(24*time.Hour - 8*time.Hour)
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
		{"model", envOptions{customers: n}, model.StrategyModel, ""},
		{"rules", envOptions{customers: n, scorer: func(e *env) service.Scorer { return e.rules }}, model.StrategyRules, ""},
		{"model failing", envOptions{customers: n, scorer: func(e *env) service.Scorer {
			return model.NewGuarded(failingModel{}, e.rules, len(e.cat.Products), model.GuardOptions{})
		}}, model.StrategyRules, service.ReasonModelFallback},
		{"redis down", envOptions{customers: n, down: true}, model.StrategyNonPersonalised, service.ReasonFeaturesUnavailable},
	}
	for _, path := range paths {
		t.Run(path.name, func(t *testing.T) {
			e := newEnv(t, path.opts)
			offered := map[string]int{}
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
						want := path.strategy
						if optOut && known {
							want = model.StrategyNonPersonalised
						}
						if d.Strategy != want {
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
