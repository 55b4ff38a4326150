package api

import (
	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/service"
)

// The wire types of the HTTP API, kept apart from the domain types.

// RecommendationResponse is the body of GET /v1/customers/{id}/recommendations.
type RecommendationResponse struct {
	CustomerID      string         `json:"customer_id"`
	Channel         string         `json:"channel"`
	DecisionID      string         `json:"decision_id"`
	ModelVersion    string         `json:"model_version"`
	CatalogVersion  string         `json:"catalog_version"`
	Strategy        string         `json:"strategy"`
	Degraded        bool           `json:"degraded"`
	DegradedReasons []string       `json:"degraded_reasons"`
	Items           []ItemResponse `json:"items"`
}

// ItemResponse is one ranked product.
type ItemResponse struct {
	Rank       int     `json:"rank"`
	ProductID  string  `json:"product_id"`
	Name       string  `json:"name"`
	Category   string  `json:"category"`
	RiskLevel  *string `json:"risk_level"`
	Propensity float64 `json:"propensity"`
	Priority   float64 `json:"priority"`
	// ScoredBy is what scored the product: the decision's strategy, or
	// rules for a product the model leaves out.
	ScoredBy string           `json:"scored_by"`
	Copy     CopyResponse     `json:"copy"`
	Reasons  []ReasonResponse `json:"reasons"`
}

// ReasonResponse says why an item is offered.
type ReasonResponse struct {
	Code string `json:"code"`
	Text string `json:"text"`
}

// CopyResponse is the push copy of an item.
type CopyResponse struct {
	Title      string `json:"title"`
	Body       string `json:"body"`
	CTA        string `json:"cta"`
	Disclaimer string `json:"disclaimer"`
}

// ErrorResponse is the body of every error.
type ErrorResponse struct {
	Error ErrorBody `json:"error"`
}

// ErrorBody says what went wrong, with a machine-readable code.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// HealthResponse is the body of /healthz and /readyz.
type HealthResponse struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks,omitempty"`
	// ModelVersion is the model version in force (/readyz).
	ModelVersion string `json:"model_version,omitempty"`
}

// riskLevels are the catalog's risk level names, pointed to (never
// written) by the items, so that an answer allocates none.
var riskLevels = func() (names [6]string) {
	for r := range names {
		names[r] = catalog.RiskLevel(r).String()
	}
	return names
}()

func toResponse(d *service.Decision) RecommendationResponse {
	r := RecommendationResponse{
		CustomerID:      d.CustomerID,
		Channel:         d.Channel.String(),
		DecisionID:      d.ID,
		ModelVersion:    d.ModelVersion,
		CatalogVersion:  d.CatalogVersion,
		Strategy:        string(d.Strategy),
		Degraded:        d.Degraded,
		DegradedReasons: d.DegradedReasons,
		Items:           make([]ItemResponse, len(d.Items)),
	}
	if r.DegradedReasons == nil {
		r.DegradedReasons = []string{}
	}
	n := 0
	for i := range d.Items {
		n += len(d.Items[i].Reasons)
	}
	reasons := make([]ReasonResponse, n) // one array for every item's
	for i := range d.Items {
		it := &d.Items[i]
		var risk *string
		if r := it.Product.Risk; r >= 1 && int(r) < len(riskLevels) {
			risk = &riskLevels[r]
		}
		r.Items[i] = ItemResponse{
			Rank:       it.Rank,
			ProductID:  it.Product.ID,
			Name:       it.Product.Name,
			Category:   it.Product.Category,
			RiskLevel:  risk,
			Propensity: service.Round4(it.Propensity),
			Priority:   service.Round4(it.Priority),
			ScoredBy:   string(it.ScoredBy),
			Copy: CopyResponse{
				Title:      it.Copy.Title,
				Body:       it.Copy.Body,
				CTA:        it.Copy.CTA,
				Disclaimer: it.Copy.Disclaimer,
			},
			Reasons: reasons[:len(it.Reasons):len(it.Reasons)],
		}
		for j, rs := range it.Reasons {
			reasons[j] = ReasonResponse(rs)
		}
		reasons = reasons[len(it.Reasons):]
	}
	return r
}
