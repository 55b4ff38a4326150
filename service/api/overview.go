package api

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/service/batch"
)

// BatchStatus reports where the latest batch run stands (a *batch.Store
// is one).
type BatchStatus interface {
	Status(ctx context.Context) (batch.RunStatus, error)
}

// OverviewResponse is the body of GET /v1/overview: what is in force, for
// the operations dashboard.
type OverviewResponse struct {
	// Now is the server's clock, China time: the dashboard's "today".
	Now            string `json:"now"`
	ModelVersion   string `json:"model_version"`
	CatalogVersion string `json:"catalog_version"`
	ConfigVersion  string `json:"config_version"`
	// Batch is the latest batch run; null when there is none or it cannot
	// be read now (BatchError says so).
	Batch      *batch.RunStatus `json:"batch"`
	BatchError string           `json:"batch_error,omitempty"`
}

// handleOverview serves GET /v1/overview.
func (s *Server) handleOverview(c *fiber.Ctx) error {
	r := OverviewResponse{
		Now:            s.pipeline.Now().In(catalog.Zone()).Format(time.RFC3339),
		CatalogVersion: s.pipeline.Catalog().Version,
	}
	if a := s.pipeline.Arbitration(); a != nil {
		r.ConfigVersion = a.Version
	}
	if s.version != nil {
		r.ModelVersion = s.version()
	}
	if s.batch != nil {
		ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.RequestTimeout)
		defer cancel()
		st, err := s.batch.Status(ctx)
		switch {
		case err != nil:
			r.BatchError = "unavailable"
		case st.Run != "":
			r.Batch = &st
		}
	}
	return c.JSON(r)
}
