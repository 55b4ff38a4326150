package api

import "github.com/gofiber/fiber/v2/middleware/adaptor"

// routeRecommend is the recommendation route's pattern.
const (
	routeRecommend = "/v1/customers/:customer_id/recommendations"
	routeProfile   = "/v1/customers/:customer_id/profile"
)

// routes lists every endpoint. /healthz, /readyz, /openapi.json and
// /metrics (when the server has one) are open; the /v1 endpoints need an API key when clients are configured. Anything else is a JSON 404, or a JSON 405
// for a known path with another method (see errorHandler).
func (s *Server) routes() {
	if s.metrics != nil {
		s.app.Get("/metrics", adaptor.HTTPHandler(s.metrics))
	}
	s.app.Get("/healthz", s.handleHealthz)
	s.app.Get("/readyz", s.handleReadyz)
	s.app.Get(routeRecommend, s.limit, s.authorize(EndpointRecommend), s.handleRecommend)
	s.app.Post("/v1/events", s.authorize(EndpointEvents), s.handleEvents)
	s.app.Get("/v1/stats", s.authorize(EndpointStats), s.handleStats)
	s.app.Get("/v1/decisions/:decision_id", s.authorize(EndpointDecisions), s.handleDecision)
	s.app.Put("/v1/contacts", s.authorize(EndpointLinks), s.handlePutContacts)
	s.app.Get("/v1/contacts/:external_userid", s.authorize(EndpointContacts), s.handleGetContact)
	s.app.Get(routeProfile, s.authorize(EndpointProfile), s.handleProfile)
	s.app.Get("/v1/overview", s.authorize(EndpointOverview), s.handleOverview)
	s.app.Get("/v1/catalog", s.authorize(EndpointCatalog), s.handleCatalog)
	if s.models != nil {
		s.app.Get("/v1/admin/model", s.authorize(EndpointModels), s.handleGetModel)
		s.app.Put("/v1/admin/model", s.authorize(EndpointModels), s.handlePutModel)
	}
	s.app.Get("/openapi.json", s.handleOpenAPI)
	if s.pages != nil {
		s.pages.Routes(s.app)
	}
}
