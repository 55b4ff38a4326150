package service_test

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/model"
	"github.com/directops/nbp/service"
)

// The pure steps of a decision (the policies, arbitration, the category
// cap, the top K) on an in-memory store and a scorer of fixed scores:
// neither Redis nor ONNX Runtime. The real-infrastructure tests beside
// them check the same pipeline end to end.

// memStore is a feature store in memory.
type memStore map[string]features.Record

func (m memStore) ReadManyRun(_ context.Context, ids []string, _ string, dst []features.Record) error {
	for i, id := range ids {
		r, ok := m[id]
		if !ok {
			r = features.Record{Status: features.NotFound}
		}
		dst[i] = r
	}
	return nil
}

// fixedScores gives every customer the same score per product.
type fixedScores []float32

func (f fixedScores) Score(_ context.Context, _ []float32, n int, out []float32) (model.Scored, error) {
	for r := range n {
		copy(out[r*len(f):], f)
	}
	return model.Scored{Strategy: model.StrategyModel, Version: "fixed"}, nil
}

// adult is a 40-year-old in Guangdong with KYC 3, risk tolerance C3
// assessed until 2027-06-30, who agreed to marketing and holds nothing.
func adult() features.Vector {
	v := features.Missing()
	v.UpdatedAt = testNow.Add(-time.Hour)
	v.Salutation = "李先生"
	for f, x := range map[features.Field]float32{
		features.Age: 40, features.Region: float32(catalog.RegionIndex("GD")), features.CityTier: 1, features.KYCLevel: 3,
		features.RiskTolerance: 3, features.RiskAssessedUntil: float32(time.Date(2027, 6, 30, 0, 0, 0, 0, time.UTC).Unix() / 86400),
		features.MarketingConsent: 1, features.PersonalisationOptOut: 0,
	} {
		v.Values[f] = x
	}
	return v
}

// pureEnv is a pipeline on memStore and fixedScores, without a control
// group.
func pureEnv(t *testing.T, scores func(cat *catalog.Catalog) fixedScores) (*service.Pipeline, *catalog.Catalog) {
	t.Helper()
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	cat.Policy.ControlShare = 0
	store := memStore{"C1": {Vector: adult(), Status: features.Found}}
	p, err := service.NewPipeline(service.PipelineConfig{Catalog: cat, Store: store, Scorer: scores(cat),
		Now: func() time.Time { return testNow }, NewID: func(time.Time) string { return "01PURE0000000000000000000" }})
	if err != nil {
		t.Fatal(err)
	}
	return p, cat
}

// rising scores the products by catalog order, the last highest.
func rising(cat *catalog.Catalog) fixedScores {
	s := make(fixedScores, len(cat.Products))
	for i := range s {
		s[i] = float32(i+1) / float32(len(s)+1)
	}
	return s
}

func TestDecidePure(t *testing.T) {
	p, cat := pureEnv(t, rising)
	for ch := range catalog.NumChannels {
		for _, limit := range []int{1, 3, service.MaxLimit} {
			t.Run(fmt.Sprintf("%s limit %d", ch, limit), func(t *testing.T) {
				d, err := p.Decide(context.Background(), service.Request{CustomerID: "C1", Channel: ch, Limit: limit})
				if err != nil {
					t.Fatal(err)
				}
				if d.Strategy != model.StrategyModel || d.Degraded || len(d.Items) == 0 || len(d.Items) > limit {
					t.Fatalf("strategy %s, degraded %v, %d items (limit %d)", d.Strategy, d.Degraded, len(d.Items), limit)
				}
				perCat := map[string]int{}
				arb := p.Arbitration()
				for i, it := range d.Items {
					pr := it.Product
					// Arbitration: priority = propensity × business value ×
					// context weight × levers.
					if want := it.Propensity * arb.Factor(pr, ch, testNow); math.Abs(it.Priority-want) > 1e-9 {
						t.Errorf("%s: priority %v, want %v", pr.ID, it.Priority, want)
					}
					if i > 0 && d.Items[i-1].Priority < it.Priority {
						t.Errorf("%s ranked below a lower priority", pr.ID)
					}
					if it.Rank != i+1 {
						t.Errorf("%s: rank %d at %d", pr.ID, it.Rank, i+1)
					}
					// Suitability: C3 takes nothing above R3.
					if pr.Risk > 3 {
						t.Errorf("%s (%s) offered to a C3 customer", pr.ID, pr.Risk)
					}
					if !pr.SaleWindow.Contains(testNow) || !pr.Eligibility.Channels[ch] {
						t.Errorf("%s offered off sale or off channel", pr.ID)
					}
					if perCat[pr.Category]++; perCat[pr.Category] > cat.Policy.MaxPerCategory {
						t.Errorf("%d items of %s, cap %d", perCat[pr.Category], pr.Category, cat.Policy.MaxPerCategory)
					}
					if len(it.Reasons) == 0 || it.Copy.Body == "" {
						t.Errorf("%s without reasons or copy", pr.ID)
					}
				}
				// With more room than the cap allows, the category cap is
				// what ends the list, never an eligible product of a free
				// category left out for a lower one.
				if limit == service.MaxLimit {
					seen := map[string]bool{}
					for _, it := range d.Items {
						seen[it.Product.ID] = true
					}
					lowest := d.Items[len(d.Items)-1].Priority
					for k := range cat.Products {
						pr := &cat.Products[k]
						if seen[pr.ID] || perCat[pr.Category] >= cat.Policy.MaxPerCategory {
							continue
						}
						if prio := float64(rising(cat)[k]) * arb.Factor(pr, ch, testNow); prio > lowest && len(d.Items) < limit &&
							pr.Risk <= 3 && pr.SaleWindow.Contains(testNow) && pr.Eligibility.Channels[ch] && catalogAllows(cat, pr, ch) {
							t.Errorf("%s (priority %v) left out of a list ending at %v", pr.ID, prio, lowest)
						}
					}
				}
			})
		}
	}
}

// catalogAllows reports whether the catalog's policies let the adult have
// p on ch.
func catalogAllows(cat *catalog.Catalog, p *catalog.Product, ch catalog.Channel) bool {
	prof, err := features.NewProfile(cat)
	if err != nil {
		return false
	}
	v := adult()
	cu := prof.Customer(&v, make([]bool, len(cat.Products)))
	return cat.Check(p, &cu, ch, testNow) == catalog.ExclusionNone
}

// TestDecidePureLever: a lever in force multiplies its product's priority
// and lifts it up the list; out of its window it changes nothing.
func TestDecidePureLever(t *testing.T) {
	flat := func(cat *catalog.Catalog) fixedScores {
		s := make(fixedScores, len(cat.Products))
		for i := range s {
			s[i] = 0.5
		}
		return s
	}
	p, cat := pureEnv(t, flat)
	req := service.Request{CustomerID: "C1", Channel: catalog.AppFeed, Limit: 3}
	before, err := p.Decide(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	// The last product offered, boosted tenfold (the most a lever may).
	last := before.Items[len(before.Items)-1]
	for _, tc := range []struct {
		name, from, until string
		inForce           bool
	}{
		{"in force", "2026-11-01", "2026-12-01", true},
		{"over", "2026-10-01", "2026-11-01", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := cat.ParseArbitration([]byte(fmt.Sprintf(`{"version": "t", "levers": [{"product": %q, "factor": 10, "from": %q, "until": %q}]}`, last.Product.ID, tc.from, tc.until)))
			if err != nil {
				t.Fatal(err)
			}
			p.SetArbitration(a)
			d, err := p.Decide(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if d.ConfigVersion != "t" {
				t.Errorf("config version %q", d.ConfigVersion)
			}
			if !tc.inForce {
				if !slices.Equal(itemIDs(d), itemIDs(before)) {
					t.Errorf("a lever out of its window changed the list: %v, before %v", itemIDs(d), itemIDs(before))
				}
				return
			}
			i := slices.Index(itemIDs(d), last.Product.ID)
			if i < 0 || i >= len(before.Items)-1 || math.Abs(d.Items[i].Priority-10*last.Priority) > 1e-9 {
				t.Errorf("lever in force: list %v (before %v); %s at %d", itemIDs(d), itemIDs(before), last.Product.ID, i)
			}
		})
	}
}

func itemIDs(d service.Decision) []string {
	ids := make([]string, len(d.Items))
	for i, it := range d.Items {
		ids[i] = it.Product.ID
	}
	return ids
}
