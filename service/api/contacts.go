package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/gofiber/fiber/v2"

	"github.com/directops/nbp/features"
)

// ContactStore links WeCom contacts to customers (a *features.Store is
// one).
type ContactStore interface {
	LinkContacts(ctx context.Context, links []features.ContactLink) error
	LinkedCustomer(ctx context.Context, externalUserID string) (string, error)
}

// MaxLinks caps the links of one PUT /v1/contacts.
const MaxLinks = 1000

// Error codes of the contact links.
const (
	CodeInvalidExternalUserID = "invalid_external_userid"
	CodeContactNotLinked      = "contact_not_linked"
	CodeTooManyLinks          = "too_many_links"
)

// ContactLinksRequest is the body of PUT /v1/contacts.
type ContactLinksRequest struct {
	Links []ContactLinkRequest `json:"links"`
}

// ContactLinkRequest links one WeCom contact to a customer.
type ContactLinkRequest struct {
	ExternalUserID string `json:"external_userid"`
	CustomerID     string `json:"customer_id"`
}

// ContactLinksResponse says what became of the links.
type ContactLinksResponse struct {
	Linked   int             `json:"linked"`
	Rejected []LinkRejection `json:"rejected"`
}

// LinkRejection is a link that was not stored, and why.
type LinkRejection struct {
	Index          int    `json:"index"`
	ExternalUserID string `json:"external_userid,omitempty"`
	Code           string `json:"code"`
	Message        string `json:"message"`
}

// ContactResponse is the body of GET /v1/contacts/{external_userid}.
type ContactResponse struct {
	ExternalUserID string `json:"external_userid"`
	CustomerID     string `json:"customer_id"`
}

// handlePutContacts serves PUT /v1/contacts: the bank's links from WeCom
// contacts to its customers. Malformed links are refused with their index
// and reason, the others stored. Storing a link again changes nothing, so
// a 503 is retried whole.
func (s *Server) handlePutContacts(c *fiber.Ctx) error {
	if s.contacts == nil {
		return fiber.ErrNotFound
	}
	var req ContactLinksRequest
	d := json.NewDecoder(bytes.NewReader(c.Body()))
	d.DisallowUnknownFields()
	if err := d.Decode(&req); err != nil || d.More() {
		return badRequest(CodeBadRequest, `the body must be {"links": [{"external_userid": ..., "customer_id": ...}, ...]}`)
	}
	if len(req.Links) == 0 {
		return badRequest(CodeBadRequest, "no links")
	}
	if len(req.Links) > MaxLinks {
		return badRequest(CodeTooManyLinks, fmt.Sprintf("at most %d links per request", MaxLinks))
	}
	resp := ContactLinksResponse{Rejected: []LinkRejection{}}
	links := make([]features.ContactLink, 0, len(req.Links))
	for i, l := range req.Links {
		switch {
		case !features.ValidID(l.ExternalUserID):
			resp.Rejected = append(resp.Rejected, LinkRejection{Index: i, Code: CodeInvalidExternalUserID,
				Message: "external_userid must be 1 to 64 of A-Z a-z 0-9 _ -"})
		case !features.ValidID(l.CustomerID):
			resp.Rejected = append(resp.Rejected, LinkRejection{Index: i, ExternalUserID: l.ExternalUserID, Code: CodeInvalidCustomerID,
				Message: "customer_id must be 1 to 64 of A-Z a-z 0-9 _ -"})
		default:
			links = append(links, features.ContactLink{ExternalUserID: l.ExternalUserID, CustomerID: l.CustomerID})
		}
	}
	if len(links) > 0 {
		ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.EventsTimeout)
		defer cancel()
		if err := s.contacts.LinkContacts(ctx, links); err != nil {
			return &apiError{status: fiber.StatusServiceUnavailable, code: CodeUnavailable, message: "links could not be stored; retry them"}
		}
	}
	resp.Linked = len(links)
	return c.JSON(resp)
}

// handleGetContact serves GET /v1/contacts/{external_userid}: the customer
// a WeCom contact is linked to, for the agent's sidebar.
func (s *Server) handleGetContact(c *fiber.Ctx) error {
	if s.contacts == nil {
		return fiber.ErrNotFound
	}
	ext := c.Params("external_userid")
	if !features.ValidID(ext) {
		return badRequest(CodeInvalidExternalUserID, "external_userid must be 1 to 64 of A-Z a-z 0-9 _ -")
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.RequestTimeout)
	defer cancel()
	id, err := s.contacts.LinkedCustomer(ctx, ext)
	switch {
	case errors.Is(err, features.ErrNotLinked):
		return &apiError{status: fiber.StatusNotFound, code: CodeContactNotLinked, message: "this WeCom contact is not linked to a customer"}
	case err != nil:
		return &apiError{status: fiber.StatusServiceUnavailable, code: CodeUnavailable, message: "contact links unavailable; retry"}
	}
	return c.JSON(ContactResponse{ExternalUserID: ext, CustomerID: id})
}
