package api

import (
	"encoding/json"
	"errors"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/directops/nbp/model"
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
	return c.JSON(ModelsResponse{InForce: s.models.InForce(), Versions: vs})
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
