// Command nbp serves next-best-product decisions over HTTP.
//
//	nbp                 serve, with Redis at REDIS_ADDR and the model in models/
//	nbp -demo           start a private Redis (unless REDIS_ADDR is set), load the
//	                    demo bank into it, and serve it on :8080
//
// Configuration comes from flags and the environment; run nbp -h for the list.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/cmd/internal/otlpenv"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/model"
	"github.com/directops/nbp/service"
	"github.com/directops/nbp/service/api"
	"github.com/directops/nbp/service/audit"
	"github.com/directops/nbp/service/batch"
	"github.com/directops/nbp/service/telemetry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		if errors.Is(err, errHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "nbp:", err)
		os.Exit(1)
	}
}

// run wires the server and serves until ctx ends. It announces the bound
// address on stdout ("listening on ..."), so a test can pass -addr with
// port 0.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	return runAt(ctx, time.Now, args, getenv, stdout)
}

// runAt is run on the given clock, the one every part of the server reads
// the time from: the features' staleness, the decisions (sale windows,
// levers, risk assessments, contact caps), the events and statistics, and
// the demo bank's date.
func runAt(ctx context.Context, now func() time.Time, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := parseConfig(args, getenv)
	if err != nil {
		return err
	}
	if cfg.healthcheck {
		return probe(ctx, cfg.addr)
	}
	if getenv("GOGC") == "" {
		// The heap is small and the request path allocates: collect less
		// often, for a steadier tail latency. GOGC overrides.
		debug.SetGCPercent(400)
	}
	log := newLogger(cfg.logLevel, stdout)
	cat, err := loadCatalog(cfg, now())
	if err != nil {
		return err
	}
	if cfg.printArb {
		b, err := cat.MarshalArbitration()
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	log.Info("starting", slog.Any("config", cfg.redacted()))
	var arb *catalog.Arbitration
	if cfg.arbitration != "" {
		if arb, err = cat.LoadArbitration(cfg.arbitration); err != nil {
			return err
		}
	}

	if cfg.demo && len(cfg.redisAddrs) == 0 {
		srv, err := startRedis(ctx, cfg.redisBin)
		if err != nil {
			return err
		}
		defer srv.stop()
		cfg.redisAddrs = []string{srv.addr}
		log.Info("started a private redis-server", slog.String("addr", srv.addr))
	}
	if len(cfg.redisAddrs) == 0 {
		cfg.redisAddrs = []string{"127.0.0.1:6379"}
	}
	otel.SetErrorHandler(otlpenv.ErrorHandler(log))
	tel, err := newTelemetry(ctx, getenv, "")
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
		defer cancel()
		if err := tel.close(sctx); err != nil {
			log.Warn("telemetry shutdown", slog.String("error", err.Error()))
		}
	}()
	if tel.otlpTraces {
		log.Info("exporting traces over OTLP/HTTP (OTEL_* variables)")
	}
	if tel.otlpMetrics {
		log.Info("pushing metrics over OTLP/HTTP (OTEL_* variables), as well as serving /metrics")
	}
	redis.SetLogger(features.NewRedisLogger(log))
	rdb := redis.NewUniversalClient(features.RedisOptions(cfg.redisAddrs, cfg.redisPassword, cfg.redisTimeouts))
	defer rdb.Close()
	redisHook, err := telemetry.NewRedisHook(tel.meters)
	if err != nil {
		return err
	}
	rdb.AddHook(redisHook)
	store := features.NewStore(rdb, features.Options{Prefix: cfg.redisPrefix, MaxAge: cfg.staleAfter, Now: now})

	if cfg.demo {
		if err := loadDemo(ctx, cfg, cat, store, now(), stdout); err != nil {
			return err
		}
	}

	rules, err := model.NewRules(cat, features.Names())
	if err != nil {
		return err
	}
	var scorer service.Scorer = rules
	modelVersion := "none (rules only)"
	modelReady := func(context.Context) error { return nil }
	var breakerState func() gobreaker.State
	if !cfg.rulesOnly {
		stopRT, err := model.StartRuntime(cfg.ortLib)
		if err != nil {
			return err
		}
		defer stopRT()
		m, err := model.LoadONNX(cfg.modelPath, features.Names(), cat.ProductIDs(), model.ONNXOptions{Workers: cfg.modelWorkers, FeatureReasons: cat.FeatureReasons})
		if err != nil {
			return fmt.Errorf("%w\n(start with -rules-only to serve the rules scorer without a model)", err)
		}
		defer m.Close()
		modelVersion = m.Version()
		g := model.NewGuarded(m, rules, len(cat.Products), model.GuardOptions{
			Budget: cfg.modelBudget,
			OnStateChange: func(from, to gobreaker.State) {
				log.Warn("model breaker", slog.String("from", from.String()), slog.String("to", to.String()))
			},
		})
		scorer = g
		breakerState = g.State
		modelReady = func(context.Context) error {
			if g.State() == gobreaker.StateOpen {
				return errors.New("model breaker open")
			}
			return nil
		}
	}

	httpCfg := api.HTTPConfig{
		RequestTimeout: cfg.requestTimeout,
		ReadTimeout:    cfg.readTimeout,
		WriteTimeout:   cfg.writeTimeout,
		IdleTimeout:    cfg.idleTimeout,
		MaxInFlight:    cfg.maxInFlight,
		AdaptiveLimit:  cfg.adaptiveLimit,
		LimitTarget:    cfg.limitTarget,
		ShedDelay:      cfg.shedDelay,
		ShedWait:       cfg.shedWait,
	}
	limiter := api.NewServerLimiter(httpCfg)
	// Past a few failed reads in a row, decisions stop waiting on Redis
	// and go degraded at once, until a probe finds it back. Reads that
	// time out while goroutines queue for the CPU are not held against
	// Redis.
	guarded := service.NewGuardedStore(store, service.StoreGuardOptions{
		CPUBusy: limiter.CPUBusy,
		OnStateChange: func(from, to gobreaker.State) {
			log.Warn("feature store breaker", slog.String("from", from.String()), slog.String("to", to.String()))
		},
	})
	pipe, err := service.NewPipeline(service.PipelineConfig{
		Catalog:        cat,
		Store:          guarded,
		Scorer:         scorer,
		FeatureTimeout: cfg.featureTimeout,
		Now:            now,
		Logger:         log,
		MeterProvider:  tel.meters,
		TracerProvider: tel.tracers,
	})
	if err != nil {
		return err
	}
	if err := observeModel(tel.meters, modelVersion, cat.Version, breakerState); err != nil {
		return err
	}
	if err := observeBreaker(tel.meters, "nbp.redis.breaker.state",
		"The feature store's circuit breaker: 0 closed, 1 half-open (probing), 2 open (decisions go degraded without reading Redis).", guarded.State); err != nil {
		return err
	}
	// SIGHUP reloads the arbitration and the clients files (each also
	// reloads when its content changes).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reloadArb, reloadClients := make(chan struct{}, 1), make(chan struct{}, 1)
	go func() {
		for range hup {
			for _, r := range []chan struct{}{reloadArb, reloadClients} {
				select {
				case r <- struct{}{}:
				default:
				}
			}
		}
	}()
	if arb != nil {
		pipe.SetArbitration(arb)
		go service.WatchArbitration(ctx, pipe, cfg.arbitration, 2*time.Second, reloadArb, log)
	}
	var clients *api.Clients
	if cfg.clients != "" {
		b, err := os.ReadFile(cfg.clients)
		if err != nil {
			return fmt.Errorf("clients: %w", err)
		}
		if clients, err = api.ParseClients(b); err != nil {
			return fmt.Errorf("%s: %w", cfg.clients, err)
		}
	} else {
		log.Warn("no clients file (-clients): the API is open to anyone who can reach it")
	}
	// Last night's lists stand in for the model, before the rules: follow
	// the batch pointer.
	batches := batch.NewStore(rdb, cfg.redisPrefix)
	go followBatch(ctx, batches, pipe, log)
	auditKey := []byte(cfg.auditKey)
	if len(auditKey) == 0 {
		auditKey = make([]byte, 32)
		_, _ = rand.Read(auditKey)
		log.Warn("NBP_AUDIT_KEY is not set: customer hashes in the audit trail change at every restart")
	}
	auditLog, err := audit.New(rdb, audit.Options{Prefix: cfg.redisPrefix, Retention: cfg.auditRetention,
		SpillDir: cfg.auditSpill, SpillMax: int64(cfg.auditSpillMax) << 20, Hasher: audit.NewHasher(auditKey), Logger: log})
	if err != nil {
		return err
	}
	if cfg.auditSpill == "" {
		log.Warn("no audit spill directory (-audit-spill): while Redis cannot take audit records, they are lost")
	}
	if err := audit.Observe(tel.meters, auditLog); err != nil {
		return err
	}
	srv := api.NewServer(api.ServerConfig{
		Pipeline: pipe,
		HTTP:     httpCfg,
		Limiter:  limiter,
		Logger:   log,
		Checks: []api.Check{
			{Name: "redis", Run: store.Ping},
			{Name: "model", Run: modelReady},
		},
		Events:         store,
		Audit:          auditLog,
		Clients:        clients,
		MeterProvider:  tel.meters,
		TracerProvider: tel.tracers,
		Metrics:        tel.metrics,
	})
	if cfg.clients != "" {
		go service.WatchFile(ctx, cfg.clients, 2*time.Second, reloadClients, func(b []byte) error {
			cs, err := api.ParseClients(b)
			if err != nil {
				return err
			}
			srv.SetClients(cs)
			return nil
		}, log)
	}

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	fmt.Fprintf(stdout, "listening on %s\n", ln.Addr())
	log.Info("serving", slog.String("addr", ln.Addr().String()), slog.String("model_version", modelVersion),
		slog.String("catalog_version", cat.Version))
	if cfg.demo {
		printDemoHelp(stdout, ln.Addr())
	}

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down", slog.Duration("timeout", cfg.shutdownTimeout))
	sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("shutdown incomplete", slog.String("error", err.Error()))
	}
	if err := <-errc; err != nil {
		log.Warn("serve ended", slog.String("error", err.Error()))
	}
	if err := auditLog.Close(sctx); err != nil {
		log.Error("audit records lost at shutdown", slog.String("error", err.Error()))
	}
	log.Info("stopped")
	return nil
}

// followBatch keeps the pipeline on the last completed batch run.
func followBatch(ctx context.Context, b *batch.Store, p *service.Pipeline, log *slog.Logger) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	last := ""
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		run, err := b.Current(cctx)
		cancel()
		if err == nil && run != last {
			p.SetBatchRun(run)
			log.Info("batch run in use as the model's backup", slog.String("run", run))
			last = run
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probe asks the local server's /healthz; it is the container health check
// (the runtime image has no curl).
func probe(ctx context.Context, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:"+port+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: status %d", resp.StatusCode)
	}
	return nil
}

// loadCatalog reads the -catalog file, or takes the embedded one: for the
// demo, with its dates moved to the demo bank's year.
func loadCatalog(cfg config, now time.Time) (*catalog.Catalog, error) {
	switch {
	case cfg.catalog != "":
		return catalog.Load(cfg.catalog)
	case cfg.demo:
		return catalog.DefaultAt(now)
	}
	return catalog.Default()
}

func newLogger(level slog.Level, w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

func printDemoHelp(w io.Writer, addr net.Addr) {
	port := addr.(*net.TCPAddr).Port
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	fmt.Fprintf(w, `
nbp demo is ready. Try:

  curl -s '%[1]s/v1/customers/%[2]s/recommendations?channel=app_feed&limit=3'
  curl -s '%[1]s/v1/customers/%[3]s/recommendations?channel=wecom_agent&limit=3'
  curl -s '%[1]s/v1/customers/C999999999/recommendations?channel=app_feed'   # a cold start
  curl -s '%[1]s/readyz'

Ctrl-C stops the server.
`, base, demoCustomer, demoCustomer2)
}
