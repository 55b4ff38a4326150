// Package features is the customer feature store: the schema of a
// customer's feature vector, its encoding, the CSV format the data warehouse
// exports and the loader ingests, and the Redis store that serves it.
//
// A vector holds SchemaVersion, the time it was computed (UpdatedAt), one
// float32 per schema field (NaN when missing) and the customer's salutation.
// The package knows nothing of the model or HTTP.
package features

import (
	"fmt"
	"math"
	"time"

	"github.com/directops/nbp/catalog"
)

// SchemaVersion is the version of the field list below. It is stored with
// every vector; a vector of another version is refused, not misread.
const SchemaVersion = 1

// Field indexes a value in a Vector.
type Field int

// The schema, in storage order. Money is in CNY.
const (
	Age                   Field = iota // years
	TenureMonths                       // months since the first account
	CityTier                           // 1 (first-tier city) .. 4
	Region                             // catalog.Regions index, 1-based
	KYCLevel                           // 1 (class II/III e-account) .. 3 (full, in person)
	AUM                                // assets under management
	DemandBalance                      // current-account balance
	DemandBalanceAvg3M                 // its 3-month average
	TimeDepositBalance                 // 定期
	WealthBalance                      // 理财
	FundBalance                        // 基金
	SalaryAccount                      // 1 if salary is paid through the bank (代发)
	SalaryInflowMonthly                // average monthly salary inflow
	CardSpendMonthly                   // average monthly card spend
	LoanBalance                        // consumer loan balance
	HasMortgage                        // 0/1
	OverdueCount12M                    // repayments overdue in 12 months
	HoldsTimeDeposit                   // 0/1
	HoldsLargeCD                       // 0/1
	HoldsWealth                        // 0/1
	HoldsFund                          // 0/1
	HoldsCreditCard                    // 0/1
	HoldsConsumerLoan                  // 0/1
	HoldsInsurance                     // 0/1
	HoldsPensionAccount                // 0/1
	HoldsGold                          // 0/1
	HoldsDigitalWallet                 // 0/1
	AppLogins30D                       // app logins in 30 days
	AppWealthViews30D                  // wealth-page views in 30 days
	DaysSinceLastLogin                 // days
	WecomAdded                         // 1 if the customer added a WeCom agent
	RiskTolerance                      // 0 never assessed, 1..5 for C1..C5
	RiskAssessedUntil                  // expiry of the assessment, days since 1970-01-01
	MarketingConsent                   // 0/1
	PersonalisationOptOut              // 0/1
	DaysSinceLastContact               // days since the last marketing contact
	NumFields
)

// Kind is how a field is written in CSV.
type Kind uint8

// The kinds of field.
const (
	Number    Kind = iota // a decimal number within [Min, Max]
	Flag                  // 0 or 1
	RegionKey             // a region code such as GD
	Tolerance             // C1..C5, empty when never assessed
	Date                  // YYYY-MM-DD
)

// Spec describes one field.
type Spec struct {
	Name     string
	Kind     Kind
	Min, Max float64
	// Required fields may not be empty: the policies depend on them.
	Required bool
}

const maxMoney = 1e12

var specs = [NumFields]Spec{
	Age:                   {Name: "age", Kind: Number, Min: 0, Max: 130, Required: true},
	TenureMonths:          {Name: "tenure_months", Kind: Number, Min: 0, Max: 1200},
	CityTier:              {Name: "city_tier", Kind: Number, Min: 1, Max: 4},
	Region:                {Name: "region", Kind: RegionKey},
	KYCLevel:              {Name: "kyc_level", Kind: Number, Min: 1, Max: 3, Required: true},
	AUM:                   {Name: "aum", Kind: Number, Min: 0, Max: maxMoney},
	DemandBalance:         {Name: "demand_balance", Kind: Number, Min: 0, Max: maxMoney},
	DemandBalanceAvg3M:    {Name: "demand_balance_avg_3m", Kind: Number, Min: 0, Max: maxMoney},
	TimeDepositBalance:    {Name: "time_deposit_balance", Kind: Number, Min: 0, Max: maxMoney},
	WealthBalance:         {Name: "wealth_balance", Kind: Number, Min: 0, Max: maxMoney},
	FundBalance:           {Name: "fund_balance", Kind: Number, Min: 0, Max: maxMoney},
	SalaryAccount:         {Name: "salary_account", Kind: Flag},
	SalaryInflowMonthly:   {Name: "salary_inflow_monthly", Kind: Number, Min: 0, Max: maxMoney},
	CardSpendMonthly:      {Name: "card_spend_monthly", Kind: Number, Min: 0, Max: maxMoney},
	LoanBalance:           {Name: "loan_balance", Kind: Number, Min: 0, Max: maxMoney},
	HasMortgage:           {Name: "has_mortgage", Kind: Flag},
	OverdueCount12M:       {Name: "overdue_count_12m", Kind: Number, Min: 0, Max: 366},
	HoldsTimeDeposit:      {Name: "holds_time_deposit", Kind: Flag},
	HoldsLargeCD:          {Name: "holds_large_cd", Kind: Flag},
	HoldsWealth:           {Name: "holds_wealth", Kind: Flag},
	HoldsFund:             {Name: "holds_fund", Kind: Flag},
	HoldsCreditCard:       {Name: "holds_credit_card", Kind: Flag},
	HoldsConsumerLoan:     {Name: "holds_consumer_loan", Kind: Flag},
	HoldsInsurance:        {Name: "holds_insurance", Kind: Flag},
	HoldsPensionAccount:   {Name: "holds_pension_account", Kind: Flag},
	HoldsGold:             {Name: "holds_gold", Kind: Flag},
	HoldsDigitalWallet:    {Name: "holds_digital_wallet", Kind: Flag},
	AppLogins30D:          {Name: "app_logins_30d", Kind: Number, Min: 0, Max: 10000},
	AppWealthViews30D:     {Name: "app_wealth_views_30d", Kind: Number, Min: 0, Max: 100000},
	DaysSinceLastLogin:    {Name: "days_since_last_login", Kind: Number, Min: 0, Max: 100000},
	WecomAdded:            {Name: "wecom_added", Kind: Flag},
	RiskTolerance:         {Name: "risk_tolerance", Kind: Tolerance},
	RiskAssessedUntil:     {Name: "risk_assessed_until", Kind: Date},
	MarketingConsent:      {Name: "marketing_consent", Kind: Flag, Required: true},
	PersonalisationOptOut: {Name: "personalisation_opt_out", Kind: Flag, Required: true},
	DaysSinceLastContact:  {Name: "days_since_last_contact", Kind: Number, Min: 0, Max: 100000},
}

// Spec returns the field's specification.
func (f Field) Spec() Spec { return specs[f] }

// String returns the field's name.
func (f Field) String() string {
	if f >= 0 && f < NumFields {
		return specs[f].Name
	}
	return fmt.Sprintf("field(%d)", int(f))
}

// Names returns the schema's field names in storage order.
func Names() []string {
	names := make([]string, NumFields)
	for i := range specs {
		names[i] = specs[i].Name
	}
	return names
}

// Lookup returns the field with the given name.
func Lookup(name string) (Field, bool) {
	for i := range specs {
		if specs[i].Name == name {
			return Field(i), true
		}
	}
	return 0, false
}

// MaxSalutationRunes bounds the salutation kept with a vector.
const MaxSalutationRunes = catalog.MaxSalutationRunes

// Vector is one customer's features.
type Vector struct {
	UpdatedAt time.Time
	Values    [NumFields]float32 // NaN when missing
	// Salutation is how the customer is addressed (王女士); personal data:
	// never log it.
	Salutation string
}

// Get returns a field's value as float64 (NaN when missing).
func (v *Vector) Get(f Field) float64 { return float64(v.Values[f]) }

// Flag reports whether a 0/1 field is 1.
func (v *Vector) Flag(f Field) bool { return v.Values[f] == 1 }

// RegionCode returns the customer's region code, "" when missing.
func (v *Vector) RegionCode() string {
	x := v.Values[Region]
	if x != x || x < 1 {
		return ""
	}
	return catalog.RegionCode(int(x))
}

// AssessedUntil returns when the risk assessment expires: the end of the
// stored date, China time (the assessment is valid through that whole day).
// It is zero when never assessed.
func (v *Vector) AssessedUntil() time.Time {
	d := v.Values[RiskAssessedUntil]
	if d != d {
		return time.Time{}
	}
	day := time.Unix(int64(d)*86400, 0).UTC()
	return time.Date(day.Year(), day.Month(), day.Day()+1, 0, 0, 0, 0, catalog.Zone())
}

// Tolerance returns the customer's risk tolerance, zero when never assessed
// or missing.
func (v *Vector) Tolerance() catalog.RiskTolerance {
	t := v.Values[RiskTolerance]
	if t != t || t < 1 || t > 5 {
		return 0
	}
	return catalog.RiskTolerance(t)
}

// Missing returns a vector whose every value is missing.
func Missing() Vector {
	var v Vector
	nan := float32(math.NaN())
	for i := range v.Values {
		v.Values[i] = nan
	}
	return v
}
