package catalog_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/directops/nbp/catalog"
)

var chinaTime = catalog.Zone()

// defaultCatalog parses the embedded catalog or stops the test.
func defaultCatalog(t testing.TB) *catalog.Catalog {
	t.Helper()
	c, err := catalog.Default()
	if err != nil {
		t.Fatalf("Default: %v", err)
	}
	return c
}

func mustProduct(t testing.TB, c *catalog.Catalog, id string) *catalog.Product {
	t.Helper()
	p, err := c.Product(id)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultCatalog(t *testing.T) {
	c := defaultCatalog(t)
	if c.Version == "" {
		t.Error("Version is empty")
	}
	if n := len(c.Products); n < 20 {
		t.Errorf("%d products, want at least 20", n)
	}

	// Every category the bank sells, and the risk levels of its
	// investment products.
	risks := map[string]map[catalog.RiskLevel]bool{}
	for i := range c.Products {
		p := &c.Products[i]
		if p.Index != i {
			t.Errorf("%s: Index %d, want %d", p.ID, p.Index, i)
		}
		if risks[p.Category] == nil {
			risks[p.Category] = map[catalog.RiskLevel]bool{}
		}
		risks[p.Category][p.Risk] = true
	}
	for _, cat := range []string{"deposit", "wealth", "fund", "credit_card", "loan", "insurance", "pension", "gold", "payment"} {
		if len(risks[cat]) == 0 {
			t.Errorf("no %s product", cat)
		}
	}
	levels := func(lo, hi catalog.RiskLevel) map[catalog.RiskLevel]bool {
		m := map[catalog.RiskLevel]bool{}
		for r := lo; r <= hi; r++ {
			m[r] = true
		}
		return m
	}
	if diff := cmp.Diff(levels(1, 4), risks["wealth"]); diff != "" {
		t.Errorf("wealth risk levels (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(levels(2, 5), risks["fund"]); diff != "" {
		t.Errorf("fund risk levels (-want +got):\n%s", diff)
	}

	// Every investment product has a risk level within its category's
	// range and carries the category's mandatory risk warning; no other
	// product has a risk level.
	for i := range c.Products {
		p := &c.Products[i]
		cat, ok := c.Categories[p.Category]
		if !ok {
			t.Errorf("%s: unknown category %q", p.ID, p.Category)
			continue
		}
		switch {
		case cat.Investment && (p.Risk < cat.MinRisk || p.Risk > cat.MaxRisk || p.Risk == 0):
			t.Errorf("%s: risk level %q outside %s..%s", p.ID, p.Risk, cat.MinRisk, cat.MaxRisk)
		case !cat.Investment && p.Risk != 0:
			t.Errorf("%s: non-investment product with risk level %s", p.ID, p.Risk)
		}
		if cat.Investment && (c.Disclaimer(p) == "" || c.Disclaimer(p) != cat.Disclaimer) {
			t.Errorf("%s: disclaimer %q, want the %s category's %q", p.ID, c.Disclaimer(p), cat.ID, cat.Disclaimer)
		}
	}
	wantDisclaimers := map[string]string{
		"wealth": "理财非存款，产品有风险，投资须谨慎",
		"fund":   "基金有风险，投资须谨慎",
	}
	for cat, want := range wantDisclaimers {
		if got := c.Categories[cat].Disclaimer; got != want {
			t.Errorf("%s disclaimer %q, want %q", cat, got, want)
		}
	}
	if p := mustProduct(t, c, "WM_CASH"); c.Disclaimer(p) != wantDisclaimers["wealth"] {
		t.Errorf("WM_CASH disclaimer %q", c.Disclaimer(p))
	}

	want := catalog.Policy{MaxPerCategory: 2, SeniorAge: 65, SeniorMaxRisk: 3, ControlShare: 0.02}
	if diff := cmp.Diff(want, c.Policy); diff != "" {
		t.Errorf("Policy (-want +got):\n%s", diff)
	}
	for ch := catalog.Channel(0); ch < catalog.NumChannels; ch++ {
		n := 0
		for i := range c.Products {
			if c.Products[i].HasCopy(ch) {
				n++
			}
		}
		if n == 0 {
			t.Errorf("no product has copy for %s", ch)
		}
	}
}

func TestProductLookup(t *testing.T) {
	c := defaultCatalog(t)
	ids := c.ProductIDs()
	if len(ids) != len(c.Products) {
		t.Fatalf("ProductIDs: %d ids for %d products", len(ids), len(c.Products))
	}
	seen := map[string]bool{}
	for i, id := range ids {
		if seen[id] {
			t.Errorf("duplicate id %s", id)
		}
		seen[id] = true
		p, err := c.Product(id)
		if err != nil {
			t.Errorf("Product(%q): %v", id, err)
			continue
		}
		if p != &c.Products[i] {
			t.Errorf("Product(%q) is not Products[%d]", id, i)
		}
	}
	if _, err := c.Product("NO_SUCH"); !errors.Is(err, catalog.ErrUnknownProduct) {
		t.Errorf("Product(NO_SUCH) error %v, want ErrUnknownProduct", err)
	}
}

func TestParseChannel(t *testing.T) {
	for ch := catalog.Channel(0); ch < catalog.NumChannels; ch++ {
		got, err := catalog.ParseChannel(ch.String())
		if err != nil || got != ch {
			t.Errorf("ParseChannel(%q) = %v, %v; want %v", ch.String(), got, err, ch)
		}
	}
	if got := []string{catalog.AppFeed.String(), catalog.WecomAgent.String(), catalog.Batch.String()}; !cmp.Equal(got, []string{"app_feed", "wecom_agent", "batch"}) {
		t.Errorf("channel names %q", got)
	}
	if got := catalog.NumChannels.String(); got != "channel(3)" {
		t.Errorf("NumChannels.String() = %q", got)
	}
	for _, s := range []string{"", "App_Feed", "app_feed ", "sms", "channel(0)"} {
		if _, err := catalog.ParseChannel(s); !errors.Is(err, catalog.ErrUnknownChannel) {
			t.Errorf("ParseChannel(%q) error %v, want ErrUnknownChannel", s, err)
		}
	}
}

func TestParseRiskLevel(t *testing.T) {
	for r := catalog.RiskLevel(1); r <= 5; r++ {
		s := r.String()
		if s != fmt.Sprintf("R%d", r) {
			t.Errorf("RiskLevel(%d).String() = %q", r, s)
		}
		got, err := catalog.ParseRiskLevel(s)
		if err != nil || got != r {
			t.Errorf("ParseRiskLevel(%q) = %v, %v; want %v", s, got, err, r)
		}
	}
	for _, r := range []catalog.RiskLevel{0, 6, 255} {
		if s := r.String(); s != "" {
			t.Errorf("RiskLevel(%d).String() = %q, want empty", r, s)
		}
	}
	for _, s := range []string{"", "R0", "R6", "r3", "C3", "R", "R33", " R3", "３"} {
		if got, err := catalog.ParseRiskLevel(s); err == nil {
			t.Errorf("ParseRiskLevel(%q) = %v, want an error", s, got)
		}
	}
}

func TestParseRiskTolerance(t *testing.T) {
	for tol := catalog.RiskTolerance(0); tol <= 5; tol++ {
		s := tol.String()
		want := fmt.Sprintf("C%d", tol)
		if tol == 0 {
			want = ""
		}
		if s != want {
			t.Errorf("RiskTolerance(%d).String() = %q, want %q", tol, s, want)
		}
		got, err := catalog.ParseRiskTolerance(s)
		if err != nil || got != tol {
			t.Errorf("ParseRiskTolerance(%q) = %v, %v; want %v", s, got, err, tol)
		}
	}
	if s := catalog.RiskTolerance(6).String(); s != "" {
		t.Errorf("RiskTolerance(6).String() = %q, want empty", s)
	}
	for _, s := range []string{"C0", "C6", "c3", "R3", "C", "C33", " C3"} {
		if got, err := catalog.ParseRiskTolerance(s); err == nil {
			t.Errorf("ParseRiskTolerance(%q) = %v, want an error", s, got)
		}
	}
}

func TestEveryChannelHasLimits(t *testing.T) {
	for ch := catalog.Channel(0); ch < catalog.NumChannels; ch++ {
		if l := ch.Limits(); l.Title <= 0 || l.Body <= 0 || l.CTA <= 0 {
			t.Errorf("%s has no copy limits: %+v", ch, l)
		}
	}
	if l := catalog.NumChannels.Limits(); l != (catalog.CopyLimits{}) {
		t.Errorf("a channel that does not exist has limits %+v", l)
	}
	if got := catalog.ChannelList(); got != "app_feed, wecom_agent or batch" {
		t.Errorf("ChannelList() = %q", got)
	}
}

func TestLimits(t *testing.T) {
	tests := []struct {
		ch   catalog.Channel
		want catalog.CopyLimits
	}{
		{catalog.AppFeed, catalog.CopyLimits{Title: 14, Body: 40, CTA: 6}},
		{catalog.WecomAgent, catalog.CopyLimits{Title: 20, Body: 200, CTA: 8, BodyWithDisclaimer: 200}},
		{catalog.Batch, catalog.CopyLimits{Title: 14, Body: 70, CTA: 6, BodyWithDisclaimer: 70}},
	}
	for _, tc := range tests {
		t.Run(tc.ch.String(), func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.ch.Limits()); diff != "" {
				t.Errorf("Limits (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWindowContains(t *testing.T) {
	from := time.Date(2026, 10, 1, 0, 0, 0, 0, chinaTime)
	until := time.Date(2027, 3, 1, 0, 0, 0, 0, chinaTime)
	tests := []struct {
		name string
		w    catalog.Window
		t    time.Time
		want bool
	}{
		{"open", catalog.Window{}, from, true},
		{"before from", catalog.Window{From: from}, from.Add(-time.Nanosecond), false},
		{"at from", catalog.Window{From: from}, from, true},
		{"before until", catalog.Window{Until: until}, until.Add(-time.Nanosecond), true},
		{"at until", catalog.Window{Until: until}, until, false},
		{"inside", catalog.Window{From: from, Until: until}, from.AddDate(0, 1, 0), true},
		{"after", catalog.Window{From: from, Until: until}, until.AddDate(0, 1, 0), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.w.Contains(tc.t); got != tc.want {
				t.Errorf("Contains(%v) = %v, want %v", tc.t, got, tc.want)
			}
		})
	}
}

func TestSignalHolds(t *testing.T) {
	nan := func() float64 { var z float64; return z / z }()
	tests := []struct {
		op   string
		v    float64
		want bool
	}{
		{">=", 10, true}, {">=", 9, false},
		{">", 11, true}, {">", 10, false},
		{"<=", 10, true}, {"<=", 11, false},
		{"<", 9, true}, {"<", 10, false},
		{"==", 10, true}, {"==", 9, false},
		{"!=", 9, true}, {"!=", 10, false},
		{">=", nan, false}, {"!=", nan, false},
		{"~", 10, false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s%v", tc.op, tc.v), func(t *testing.T) {
			s := catalog.Signal{Op: tc.op, Value: 10}
			if got := s.Holds(tc.v); got != tc.want {
				t.Errorf("Holds(%v) = %v, want %v", tc.v, got, tc.want)
			}
		})
	}
}

func TestLeverAndContextWeight(t *testing.T) {
	c := defaultCatalog(t)
	pension := mustProduct(t, c, "PENSION_ACCOUNT")
	deposit := mustProduct(t, c, "TD_3M")
	tests := []struct {
		name string
		p    *catalog.Product
		t    time.Time
		want float64
	}{
		{"before the season", pension, time.Date(2026, 10, 31, 23, 59, 0, 0, chinaTime), 1},
		{"first day, China time", pension, time.Date(2026, 11, 1, 0, 0, 0, 0, chinaTime), 1.5},
		{"in season", pension, time.Date(2026, 12, 15, 0, 0, 0, 0, chinaTime), 1.5},
		{"season over", pension, time.Date(2027, 1, 1, 0, 0, 0, 0, chinaTime), 1},
		{"no lever", deposit, time.Date(2026, 12, 15, 0, 0, 0, 0, chinaTime), 1},
	}
	a := c.DefaultArbitration()
	// app_feed weighs pension and deposit 1: the factor is value × lever.
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := a.Factor(tc.p, catalog.AppFeed, tc.t) / tc.p.BusinessValue; math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("lever = %v, want %v", got, tc.want)
			}
		})
	}
	offSeason := time.Date(2027, 2, 1, 0, 0, 0, 0, chinaTime)
	if got := a.Factor(pension, catalog.WecomAgent, offSeason) / pension.BusinessValue; math.Abs(got-1.3) > 1e-12 {
		t.Errorf("context weight (wecom_agent, pension) = %v, want 1.3", got)
	}
	if got := a.Factor(deposit, catalog.AppFeed, offSeason) / deposit.BusinessValue; got != 1.0 {
		t.Errorf("context weight (app_feed, deposit) = %v, want 1", got)
	}
}

func TestFeatureRefs(t *testing.T) {
	c := defaultCatalog(t)
	refs := c.FeatureRefs()
	held, signals := 0, 0
	for i := range c.Products {
		if c.Products[i].HeldWhen != "" {
			held++
		}
		signals += len(c.Products[i].Rules.Signals)
	}
	if len(refs) != held+signals+len(c.FeatureReasons) {
		t.Fatalf("%d refs, want %d held_when + %d signals + %d feature reasons", len(refs), held, signals, len(c.FeatureReasons))
	}
	want := catalog.FeatureRef{Product: "TD_3M", Field: "rules.signals[1].feature", Feature: "age"}
	found := false
	for _, r := range refs {
		found = found || r == want
	}
	if !found {
		t.Errorf("FeatureRefs lacks %+v", want)
	}

	if err := c.CheckFeatures(func(string) bool { return true }); err != nil {
		t.Errorf("CheckFeatures(all known): %v", err)
	}
	err := c.CheckFeatures(func(name string) bool { return name != "age" })
	if !errors.Is(err, catalog.ErrInvalid) {
		t.Fatalf("CheckFeatures(age unknown) = %v, want ErrInvalid", err)
	}
	ages := 0
	for _, r := range refs {
		if r.Feature == "age" {
			ages++
		}
	}
	if got := problemCount(t, err); got != ages {
		t.Errorf("%d problems, want one per reference to age (%d):\n%v", got, ages, err)
	}
}

func TestExclusionString(t *testing.T) {
	seen := map[string]bool{}
	for e := catalog.Exclusion(0); e < catalog.NumExclusions; e++ {
		s := e.String()
		if s == "" || s == "unknown" || seen[s] {
			t.Errorf("Exclusion(%d).String() = %q: empty, unknown or repeated", e, s)
		}
		seen[s] = true
	}
	if got := catalog.ExclusionNone.String(); got != "none" {
		t.Errorf("ExclusionNone = %q", got)
	}
	if got := catalog.NumExclusions.String(); got != "unknown" {
		t.Errorf("NumExclusions = %q", got)
	}
}

// TestRegionEncoding pins the order of the region codes: the feature store
// keeps a region as its index, so a reordering would silently move every
// stored customer to another province.
func TestRegionEncoding(t *testing.T) {
	want := "BJ TJ HE SX NM LN JL HL SH JS ZJ AH FJ JX SD HA HB HN GD GX HI CQ SC GZ YN XZ SN GS QH NX XJ"
	rs := catalog.Regions()
	if got := strings.Join(rs[:], " "); got != want {
		t.Fatalf("regions in encoding order:\n got %s\nwant %s", got, want)
	}
	rs[0] = "XX" // a copy: the caller cannot change the encoding
	if catalog.RegionCode(1) != "BJ" || catalog.RegionIndex("GD") != 19 || catalog.RegionCode(0) != "" || catalog.RegionCode(catalog.NumRegions+1) != "" {
		t.Error("RegionCode and RegionIndex disagree with the encoding")
	}
}

func TestRegionIndex(t *testing.T) {
	for i, r := range catalog.Regions() {
		if got := catalog.RegionIndex(r); got != i+1 {
			t.Errorf("RegionIndex(%q) = %d, want %d", r, got, i+1)
		}
		if utf8.RuneCountInString(r) != 2 {
			t.Errorf("region code %q", r)
		}
	}
	for _, s := range []string{"", "XX", "gd", "GD "} {
		if got := catalog.RegionIndex(s); got != 0 {
			t.Errorf("RegionIndex(%q) = %d, want 0", s, got)
		}
	}
}
