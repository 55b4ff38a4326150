// Package model holds the scorers that turn customer feature vectors into a
// propensity per product: the ONNX propensity model, the declarative rules
// scorer built from the catalog, the non-personalised prior, and Guarded,
// which puts the model behind a circuit breaker with the rules as fallback.
//
// Every scorer has the same method set:
//
//	Score(ctx, x []float32, n int, out []float32) (Scored, error)
//
// x holds n feature vectors in the feature schema's order (row-major, NaN
// for a missing value); out receives n rows of propensities in the
// catalog's product order. The package knows nothing of Redis or HTTP.
package model

import (
	"errors"
	"fmt"
	"math"
)

// Strategy names what ranked a decision: one of the constants below, the
// only values decisions, statistics and metrics ever carry.
type Strategy string

// The strategies. A Scored names one of the first three; the pipeline adds
// the last two.
const (
	StrategyModel           Strategy = "model"            // the propensity model
	StrategyRules           Strategy = "rules"            // the rules scorer
	StrategyNonPersonalised Strategy = "non_personalised" // the product's base take-up rate
	// StrategyControl marks a control-group decision: the eligible
	// products in a random order, to measure what ranking adds.
	StrategyControl Strategy = "control"
	// StrategyBatch marks a decision ranked by the last batch run's list,
	// because the model could not score.
	StrategyBatch Strategy = "batch"
	// StrategyChallenger marks a decision ranked by the challenger model:
	// a configured share of customers, apart from the control group, to
	// measure it against the champion before it is promoted.
	StrategyChallenger Strategy = "challenger"
)

// Strategies returns every strategy, in the order above.
func Strategies() []Strategy {
	return []Strategy{StrategyModel, StrategyRules, StrategyNonPersonalised, StrategyControl, StrategyBatch, StrategyChallenger}
}

// Sentinel errors.
var (
	// ErrMismatch is wrapped when a model does not fit the feature schema
	// or the catalog.
	ErrMismatch = errors.New("model does not match")
	// ErrBadOutput is wrapped when a model returns a propensity that is not
	// a probability (NaN, or outside [0, 1]).
	ErrBadOutput = errors.New("model output is not a probability")
	// ErrTooSlow is wrapped when the model missed its latency budget.
	ErrTooSlow = errors.New("model over its latency budget")
	// ErrShape is wrapped when a call's buffers do not fit its row count.
	ErrShape = errors.New("bad batch shape")
)

// Scored says which scorer produced a batch of scores.
type Scored struct {
	Strategy Strategy // model, rules or non_personalised
	Version  string   // the model version, or the rules' catalog version
	// Fallback is set when the model was meant to score but the rules did;
	// Cause says why (breaker_open, error, too_slow, bad_output).
	Fallback bool
	Cause    string
	// Explain appends, for one row and product (catalog index) of the
	// scored batch, the reason codes behind the score, strongest first. It
	// is nil when the scorer cannot explain.
	Explain func(row, product int, dst []string) []string
	// ByRules, when set, says per catalog product whether the rules scored
	// it because the model leaves it out; do not modify.
	ByRules []bool
	// Release, when set, returns the scorer's buffers behind Explain;
	// Explain must not be called after it.
	Release func()
}

// ReasonPopular explains a non-personalised score: the product's base
// take-up rate.
const ReasonPopular = "POPULAR"

func checkShape(x []float32, n, features int, out []float32, products int) error {
	if n < 0 || len(x) < n*features || len(out) < n*products {
		return fmt.Errorf("%w: %d rows, %d inputs of %d features, %d outputs of %d products",
			ErrShape, n, len(x), features, len(out), products)
	}
	return nil
}

func sigmoid(z float64) float64 { return 1 / (1 + math.Exp(-z)) }

func logit(p float64) float64 { return math.Log(p / (1 - p)) }
