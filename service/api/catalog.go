package api

import (
	"slices"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/directops/nbp/catalog"
)

// CatalogResponse is the body of GET /v1/catalog: the names the pages show
// for the ids the other answers carry. It holds no customer data.
type CatalogResponse struct {
	Version    string            `json:"version"`
	Categories []CatalogCategory `json:"categories"`
	Products   []CatalogProduct  `json:"products"`
	Channels   []string          `json:"channels"`
	Reasons    map[string]string `json:"reasons"`
}

// CatalogCategory names a category.
type CatalogCategory struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Investment bool   `json:"investment"`
}

// CatalogProduct names a product.
type CatalogProduct struct {
	ID        string  `json:"id"`
	Name      string  `json:"name"`
	Category  string  `json:"category"`
	RiskLevel *string `json:"risk_level"`
}

// handleCatalog serves GET /v1/catalog.
func (s *Server) handleCatalog(c *fiber.Ctx) error {
	cat := s.pipeline.Catalog()
	r := CatalogResponse{Version: cat.Version, Reasons: cat.Reasons, Channels: []string{}}
	for _, cg := range cat.Categories {
		r.Categories = append(r.Categories, CatalogCategory{ID: cg.ID, Name: cg.Name, Investment: cg.Investment})
	}
	slices.SortFunc(r.Categories, func(a, b CatalogCategory) int {
		return strings.Compare(a.ID, b.ID)
	})
	for i := range cat.Products {
		p := &cat.Products[i]
		var risk *string
		if p.Risk > 0 {
			s := p.Risk.String()
			risk = &s
		}
		r.Products = append(r.Products, CatalogProduct{ID: p.ID, Name: p.Name, Category: p.Category, RiskLevel: risk})
	}
	for ch := range catalog.NumChannels {
		r.Channels = append(r.Channels, ch.String())
	}
	c.Set(fiber.HeaderCacheControl, "private, max-age=60")
	return c.JSON(r)
}
