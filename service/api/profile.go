package api

import (
	"context"
	"errors"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/service"
)

// ProfileResponse is the body of GET /v1/customers/{id}/profile: what an
// agent may see of a customer before reaching out. It carries no balance
// and no feature value, only the states that limit the offers.
type ProfileResponse struct {
	CustomerID    string `json:"customer_id"`
	Known         bool   `json:"known"`
	FeatureStatus string `json:"feature_status"`
	Salutation    string `json:"salutation"`
	// RiskTolerance is C1..C5, "" when never assessed.
	RiskTolerance string `json:"risk_tolerance"`
	// Assessment is valid, expired (investment products are withheld
	// until the customer re-assesses) or never; "" when not known.
	Assessment            string     `json:"assessment"`
	AssessedUntil         string     `json:"assessed_until,omitempty"` // the last valid day, YYYY-MM-DD
	MarketingConsent      bool       `json:"marketing_consent"`
	PersonalisationOptOut bool       `json:"personalisation_opt_out"`
	PushCaps              []CapState `json:"push_caps"`
	// ImpressionCapped counts products shown as often as allowed on the
	// channel: they rest until the cap's window moves on.
	ImpressionCapped int `json:"impression_capped"`
}

// CapState is where a customer stands against one channel's push cap.
type CapState struct {
	Channel string `json:"channel"`
	Used    int    `json:"used"`
	Max     int    `json:"max"`
	Days    int    `json:"days"`
	Reached bool   `json:"reached"`
}

// handleProfile serves GET /v1/customers/{customer_id}/profile?channel=.
func (s *Server) handleProfile(c *fiber.Ctx) error {
	id := c.Params("customer_id")
	if !features.ValidID(id) {
		return badRequest(CodeInvalidCustomerID, "customer_id must be 1 to 64 of A-Z a-z 0-9 _ -")
	}
	id = utils.CopyString(id)
	ch := catalog.WecomAgent
	var bad error
	c.Context().QueryArgs().VisitAll(func(k, v []byte) {
		if string(k) != "channel" {
			bad = badRequest(CodeUnknownParameter, "unknown query parameter; allowed: channel")
			return
		}
		parsed, err := catalog.ParseChannel(string(v))
		if err != nil {
			bad = badRequest(CodeInvalidChannel, "channel must be "+catalog.ChannelList())
			return
		}
		ch = parsed
	})
	if bad != nil {
		return bad
	}
	if !allowsChannel(c, ch) {
		return &apiError{status: fiber.StatusForbidden, code: CodeForbidden, message: "this client may not use this channel"}
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.RequestTimeout)
	defer cancel()
	p, err := s.pipeline.Profile(ctx, id, ch)
	if err != nil {
		if errors.Is(err, service.ErrInvalidRequest) {
			return badRequest(CodeBadRequest, "invalid request")
		}
		return &apiError{status: fiber.StatusServiceUnavailable, code: CodeUnavailable, message: "the customer's profile cannot be read now; retry"}
	}
	r := ProfileResponse{
		CustomerID: p.CustomerID, Known: p.Known, FeatureStatus: p.FeatureStatus, Salutation: p.Salutation,
		RiskTolerance: p.RiskTolerance.String(), Assessment: p.Assessment,
		MarketingConsent: p.MarketingConsent, PersonalisationOptOut: p.PersonalisationOptOut,
		PushCaps: make([]CapState, 0, len(p.Pushes)), ImpressionCapped: p.ImpressionCapped,
	}
	if !p.AssessedUntil.IsZero() {
		r.AssessedUntil = p.AssessedUntil.In(catalog.Zone()).Format(time.DateOnly)
	}
	for _, cs := range p.Pushes {
		r.PushCaps = append(r.PushCaps, CapState{Channel: cs.Channel.String(), Used: cs.Used, Max: cs.Cap.Max, Days: cs.Cap.Days, Reached: cs.Reached()})
	}
	return c.JSON(r)
}
