// Package demobank generates a demo retail bank: the long tail of a Chinese
// bank's customers, with plausible, correlated features, and the products
// they took up, drawn from a hidden ground-truth propensity so that a model
// can be trained on the outcomes and judged against the truth.
//
// Generation is deterministic: customer i of a given seed is always the
// same, whatever the number of customers generated, so any slice of a bank
// of millions can be made on its own.
package demobank

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"time"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
)

// Bank generates customers.
type Bank struct {
	seed uint64
	asOf time.Time
	cat  *catalog.Catalog
	prof *features.Profile
}

// New returns the bank of the given seed as of a date (the export date:
// assessments expire relative to it).
func New(seed uint64, asOf time.Time, cat *catalog.Catalog) (*Bank, error) {
	prof, err := features.NewProfile(cat)
	if err != nil {
		return nil, err
	}
	return &Bank{seed: seed, asOf: asOf, cat: cat, prof: prof}, nil
}

// ID returns the id of customer i.
func ID(i int) string { return fmt.Sprintf("C%09d", i) }

// province codes with rough weights of population.
var provinces = []struct {
	code string
	w    float64
	tier float64 // mean city tier
}{
	{"GD", 12.6, 2.0}, {"SD", 10.2, 2.8}, {"HA", 9.9, 3.2}, {"JS", 8.5, 2.2}, {"SC", 8.4, 2.9},
	{"HE", 7.5, 3.1}, {"HN", 6.6, 3.0}, {"ZJ", 6.5, 2.2}, {"AH", 6.1, 3.1}, {"HB", 5.8, 2.7},
	{"GX", 5.0, 3.3}, {"YN", 4.7, 3.3}, {"JX", 4.5, 3.2}, {"LN", 4.3, 2.7}, {"FJ", 4.2, 2.6},
	{"SN", 4.0, 2.8}, {"GZ", 3.9, 3.4}, {"SX", 3.5, 3.1}, {"CQ", 3.2, 2.3}, {"HL", 3.1, 3.0},
	{"XJ", 2.6, 3.3}, {"GS", 2.5, 3.4}, {"SH", 2.5, 1.0}, {"NM", 2.4, 3.1}, {"JL", 2.4, 3.0},
	{"BJ", 2.2, 1.0}, {"TJ", 1.4, 1.8}, {"HI", 1.0, 3.0}, {"NX", 0.7, 3.2}, {"QH", 0.6, 3.4},
	{"XZ", 0.4, 3.6},
}

var surnames = []string{
	"王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡",
	"郭", "何", "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹",
	"欧阳", "司马",
}

// Customer returns customer i: its id and feature vector.
func (b *Bank) Customer(i int) (string, features.Vector) {
	r := rand.New(rand.NewPCG(b.seed, uint64(i)))
	v := features.Missing()
	v.UpdatedAt = b.asOf
	set := func(f features.Field, x float64) { v.Values[f] = float32(x) }
	flag := func(f features.Field, p float64) bool {
		on := r.Float64() < p
		if on {
			set(f, 1)
		} else {
			set(f, 0)
		}
		return on
	}
	clamp := func(x, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, x)) }
	logn := func(median, sigma float64) float64 { return median * math.Exp(sigma*r.NormFloat64()) }
	round := func(x float64) float64 { return math.Round(x*100) / 100 }

	// Who: the long tail skews young and to smaller cities.
	age := clamp(math.Round(38+14*r.NormFloat64()+6*r.ExpFloat64()-4), 18, 88)
	set(features.Age, age)
	prov := provinces[pickWeighted(r, len(provinces), func(k int) float64 { return provinces[k].w })]
	set(features.Region, float64(catalog.RegionIndex(prov.code)))
	tier := clamp(math.Round(prov.tier+0.9*r.NormFloat64()), 1, 4)
	set(features.CityTier, tier)
	tenure := math.Round(r.Float64() * math.Min(age-17, 25) * 12)
	set(features.TenureMonths, tenure)
	kyc := 3.0
	switch u := r.Float64(); {
	case u < 0.28-0.004*math.Min(tenure, 60):
		kyc = 1
	case u < 0.45:
		kyc = 2
	}
	set(features.KYCLevel, kyc)

	// Income and assets, correlated through a latent wealth factor.
	wealth := r.NormFloat64()
	tierPay := []float64{0, 11000, 8000, 6000, 4500}[int(tier)]
	working := age >= 22 && age < 60
	salaried := working && flag(features.SalaryAccount, 0.42)
	if !working {
		set(features.SalaryAccount, 0)
	}
	salary := 0.0
	if salaried {
		salary = logn(tierPay*math.Exp(0.35*wealth), 0.35)
	} else if working && r.Float64() < 0.2 {
		salary = logn(tierPay*0.4, 0.6) // irregular transfers in
	}
	set(features.SalaryInflowMonthly, round(salary))
	ageWealth := 1 + 0.03*math.Min(math.Max(age-22, 0), 40)
	aum := logn(9000*ageWealth*math.Exp(0.9*wealth)*(1+salary/15000), 1.1)
	if r.Float64() < 0.08 {
		aum = r.Float64() * 300 // dormant accounts
	}
	set(features.AUM, round(aum))

	tol := 0.0 // risk tolerance, 0 when never assessed
	if r.Float64() < 0.68 {
		base := 2.9 + 0.5*wealth - 0.02*(age-40) + 0.6*r.NormFloat64()
		tol = clamp(math.Round(base), 1, 5)
	}
	set(features.RiskTolerance, tol)
	if tol > 0 {
		// Assessments last a year; about a fifth have lapsed.
		days := math.Round(-70 + 365*r.Float64())
		until := b.asOf.AddDate(0, 0, int(days))
		set(features.RiskAssessedUntil, float64(until.Unix()/86400))
	}

	// Split assets by appetite.
	invest := 0.0
	if tol > 0 && r.Float64() < 0.3+0.1*tol {
		invest = clamp(0.08*tol+0.15*r.NormFloat64()+0.05*wealth, 0, 0.8)
	}
	timeDep := clamp(0.25+0.005*(age-40)+0.15*r.NormFloat64(), 0, 0.85)
	if timeDep+invest > 0.95 {
		timeDep = 0.95 - invest
	}
	demand := aum * (1 - timeDep - invest)
	set(features.DemandBalance, round(demand))
	set(features.DemandBalanceAvg3M, round(demand*math.Exp(0.25*r.NormFloat64())))
	wealthShare := invest * clamp(0.6-0.1*(tol-2)+0.2*r.NormFloat64(), 0, 1)
	set(features.TimeDepositBalance, round(aum*timeDep))
	set(features.WealthBalance, round(aum*wealthShare))
	set(features.FundBalance, round(aum*(invest-wealthShare)))
	set(features.HoldsTimeDeposit, b01(aum*timeDep > 100))
	set(features.HoldsLargeCD, b01(aum*timeDep > 200000 && r.Float64() < 0.6))
	set(features.HoldsWealth, b01(aum*wealthShare > 100))
	set(features.HoldsFund, b01(aum*(invest-wealthShare) > 100))

	spend := 0.0
	if r.Float64() < 0.85 {
		spend = logn(0.35*math.Max(salary, 2500), 0.7)
	}
	set(features.CardSpendMonthly, round(spend))
	cc := flag(features.HoldsCreditCard, clamp(0.1+0.3*b01(salaried)+0.15*b01(age < 40)+0.1*wealth, 0.02, 0.8))
	_ = cc
	loan := flag(features.HoldsConsumerLoan, clamp(0.05+0.08*b01(salaried)+0.04*b01(age < 40), 0, 0.5))
	if loan {
		set(features.LoanBalance, round(logn(60000, 0.7)))
	} else {
		set(features.LoanBalance, 0)
	}
	flag(features.HasMortgage, clamp(0.05+0.25*b01(age >= 28 && age < 55)+0.1*wealth, 0, 0.6))
	overdue := 0.0
	if r.Float64() < 0.06 {
		overdue = math.Ceil(r.ExpFloat64() * 1.5)
	}
	set(features.OverdueCount12M, overdue)
	flag(features.HoldsInsurance, clamp(0.08+0.08*wealth+0.05*b01(age > 30), 0, 0.5))
	flag(features.HoldsPensionAccount, clamp(0.04+0.1*b01(salary > 12000), 0, 0.3))
	flag(features.HoldsGold, 0.03+0.03*b01(age > 45))
	flag(features.HoldsDigitalWallet, clamp(0.12+0.1*b01(tier <= 2)+0.05*b01(age < 35), 0, 0.5))

	// Engagement: the young use the app, the old the branch.
	active := clamp(1.2-0.015*(age-30)+0.3*r.NormFloat64(), 0.05, 2.5)
	logins := float64(poisson(r, 6*active))
	set(features.AppLogins30D, logins)
	views := 0.0
	if logins > 0 && tol > 0 {
		views = float64(poisson(r, 0.25*logins*(0.5+invest*3)))
	}
	set(features.AppWealthViews30D, views)
	if logins > 0 {
		set(features.DaysSinceLastLogin, math.Floor(r.Float64()*30/math.Sqrt(logins)))
	} else {
		set(features.DaysSinceLastLogin, 30+math.Round(r.ExpFloat64()*120))
	}
	flag(features.WecomAdded, clamp(0.18+0.1*b01(age > 40)+0.05*wealth, 0.02, 0.6))

	flag(features.MarketingConsent, 0.72)
	flag(features.PersonalisationOptOut, 0.03)
	set(features.DaysSinceLastContact, math.Round(r.ExpFloat64()*45))

	// Data-quality gaps a warehouse really has.
	for _, f := range []features.Field{features.CardSpendMonthly, features.DemandBalanceAvg3M, features.DaysSinceLastContact, features.TenureMonths} {
		if r.Float64() < 0.02 {
			v.Values[f] = float32(math.NaN())
		}
	}
	if r.Float64() < 0.01 {
		v.Values[features.Region] = float32(math.NaN())
	}

	if r.Float64() < 0.9 {
		title := "先生"
		if r.Float64() < 0.5 {
			title = "女士"
		}
		v.Salutation = surnames[r.IntN(len(surnames))] + title
	}
	return ID(i), v
}

func b01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func pickWeighted(r *rand.Rand, n int, w func(int) float64) int {
	total := 0.0
	for k := 0; k < n; k++ {
		total += w(k)
	}
	u := r.Float64() * total
	for k := 0; k < n; k++ {
		u -= w(k)
		if u < 0 {
			return k
		}
	}
	return n - 1
}

func poisson(r *rand.Rand, lambda float64) int {
	if lambda <= 0 {
		return 0
	}
	if lambda > 30 {
		return int(math.Max(0, math.Round(lambda+math.Sqrt(lambda)*r.NormFloat64())))
	}
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= r.Float64()
		if p < l {
			return k
		}
		k++
	}
}

// latent is the customer's hidden receptiveness: part of the truth that no
// feature shows, so that no model can be perfect.
func latent(id string) float64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	r := rand.New(rand.NewPCG(h.Sum64(), 0x5eed))
	return 0.3 * r.NormFloat64()
}
