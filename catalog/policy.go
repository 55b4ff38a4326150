package catalog

import "time"

// Customer is what the engagement policies need to know of a customer. The
// decision pipeline fills it from the feature store.
type Customer struct {
	// Known is false when the customer's features could not be read (a cold
	// start or the store unavailable). The policies then assume only what
	// every app or agent customer is: an adult with basic KYC.
	Known         bool
	Age           float64 // NaN when missing
	Region        string  // "" when missing
	KYC           int     // 0 when missing
	RiskTolerance RiskTolerance
	// AssessedUntil is when the risk assessment expires; zero when never
	// assessed or missing.
	AssessedUntil    time.Time
	MarketingConsent bool
	// Held reports, per product index, that the customer already holds it.
	Held []bool
}

// Exclusion says why a product may not be offered. ExclusionNone means it may.
type Exclusion uint8

// The reasons a product is excluded, in the order they are checked.
const (
	ExclusionNone        Exclusion = iota
	ExclusionChannel               // not offered on this channel, or no copy for it
	ExclusionSaleWindow            // outside its sale window
	ExclusionAge                   // outside the product's age range, or age unknown
	ExclusionRegion                // not sold in the customer's region, or region unknown
	ExclusionKYC                   // the customer's KYC level is too low, or unknown
	ExclusionHeld                  // the customer already holds it
	ExclusionUnassessed            // investment product, no valid risk assessment
	ExclusionRiskTooHigh           // risk level above the customer's tolerance
	ExclusionSeniorCap             // risk level above the cap for senior customers
	ExclusionUnknownRisk           // investment product for a customer whose data is unavailable
	ExclusionNoConsent             // needs marketing consent the customer has not given
	NumExclusions
)

var exclusionNames = [NumExclusions]string{
	"none", "channel", "sale_window", "age", "region", "kyc", "held",
	"risk_unassessed", "risk_too_high", "senior_cap", "risk_unknown", "no_consent",
}

// String returns the exclusion's code.
func (e Exclusion) String() string {
	if e < NumExclusions {
		return exclusionNames[e]
	}
	return "unknown"
}

// Assumed of every customer whose data is unavailable: they use the app or
// talk to an agent, so they are adults with an account.
const (
	assumedMinAge = 18
	assumedKYC    = 1
)

// Check applies the hard engagement policies (eligibility, applicability,
// suitability and consent) to one product for one customer on a channel at
// time now. These are filters, never weights. Suitability holds whatever the
// customer data: an investment product is offered only to a customer whose
// valid assessment tolerates its risk level.
func (c *Catalog) Check(p *Product, cu *Customer, ch Channel, now time.Time) Exclusion {
	if ch >= NumChannels || !p.Eligibility.Channels[ch] || !p.copy[ch].ok {
		return ExclusionChannel
	}
	if !p.SaleWindow.Contains(now) {
		return ExclusionSaleWindow
	}
	if !cu.Known {
		// Nothing can be verified: only what holds for every customer passes.
		switch {
		case p.Eligibility.MinAge > assumedMinAge || p.Eligibility.MaxAge != 0:
			return ExclusionAge
		case len(p.Eligibility.Regions) > 0:
			return ExclusionRegion
		case p.Eligibility.MinKYC > assumedKYC:
			return ExclusionKYC
		case p.Risk > 0:
			return ExclusionUnknownRisk
		case p.RequiresConsent || c.Channels[ch].RequiresConsent:
			return ExclusionNoConsent
		}
		return ExclusionNone
	}
	if e := c.Suitable(p, cu, now); e != ExclusionNone {
		return e
	}
	if (p.RequiresConsent || c.Channels[ch].RequiresConsent) && !cu.MarketingConsent {
		return ExclusionNoConsent
	}
	return ExclusionNone
}

// Suitable applies the policies that depend on the customer alone, whatever
// the channel, sale window and consent: eligibility (age, region, KYC),
// applicability (already held) and suitability (risk level against a valid
// assessment, the cap for senior customers). cu must be Known.
func (c *Catalog) Suitable(p *Product, cu *Customer, now time.Time) Exclusion {
	el := &p.Eligibility
	if cu.Age != cu.Age || cu.Age < float64(el.MinAge) || el.MaxAge != 0 && cu.Age > float64(el.MaxAge) {
		return ExclusionAge
	}
	if len(el.Regions) > 0 && !contains(el.Regions, cu.Region) {
		return ExclusionRegion
	}
	if cu.KYC < el.MinKYC {
		return ExclusionKYC
	}
	if p.Index < len(cu.Held) && cu.Held[p.Index] {
		return ExclusionHeld
	}
	if p.Risk > 0 {
		if cu.RiskTolerance == 0 || cu.AssessedUntil.IsZero() || !now.Before(cu.AssessedUntil) {
			return ExclusionUnassessed
		}
		if uint8(p.Risk) > uint8(cu.RiskTolerance) {
			return ExclusionRiskTooHigh
		}
		if cu.Age >= float64(c.Policy.SeniorAge) && p.Risk > c.Policy.SeniorMaxRisk {
			return ExclusionSeniorCap
		}
	}
	return ExclusionNone
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
