package service

import (
	"context"
	"fmt"
	"time"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
)

// Assessment states of a customer's risk assessment.
const (
	AssessmentValid   = "valid"
	AssessmentExpired = "expired" // investment products are withheld until the customer re-assesses
	AssessmentNever   = "never"
)

// Profile is what an agent may see of a customer before reaching out: how
// to address them and what limits the offers (the risk assessment, consent,
// contact caps), never balances or the feature values behind them.
type Profile struct {
	CustomerID string
	// Known is false for a customer without usable features (a cold start,
	// or a vector that cannot be decoded); the rest is then empty.
	Known         bool
	FeatureStatus string
	Salutation    string
	RiskTolerance catalog.RiskTolerance
	Assessment    string
	// AssessedUntil is the last day the assessment is valid (zero: never
	// assessed).
	AssessedUntil         time.Time
	MarketingConsent      bool
	PersonalisationOptOut bool
	// Pushes is where the customer stands against each outbound channel's
	// push cap; ImpressionCapped counts the products already shown as
	// often as allowed on the channel asked about.
	Pushes           []catalog.CapState
	ImpressionCapped int
}

// Profile reads a customer's profile for an agent on channel ch. A store
// that cannot answer is an error (wrapping features.ErrUnavailable): an
// agent's page says so and offers a retry.
func (p *Pipeline) Profile(ctx context.Context, id string, ch catalog.Channel) (Profile, error) {
	if !features.ValidID(id) || ch >= catalog.NumChannels {
		return Profile{}, fmt.Errorf("profile: %w", ErrInvalidRequest)
	}
	var rec [1]features.Record
	fctx, cancel := context.WithTimeout(ctx, p.featureTimeout)
	defer cancel()
	if err := p.store.ReadManyRun(fctx, []string{id}, "", rec[:]); err != nil {
		return Profile{}, fmt.Errorf("profile: %w", err)
	}
	now := p.now()
	r := &rec[0]
	pr := Profile{CustomerID: id, FeatureStatus: r.Status.String()}
	pr.Pushes, pr.ImpressionCapped = p.cat.CapStates(p.profile.ContactHistory(r.Contact), ch, now)
	if !r.Status.Usable() {
		return pr, nil
	}
	v := &r.Vector
	pr.Known = true
	pr.Salutation = v.Salutation
	pr.RiskTolerance = v.Tolerance()
	pr.MarketingConsent = v.Flag(features.MarketingConsent)
	pr.PersonalisationOptOut = v.Flag(features.PersonalisationOptOut)
	until := v.AssessedUntil()
	switch {
	case pr.RiskTolerance == 0 || until.IsZero():
		pr.Assessment = AssessmentNever
	case now.Before(until):
		pr.Assessment = AssessmentValid
	default:
		pr.Assessment = AssessmentExpired
	}
	if !until.IsZero() {
		pr.AssessedUntil = until.AddDate(0, 0, -1)
	}
	return pr, nil
}
