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
	// Contact is what the customer was shown and did (nil: nothing known).
	Contact *ContactHistory
}

// ContactHistory is a customer's recent contacts and outcomes, as the
// contact policy needs them.
type ContactHistory struct {
	// Counts are impressions (Product >= 0) and pushes (Product == -1) per
	// channel and day (China time, days since 1970-01-01).
	Counts []DayCount
	// SuppressedUntil and ConvertedAt, per product index (zero: none).
	SuppressedUntil map[int]time.Time
	ConvertedAt     map[int]time.Time
}

// DayCount is one day's count of contacts on a channel.
type DayCount struct {
	Product int
	Channel Channel
	Day     int
	N       int
}

// count sums the counts of a product (or -1 for pushes) on a channel over
// the days of the cap's window ending today.
func (h *ContactHistory) count(product int, ch Channel, cp Cap, today int) int {
	n := 0
	for _, c := range h.Counts {
		if c.Product == product && c.Channel == ch && c.Day > today-cp.Days && c.Day <= today {
			n += c.N
		}
	}
	return n
}

// Exclusion says why a product may not be offered. ExclusionNone means it may.
type Exclusion uint8

// The reasons a product is excluded, in the order they are checked.
const (
	ExclusionNone          Exclusion = iota
	ExclusionChannel                 // not offered on this channel, or no copy for it
	ExclusionSaleWindow              // outside its sale window
	ExclusionAge                     // outside the product's age range, or age unknown
	ExclusionRegion                  // not sold in the customer's region, or region unknown
	ExclusionKYC                     // the customer's KYC level is too low, or unknown
	ExclusionHeld                    // the customer already holds it
	ExclusionUnassessed              // investment product, no valid risk assessment
	ExclusionRiskTooHigh             // risk level above the customer's tolerance
	ExclusionSeniorCap               // risk level above the cap for senior customers
	ExclusionUnknownRisk             // investment product for a customer whose data is unavailable
	ExclusionNoConsent               // needs marketing consent the customer has not given
	ExclusionCoolingOff              // converted recently: treated as held
	ExclusionSuppressed              // dismissed too often: suppressed for a while
	ExclusionImpressionCap           // shown too often on this channel
	ExclusionPushCap                 // the customer got enough pushes on this outbound channel
	NumExclusions
)

var exclusionNames = [NumExclusions]string{
	"none", "channel", "sale_window", "age", "region", "kyc", "held",
	"risk_unassessed", "risk_too_high", "senior_cap", "risk_unknown", "no_consent",
	"cooling_off", "suppressed", "impression_cap", "push_cap",
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
		return c.checkContact(p, cu.Contact, ch, now)
	}
	if e := c.Suitable(p, cu, now); e != ExclusionNone {
		return e
	}
	if (p.RequiresConsent || c.Channels[ch].RequiresConsent) && !cu.MarketingConsent {
		return ExclusionNoConsent
	}
	return c.checkContact(p, cu.Contact, ch, now)
}

// checkContact applies the contact policy: cooling-off after a conversion,
// suppression after dismissals, impression and push caps.
func (c *Catalog) checkContact(p *Product, h *ContactHistory, ch Channel, now time.Time) Exclusion {
	if h == nil {
		return ExclusionNone
	}
	if at, ok := h.ConvertedAt[p.Index]; ok && now.Before(at.AddDate(0, 0, c.Contact.ConversionCooloffDays)) {
		return ExclusionCoolingOff
	}
	if until, ok := h.SuppressedUntil[p.Index]; ok && now.Before(until) {
		return ExclusionSuppressed
	}
	today := Day(now)
	if cp := c.ImpressionCap(p, ch); cp.Days > 0 && h.count(p.Index, ch, cp, today) >= cp.Max {
		return ExclusionImpressionCap
	}
	if cp := c.Contact.PushCaps[ch]; cp.Days > 0 && h.count(-1, ch, cp, today) >= cp.Max {
		return ExclusionPushCap
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

// CapState is how far a customer is along one contact cap.
type CapState struct {
	Channel Channel
	Used    int
	Cap     Cap
}

// Reached reports whether the cap allows no more contacts today.
func (s CapState) Reached() bool { return s.Cap.Days > 0 && s.Used >= s.Cap.Max }

// CapStates returns where a customer stands against each channel's push cap
// and, on the channel ch, how many products reached their impression cap:
// what an agent needs to know before reaching out, without the history
// itself.
func (c *Catalog) CapStates(h *ContactHistory, ch Channel, now time.Time) (pushes []CapState, impressionCapped int) {
	today := Day(now)
	for k := Channel(0); k < NumChannels; k++ {
		cp := c.Contact.PushCaps[k]
		if cp.Days == 0 {
			continue
		}
		used := 0
		if h != nil {
			used = h.count(-1, k, cp, today)
		}
		pushes = append(pushes, CapState{Channel: k, Used: used, Cap: cp})
	}
	if h == nil || ch >= NumChannels {
		return pushes, 0
	}
	for i := range c.Products {
		p := &c.Products[i]
		if cp := c.ImpressionCap(p, ch); cp.Days > 0 && h.count(p.Index, ch, cp, today) >= cp.Max {
			impressionCapped++
		}
	}
	return pushes, impressionCapped
}
