package api

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/directops/nbp/service"
	"github.com/directops/nbp/service/audit"
	"github.com/directops/nbp/service/overload"
	"github.com/directops/nbp/service/telemetry"
)

// HTTPConfig bounds the HTTP server.
type HTTPConfig struct {
	// RequestTimeout is each request's deadline; default 100ms.
	RequestTimeout time.Duration
	// ReadTimeout, WriteTimeout and IdleTimeout close slow or abandoned
	// connections; defaults 5s, 5s and 30s.
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// BodyLimit caps a request body; default 1 MiB.
	BodyLimit int
	// EventsTimeout is the deadline of an events batch; default 2s.
	EventsTimeout time.Duration
	// MaxInFlight caps the decisions under way; past it a request is shed
	// at once with 503 and Retry-After instead of queueing behind the
	// others until every one misses its deadline. Default 32 per CPU
	// (docs/overload.md says why).
	MaxInFlight int
	// AdaptiveLimit lowers the cap below MaxInFlight, and lets in only a
	// share of arriving requests, while goroutines queue for the CPU (see
	// Limiter). Off by default: where other processes share nbp's CPUs,
	// their load reads as queueing too, and it sheds under normal load.
	AdaptiveLimit bool
	// LimitTarget is the CPU scheduling delay (90th percentile) the
	// adaptive limit tolerates before it sheds; default RequestTimeout/20.
	LimitTarget time.Duration
	// ShedWait bounds the wait of admitted requests under a load far past
	// capacity, so that they keep their deadline: on Linux, while most
	// requests wait over half of it before the server reads them, those
	// that waited past it are shed. Default RequestTimeout/20; negative:
	// never.
	ShedWait time.Duration
	// ShedDelay is the CPU scheduling delay (90th percentile) past which
	// the fixed limit lets in only a share of arriving requests, where how
	// long they waited to be read is unknown (connections the server
	// cannot stamp, or not Linux). Default RequestTimeout/20; negative:
	// never.
	ShedDelay time.Duration
}

func (c *HTTPConfig) defaults() {
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 100 * time.Millisecond
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 5 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 5 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 30 * time.Second
	}
	if c.BodyLimit <= 0 {
		c.BodyLimit = 1 << 20
	}
	if c.EventsTimeout <= 0 {
		c.EventsTimeout = 2 * time.Second
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 32 * runtime.GOMAXPROCS(0)
	}
	// A decision waits for a CPU a handful of times: at this delay each,
	// it keeps well inside its deadline.
	if c.LimitTarget <= 0 {
		c.LimitTarget = c.RequestTimeout / 20
	}
	if c.ShedDelay == 0 {
		c.ShedDelay = c.RequestTimeout / 20
	}
	if c.ShedWait == 0 {
		c.ShedWait = c.RequestTimeout / 20
	}
}

// Auditor keeps the record of every decision served, and reads them
// back (audit.Log is one).
type Auditor interface {
	// Record keeps the decision's record. It never holds the decision up
	// for more than a moment, nor fails it: what it cannot keep, it counts
	// and logs. The decision comes by value: a pointer through an
	// interface would move every decision to the heap.
	Record(ctx context.Context, d service.Decision)
	// Get returns a decision's record: audit.ErrNotFound when there is
	// none, audit.ErrBehind when it may still be on its way.
	Get(ctx context.Context, id string) (audit.Record, error)
	// Strategies returns the strategy of each decision it has a record of.
	Strategies(ctx context.Context, ids []string) (map[string]string, error)
	// Counts returns the decisions recorded from one day to another, by
	// channel and strategy.
	Counts(ctx context.Context, from, to time.Time) ([]audit.DecisionCount, error)
}

// ServerConfig wires a Server.
type ServerConfig struct {
	Pipeline *service.Pipeline
	HTTP     HTTPConfig
	Logger   *slog.Logger
	// Checks decide /readyz.
	Checks []Check
	// Events records outcomes and serves statistics; nil disables
	// /v1/events and /v1/stats.
	Events EventStore
	// Audit keeps a record of every decision; nil disables it and
	// /v1/decisions.
	Audit Auditor
	// Contacts links WeCom contacts to customers; nil disables
	// /v1/contacts.
	Contacts ContactStore
	// Clients, when set, turns access control on (see ParseClients).
	Clients *Clients
	// MeterProvider records the request metrics (latency by route
	// pattern, channel and status; requests shed); nil records nothing.
	MeterProvider metric.MeterProvider
	// TracerProvider traces each request; nil traces nothing.
	TracerProvider trace.TracerProvider
	// Limiter, when set, is the server's limiter (see NewServerLimiter);
	// nil: the server makes its own from HTTP.
	Limiter *overload.Limiter
	// Metrics, when set, is served at GET /metrics, open like /healthz
	// (the Prometheus exporter's handler).
	Metrics http.Handler
	// Pages, when set, serves the web pages (the agent panel, the
	// dashboard, their login) and authenticates their sessions.
	Pages Pages
	// ModelVersion returns the version of the model in force, for
	// /v1/overview and /readyz; nil reports none.
	ModelVersion func() string
	// Batch reports the latest batch run, for /v1/overview; nil reports
	// none.
	Batch BatchStatus
	// Models, when set, serves /v1/admin/model: the model directory's
	// versions, and the step that puts one in force.
	Models Models
	// Shadows, when set, keeps what the shadow version would have served
	// (records of the audit's form), shown with the audit record at
	// /v1/decisions/{decision_id}.
	Shadows Auditor
}

// Pages are the web pages served beside the API, and the sessions their
// requests carry.
type Pages interface {
	Sessions
	// Routes adds the pages' routes (outside /v1, but for the session's
	// own).
	Routes(r fiber.Router)
}

// Check is a named readiness check.
type Check struct {
	Name string
	Run  func(ctx context.Context) error
}

// Server is the HTTP face of the pipeline.
type Server struct {
	pipeline *service.Pipeline
	checks   []Check
	cfg      HTTPConfig
	log      *slog.Logger
	app      *fiber.App
	events   EventStore
	audit    Auditor
	contacts ContactStore
	limiter  *overload.Limiter
	errLog   telemetry.LogSampler // 5xx lines
	clients  atomic.Pointer[Clients]
	metrics  http.Handler
	tel      *httpTelemetry
	pages    Pages
	version  func() string
	batch    BatchStatus
	models   Models
	shadows  Auditor
}

// NewServer returns the HTTP server of a pipeline.
func NewServer(sc ServerConfig) *Server {
	cfg := sc.HTTP
	cfg.defaults()
	log := sc.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{pipeline: sc.Pipeline, checks: sc.Checks, cfg: cfg, log: log, events: sc.Events, audit: sc.Audit, contacts: sc.Contacts, metrics: sc.Metrics}
	s.pages, s.version, s.batch, s.models, s.shadows = sc.Pages, sc.ModelVersion, sc.Batch, sc.Models, sc.Shadows
	s.limiter = sc.Limiter
	if s.limiter == nil {
		s.limiter = NewServerLimiter(cfg)
	}
	s.errLog.PerSecond = 10
	tel, err := newHTTPTelemetry(s, sc.MeterProvider, sc.TracerProvider)
	if err != nil {
		// Only a bad instrument name fails, and ours are constants.
		log.Error("request metrics off", slog.String("error", err.Error()))
		tel, _ = newHTTPTelemetry(s, nil, sc.TracerProvider)
	}
	s.tel = tel
	s.clients.Store(sc.Clients)
	s.app = fiber.New(fiber.Config{
		AppName:               "nbp",
		DisableStartupMessage: true,
		ReadTimeout:           cfg.ReadTimeout,
		WriteTimeout:          cfg.WriteTimeout,
		IdleTimeout:           cfg.IdleTimeout,
		BodyLimit:             cfg.BodyLimit,
		ErrorHandler:          s.errorHandler,
		// Strict routing: /v1/x/ is not /v1/x.
		StrictRouting: true,
		CaseSensitive: true,
	})
	// Tell keep-alive clients to go away while shutting down.
	s.app.Server().CloseOnShutdown = true
	// Outermost, so that it sees every status, panics included.
	s.app.Use(s.observe)
	s.app.Use(recover.New())
	s.routes()
	for _, r := range s.app.GetRoutes(true) {
		s.tel.route(r.Path)
	}
	s.tel.recommend = s.tel.routes[routeRecommend]
	return s
}

// NewServerLimiter returns the limiter a server with c would make itself:
// to share it before the server exists (ServerConfig.Limiter), say with
// a GuardedStore's CPUBusy.
func NewServerLimiter(c HTTPConfig) *overload.Limiter {
	c.defaults()
	return overload.NewLimiter(overload.LimiterConfig{
		Adaptive:  c.AdaptiveLimit,
		Min:       16 * runtime.GOMAXPROCS(0),
		Max:       c.MaxInFlight,
		Target:    c.LimitTarget,
		Guard:     max(0, c.ShedDelay),
		QueueWait: max(0, c.ShedWait),
	})
}

// Limiter is the server's concurrency limiter (for tests and metrics).
func (s *Server) Limiter() *overload.Limiter { return s.limiter }

// App returns the fiber app (for tests and benchmarks).
func (s *Server) App() *fiber.App { return s.app }

// Serve serves on ln until Shutdown. Its TCP connections report when
// the requests they read arrived, for the limiter (see Limiter).
func (s *Server) Serve(ln net.Listener) error {
	return s.app.Listener(overload.StampArrivals(ln))
}

// Shutdown stops accepting connections, lets in-flight requests finish,
// closes idle keep-alive connections, and gives up when ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	if err := s.app.ShutdownWithContext(ctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
