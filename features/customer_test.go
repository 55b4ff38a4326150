package features_test

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
)

func defaultCatalog(t testing.TB) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// mutateCatalog parses the default catalog document changed by edit, which
// gets the product with the given id as generic JSON.
func mutateCatalog(t *testing.T, id string, edit func(p map[string]any)) *catalog.Catalog {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(catalog.DefaultBytes(), &doc); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range doc["products"].([]any) {
		if m := p.(map[string]any); m["id"] == id {
			edit(m)
			found = true
		}
	}
	if !found {
		t.Fatalf("no product %s", id)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	c, err := catalog.Parse(b)
	if err != nil {
		t.Fatalf("the catalog itself must parse: %v", err)
	}
	return c
}

func TestNewProfile(t *testing.T) {
	if _, err := features.NewProfile(defaultCatalog(t)); err != nil {
		t.Fatalf("NewProfile(default): %v", err)
	}
	tests := []struct {
		name    string
		product string
		edit    func(p map[string]any)
		want    []string
	}{
		{
			name: "held_when names an unknown feature", product: "GOLD_ACCUM",
			edit: func(p map[string]any) { p["held_when"] = "holds_yacht" },
			want: []string{"product GOLD_ACCUM", "held_when", `"holds_yacht"`},
		},
		{
			name: "a signal names an unknown feature", product: "TD_3M",
			edit: func(p map[string]any) {
				p["rules"].(map[string]any)["signals"].([]any)[1].(map[string]any)["feature"] = "shoe_size"
			},
			want: []string{"product TD_3M", "rules.signals[1].feature", `"shoe_size"`},
		},
		{
			name: "held_when names a feature that is no flag", product: "DCEP_WALLET",
			edit: func(p map[string]any) { p["held_when"] = "aum" },
			want: []string{"product DCEP_WALLET", "held_when", `"aum"`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pr, err := features.NewProfile(mutateCatalog(t, tc.product, tc.edit))
			if err == nil {
				t.Fatalf("NewProfile = %v, want an error", pr)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %s: %v", w, err)
				}
			}
		})
	}
	t.Run("unknown features wrap ErrInvalid", func(t *testing.T) {
		c := mutateCatalog(t, "GOLD_ACCUM", func(p map[string]any) { p["held_when"] = "holds_yacht" })
		if _, err := features.NewProfile(c); !errors.Is(err, catalog.ErrInvalid) {
			t.Errorf("error %v does not wrap catalog.ErrInvalid", err)
		}
	})
}

func TestProfileCustomer(t *testing.T) {
	cat := defaultCatalog(t)
	pr, err := features.NewProfile(cat)
	if err != nil {
		t.Fatal(err)
	}
	index := func(id string) int {
		p, err := cat.Product(id)
		if err != nil {
			t.Fatal(err)
		}
		return p.Index
	}
	heldOnly := func(ids ...string) []bool {
		h := make([]bool, len(cat.Products))
		for _, id := range ids {
			h[index(id)] = true
		}
		return h
	}

	tests := []struct {
		name string
		v    func() features.Vector
		want catalog.Customer
	}{
		{
			name: "sample",
			v: func() features.Vector {
				v := sampleVector()
				v.Values[features.HoldsGold] = 1
				v.Values[features.HoldsFund] = 1 // no product is held by it
				return v
			},
			want: catalog.Customer{
				Known: true, Age: 45, Region: "GD", KYC: 3, RiskTolerance: 3,
				// Valid through 2027-03-31, China time.
				AssessedUntil:    time.Date(2027, 4, 1, 0, 0, 0, 0, cst),
				MarketingConsent: true,
				// A credit card holder holds both credit cards.
				Held: heldOnly("CC_YOUTH", "CC_PLATINUM", "GOLD_ACCUM"),
			},
		},
		{
			name: "everything missing",
			v:    features.Missing,
			want: catalog.Customer{Known: true, Age: math.NaN(), Held: heldOnly()},
		},
		{
			name: "never assessed, no consent",
			v: func() features.Vector {
				v := sampleVector()
				v.Values[features.RiskTolerance] = 0
				v.Values[features.RiskAssessedUntil] = nan
				v.Values[features.MarketingConsent] = 0
				v.Values[features.HoldsCreditCard] = 0
				return v
			},
			want: catalog.Customer{Known: true, Age: 45, Region: "GD", KYC: 3, Held: heldOnly()},
		},
		{
			name: "out-of-range codes are missing",
			v: func() features.Vector {
				v := sampleVector()
				v.Values[features.Region] = float32(catalog.NumRegions + 1)
				v.Values[features.RiskTolerance] = 6
				v.Values[features.HoldsCreditCard] = 0.5 // a flag is 1 or not held
				return v
			},
			want: catalog.Customer{
				Known: true, Age: 45, KYC: 3, AssessedUntil: time.Date(2027, 4, 1, 0, 0, 0, 0, cst),
				MarketingConsent: true, Held: heldOnly(),
			},
		},
		{
			name: "first and last region",
			v: func() features.Vector {
				v := sampleVector()
				v.Values[features.Region] = 1
				v.Values[features.HoldsCreditCard] = 0
				v.Values[features.HoldsPensionAccount] = 1
				v.Values[features.HoldsConsumerLoan] = 1
				v.Values[features.HoldsInsurance] = 1
				v.Values[features.HoldsDigitalWallet] = 1
				return v
			},
			want: catalog.Customer{
				Known: true, Age: 45, Region: "BJ", KYC: 3, RiskTolerance: 3,
				AssessedUntil: time.Date(2027, 4, 1, 0, 0, 0, 0, cst), MarketingConsent: true,
				Held: heldOnly("PENSION_ACCOUNT", "LOAN_CONSUMER", "INS_MEDICAL", "DCEP_WALLET"),
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.v()
			held := make([]bool, len(cat.Products))
			for i := range held {
				held[i] = true // Customer overwrites every element
			}
			got := pr.Customer(&v, held)
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateNaNs()); diff != "" {
				t.Errorf("Customer (-want +got):\n%s", diff)
			}
			if len(got.Held) > 0 && &got.Held[0] != &held[0] {
				t.Errorf("Customer did not fill the held slice it was given")
			}
		})
	}
}

func TestAssessedUntilChinaDay(t *testing.T) {
	// An assessment stored as valid until 2027-03-31 is valid through that
	// whole day in Beijing, and not a moment longer.
	cat := defaultCatalog(t)
	pr, err := features.NewProfile(cat)
	if err != nil {
		t.Fatal(err)
	}
	p, err := cat.Product("WM_CASH")
	if err != nil {
		t.Fatal(err)
	}
	v := sampleVector()
	cu := pr.Customer(&v, make([]bool, len(cat.Products)))
	tests := []struct {
		at   time.Time
		want catalog.Exclusion
	}{
		{time.Date(2027, 3, 31, 0, 0, 0, 0, cst), catalog.ExclusionNone},
		{time.Date(2027, 3, 31, 23, 59, 59, 0, cst), catalog.ExclusionNone},
		{time.Date(2027, 3, 31, 15, 59, 59, 0, time.UTC), catalog.ExclusionNone},
		{time.Date(2027, 4, 1, 0, 0, 0, 0, cst), catalog.ExclusionUnassessed},
		{time.Date(2027, 3, 31, 16, 0, 0, 0, time.UTC), catalog.ExclusionUnassessed},
	}
	for _, tc := range tests {
		t.Run(tc.at.Format(time.RFC3339), func(t *testing.T) {
			if got := cat.Suitable(p, &cu, tc.at); got != tc.want {
				t.Errorf("Suitable = %v, want %v", got, tc.want)
			}
		})
	}
}
