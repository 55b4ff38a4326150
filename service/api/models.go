package api

import (
	"encoding/json"
	"errors"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/directops/nbp/model"
	"github.com/directops/nbp/service"
)

// Models is the model directory behind the server (model.Registry): the
// versions it holds, the one in force, and the one step that promotes or
// rolls back.
type Models interface {
	Versions() ([]string, error)
	InForce() string
	// Use validates a version and puts it in force, and points the
	// directory to it; a version that fails stays out.
	Use(version string) error
}

// ModelsResponse is the body of GET and PUT /v1/admin/model.
type ModelsResponse struct {
	InForce  string   `json:"in_force"`
	Versions []string `json:"versions"`
	// Shadow compares the shadow version with the one in force, over
	// the decisions it scored since the server started; absent without
	// one.
	Shadow *ShadowReport `json:"shadow,omitempty"`
}

// ShadowReport is service.ShadowReport on the wire.
type ShadowReport struct {
	Version         string         `json:"version"`
	Share           float64        `json:"share"`
	Compared        int64          `json:"compared"`
	Dropped         int64          `json:"dropped"`
	Failed          int64          `json:"failed"`
	Top3Overlap     float64        `json:"top3_overlap"`
	SameTop3        float64        `json:"same_top3"`
	RankCorrelation float64        `json:"rank_correlation"`
	Products        []ProductDrift `json:"products"`
}

// ProductDrift is service.ProductDrift on the wire.
type ProductDrift struct {
	Product     string  `json:"product_id"`
	Champion    float64 `json:"champion"`
	Shadow      float64 `json:"shadow"`
	MeanAbsDiff float64 `json:"mean_abs_diff"`
}

func shadowReport(r *service.ShadowReport) *ShadowReport {
	if r == nil {
		return nil
	}
	out := &ShadowReport{Version: r.Version, Share: r.Share, Compared: r.Compared, Dropped: r.Dropped, Failed: r.Failed,
		Top3Overlap: service.Round4(r.Top3Overlap), SameTop3: service.Round4(r.SameTop3), RankCorrelation: service.Round4(r.RankCorrelation),
		Products: make([]ProductDrift, len(r.Products))}
	for i, p := range r.Products {
		out.Products[i] = ProductDrift{Product: p.Product, Champion: service.Round4(p.Champion), Shadow: service.Round4(p.Shadow), MeanAbsDiff: service.Round4(p.MeanAbsDiff)}
	}
	return out
}

// ModelRequest is the body of PUT /v1/admin/model.
type ModelRequest struct {
	Version string `json:"version"`
}

// Error codes of /v1/admin/model.
const (
	CodeUnknownVersion = "unknown_version"
	CodeModelRefused   = "model_refused"
)

func (s *Server) handleGetModel(c *fiber.Ctx) error {
	vs, err := s.models.Versions()
	if err != nil {
		return err
	}
	return c.JSON(ModelsResponse{InForce: s.models.InForce(), Versions: vs, Shadow: shadowReport(s.pipeline.ShadowReport())})
}

// handlePutModel puts a version in force. It answers once the version
// serves, or says why it was refused, every problem on a line.
func (s *Server) handlePutModel(c *fiber.Ctx) error {
	var req ModelRequest
	dec := json.NewDecoder(strings.NewReader(string(c.Body())))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Version == "" {
		return badRequest(CodeBadRequest, `want {"version": "<a version folder of the model directory>"}`)
	}
	if !model.ValidVersion(req.Version) {
		return Error(fiber.StatusNotFound, CodeUnknownVersion, "not a version name")
	}
	if err := s.models.Use(req.Version); err != nil {
		if errors.Is(err, model.ErrUnknownVersion) {
			return Error(fiber.StatusNotFound, CodeUnknownVersion, "the model directory has no version "+req.Version)
		}
		// The refusal names files and features, never customer data.
		return Error(fiber.StatusUnprocessableEntity, CodeModelRefused, err.Error())
	}
	s.log.InfoContext(c.UserContext(), "model version put in force through the API", "version", req.Version)
	return s.handleGetModel(c)
}
