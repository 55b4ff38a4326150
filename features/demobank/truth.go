package demobank

import (
	"math"
	"math/rand/v2"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
)

// effectScale sharpens the features' effects on the truth.
const effectScale = 1.8

// Truth is the hidden ground-truth probability that the customer takes the
// product up within the outcome window, if it is offered and the customer
// may have it. It mixes thresholds, interactions and a latent factor no
// feature shows: a good model gets close to it, never onto it.
func Truth(id string, v *features.Vector, p *catalog.Product) float64 {
	g := func(f features.Field) float64 {
		x := v.Get(f)
		if x != x {
			return 0
		}
		return x
	}
	lg := func(f features.Field) float64 { return math.Log10(g(f) + 1) }
	has := func(f features.Field) float64 { return g(f) }
	step := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	age := g(features.Age)
	la, ld := lg(features.AUM), lg(features.DemandBalance)
	idle := g(features.DemandBalance) / (g(features.AUM) + 1000)
	sal := g(features.SalaryInflowMonthly) / 10000
	spend := g(features.CardSpendMonthly) / 10000
	wv := math.Min(g(features.AppWealthViews30D), 10)
	eng := math.Min(g(features.AppLogins30D), 30)
	tol := g(features.RiskTolerance)
	overdue := step(g(features.OverdueCount12M) > 0)

	var a, e float64 // intercept and feature effects of the log-odds
	switch p.ID {
	case "TD_3M":
		a, e = -3.6, 0.6*(ld-3.5)+0.4*step(age < 35)+0.02*eng
	case "TD_1Y":
		a, e = -3.4, 0.7*(ld-3.7)+0.5*step(age > 50)+0.4*has(features.HoldsTimeDeposit)
	case "TD_3Y":
		a, e = -4.0, 0.6*(la-4)+0.9*step(age > 55)+0.4*has(features.HoldsTimeDeposit)
	case "NOTICE_7D":
		a, e = -4.4, 1.0*math.Max(ld-4.3, 0)+0.5*spend
	case "LCD_2026_01", "LCD_2026_02":
		a, e = -5.2, 1.6*math.Max(la-5.0, -1)+0.5*has(features.HoldsLargeCD)
	case "WM_CASH":
		a, e = -3.1, 1.4*idle+0.05*eng+0.4*has(features.SalaryAccount)-0.02*(age-40)
	case "WM_FIXED_90D":
		a, e = -3.6, 0.5*(ld-4)+0.25*wv+0.7*has(features.HoldsWealth)
	case "WM_FIXED_PLUS":
		a, e = -4.1, 0.5*(la-4.5)+0.2*wv+0.8*has(features.HoldsWealth)+0.4*step(tol >= 3)
	case "WM_EQUITY_MIX":
		a, e = -5.0, 0.6*(la-5)+0.9*has(features.HoldsFund)+0.15*wv+0.5*step(tol >= 4)
	case "WM_PENSION":
		a, e = -4.3, -0.003*(age-52)*(age-52)+0.3*sal+0.5*has(features.HoldsWealth)
	case "FUND_BOND":
		a, e = -4.3, 0.4*(la-4.5)+0.2*wv+0.6*has(features.HoldsWealth)+0.4*has(features.HoldsFund)
	case "FUND_BALANCED":
		a, e = -4.7, 1.0*has(features.HoldsFund)+0.2*wv+0.3*(la-4.5)+0.3*step(tol >= 3)
	case "FUND_INDEX_DCA":
		a, e = -4.5, 0.6*has(features.SalaryAccount)+0.3*sal-0.03*(age-35)+0.7*has(features.HoldsFund)+0.1*wv
	case "FUND_TECH":
		a, e = -5.6, 1.1*has(features.HoldsFund)+0.18*wv-0.04*(age-30)+0.6*step(tol == 5)
	case "CC_YOUTH":
		a, e = -3.7, 2.0*math.Min(spend, 0.6)+0.6*has(features.SalaryAccount)+0.03*eng-2.5*overdue
	case "CC_PLATINUM":
		a, e = -4.9, 1.0*math.Min(spend, 2)+0.4*(la-4.5)-2.5*overdue
	case "LOAN_CONSUMER":
		a, e = -4.6, 0.9*has(features.SalaryAccount)+0.4*math.Min(spend, 2)+0.4*has(features.HasMortgage)-3*overdue-0.3*(la-4)
	case "INS_ACCIDENT":
		a, e = -4.3, 0.7*has(features.HasMortgage)+0.2*sal+0.4*step(age >= 30 && age <= 50)
	case "INS_MEDICAL":
		a, e = -4.5, 0.5*has(features.HasMortgage)+0.5*step(age >= 30 && age < 50)+0.3*sal+0.4*has(features.WecomAdded)
	case "INS_HUIMINBAO":
		a, e = -3.8, 0.025*(age-40)+0.6*(1-has(features.HoldsInsurance))+0.3*has(features.WecomAdded)
	case "PENSION_ACCOUNT":
		a, e = -4.1, 1.0*step(sal > 1.0)+0.6*step(sal > 2.0)+0.03*math.Min(math.Max(age-35, -10), 20)+0.4*has(features.SalaryAccount)
	case "GOLD_ACCUM":
		a, e = -4.5, 0.3*(la-4.5)+0.15*wv+0.3*step(age > 45)
	case "DCEP_WALLET":
		a, e = -3.7, 0.06*eng-0.02*(age-35)+0.4*step(g(features.CityTier) <= 2)
	default:
		a = math.Log(p.Prior / (1 - p.Prior))
	}
	// Shared effects: recent activity, an agent on WeCom; the features speak
	// loudly, and the latent factor keeps a part of the truth hidden.
	z := a + effectScale*(e-0.01*math.Min(g(features.DaysSinceLastLogin), 90)+0.2*has(features.WecomAdded)) + latent(id)
	return 1 / (1 + math.Exp(-z))
}

// Outcomes draws which products customer i took up in the outcome window:
// each product the customer may have (eligible, not held, suitable) is taken
// up with its Truth probability. It returns the product indexes taken up.
func (b *Bank) Outcomes(i int, id string, v *features.Vector, dst []int) []int {
	r := rand.New(rand.NewPCG(b.seed^0x0c0ffee, uint64(i)))
	held := make([]bool, len(b.cat.Products))
	cu := b.prof.Customer(v, held)
	for k := range b.cat.Products {
		p := &b.cat.Products[k]
		u := r.Float64()
		if b.cat.Suitable(p, &cu, b.asOf) != catalog.ExclusionNone {
			continue
		}
		if u < Truth(id, v, p) {
			dst = append(dst, k)
		}
	}
	return dst
}

// Available reports, per product, whether customer v may have it (the
// population a propensity is learnt and judged on).
func (b *Bank) Available(v *features.Vector, dst []bool) []bool {
	held := make([]bool, len(b.cat.Products))
	cu := b.prof.Customer(v, held)
	dst = dst[:0]
	for k := range b.cat.Products {
		dst = append(dst, b.cat.Suitable(&b.cat.Products[k], &cu, b.asOf) == catalog.ExclusionNone)
	}
	return dst
}
