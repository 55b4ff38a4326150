package service

// routes lists every endpoint. Anything else is a JSON 404, or a JSON 405
// for a known path with another method (see errorHandler).
func (s *Server) routes() {
	s.app.Get("/healthz", s.handleHealthz)
	s.app.Get("/readyz", s.handleReadyz)
	s.app.Get("/v1/customers/:customer_id/recommendations", s.limit, s.handleRecommend)
	s.app.Post("/v1/events", s.handleEvents)
	s.app.Get("/v1/stats", s.handleStats)
	s.app.Get("/v1/decisions/:decision_id", s.handleDecision)
	s.app.Get("/openapi.json", s.handleOpenAPI)
}
