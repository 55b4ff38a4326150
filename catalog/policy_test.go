package catalog_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/directops/nbp/catalog"
)

// now is the decision time of the policy tests: a Friday noon in Beijing.
var now = time.Date(2026, 11, 27, 12, 0, 0, 0, chinaTime)

// goodCustomer may have every product of the default catalog sold in
// Guangdong to a 40-year-old, C5 included.
func goodCustomer(c *catalog.Catalog) catalog.Customer {
	return catalog.Customer{
		Known:            true,
		Age:              40,
		Region:           "GD",
		KYC:              3,
		RiskTolerance:    5,
		AssessedUntil:    now.AddDate(0, 6, 0),
		MarketingConsent: true,
		Held:             make([]bool, len(c.Products)),
	}
}

func TestCheck(t *testing.T) {
	c := defaultCatalog(t)
	held := func(id string) func(*catalog.Customer) {
		return func(cu *catalog.Customer) { cu.Held[mustProduct(t, c, id).Index] = true }
	}
	tests := []struct {
		name    string
		product string
		ch      catalog.Channel
		at      time.Time // now when zero
		edit    func(*catalog.Customer)
		want    catalog.Exclusion
	}{
		{name: "good customer", product: "TD_3M", ch: catalog.Batch, want: catalog.ExclusionNone},
		{name: "good customer, R5 fund", product: "FUND_TECH", ch: catalog.AppFeed, want: catalog.ExclusionNone},

		// Channel.
		{name: "not offered on the channel", product: "WM_EQUITY_MIX", ch: catalog.Batch, want: catalog.ExclusionChannel},
		{name: "no such channel", product: "TD_3M", ch: catalog.NumChannels, want: catalog.ExclusionChannel},

		// Sale window, in China time.
		{name: "sale window closed", product: "LCD_2026_01", ch: catalog.AppFeed, want: catalog.ExclusionSaleWindow},
		{name: "sale window open", product: "LCD_2026_02", ch: catalog.AppFeed, want: catalog.ExclusionNone},
		{name: "before the window opens", product: "INS_HUIMINBAO", ch: catalog.AppFeed,
			at: time.Date(2026, 9, 30, 23, 59, 59, 0, chinaTime), want: catalog.ExclusionSaleWindow},
		{name: "the window's first second", product: "INS_HUIMINBAO", ch: catalog.AppFeed,
			at: time.Date(2026, 10, 1, 0, 0, 0, 0, chinaTime), want: catalog.ExclusionNone},
		{name: "the window's end", product: "INS_HUIMINBAO", ch: catalog.AppFeed,
			at: time.Date(2027, 3, 1, 0, 0, 0, 0, chinaTime), want: catalog.ExclusionSaleWindow},

		// Age.
		{name: "too old", product: "CC_YOUTH", ch: catalog.AppFeed, edit: func(cu *catalog.Customer) { cu.Age = 31 }, want: catalog.ExclusionAge},
		{name: "oldest allowed", product: "CC_YOUTH", ch: catalog.AppFeed, edit: func(cu *catalog.Customer) { cu.Age = 30 }, want: catalog.ExclusionNone},
		{name: "too young", product: "TD_3M", ch: catalog.AppFeed, edit: func(cu *catalog.Customer) { cu.Age = 17 }, want: catalog.ExclusionAge},
		{name: "age missing", product: "TD_3M", ch: catalog.AppFeed, edit: func(cu *catalog.Customer) { cu.Age = math.NaN() }, want: catalog.ExclusionAge},

		// Region.
		{name: "region not served", product: "INS_HUIMINBAO", ch: catalog.AppFeed, edit: func(cu *catalog.Customer) { cu.Region = "BJ" }, want: catalog.ExclusionRegion},
		{name: "region missing", product: "INS_HUIMINBAO", ch: catalog.AppFeed, edit: func(cu *catalog.Customer) { cu.Region = "" }, want: catalog.ExclusionRegion},
		{name: "region missing, sold everywhere", product: "TD_3M", ch: catalog.AppFeed, edit: func(cu *catalog.Customer) { cu.Region = "" }, want: catalog.ExclusionNone},

		// KYC.
		{name: "kyc too low", product: "LCD_2026_02", ch: catalog.AppFeed, edit: func(cu *catalog.Customer) { cu.KYC = 2 }, want: catalog.ExclusionKYC},
		{name: "kyc missing", product: "TD_3M", ch: catalog.AppFeed, edit: func(cu *catalog.Customer) { cu.KYC = 0 }, want: catalog.ExclusionKYC},

		// Held.
		{name: "already held", product: "CC_YOUTH", ch: catalog.AppFeed, edit: func(cu *catalog.Customer) {
			cu.Age = 25
			held("CC_YOUTH")(cu)
		}, want: catalog.ExclusionHeld},
		{name: "another product held", product: "TD_3M", ch: catalog.AppFeed, edit: held("CC_YOUTH"), want: catalog.ExclusionNone},
		{name: "short held list", product: "DCEP_WALLET", ch: catalog.AppFeed, edit: func(cu *catalog.Customer) { cu.Held = nil }, want: catalog.ExclusionNone},

		// Suitability.
		{name: "never assessed", product: "WM_CASH", ch: catalog.AppFeed, edit: func(cu *catalog.Customer) {
			cu.RiskTolerance, cu.AssessedUntil = 0, time.Time{}
		}, want: catalog.ExclusionUnassessed},
		{name: "tolerance without expiry", product: "WM_CASH", ch: catalog.AppFeed, edit: func(cu *catalog.Customer) { cu.AssessedUntil = time.Time{} }, want: catalog.ExclusionUnassessed},
		{name: "expiry without tolerance", product: "WM_CASH", ch: catalog.AppFeed, edit: func(cu *catalog.Customer) { cu.RiskTolerance = 0 }, want: catalog.ExclusionUnassessed},
		{name: "assessment expired", product: "WM_CASH", ch: catalog.AppFeed, edit: func(cu *catalog.Customer) { cu.AssessedUntil = now.AddDate(0, 0, -1) }, want: catalog.ExclusionUnassessed},
		{name: "assessment expires now", product: "WM_CASH", ch: catalog.AppFeed, edit: func(cu *catalog.Customer) { cu.AssessedUntil = now }, want: catalog.ExclusionUnassessed},
		{name: "assessment valid a moment longer", product: "WM_CASH", ch: catalog.AppFeed, edit: func(cu *catalog.Customer) { cu.AssessedUntil = now.Add(time.Nanosecond) }, want: catalog.ExclusionNone},
		{name: "expired assessment, deposit", product: "TD_3M", ch: catalog.AppFeed, edit: func(cu *catalog.Customer) { cu.AssessedUntil = now.AddDate(-1, 0, 0) }, want: catalog.ExclusionNone},
		{name: "R5 for C4", product: "FUND_TECH", ch: catalog.AppFeed, edit: func(cu *catalog.Customer) { cu.RiskTolerance = 4 }, want: catalog.ExclusionRiskTooHigh},
		{name: "R3 for C2", product: "FUND_BALANCED", ch: catalog.AppFeed, edit: func(cu *catalog.Customer) { cu.RiskTolerance = 2 }, want: catalog.ExclusionRiskTooHigh},
		{name: "R3 for C3", product: "FUND_BALANCED", ch: catalog.AppFeed, edit: func(cu *catalog.Customer) { cu.RiskTolerance = 3 }, want: catalog.ExclusionNone},
		{name: "R1 for C1", product: "WM_CASH", ch: catalog.AppFeed, edit: func(cu *catalog.Customer) { cu.RiskTolerance = 1 }, want: catalog.ExclusionNone},

		// Senior customers: R3 at most from 65.
		{name: "R4 at 65", product: "FUND_INDEX_DCA", ch: catalog.AppFeed, edit: func(cu *catalog.Customer) { cu.Age = 65 }, want: catalog.ExclusionSeniorCap},
		{name: "R4 at 64", product: "FUND_INDEX_DCA", ch: catalog.AppFeed, edit: func(cu *catalog.Customer) { cu.Age = 64 }, want: catalog.ExclusionNone},
		{name: "R5 at 66", product: "FUND_TECH", ch: catalog.AppFeed, edit: func(cu *catalog.Customer) { cu.Age = 66 }, want: catalog.ExclusionSeniorCap},
		{name: "R3 at 80", product: "FUND_BALANCED", ch: catalog.AppFeed, edit: func(cu *catalog.Customer) { cu.Age = 80 }, want: catalog.ExclusionNone},
		{name: "too high before the senior cap", product: "FUND_INDEX_DCA", ch: catalog.AppFeed, edit: func(cu *catalog.Customer) {
			cu.Age, cu.RiskTolerance = 70, 3
		}, want: catalog.ExclusionRiskTooHigh},

		// Unknown customers: only what holds for every customer.
		{name: "unknown: plain deposit", product: "TD_3M", ch: catalog.AppFeed, edit: unknown, want: catalog.ExclusionNone},
		{name: "unknown: wallet", product: "DCEP_WALLET", ch: catalog.AppFeed, edit: unknown, want: catalog.ExclusionNone},
		{name: "unknown: R1 wealth", product: "WM_CASH", ch: catalog.AppFeed, edit: unknown, want: catalog.ExclusionUnknownRisk},
		{name: "unknown: risk before consent", product: "WM_CASH", ch: catalog.WecomAgent, edit: unknown, want: catalog.ExclusionUnknownRisk},
		{name: "unknown: channel needs consent", product: "TD_3M", ch: catalog.WecomAgent, edit: unknown, want: catalog.ExclusionNoConsent},
		{name: "unknown: insurance with an age cap", product: "INS_ACCIDENT", ch: catalog.AppFeed, edit: unknown, want: catalog.ExclusionAge},
		{name: "unknown: age range", product: "CC_PLATINUM", ch: catalog.AppFeed, edit: unknown, want: catalog.ExclusionAge},
		{name: "unknown: regional", product: "INS_HUIMINBAO", ch: catalog.AppFeed, edit: unknown, want: catalog.ExclusionRegion},
		{name: "unknown: kyc 2", product: "NOTICE_7D", ch: catalog.AppFeed, edit: unknown, want: catalog.ExclusionKYC},
		{name: "unknown: still the channel", product: "WM_EQUITY_MIX", ch: catalog.Batch, edit: unknown, want: catalog.ExclusionChannel},

		// Consent.
		{name: "product needs consent", product: "CC_PLATINUM", ch: catalog.AppFeed, edit: noConsent, want: catalog.ExclusionNoConsent},
		{name: "channel needs consent", product: "TD_3M", ch: catalog.WecomAgent, edit: noConsent, want: catalog.ExclusionNoConsent},
		{name: "batch needs consent", product: "TD_3M", ch: catalog.Batch, edit: noConsent, want: catalog.ExclusionNoConsent},
		{name: "no consent needed", product: "TD_3M", ch: catalog.AppFeed, edit: noConsent, want: catalog.ExclusionNone},
		{name: "suitability before consent", product: "FUND_TECH", ch: catalog.WecomAgent, edit: func(cu *catalog.Customer) {
			cu.MarketingConsent, cu.RiskTolerance = false, 4
		}, want: catalog.ExclusionRiskTooHigh},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cu := goodCustomer(c)
			if tc.edit != nil {
				tc.edit(&cu)
			}
			at := now
			if !tc.at.IsZero() {
				at = tc.at
			}
			if got := c.Check(mustProduct(t, c, tc.product), &cu, tc.ch, at); got != tc.want {
				t.Errorf("Check(%s, %s) = %v, want %v", tc.product, tc.ch, got, tc.want)
			}
		})
	}
}

func unknown(cu *catalog.Customer) {
	*cu = catalog.Customer{Age: math.NaN()}
}

func noConsent(cu *catalog.Customer) { cu.MarketingConsent = false }

func TestSuitable(t *testing.T) {
	c := defaultCatalog(t)
	// Suitable ignores the channel, the sale window and consent.
	tests := []struct {
		name    string
		product string
		edit    func(*catalog.Customer)
		want    catalog.Exclusion
	}{
		{"not on batch, still suitable", "WM_EQUITY_MIX", nil, catalog.ExclusionNone},
		{"sale window closed, still suitable", "LCD_2026_01", nil, catalog.ExclusionNone},
		{"no consent, still suitable", "CC_PLATINUM", noConsent, catalog.ExclusionNone},
		{"age", "LOAN_CONSUMER", func(cu *catalog.Customer) { cu.Age = 56 }, catalog.ExclusionAge},
		{"region", "INS_HUIMINBAO", func(cu *catalog.Customer) { cu.Region = "XJ" }, catalog.ExclusionRegion},
		{"kyc", "CC_PLATINUM", func(cu *catalog.Customer) { cu.KYC = 1 }, catalog.ExclusionKYC},
		{"held", "GOLD_ACCUM", func(cu *catalog.Customer) { cu.Held[mustProduct(t, c, "GOLD_ACCUM").Index] = true }, catalog.ExclusionHeld},
		{"unassessed", "FUND_BOND", func(cu *catalog.Customer) { cu.RiskTolerance = 0 }, catalog.ExclusionUnassessed},
		{"risk too high", "WM_FIXED_PLUS", func(cu *catalog.Customer) { cu.RiskTolerance = 2 }, catalog.ExclusionRiskTooHigh},
		{"senior cap", "WM_EQUITY_MIX", func(cu *catalog.Customer) { cu.Age = 65 }, catalog.ExclusionSeniorCap},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cu := goodCustomer(c)
			if tc.edit != nil {
				tc.edit(&cu)
			}
			if got := c.Suitable(mustProduct(t, c, tc.product), &cu, now); got != tc.want {
				t.Errorf("Suitable(%s) = %v, want %v", tc.product, got, tc.want)
			}
		})
	}
}

// randomCustomer draws a customer, with the edge cases (boundary ages,
// missing values, expiries around now) drawn often.
func randomCustomer(r *rand.Rand, c *catalog.Catalog, at time.Time) catalog.Customer {
	ages := []float64{math.NaN(), 17, 18, 22, 25, 30, 31, 35, 55, 56, 60, 61, 64, 64.5, 65, 66, 70, 71, 90, math.Inf(1), -1}
	cu := catalog.Customer{Known: r.IntN(10) != 0}
	if r.IntN(2) == 0 {
		cu.Age = ages[r.IntN(len(ages))]
	} else {
		cu.Age = 10 + 90*r.Float64()
	}
	switch u := r.IntN(10); {
	case u == 0:
		cu.Region = ""
	case u == 1:
		cu.Region = "XX"
	case u < 5:
		cu.Region = []string{"GD", "ZJ", "JS", "SH"}[r.IntN(4)]
	default:
		cu.Region = catalog.Regions()[r.IntN(catalog.NumRegions)]
	}
	cu.KYC = r.IntN(5) // 0 (missing) .. 4
	cu.RiskTolerance = catalog.RiskTolerance(r.IntN(7))
	switch r.IntN(4) {
	case 0: // never assessed
	case 1: // around now
		cu.AssessedUntil = at.Add(time.Duration(r.IntN(5)-2) * time.Nanosecond)
	default:
		cu.AssessedUntil = at.Add(time.Duration(r.IntN(2*365*24)-365*24) * time.Hour)
	}
	cu.MarketingConsent = r.IntN(3) != 0
	cu.Held = make([]bool, r.IntN(len(c.Products)+1))
	for i := range cu.Held {
		cu.Held[i] = r.IntN(8) == 0
	}
	if r.IntN(2) == 0 {
		// A contact history: impressions, pushes, suppressions, conversions.
		h := &catalog.ContactHistory{SuppressedUntil: map[int]time.Time{}, ConvertedAt: map[int]time.Time{}}
		today := catalog.Day(at)
		for k := r.IntN(12); k > 0; k-- {
			h.Counts = append(h.Counts, catalog.DayCount{
				Product: r.IntN(len(c.Products)+1) - 1, Channel: catalog.Channel(r.IntN(int(catalog.NumChannels))),
				Day: today - r.IntN(20), N: 1 + r.IntN(3),
			})
		}
		for k := r.IntN(3); k > 0; k-- {
			h.SuppressedUntil[r.IntN(len(c.Products))] = at.Add(time.Duration(r.IntN(60*24)-30*24) * time.Hour)
		}
		for k := r.IntN(3); k > 0; k-- {
			h.ConvertedAt[r.IntN(len(c.Products))] = at.Add(-time.Duration(r.IntN(200*24)) * time.Hour)
		}
		cu.Contact = h
	}
	return cu
}

// TestCheckProperties checks, over many random customers, the guarantees
// the regulator holds the bank to, whatever else the policies do.
func TestCheckProperties(t *testing.T) {
	c := defaultCatalog(t)
	r := rand.New(rand.NewPCG(2026, 11))
	times := []time.Time{
		now,
		time.Date(2026, 3, 15, 9, 0, 0, 0, chinaTime),
		time.Date(2026, 10, 1, 0, 0, 0, 0, chinaTime),
		time.Date(2027, 2, 28, 23, 59, 59, 0, chinaTime),
		time.Date(2031, 1, 1, 0, 0, 0, 0, chinaTime),
	}
	var seen [catalog.NumExclusions]int
	offeredInvestment, offeredConsent := 0, 0
	const customers = 10_000
	for n := 0; n < customers; n++ {
		// Customers are drawn around now (expiries to the nanosecond) and
		// judged at every time.
		cu := randomCustomer(r, c, now)
		for i, at := range times {
			if i > 0 && n%2 == 0 {
				at = at.Add(time.Duration(r.Int64N(int64(90 * 24 * time.Hour))))
			}
			checkAll(t, c, &cu, n, at, &seen, &offeredInvestment, &offeredConsent)
		}
	}
	// The generator must reach every outcome, or the properties above
	// were checked on nothing.
	for e := catalog.Exclusion(0); e < catalog.NumExclusions; e++ {
		if seen[e] == 0 {
			t.Errorf("no random customer was excluded for %v", e)
		}
	}
	if offeredInvestment < 1000 || offeredConsent < 1000 {
		t.Errorf("only %d investment and %d consent-requiring offers: the generator is too strict", offeredInvestment, offeredConsent)
	}
	t.Logf("exclusions: %v; %d investment and %d consent-requiring offers", seen, offeredInvestment, offeredConsent)
}

// checkAll checks every product on every channel for one customer at one
// time, counting what it saw.
func checkAll(t *testing.T, c *catalog.Catalog, cu *catalog.Customer, n int, at time.Time, seen *[catalog.NumExclusions]int, offeredInvestment, offeredConsent *int) {
	t.Helper()
	for i := range c.Products {
		p := &c.Products[i]
		for ch := catalog.Channel(0); ch < catalog.NumChannels; ch++ {
			ex := c.Check(p, cu, ch, at)
			seen[ex]++
			if ex != catalog.ExclusionNone {
				continue
			}
			where := func() string { return fmt.Sprintf("customer %d (%+v), %s on %s at %v", n, *cu, p.ID, ch, at) }
			if !p.HasCopy(ch) || !p.SaleWindow.Contains(at) {
				t.Fatalf("%s: offered without copy or outside the sale window", where())
			}
			if p.Risk > 0 {
				*offeredInvestment++
				switch {
				case !cu.Known:
					t.Fatalf("%s: investment product offered to an unknown customer", where())
				case uint8(cu.RiskTolerance) < uint8(p.Risk):
					t.Fatalf("%s: %s above tolerance %s", where(), p.Risk, cu.RiskTolerance)
				case cu.AssessedUntil.IsZero() || !at.Before(cu.AssessedUntil):
					t.Fatalf("%s: assessment not valid", where())
				case cu.Age >= 65 && p.Risk > 3:
					t.Fatalf("%s: %s to a customer aged %v", where(), p.Risk, cu.Age)
				}
			}
			if p.RequiresConsent || c.Channels[ch].RequiresConsent {
				*offeredConsent++
				if !cu.MarketingConsent {
					t.Fatalf("%s: offered without marketing consent", where())
				}
			}
			if cu.Known {
				if s := c.Suitable(p, cu, at); s != catalog.ExclusionNone {
					t.Fatalf("%s: Check passed what Suitable excludes (%v)", where(), s)
				}
			}
		}
	}
}

func TestCheckUnknownCustomerConsent(t *testing.T) {
	// No default product needs consent on the app feed and passes for an
	// unknown customer otherwise; sell Huiminbao everywhere to make one.
	c, err := catalog.Parse(mutate(t, func(d map[string]any) {
		delete(product(d, "INS_HUIMINBAO")["eligibility"].(map[string]any), "regions")
	}))
	if err != nil {
		t.Fatal(err)
	}
	p := mustProduct(t, c, "INS_HUIMINBAO")
	if !p.RequiresConsent || c.Channels[catalog.AppFeed].RequiresConsent {
		t.Fatal("the test needs a product that requires consent on a channel that does not")
	}
	cu := catalog.Customer{Age: math.NaN()}
	if got := c.Check(p, &cu, catalog.AppFeed, now); got != catalog.ExclusionNoConsent {
		t.Errorf("unknown customer: %v, want %v", got, catalog.ExclusionNoConsent)
	}
	known := goodCustomer(c)
	if got := c.Check(p, &known, catalog.AppFeed, now); got != catalog.ExclusionNone {
		t.Errorf("known customer with consent: %v, want none", got)
	}
}
