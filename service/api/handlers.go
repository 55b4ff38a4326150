package api

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"
	"go.opentelemetry.io/otel/trace"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/service"
	"github.com/directops/nbp/service/overload"
)

// handleRecommend serves GET /v1/customers/{customer_id}/recommendations.
func (s *Server) handleRecommend(c *fiber.Ctx) error {
	req, err := parseRecommend(c)
	if err != nil {
		return err
	}
	if !allowsChannel(c, req.Channel) {
		return &apiError{status: fiber.StatusForbidden, code: CodeForbidden, message: "this client may not use this channel"}
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), s.cfg.RequestTimeout)
	defer cancel()
	d, err := s.pipeline.Decide(service.WithSlotLender(ctx, s.limiter), req)
	if err != nil {
		if errors.Is(err, service.ErrInvalidRequest) {
			return badRequest(CodeBadRequest, "invalid request")
		}
		return err
	}
	if s.audit != nil {
		s.audit.Record(ctx, d)
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.SetAttributes(service.DecisionAttributes(&d)...)
	}
	r := toResponse(&d)
	bp := jsonBufs.Get().(*[]byte)
	*bp = r.AppendJSON((*bp)[:0])
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	// SetBody copies into the response; c.Send would keep the pooled
	// buffer, and the next request would overwrite it while it is written.
	c.Response().SetBody(*bp)
	jsonBufs.Put(bp)
	return nil
}

var jsonBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// parseRecommend validates the path and query. Strings kept are copied:
// fiber reuses its buffers after the handler returns.
func parseRecommend(c *fiber.Ctx) (service.Request, error) {
	req := service.Request{Limit: 3}
	id := c.Params("customer_id")
	if !features.ValidID(id) {
		return req, badRequest(CodeInvalidCustomerID, "customer_id must be 1 to 64 of A-Z a-z 0-9 _ -")
	}
	req.CustomerID = utils.CopyString(id)
	var err error
	seen := 0
	c.Context().QueryArgs().VisitAll(func(k, v []byte) {
		if err != nil {
			return
		}
		switch string(k) {
		case "channel":
			if seen&1 != 0 {
				err = badRequest(CodeInvalidChannel, "channel given more than once")
				return
			}
			seen |= 1
			ch, perr := catalog.ParseChannel(string(v))
			if perr != nil {
				err = badRequest(CodeInvalidChannel, "channel must be "+catalog.ChannelList())
				return
			}
			req.Channel = ch
		case "limit":
			if seen&2 != 0 {
				err = badRequest(CodeInvalidLimit, "limit given more than once")
				return
			}
			seen |= 2
			n, perr := strconv.Atoi(string(v))
			if perr != nil || n < 1 || n > service.MaxLimit {
				err = badRequest(CodeInvalidLimit, "limit must be an integer from 1 to "+strconv.Itoa(service.MaxLimit))
				return
			}
			req.Limit = n
		default:
			err = badRequest(CodeUnknownParameter, "unknown query parameter; allowed: channel, limit")
		}
	})
	if err != nil {
		return req, err
	}
	if seen&1 == 0 {
		return req, badRequest(CodeInvalidChannel, "channel is required: "+catalog.ChannelList())
	}
	return req, nil
}

// limit sheds a request at once when the limiter is full, or when it
// waited too long to be read while requests queue: a quick 503
// the caller can retry elsewhere beats a slow answer for all. The shed
// answer is prepared once and not logged: under overload it is the
// common case, and must cost as little as possible. It comes before access
// control: a request turned away then costs no key hash, and tells a
// stranger nothing.
func (s *Server) limit(c *fiber.Ctx) error {
	if !s.limiter.AcquireWaited(overload.ArrivalOf(c.Context().Conn(), time.Now())) {
		c.Status(fiber.StatusServiceUnavailable)
		c.Set(fiber.HeaderRetryAfter, "1")
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		c.Response().SetBodyRaw(shedBody)
		return nil
	}
	defer s.limiter.Release()
	return c.Next()
}

// shedBody is the answer to a shed request.
var shedBody = func() []byte {
	b, err := json.Marshal(ErrorResponse{Error: ErrorBody{Code: CodeOverloaded, Message: "too many requests in progress; retry shortly"}})
	if err != nil {
		panic(err)
	}
	return b
}()

// handleHealthz says the process is alive.
func (s *Server) handleHealthz(c *fiber.Ctx) error {
	return c.JSON(HealthResponse{Status: "ok"})
}

// handleReadyz runs the readiness checks (Redis reachable, model loaded).
func (s *Server) handleReadyz(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), time.Second)
	defer cancel()
	res := HealthResponse{Status: "ready", Checks: make(map[string]string, len(s.checks))}
	if s.version != nil {
		res.ModelVersion = s.version()
	}
	status := fiber.StatusOK
	for _, ch := range s.checks {
		if err := ch.Run(ctx); err != nil {
			res.Checks[ch.Name] = "failing"
			res.Status = "not_ready"
			status = fiber.StatusServiceUnavailable
			continue
		}
		res.Checks[ch.Name] = "ok"
	}
	return c.Status(status).JSON(res)
}

//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the API's OpenAPI 3 document: a copy.
func OpenAPI() []byte { return bytes.Clone(openAPI) }

// handleOpenAPI serves the OpenAPI document.
func (s *Server) handleOpenAPI(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(openAPI)
}
