package service

// routes lists every endpoint. Anything else is a JSON 404, or a JSON 405
// for a known path with another method (see errorHandler).
func (s *Server) routes() {
	s.app.Get("/healthz", s.handleHealthz)
	s.app.Get("/readyz", s.handleReadyz)
	s.app.Get("/v1/customers/:customer_id/recommendations", s.handleRecommend)
}
