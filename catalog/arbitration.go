package catalog

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"
	"time"
)

// Arbitration is what steers the ranking: each product's business value,
// each channel's context weight by category, and campaign levers with
// their time windows. The catalog holds the defaults; an arbitration file
// overrides them and can be reloaded while the server runs.
type Arbitration struct {
	Version       string
	BusinessValue []float64 // per product index
	ContextWeight [NumChannels]map[string]float64
	Levers        []Lever
	lever         [][]int // per product index: indexes into Levers
}

// DefaultArbitration is the catalog's own arbitration.
func (c *Catalog) DefaultArbitration() *Arbitration {
	a := &Arbitration{Version: "catalog@" + c.Version, BusinessValue: make([]float64, len(c.Products)), Levers: c.Levers}
	for i := range c.Products {
		a.BusinessValue[i] = c.Products[i].BusinessValue
	}
	for ch := range a.ContextWeight {
		a.ContextWeight[ch] = c.Channels[ch].ContextWeight
	}
	a.index(c)
	return a
}

func (a *Arbitration) index(c *Catalog) {
	a.lever = make([][]int, len(c.Products))
	for i, l := range a.Levers {
		if k, ok := c.byID[l.Product]; ok {
			a.lever[k] = append(a.lever[k], i)
		}
	}
}

// Factor returns a product's priority factor on a channel at time t:
// business value × context weight × every lever in force.
func (a *Arbitration) Factor(p *Product, ch Channel, t time.Time) float64 {
	f := a.BusinessValue[p.Index]
	if w, ok := a.ContextWeight[ch][p.Category]; ok {
		f *= w
	}
	for _, i := range a.lever[p.Index] {
		if l := &a.Levers[i]; l.Window.Contains(t) {
			f *= l.Factor
		}
	}
	return f
}

type fileArbitration struct {
	Version        string                        `json:"version"`
	BusinessValue  map[string]float64            `json:"business_value"`
	ContextWeights map[string]map[string]float64 `json:"context_weights"`
	Levers         []fileLever                   `json:"levers"`
}

// LoadArbitration reads an arbitration file (see ParseArbitration).
func (c *Catalog) LoadArbitration(path string) (*Arbitration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read arbitration: %w", err)
	}
	a, err := c.ParseArbitration(b)
	if err != nil {
		return nil, fmt.Errorf("arbitration %s: %w", path, err)
	}
	return a, nil
}

// ParseArbitration validates an arbitration document against the catalog:
//
//	{"version": "2026-11-27.1",
//	 "business_value": {"TD_1Y": 0.3},
//	 "context_weights": {"app_feed": {"wealth": 1.2}},
//	 "levers": [{"product": "PENSION_ACCOUNT", "factor": 1.5, "from": "2026-11-01", "until": "2027-01-01"}]}
//
// Values it does not name keep the catalog's; its levers replace the
// catalog's. Every problem is reported in one error wrapping ErrInvalid.
func (c *Catalog) ParseArbitration(b []byte) (*Arbitration, error) {
	var f fileArbitration
	if err := strictDecode(b, &f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	a := c.DefaultArbitration()
	var probs problems
	a.Version = strings.TrimSpace(f.Version)
	if a.Version == "" {
		probs.addf("", "version", "must not be empty")
	}
	for id, v := range f.BusinessValue {
		k, ok := c.byID[id]
		if !ok {
			probs.addf("", "business_value."+id, "unknown product")
			continue
		}
		if !(v > 0 && v <= 100) {
			probs.addf(id, "business_value", "%v: want (0, 100]", v)
		}
		a.BusinessValue[k] = v
	}
	for name, weights := range f.ContextWeights {
		ch, err := ParseChannel(name)
		if err != nil {
			probs.addf("", "context_weights."+name, "%v", err)
			continue
		}
		merged := make(map[string]float64, len(a.ContextWeight[ch])+len(weights))
		for k, v := range a.ContextWeight[ch] {
			merged[k] = v
		}
		for cat, w := range weights {
			if _, ok := c.Categories[cat]; !ok {
				probs.addf("", "context_weights."+name+"."+cat, "unknown category")
			}
			if !(w > 0 && w <= 100) || math.IsInf(w, 0) {
				probs.addf("", "context_weights."+name+"."+cat, "%v: want (0, 100]", w)
			}
			merged[cat] = w
		}
		a.ContextWeight[ch] = merged
	}
	if f.Levers != nil {
		a.Levers = c.parseLevers(f.Levers, &probs)
	}
	if err := probs.err(); err != nil {
		return nil, err
	}
	a.index(c)
	return a, nil
}

// MarshalArbitration writes the catalog's arbitration as a file
// ParseArbitration reads: a starting point for a campaign team.
func (c *Catalog) MarshalArbitration() ([]byte, error) {
	f := fileArbitration{Version: c.Version, BusinessValue: map[string]float64{}, ContextWeights: map[string]map[string]float64{}}
	for i := range c.Products {
		f.BusinessValue[c.Products[i].ID] = c.Products[i].BusinessValue
	}
	for ch := Channel(0); ch < NumChannels; ch++ {
		f.ContextWeights[ch.String()] = c.Channels[ch].ContextWeight
	}
	f.Levers = []fileLever{}
	for _, l := range c.Levers {
		fl := fileLever{Product: l.Product, Factor: l.Factor, Note: l.Note}
		if !l.Window.From.IsZero() {
			fl.From = l.Window.From.Format(time.RFC3339)
		}
		if !l.Window.Until.IsZero() {
			fl.Until = l.Window.Until.Format(time.RFC3339)
		}
		f.Levers = append(f.Levers, fl)
	}
	return json.MarshalIndent(f, "", "  ")
}
