package model

import (
	"context"
	"fmt"
	"strings"

	"github.com/directops/nbp/catalog"
)

// Rules scores with the catalog's declarative rules: each product starts
// at its base take-up rate, and every signal that fires adds its weight to
// the log-odds. It never fails, which is why it stands in for the model.
type Rules struct {
	version  string
	features int
	products []ruleSet
}

type ruleSet struct {
	base    float64 // log-odds
	signals []compiledSignal
}

type compiledSignal struct {
	col int
	catalog.Signal
}

// NewRules compiles the catalog's rules against the feature schema (the
// ordered field names of an input row). The error wraps ErrMismatch and
// names every signal whose feature the schema lacks.
func NewRules(cat *catalog.Catalog, schema []string) (*Rules, error) {
	col := make(map[string]int, len(schema))
	for i, name := range schema {
		col[name] = i
	}
	r := &Rules{version: "rules@" + cat.Version, features: len(schema), products: make([]ruleSet, len(cat.Products))}
	var bad []string
	for i := range cat.Products {
		p := &cat.Products[i]
		rs := ruleSet{base: logit(p.Rules.Base)}
		for j, s := range p.Rules.Signals {
			c, ok := col[s.Feature]
			if !ok {
				bad = append(bad, fmt.Sprintf("product %s: rules.signals[%d].feature: unknown feature %q", p.ID, j, s.Feature))
				continue
			}
			rs.signals = append(rs.signals, compiledSignal{col: c, Signal: s})
		}
		r.products[i] = rs
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("%w: rules against the feature schema:\n  %s", ErrMismatch, strings.Join(bad, "\n  "))
	}
	return r, nil
}

// Score scores n rows.
func (r *Rules) Score(ctx context.Context, x []float32, n int, out []float32) (Scored, error) {
	P := len(r.products)
	if err := checkShape(x, n, r.features, out, P); err != nil {
		return Scored{}, err
	}
	for i := 0; i < n; i++ {
		row := x[i*r.features : (i+1)*r.features]
		for k := range r.products {
			out[i*P+k] = float32(r.score(k, row))
		}
	}
	F := r.features
	explain := func(row, k int, dst []string) []string {
		return r.Fired(k, x[row*F:(row+1)*F], dst)
	}
	return Scored{Strategy: StrategyRules, Version: r.version, Explain: explain}, nil
}

func (r *Rules) score(k int, row []float32) float64 {
	rs := &r.products[k]
	z := rs.base
	for _, s := range rs.signals {
		if s.Holds(float64(row[s.col])) {
			z += s.Weight
		}
	}
	return sigmoid(z)
}

// Fired appends the reason codes of the signals that fire for product k on
// one row, strongest positive first.
func (r *Rules) Fired(k int, row []float32, dst []string) []string {
	sigs := r.products[k].signals
	start := len(dst)
	for _, s := range sigs {
		if s.Weight > 0 && s.Holds(float64(row[s.col])) {
			dst = append(dst, s.Code)
		}
	}
	// Signals are few: order the new codes by weight with an insertion sort.
	weight := func(code string) float64 {
		for _, s := range sigs {
			if s.Code == code {
				return s.Weight
			}
		}
		return 0
	}
	for i := start + 1; i < len(dst); i++ {
		for j := i; j > start && weight(dst[j]) > weight(dst[j-1]); j-- {
			dst[j], dst[j-1] = dst[j-1], dst[j]
		}
	}
	return dst
}

// Version returns the rules' version: rules@<catalog version>.
func (r *Rules) Version() string { return r.version }

// Prior scores every customer alike with each product's base take-up rate:
// the non-personalised list, for a cold start or a customer who opted out
// of personalisation. It reads no feature.
type Prior struct {
	version string
	prior   []float32
}

// NewPrior returns the prior of the catalog's products.
func NewPrior(cat *catalog.Catalog) *Prior {
	p := &Prior{version: "prior@" + cat.Version, prior: make([]float32, len(cat.Products))}
	for i := range cat.Products {
		p.prior[i] = float32(cat.Products[i].Prior)
	}
	return p
}

// Version returns prior@<catalog version>.
func (p *Prior) Version() string { return p.version }

// Rates returns the base take-up rates in catalog order; do not modify.
func (p *Prior) Rates() []float32 { return p.prior }

// Score fills out with the priors; x is not read.
func (p *Prior) Score(ctx context.Context, x []float32, n int, out []float32) (Scored, error) {
	P := len(p.prior)
	if n < 0 || len(out) < n*P {
		return Scored{}, fmt.Errorf("%w: %d rows, %d outputs", ErrShape, n, len(out))
	}
	for i := 0; i < n; i++ {
		copy(out[i*P:(i+1)*P], p.prior)
	}
	return Scored{Strategy: StrategyNonPersonalised, Version: p.version, Explain: explainPopular}, nil
}

func explainPopular(_, _ int, dst []string) []string { return append(dst, ReasonPopular) }
