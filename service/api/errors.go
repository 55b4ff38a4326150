package api

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/gofiber/fiber/v2"
)

// apiError is an error the caller should see, with its status and code.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

// Error returns an error that the server answers with the given status and
// the JSON error shape: for the handlers of other packages mounted on it.
func Error(status int, code, message string) error {
	return &apiError{status: status, code: code, message: message}
}

func badRequest(code, message string) error {
	return &apiError{status: fiber.StatusBadRequest, code: code, message: message}
}

// The error codes of the API.
const (
	CodeInvalidCustomerID = "invalid_customer_id"
	CodeInvalidChannel    = "invalid_channel"
	CodeInvalidLimit      = "invalid_limit"
	CodeUnknownParameter  = "unknown_parameter"
	CodeNotFound          = "not_found"
	CodeMethodNotAllowed  = "method_not_allowed"
	CodeTooLarge          = "request_too_large"
	CodeTimeout           = "timeout"
	CodeUnavailable       = "unavailable"
	CodeInternal          = "internal"
	CodeBadRequest        = "bad_request"
	CodeOverloaded        = "overloaded"
)

// errorHandler maps every error to the JSON error shape. Only server-side
// failures (5xx) are logged; their details never reach the caller.
func (s *Server) errorHandler(c *fiber.Ctx, err error) error {
	var ae *apiError
	var fe *fiber.Error
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &fe):
		ae = fromFiber(fe)
	case errors.Is(err, context.DeadlineExceeded):
		ae = &apiError{status: fiber.StatusServiceUnavailable, code: CodeTimeout, message: "the request could not be answered in time"}
	case errors.Is(err, context.Canceled):
		ae = &apiError{status: fiber.StatusServiceUnavailable, code: CodeUnavailable, message: "the request was cancelled"}
	default:
		ae = &apiError{status: fiber.StatusInternalServerError, code: CodeInternal, message: "internal error"}
	}
	if ae.status >= 500 {
		// At most a few lines a second: in an outage every request fails
		// the same way, and a line each would cost more than the answer.
		if ok, suppressed := s.errLog.Allow(time.Now()); ok {
			// The route pattern, never the path: the path holds a customer id.
			s.log.ErrorContext(c.UserContext(), "request failed",
				slog.String("route", c.Route().Path), slog.String("method", c.Method()),
				slog.Int("status", ae.status), slog.String("error", err.Error()),
				slog.Int64("similar_lines_suppressed", suppressed))
		}
	}
	return c.Status(ae.status).JSON(ErrorResponse{Error: ErrorBody{Code: ae.code, Message: ae.message}})
}

func fromFiber(fe *fiber.Error) *apiError {
	switch fe.Code {
	case fiber.StatusNotFound:
		return &apiError{status: fe.Code, code: CodeNotFound, message: "no such endpoint"}
	case fiber.StatusMethodNotAllowed:
		return &apiError{status: fe.Code, code: CodeMethodNotAllowed, message: "method not allowed on this endpoint"}
	case fiber.StatusRequestEntityTooLarge:
		return &apiError{status: fe.Code, code: CodeTooLarge, message: "request body too large"}
	case fiber.StatusRequestHeaderFieldsTooLarge:
		return &apiError{status: fe.Code, code: CodeTooLarge, message: "request headers too large"}
	case fiber.StatusRequestTimeout:
		return &apiError{status: fe.Code, code: CodeTimeout, message: "request timed out"}
	}
	if fe.Code >= 400 && fe.Code < 500 {
		return &apiError{status: fe.Code, code: CodeBadRequest, message: "malformed request"}
	}
	return &apiError{status: fiber.StatusInternalServerError, code: CodeInternal, message: "internal error"}
}
