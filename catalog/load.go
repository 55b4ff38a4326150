package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// NumRegions is how many region codes there are.
const NumRegions = 31

// regions are the province-level region codes a catalog may name, in the
// order the feature store encodes them (1-based; 0 is unknown). Vectors in
// Redis hold these indexes: the order must never change, only grow at the
// end (TestRegionEncoding pins it).
var regions = [NumRegions]string{
	"BJ", "TJ", "HE", "SX", "NM", "LN", "JL", "HL", "SH", "JS", "ZJ",
	"AH", "FJ", "JX", "SD", "HA", "HB", "HN", "GD", "GX", "HI", "CQ",
	"SC", "GZ", "YN", "XZ", "SN", "GS", "QH", "NX", "XJ",
}

// Regions returns the region codes in their encoding order: a copy.
func Regions() [NumRegions]string { return regions }

// RegionIndex returns the 1-based index of a region code, 0 if unknown.
func RegionIndex(code string) int {
	for i, r := range regions {
		if r == code {
			return i + 1
		}
	}
	return 0
}

// RegionCode returns the code of a 1-based region index, "" if unknown.
func RegionCode(index int) string {
	if index < 1 || index > NumRegions {
		return ""
	}
	return regions[index-1]
}

var productID = regexp.MustCompile(`^[A-Z][A-Z0-9_]{1,31}$`)
var reasonCode = regexp.MustCompile(`^[A-Z][A-Z0-9_]{1,39}$`)

// The file format. Every struct rejects unknown fields.
type fileCatalog struct {
	Version    string                 `json:"version"`
	Categories []fileCategory         `json:"categories"`
	Channels   map[string]fileChannel `json:"channels"`
	Policy     filePolicy             `json:"policy"`
	Levers     []fileLever            `json:"levers"`
	Contact    *fileContact           `json:"contact"`
	// Reasons maps a reason code to its text; FeatureReasons maps a model
	// feature to the reason code it gives.
	Reasons        map[string]string `json:"reasons"`
	FeatureReasons map[string]string `json:"feature_reasons"`
	Products       []json.RawMessage `json:"products"`
}

type fileCategory struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	Disclaimer string   `json:"disclaimer"`
	Investment bool     `json:"investment"`
	RiskRange  []string `json:"risk_range"`
}

type fileChannel struct {
	RequiresConsent bool               `json:"requires_consent"`
	ContextWeights  map[string]float64 `json:"context_weights"`
}

type filePolicy struct {
	MaxPerCategory int      `json:"max_per_category"`
	ControlShare   *float64 `json:"control_share"`
	SeniorAge      int      `json:"senior_age"`
	SeniorMaxRisk  string   `json:"senior_max_risk"`
}

type fileCap struct {
	Channel string `json:"channel"`
	Max     int    `json:"max"`
	Days    int    `json:"days"`
}

type fileContact struct {
	ImpressionCaps        []fileCap `json:"impression_caps"`
	PushCaps              []fileCap `json:"push_caps"`
	DismissAfter          int       `json:"dismiss_after"`
	DismissDays           int       `json:"dismiss_days"`
	ConversionCooloffDays int       `json:"conversion_cooloff_days"`
	EventWindowDays       int       `json:"event_window_days"`
}

type fileLever struct {
	Product string  `json:"product"`
	Factor  float64 `json:"factor"`
	From    string  `json:"from"`
	Until   string  `json:"until"`
	Note    string  `json:"note"`
}

type fileProduct struct {
	ID          string  `json:"id"`
	Name        string  `json:"name"`
	Category    string  `json:"category"`
	RiskLevel   *string `json:"risk_level"`
	Eligibility struct {
		MinAge   int      `json:"min_age"`
		MaxAge   int      `json:"max_age"`
		Regions  []string `json:"regions"`
		MinKYC   int      `json:"min_kyc"`
		Channels []string `json:"channels"`
	} `json:"eligibility"`
	HeldWhen   string `json:"held_when"`
	SaleWindow struct {
		From  string `json:"from"`
		Until string `json:"until"`
	} `json:"sale_window"`
	BusinessValue   float64           `json:"business_value"`
	Prior           float64           `json:"prior"`
	RequiresConsent bool              `json:"requires_consent"`
	ImpressionCaps  []fileCap         `json:"impression_caps"`
	Attributes      map[string]string `json:"attributes"`
	Rules           struct {
		Base    float64 `json:"base"`
		Signals []struct {
			Code    string  `json:"code"`
			Feature string  `json:"feature"`
			Op      string  `json:"op"`
			Value   float64 `json:"value"`
			Weight  float64 `json:"weight"`
		} `json:"signals"`
	} `json:"rules"`
	Copy map[string]fileCopy `json:"copy"`
}

type fileCopy struct {
	Title string `json:"title"`
	Body  string `json:"body"`
	CTA   string `json:"cta"`
}

// Default returns the embedded demo catalog.
func Default() (*Catalog, error) {
	return Parse(defaultCatalog)
}

// DefaultBytes returns the embedded catalog document.
func DefaultBytes() []byte {
	return bytes.Clone(defaultCatalog)
}

// Load reads and validates the catalog file at path.
func Load(path string) (*Catalog, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read catalog: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", path, err)
	}
	return c, nil
}

func strictDecode(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	// More would miss a stray '}' or ']': only the end of input will do.
	if _, err := d.Token(); err != io.EOF {
		return fmt.Errorf("trailing data after the JSON document")
	}
	return nil
}

// Parse validates a catalog document. Every problem found is reported in one
// error wrapping ErrInvalid, each naming its product id and field.
func Parse(b []byte) (*Catalog, error) {
	var f fileCatalog
	if err := strictDecode(b, &f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	var probs problems
	c := &Catalog{
		Version:    strings.TrimSpace(f.Version),
		Categories: make(map[string]Category),
		byID:       make(map[string]int),
	}
	if c.Version == "" {
		probs.addf("", "version", "must not be empty")
	}

	for i, fc := range f.Categories {
		field := fmt.Sprintf("categories[%d]", i)
		if fc.ID == "" || !isIdent(fc.ID) {
			probs.addf("", field+".id", "bad category id %q", fc.ID)
			continue
		}
		if _, dup := c.Categories[fc.ID]; dup {
			probs.addf("", field+".id", "duplicate category %q", fc.ID)
			continue
		}
		cat := Category{ID: fc.ID, Name: fc.Name, Disclaimer: fc.Disclaimer, Investment: fc.Investment}
		if fc.Name == "" {
			probs.addf("", field+".name", "must not be empty")
		}
		if fc.Investment {
			if len(fc.RiskRange) != 2 {
				probs.addf("", field+".risk_range", "an investment category needs [min, max] risk levels")
			} else {
				lo, err1 := ParseRiskLevel(fc.RiskRange[0])
				hi, err2 := ParseRiskLevel(fc.RiskRange[1])
				switch {
				case err1 != nil || err2 != nil:
					probs.addf("", field+".risk_range", "%v", firstErr(err1, err2))
				case lo > hi:
					probs.addf("", field+".risk_range", "min %s above max %s", lo, hi)
				}
				cat.MinRisk, cat.MaxRisk = lo, hi
			}
			if fc.Disclaimer == "" {
				probs.addf("", field+".disclaimer", "an investment category needs its mandatory risk warning")
			}
		} else if len(fc.RiskRange) > 0 {
			probs.addf("", field+".risk_range", "only investment categories have risk levels")
		}
		c.Categories[fc.ID] = cat
	}

	for name, fch := range f.Channels {
		ch, err := ParseChannel(name)
		if err != nil {
			probs.addf("", "channels."+name, "%v", err)
			continue
		}
		cp := ChannelPolicy{RequiresConsent: fch.RequiresConsent, ContextWeight: fch.ContextWeights}
		for cat, w := range fch.ContextWeights {
			if _, ok := c.Categories[cat]; !ok {
				probs.addf("", "channels."+name+".context_weights."+cat, "unknown category")
			}
			if !(w > 0) || math.IsInf(w, 0) {
				probs.addf("", "channels."+name+".context_weights."+cat, "weight %v must be positive", w)
			}
		}
		c.Channels[ch] = cp
	}
	for ch := Channel(0); ch < NumChannels; ch++ {
		if _, ok := f.Channels[ch.String()]; !ok {
			probs.addf("", "channels."+ch.String(), "missing")
		}
	}

	c.Policy = Policy{MaxPerCategory: f.Policy.MaxPerCategory, SeniorAge: f.Policy.SeniorAge}
	if c.Policy.MaxPerCategory < 1 {
		probs.addf("", "policy.max_per_category", "must be at least 1")
	}
	c.Policy.ControlShare = 0.02
	if f.Policy.ControlShare != nil {
		c.Policy.ControlShare = *f.Policy.ControlShare
		if !(c.Policy.ControlShare >= 0 && c.Policy.ControlShare <= 0.5) {
			probs.addf("", "policy.control_share", "%v: want a share in [0, 0.5]", c.Policy.ControlShare)
		}
	}
	if c.Policy.SeniorAge < 50 || c.Policy.SeniorAge > 100 {
		probs.addf("", "policy.senior_age", "%d: want 50..100", c.Policy.SeniorAge)
	}
	if r, err := ParseRiskLevel(f.Policy.SeniorMaxRisk); err != nil {
		probs.addf("", "policy.senior_max_risk", "%v", err)
	} else {
		c.Policy.SeniorMaxRisk = r
	}

	c.Contact = ContactPolicy{DismissAfter: 3, DismissDays: 30, ConversionCooloffDays: 90, EventWindowDays: 30}
	if fc := f.Contact; fc != nil {
		for i, cp := range fc.ImpressionCaps {
			parseCap(cp, fmt.Sprintf("contact.impression_caps[%d]", i), "", &c.Contact.ImpressionCaps, &probs)
		}
		for i, cp := range fc.PushCaps {
			parseCap(cp, fmt.Sprintf("contact.push_caps[%d]", i), "", &c.Contact.PushCaps, &probs)
		}
		c.Contact.DismissAfter, c.Contact.DismissDays = fc.DismissAfter, fc.DismissDays
		c.Contact.ConversionCooloffDays, c.Contact.EventWindowDays = fc.ConversionCooloffDays, fc.EventWindowDays
		if fc.DismissAfter < 1 || fc.DismissDays < 1 || fc.DismissDays > 3650 {
			probs.addf("", "contact.dismiss_after", "dismiss_after and dismiss_days must be at least 1 (days at most 3650)")
		}
		if fc.ConversionCooloffDays < 0 || fc.ConversionCooloffDays > 3650 {
			probs.addf("", "contact.conversion_cooloff_days", "%d: want 0..3650", fc.ConversionCooloffDays)
		}
		if fc.EventWindowDays < 1 || fc.EventWindowDays > 365 {
			probs.addf("", "contact.event_window_days", "%d: want 1..365", fc.EventWindowDays)
		}
	}

	c.Reasons = make(map[string]string, len(f.Reasons))
	for code, text := range f.Reasons {
		if !reasonCode.MatchString(code) {
			probs.addf("", "reasons."+code, "want an upper-case reason code")
		}
		if err := checkReasonText(text); err != nil {
			probs.addf("", "reasons."+code, "%v", err)
		}
		c.Reasons[code] = text
	}
	for _, code := range []string{ReasonPopular, ReasonGeneral} {
		if _, ok := f.Reasons[code]; !ok {
			probs.addf("", "reasons."+code, "missing: non-personalised and control lists need it")
		}
	}
	c.FeatureReasons = f.FeatureReasons
	for feature, code := range f.FeatureReasons {
		if _, ok := f.Reasons[code]; !ok {
			probs.addf("", "feature_reasons."+feature, "reason code %q has no text in reasons", code)
		}
	}

	if len(f.Products) == 0 {
		probs.addf("", "products", "must not be empty")
	}
	for i, raw := range f.Products {
		p, ok := parseProduct(c, raw, i, &probs)
		if !ok {
			continue
		}
		if _, dup := c.byID[p.ID]; dup {
			probs.addf(p.ID, "id", "duplicate product id")
			continue
		}
		p.Index = len(c.Products)
		c.byID[p.ID] = p.Index
		c.Products = append(c.Products, p)
	}

	c.Levers = c.parseLevers(f.Levers, &probs)

	if err := probs.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// parseLevers checks campaign levers against the catalog's products.
func (c *Catalog) parseLevers(fls []fileLever, probs *problems) []Lever {
	var levers []Lever
	for i, fl := range fls {
		field := fmt.Sprintf("levers[%d]", i)
		if _, ok := c.byID[fl.Product]; !ok {
			probs.addf("", field+".product", "unknown product %q", fl.Product)
		}
		if !(fl.Factor > 0 && fl.Factor <= 10) {
			probs.addf(fl.Product, field+".factor", "%v: want (0, 10]", fl.Factor)
		}
		w, err := parseWindow(fl.From, fl.Until)
		if err != nil {
			probs.addf(fl.Product, field, "%v", err)
		}
		levers = append(levers, Lever{Product: fl.Product, Factor: fl.Factor, Window: w, Note: fl.Note})
	}
	return levers
}

func parseProduct(c *Catalog, raw json.RawMessage, i int, probs *problems) (Product, bool) {
	var fp fileProduct
	if err := strictDecode(raw, &fp); err != nil {
		// Name the product if its id can be read at all.
		var id struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(raw, &id)
		probs.addf(id.ID, fmt.Sprintf("products[%d]", i), "%v", err)
		return Product{}, false
	}
	id := fp.ID
	if !productID.MatchString(id) {
		probs.addf(id, fmt.Sprintf("products[%d].id", i), "want 2 to 32 of A-Z, 0-9 and _, starting with a letter")
		return Product{}, false
	}
	p := Product{
		ID:              id,
		Name:            fp.Name,
		Category:        fp.Category,
		HeldWhen:        fp.HeldWhen,
		BusinessValue:   fp.BusinessValue,
		Prior:           fp.Prior,
		RequiresConsent: fp.RequiresConsent,
		Attributes:      fp.Attributes,
	}
	if n := utf8.RuneCountInString(fp.Name); n == 0 || n > 20 {
		probs.addf(id, "name", "%d characters: want 1..20", n)
	}
	cat, ok := c.Categories[fp.Category]
	if !ok {
		probs.addf(id, "category", "unknown category %q", fp.Category)
	}
	switch {
	case fp.RiskLevel == nil:
		if cat.Investment {
			probs.addf(id, "risk_level", "an investment product (%s) needs a risk level", cat.ID)
		}
	case !cat.Investment && ok:
		probs.addf(id, "risk_level", "a %s product has no risk level; use null", cat.ID)
	default:
		r, err := ParseRiskLevel(*fp.RiskLevel)
		if err != nil {
			probs.addf(id, "risk_level", "%v", err)
		} else if r < cat.MinRisk || r > cat.MaxRisk {
			probs.addf(id, "risk_level", "%s outside the %s range %s..%s", r, cat.ID, cat.MinRisk, cat.MaxRisk)
		}
		p.Risk = r
	}

	el := fp.Eligibility
	p.Eligibility = Eligibility{MinAge: el.MinAge, MaxAge: el.MaxAge, Regions: el.Regions, MinKYC: el.MinKYC}
	if el.MinAge < 0 || el.MinAge > 120 {
		probs.addf(id, "eligibility.min_age", "%d: want 0..120", el.MinAge)
	}
	if el.MaxAge != 0 && (el.MaxAge < el.MinAge || el.MaxAge > 120) {
		probs.addf(id, "eligibility.max_age", "%d: want 0 (none) or min_age..120", el.MaxAge)
	}
	for _, r := range el.Regions {
		if RegionIndex(r) == 0 {
			probs.addf(id, "eligibility.regions", "unknown region %q", r)
		}
	}
	if el.MinKYC < 1 || el.MinKYC > 3 {
		probs.addf(id, "eligibility.min_kyc", "%d: want 1..3", el.MinKYC)
	}
	if len(el.Channels) == 0 {
		probs.addf(id, "eligibility.channels", "must name at least one channel")
	}
	for _, name := range el.Channels {
		ch, err := ParseChannel(name)
		if err != nil {
			probs.addf(id, "eligibility.channels", "%v", err)
			continue
		}
		p.Eligibility.Channels[ch] = true
	}

	w, err := parseWindow(fp.SaleWindow.From, fp.SaleWindow.Until)
	if err != nil {
		probs.addf(id, "sale_window", "%v", err)
	}
	p.SaleWindow = w

	if !(fp.BusinessValue > 0 && fp.BusinessValue <= 100) {
		probs.addf(id, "business_value", "%v: want (0, 100]", fp.BusinessValue)
	}
	if !(fp.Prior > 0 && fp.Prior < 1) {
		probs.addf(id, "prior", "%v: want a rate in (0, 1)", fp.Prior)
	}
	for k, v := range fp.Attributes {
		if !isIdent(k) || k == VarSalutation || k == VarName {
			probs.addf(id, "attributes."+k, "bad or reserved attribute name")
		}
		if strings.ContainsAny(v, "{}") {
			probs.addf(id, "attributes."+k, "braces are not allowed in values")
		}
	}

	for i, cp := range fp.ImpressionCaps {
		parseCap(cp, fmt.Sprintf("impression_caps[%d]", i), id, &p.ImpressionCaps, probs)
	}

	p.Rules.Base = fp.Rules.Base
	if !(fp.Rules.Base > 0 && fp.Rules.Base < 1) {
		probs.addf(id, "rules.base", "%v: want a rate in (0, 1)", fp.Rules.Base)
	}
	for j, s := range fp.Rules.Signals {
		field := fmt.Sprintf("rules.signals[%d]", j)
		sig := Signal{Code: s.Code, Feature: s.Feature, Op: s.Op, Value: s.Value, Weight: s.Weight}
		if !reasonCode.MatchString(s.Code) {
			probs.addf(id, field+".code", "%q: want an upper-case reason code", s.Code)
		}
		if s.Feature == "" {
			probs.addf(id, field+".feature", "must not be empty")
		}
		switch s.Op {
		case ">=", ">", "<=", "<", "==", "!=":
		default:
			probs.addf(id, field+".op", "%q: want one of >= > <= < == !=", s.Op)
		}
		if math.IsNaN(s.Weight) || math.Abs(s.Weight) > 10 {
			probs.addf(id, field+".weight", "%v: want -10..10", s.Weight)
		}
		if _, ok := c.Reasons[s.Code]; !ok && s.Weight > 0 && reasonCode.MatchString(s.Code) {
			probs.addf(id, field+".code", "reason code %q has no text in reasons", s.Code)
		}
		p.Rules.Signals = append(p.Rules.Signals, sig)
	}

	names := make([]string, 0, len(fp.Copy))
	for name := range fp.Copy {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ch, err := ParseChannel(name)
		if err != nil {
			probs.addf(id, "copy."+name, "%v", err)
			continue
		}
		if !p.Eligibility.Channels[ch] {
			probs.addf(id, "copy."+name, "copy for a channel the product is not offered on")
		}
		p.copy[ch] = compileCopy(&p, ch, fp.Copy[name], cat.Disclaimer, probs)
	}
	for ch := Channel(0); ch < NumChannels; ch++ {
		if p.Eligibility.Channels[ch] && !p.copy[ch].ok {
			if _, given := fp.Copy[ch.String()]; !given {
				probs.addf(id, "copy."+ch.String(), "missing: the product is offered on this channel")
			}
		}
	}
	return p, true
}

// compileCopy parses a channel's templates and checks, in runes, that the
// longest rendering fits the channel's limits.
func compileCopy(p *Product, ch Channel, fc fileCopy, disclaimer string, probs *problems) copyTemplate {
	lim := ch.Limits()
	prefix := "copy." + ch.String() + "."
	ct := copyTemplate{ok: true}
	fields := []struct {
		name string
		src  string
		dst  *template
		max  int
	}{
		{"title", fc.Title, &ct.title, lim.Title},
		{"body", fc.Body, &ct.body, lim.Body},
		{"cta", fc.CTA, &ct.cta, lim.CTA},
	}
	for _, fl := range fields {
		if strings.TrimSpace(fl.src) == "" {
			probs.addf(p.ID, prefix+fl.name, "must not be empty")
			ct.ok = false
			continue
		}
		t, err := parseTemplate(fl.src)
		if err != nil {
			probs.addf(p.ID, prefix+fl.name, "%v", err)
			ct.ok = false
			continue
		}
		bad := false
		for _, v := range t.vars() {
			if v == VarSalutation || v == VarName {
				continue
			}
			if _, ok := p.Attributes[v]; !ok {
				probs.addf(p.ID, prefix+fl.name, "unknown template variable {%s}", v)
				bad = true
			}
		}
		if bad {
			ct.ok = false
			continue
		}
		n := maxRunes(t, p)
		if n > fl.max {
			probs.addf(p.ID, prefix+fl.name, "%d characters at most, over the %s limit of %d", n, ch, fl.max)
			ct.ok = false
		}
		if fl.name == "body" && lim.BodyWithDisclaimer > 0 {
			if m := n + utf8.RuneCountInString(disclaimer); m > lim.BodyWithDisclaimer {
				probs.addf(p.ID, prefix+fl.name, "%d characters with the risk warning, over the %s limit of %d", m, ch, lim.BodyWithDisclaimer)
				ct.ok = false
			}
		}
		*fl.dst = t.resolve(p)
	}
	return ct
}

// maxRunes is the longest the template can render, with the longest
// salutation allowed.
func maxRunes(t template, p *Product) int {
	n := 0
	for _, pt := range t.parts {
		switch {
		case pt.lit != "":
			n += utf8.RuneCountInString(pt.lit)
		case pt.v == VarSalutation:
			n += MaxSalutationRunes
		case pt.v == VarName:
			n += utf8.RuneCountInString(p.Name)
		default:
			n += utf8.RuneCountInString(p.Attributes[pt.v])
		}
	}
	return n
}

func parseCap(fc fileCap, field, product string, dst *[NumChannels]Cap, probs *problems) {
	ch, err := ParseChannel(fc.Channel)
	if err != nil {
		probs.addf(product, field+".channel", "%v", err)
		return
	}
	if fc.Max < 0 || fc.Max > 1000 || fc.Days < 1 || fc.Days > 366 {
		probs.addf(product, field, "max %d per %d days: want max 0..1000 and days 1..366", fc.Max, fc.Days)
		return
	}
	if dst[ch].Days != 0 {
		probs.addf(product, field, "a second cap for %s", ch)
		return
	}
	dst[ch] = Cap{Max: fc.Max, Days: fc.Days}
}

func parseWindow(from, until string) (Window, error) {
	var w Window
	var err error
	if from != "" {
		if w.From, err = parseDate(from); err != nil {
			return w, fmt.Errorf("from: %w", err)
		}
	}
	if until != "" {
		if w.Until, err = parseDate(until); err != nil {
			return w, fmt.Errorf("until: %w", err)
		}
	}
	if !w.From.IsZero() && !w.Until.IsZero() && !w.From.Before(w.Until) {
		return w, fmt.Errorf("from %s is not before until %s", from, until)
	}
	return w, nil
}

// parseDate reads a date (2006-01-02, China Standard Time, meaning its
// midnight) or an RFC 3339 time.
func parseDate(s string) (time.Time, error) {
	if t, err := time.ParseInLocation(time.DateOnly, s, zone); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want YYYY-MM-DD or RFC 3339", s)
	}
	return t, nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// checkReasonText refuses a reason text that could carry a raw value: a
// reason says why ("余额较高"), never how much ("余额 123,456 元").
func checkReasonText(text string) error {
	n := utf8.RuneCountInString(text)
	if n == 0 || n > 30 {
		return fmt.Errorf("%d characters: want 1..30", n)
	}
	for _, r := range text {
		switch {
		case r >= '0' && r <= '9', r >= '０' && r <= '９':
			return fmt.Errorf("%q: digits could reveal a customer's values", text)
		case strings.ContainsRune("%％¥￥元$", r):
			return fmt.Errorf("%q: amounts and rates do not belong in a reason", text)
		}
	}
	return nil
}
