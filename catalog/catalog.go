// Package catalog holds the bank's products, their engagement attributes
// (eligibility, sale window, risk level, business value), the channel and
// suitability policies, and the Chinese copy templates for each channel.
//
// A catalog is a versioned JSON document. The default one is embedded in the
// binary (Default); Load and Parse read another. Loading validates the whole
// document and reports every problem at once, each with its product id and
// field, so that a bad catalog stops a server before it starts.
//
// The package is a leaf: it knows nothing of Redis, the model or HTTP. The
// policy checks take a Customer, the small view of a customer they need.
package catalog

import (
	_ "embed"
	"errors"
	"fmt"
	"strings"
	"time"
)

//go:embed catalog.json
var defaultCatalog []byte

// Sentinel errors.
var (
	// ErrUnknownProduct is returned for a product id the catalog does not hold.
	ErrUnknownProduct = errors.New("unknown product")
	// ErrUnknownChannel is returned for a channel name that is not one of
	// app_feed, wecom_agent or batch.
	ErrUnknownChannel = errors.New("unknown channel")
	// ErrInvalid wraps every validation problem found while loading.
	ErrInvalid = errors.New("invalid catalog")
)

// Channel is where a decision is shown.
type Channel uint8

// The channels.
const (
	AppFeed    Channel = iota // the mobile app's home feed
	WecomAgent                // the WeCom agent suggestion panel
	Batch                     // the nightly batch for outbound campaigns
	NumChannels
)

var channelNames = [NumChannels]string{"app_feed", "wecom_agent", "batch"}

// String returns the channel's wire name.
func (c Channel) String() string {
	if c < NumChannels {
		return channelNames[c]
	}
	return fmt.Sprintf("channel(%d)", uint8(c))
}

// ParseChannel returns the channel with the given wire name, or an error
// wrapping ErrUnknownChannel.
func ParseChannel(s string) (Channel, error) {
	for i, n := range channelNames {
		if n == s {
			return Channel(i), nil
		}
	}
	return 0, fmt.Errorf("%w %q: want %s", ErrUnknownChannel, s, channelList)
}

// CopyLimits are a channel's length limits, counted in runes.
type CopyLimits struct {
	Title int
	Body  int
	CTA   int
	// BodyWithDisclaimer, when set, limits the body and the risk warning
	// together: the channel sends them as one message.
	BodyWithDisclaimer int
}

// Limits returns the channel's copy length limits.
//   - app_feed: a card with a title of at most 14 runes and a body of at most 40;
//   - wecom_agent: a message an agent sends, body and risk warning together at most 200;
//   - batch: an outbound push, body and risk warning together at most 70 (one SMS).
//
// A channel without limits here has none at all: no copy fits it, so a
// catalog offering a product on it is refused (TestEveryChannelHasLimits
// fails first).
func (c Channel) Limits() CopyLimits {
	if c < NumChannels {
		return channelLimits[c]
	}
	return CopyLimits{}
}

var channelLimits = [NumChannels]CopyLimits{
	AppFeed:    {Title: 14, Body: 40, CTA: 6},
	WecomAgent: {Title: 20, Body: 200, CTA: 8, BodyWithDisclaimer: 200},
	Batch:      {Title: 14, Body: 70, CTA: 6, BodyWithDisclaimer: 70},
}

// ChannelNames returns the channels' wire names, in order.
func ChannelNames() [NumChannels]string { return channelNames }

// channelList is the channels' names for a message: "app_feed, wecom_agent
// or batch".
var channelList = func() string {
	s := ""
	for i, n := range channelNames {
		switch {
		case i == 0:
		case i == len(channelNames)-1:
			s += " or "
		default:
			s += ", "
		}
		s += n
	}
	return s
}()

// ChannelList returns the channels' names for a message to a caller:
// "app_feed, wecom_agent or batch".
func ChannelList() string { return channelList }

// RiskLevel is an investment product's risk rating, R1 (lowest) to R5.
// Zero means the product is not an investment product.
type RiskLevel uint8

// String returns "R1".."R5", or "" for a non-investment product.
func (r RiskLevel) String() string {
	if r >= 1 && r <= 5 {
		return riskNames[r]
	}
	return ""
}

var riskNames = [...]string{"", "R1", "R2", "R3", "R4", "R5"}

// ParseRiskLevel parses "R1".."R5".
func ParseRiskLevel(s string) (RiskLevel, error) {
	if len(s) == 2 && s[0] == 'R' && s[1] >= '1' && s[1] <= '5' {
		return RiskLevel(s[1] - '0'), nil
	}
	return 0, fmt.Errorf("risk level %q: want R1..R5", s)
}

// RiskTolerance is a customer's assessed risk tolerance, C1 (conservative) to
// C5 (aggressive). Zero means never assessed.
type RiskTolerance uint8

// String returns "C1".."C5", or "" when never assessed.
func (t RiskTolerance) String() string {
	if t >= 1 && t <= 5 {
		return "C" + string(rune('0'+t))
	}
	return ""
}

// ParseRiskTolerance parses "C1".."C5"; the empty string is zero (never assessed).
func ParseRiskTolerance(s string) (RiskTolerance, error) {
	if s == "" {
		return 0, nil
	}
	if len(s) == 2 && s[0] == 'C' && s[1] >= '1' && s[1] <= '5' {
		return RiskTolerance(s[1] - '0'), nil
	}
	return 0, fmt.Errorf("risk tolerance %q: want C1..C5 or empty", s)
}

// Category groups products for diversity and carries the mandatory risk
// warning shown with each of them.
type Category struct {
	ID         string
	Name       string
	Disclaimer string
	// Investment categories require a risk level within [MinRisk, MaxRisk].
	Investment       bool
	MinRisk, MaxRisk RiskLevel
}

// ChannelPolicy is how a channel arbitrates.
type ChannelPolicy struct {
	// RequiresConsent: every offer on the channel is marketing and needs the
	// customer's marketing consent.
	RequiresConsent bool
	// ContextWeight by category id; a category not listed weighs 1.
	ContextWeight map[string]float64
}

// Policy holds the decision-wide settings.
type Policy struct {
	// MaxPerCategory caps how many items of one category a list holds.
	MaxPerCategory int
	// SeniorAge is the age from which SeniorMaxRisk applies.
	SeniorAge int
	// SeniorMaxRisk caps the risk level offered to senior customers.
	SeniorMaxRisk RiskLevel
	// ControlShare is the share of customers, chosen by a stable hash of
	// the customer id and the month, who get an unranked list (the control
	// group that measures the model's uplift); default 0.02.
	ControlShare float64
}

// Cap limits contacts: at most Max in any window of Days days (today and
// the Days-1 days before, China time). A zero Max is no cap.
type Cap struct {
	Max  int
	Days int
}

// ContactPolicy is how often a customer may be approached.
type ContactPolicy struct {
	// ImpressionCaps, per channel: how often one product may be shown to
	// one customer. A product's own caps override them.
	ImpressionCaps [NumChannels]Cap
	// PushCaps, per outbound channel: how many pushes of any product one
	// customer may receive.
	PushCaps [NumChannels]Cap
	// After DismissAfter dismissals of a product, it is suppressed for
	// DismissDays days.
	DismissAfter, DismissDays int
	// After a conversion, the product is treated as held for this long.
	ConversionCooloffDays int
	// EventWindowDays is how old an outcome event may be; older ones are
	// refused. It is also how long event ids are remembered for
	// idempotency.
	EventWindowDays int
}

// Window is a half-open time interval [From, Until). A zero bound is open.
type Window struct {
	From, Until time.Time
}

// Contains reports whether t falls in the window.
func (w Window) Contains(t time.Time) bool {
	if !w.From.IsZero() && t.Before(w.From) {
		return false
	}
	if !w.Until.IsZero() && !t.Before(w.Until) {
		return false
	}
	return true
}

// Eligibility says who may have a product at all.
type Eligibility struct {
	MinAge, MaxAge int // MaxAge 0 means no upper bound
	Regions        []string
	MinKYC         int
	Channels       [NumChannels]bool
}

// Lever multiplies a product's priority during a campaign window.
type Lever struct {
	Product string
	Factor  float64
	Window  Window
	Note    string
}

// Signal is one declarative rule of the rules scorer: when the feature
// compares true against Value, Weight is added to the product's log-odds.
type Signal struct {
	Code    string
	Feature string
	Op      string // one of >=, >, <=, <, ==, !=
	Value   float64
	Weight  float64
}

// Holds reports whether the signal fires for value v. A missing value (NaN)
// never fires.
func (s Signal) Holds(v float64) bool {
	if v != v {
		return false
	}
	switch s.Op {
	case ">=":
		return v >= s.Value
	case ">":
		return v > s.Value
	case "<=":
		return v <= s.Value
	case "<":
		return v < s.Value
	case "==":
		return v == s.Value
	case "!=":
		return v != s.Value
	}
	return false
}

// Rules is a product's declarative rules-scorer entry: a base take-up rate
// and the signals that raise or lower it.
type Rules struct {
	Base    float64
	Signals []Signal
}

// Product is one offer of the bank.
type Product struct {
	Index    int // position in Catalog.Products
	ID       string
	Name     string
	Category string
	Risk     RiskLevel

	Eligibility Eligibility
	// HeldWhen names a feature (a 0/1 holding flag); when it is 1 the
	// customer already has the product and it is not offered again.
	HeldWhen        string
	SaleWindow      Window
	BusinessValue   float64
	Prior           float64 // base take-up rate, used for non-personalised lists
	RequiresConsent bool
	Attributes      map[string]string
	Rules           Rules
	// ImpressionCaps override the channel's cap for this product (zero Days:
	// no override).
	ImpressionCaps [NumChannels]Cap

	copy [NumChannels]copyTemplate
}

// ImpressionCap returns the cap on showing the product on a channel.
func (c *Catalog) ImpressionCap(p *Product, ch Channel) Cap {
	if p.ImpressionCaps[ch].Days > 0 {
		return p.ImpressionCaps[ch]
	}
	return c.Contact.ImpressionCaps[ch]
}

// Catalog is a loaded, validated catalog. It is immutable and safe for
// concurrent use.
type Catalog struct {
	Version    string
	Products   []Product
	Categories map[string]Category
	Channels   [NumChannels]ChannelPolicy
	Policy     Policy
	Contact    ContactPolicy
	Levers     []Lever
	// Reasons maps a reason code to its Chinese text.
	Reasons map[string]string
	// FeatureReasons maps a model feature to the reason code it gives when
	// it raises a product's score.
	FeatureReasons map[string]string

	byID map[string]int
}

// Reason codes every catalog defines.
const (
	ReasonPopular = "POPULAR" // a non-personalised list: the product's base take-up rate
	ReasonGeneral = "GENERAL" // a control-group list: no ranking at all
)

// Product returns the product with the given id, or an error wrapping
// ErrUnknownProduct.
func (c *Catalog) Product(id string) (*Product, error) {
	i, ok := c.byID[id]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownProduct, id)
	}
	return &c.Products[i], nil
}

// ProductIDs returns the product ids in catalog order.
func (c *Catalog) ProductIDs() []string {
	ids := make([]string, len(c.Products))
	for i := range c.Products {
		ids[i] = c.Products[i].ID
	}
	return ids
}

// Disclaimer returns the product's mandatory risk warning (empty for a
// category that has none).
func (c *Catalog) Disclaimer(p *Product) string {
	return c.Categories[p.Category].Disclaimer
}

// FeatureRefs lists every feature name the catalog refers to, with the
// product and field that refers to it, so that a caller who knows the
// feature schema can check them (see CheckFeatures).
func (c *Catalog) FeatureRefs() []FeatureRef {
	var refs []FeatureRef
	for i := range c.Products {
		p := &c.Products[i]
		if p.HeldWhen != "" {
			refs = append(refs, FeatureRef{Product: p.ID, Field: "held_when", Feature: p.HeldWhen})
		}
		for j, s := range p.Rules.Signals {
			refs = append(refs, FeatureRef{Product: p.ID, Field: fmt.Sprintf("rules.signals[%d].feature", j), Feature: s.Feature})
		}
	}
	for f := range c.FeatureReasons {
		refs = append(refs, FeatureRef{Field: "feature_reasons." + f, Feature: f})
	}
	return refs
}

// FeatureRef is one reference from the catalog to a feature.
type FeatureRef struct {
	Product, Field, Feature string
}

// CheckFeatures reports, as one error wrapping ErrInvalid, every feature
// reference that known does not accept.
func (c *Catalog) CheckFeatures(known func(name string) bool) error {
	var probs problems
	for _, r := range c.FeatureRefs() {
		if !known(r.Feature) {
			probs.addf(r.Product, r.Field, "unknown feature %q", r.Feature)
		}
	}
	return probs.err()
}

// problems collects validation problems and joins them into one error.
type problems []string

func (p *problems) addf(product, field, format string, args ...any) {
	where := field
	if product != "" {
		where = fmt.Sprintf("product %s: %s", product, field)
	}
	*p = append(*p, where+": "+fmt.Sprintf(format, args...))
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %d problem(s):\n  %s", ErrInvalid, len(p), strings.Join(p, "\n  "))
}
