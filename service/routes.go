package service

import "github.com/gofiber/fiber/v2"

// routes lists every endpoint.
func (s *Server) routes() {
	s.app.Get("/healthz", s.handleHealthz)
	s.app.Get("/readyz", s.handleReadyz)
	s.app.Get("/v1/customers/:customer_id/recommendations", s.handleRecommend)
	// Anything else is a JSON 404 (or 405 for a known path).
	s.app.Use(func(c *fiber.Ctx) error { return fiber.ErrNotFound })
}
