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
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/cmd/internal/config"
	"github.com/directops/nbp/cmd/internal/otlpenv"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/features/demobank"
	"github.com/directops/nbp/model"
	"github.com/directops/nbp/service"
	"github.com/directops/nbp/service/api"
	"github.com/directops/nbp/service/audit"
	"github.com/directops/nbp/service/batch"
	"github.com/directops/nbp/service/overload"
	"github.com/directops/nbp/service/telemetry"
	"github.com/directops/nbp/service/web"
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
	if cfg.Healthcheck {
		return probe(ctx, cfg.Addr)
	}
	if getenv("GOGC") == "" {
		// The heap is small and the request path allocates: collect less
		// often, for a steadier tail latency. GOGC overrides.
		debug.SetGCPercent(400)
	}
	n := &server{cfg: cfg, now: now, getenv: getenv, stdout: stdout, log: newLogger(cfg.LogLevel, stdout)}
	defer n.close()
	if err := n.openCatalog(); err != nil {
		return err
	}
	if cfg.PrintArbitration {
		return n.printArbitration()
	}
	n.log.Info("starting", slog.Any("config", config.LogValue(cfg)))
	for _, open := range []func(context.Context) error{
		n.startPrivateRedis,
		n.startTelemetry,
		n.openStore,
		n.loadDemo,
		n.openScorer,
		n.buildPipeline,
		n.openAudit,
		n.simulateDemo,
		n.buildServer,
	} {
		if err := open(ctx); err != nil {
			return err
		}
	}
	return n.serve(ctx)
}

// server is the process being wired: what each step opened, and what
// closes it.
type server struct {
	cfg     settings
	now     func() time.Time
	getenv  func(string) string
	stdout  io.Writer
	log     *slog.Logger
	closers []func() // run in reverse by close

	cat     *catalog.Catalog
	arb     *catalog.Arbitration // the -arbitration file's, nil for the catalog's
	tel     *exporters
	rdb     redis.UniversalClient
	store   *features.Store
	scorer  *config.Scorer
	limiter *overload.Limiter
	pipe    *service.Pipeline
	audit   *audit.Log
	shadows *audit.Log // what the shadow would have served; nil without one
	// featureLog keeps the sampled decisions' features; nil without one.
	featureLog *audit.Log
	api        *api.Server
	hup        hangups
	bank       *demobank.Bank // with -demo
	// auditKey keys the audit trail's customer hashes and the challenger's
	// share.
	auditKey []byte
}

// onClose registers what closes a part, closed in reverse order.
func (n *server) onClose(f func()) { n.closers = append(n.closers, f) }

func (n *server) close() {
	for i := len(n.closers) - 1; i >= 0; i-- {
		n.closers[i]()
	}
}

// openCatalog reads the -catalog file, or takes the embedded demo one,
// with its dates moved to the clock's year. It reads the -arbitration file
// too, unless the catalog's arbitration is to be printed.
func (n *server) openCatalog() error {
	var err error
	if n.cfg.Catalog != "" {
		n.cat, err = catalog.Load(n.cfg.Catalog)
	} else {
		n.cat, err = catalog.DefaultAt(n.now())
	}
	if err != nil || n.cfg.Arbitration == "" || n.cfg.PrintArbitration {
		return err
	}
	n.arb, err = n.cat.LoadArbitration(n.cfg.Arbitration)
	return err
}

func (n *server) printArbitration() error {
	b, err := n.cat.MarshalArbitration()
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(n.stdout, "%s\n", b)
	return err
}

// startPrivateRedis starts a redis-server of the demo's own when -demo has
// no Redis to use.
func (n *server) startPrivateRedis(ctx context.Context) error {
	if n.cfg.Demo.On && len(n.cfg.Redis.Addrs) == 0 {
		srv, err := startRedis(ctx, n.cfg.Demo.RedisServer)
		if err != nil {
			return err
		}
		n.onClose(srv.stop)
		n.cfg.Redis.Addrs = []string{srv.addr}
		n.log.Info("started a private redis-server", slog.String("addr", srv.addr))
	}
	if len(n.cfg.Redis.Addrs) == 0 {
		n.cfg.Redis.Addrs = []string{"127.0.0.1:6379"}
	}
	return nil
}

// startTelemetry sets up the metrics (served at /metrics, and pushed over
// OTLP when the OTEL_* variables ask) and the traces.
func (n *server) startTelemetry(ctx context.Context) error {
	otel.SetErrorHandler(otlpenv.ErrorHandler(n.log))
	tel, err := newTelemetry(ctx, n.getenv, "")
	if err != nil {
		return err
	}
	n.tel = tel
	n.onClose(func() {
		sctx, cancel := context.WithTimeout(context.Background(), n.cfg.ShutdownTimeout)
		defer cancel()
		if err := tel.close(sctx); err != nil {
			n.log.Warn("telemetry shutdown", slog.String("error", err.Error()))
		}
	})
	if tel.otlpTraces {
		n.log.Info("exporting traces over OTLP/HTTP (OTEL_* variables)")
	}
	if tel.otlpMetrics {
		n.log.Info("pushing metrics over OTLP/HTTP (OTEL_* variables), as well as serving /metrics")
	}
	return nil
}

// openStore connects to Redis and opens the feature store on it.
func (n *server) openStore(context.Context) error {
	redis.SetLogger(telemetry.NewRedisLogger(n.log))
	n.rdb = n.cfg.Redis.Client()
	n.onClose(func() { _ = n.rdb.Close() })
	hook, err := telemetry.NewRedisHook(n.tel.meters)
	if err != nil {
		return err
	}
	n.rdb.AddHook(hook)
	n.store = features.NewStore(n.rdb, features.Options{Prefix: n.cfg.Redis.Prefix, MaxAge: n.cfg.StaleAfter, Now: n.now})
	return nil
}

// loadDemo loads the demo bank into the store, with -demo.
func (n *server) loadDemo(ctx context.Context) error {
	if !n.cfg.Demo.On {
		return nil
	}
	var err error
	n.bank, err = loadDemo(ctx, n.cfg.Demo, n.cat, n.store, n.now(), n.stdout)
	return err
}

// simulateDemo records a week of simulated traffic and outcomes for the
// dashboard, with -demo (unless -demo-traffic=false).
func (n *server) simulateDemo(ctx context.Context) error {
	if !n.cfg.Demo.On || !n.cfg.Demo.Traffic {
		return nil
	}
	start := time.Now()
	sum, err := simulateTraffic(ctx, n.pipe, n.store, n.bank, n.cfg.Demo.N, n.cfg.Demo.Seed, n.now(),
		func(d service.Decision) { n.audit.Record(ctx, d) })
	if err != nil {
		return err
	}
	fmt.Fprintf(n.stdout, "demo traffic: %d decisions over the last %d days, %d impressions, %d clicks, %d conversions simulated from the bank's ground truth in %s\n",
		sum.decisions, demoDays, sum.impressions, sum.clicks, sum.conversions, time.Since(start).Round(time.Millisecond))
	return nil
}

// openScorer loads the model behind its breaker, or the rules alone. With
// a model directory, the registry follows its pointer (see buildPipeline).
func (n *server) openScorer(context.Context) error {
	sc, err := n.cfg.Model.Open(n.cat, model.GuardOptions{
		Budget: n.cfg.ModelBudget,
		OnStateChange: func(from, to gobreaker.State) {
			n.log.Warn("model breaker", slog.String("from", from.String()), slog.String("to", to.String()))
		},
	}, n.log)
	if err != nil {
		return err
	}
	n.scorer = sc
	n.onClose(sc.Close)
	var state func() gobreaker.State
	if sc.Guarded != nil {
		state = sc.Guarded.State
	}
	if sc.Registry != nil {
		if sc.Registry.OnLoad, err = countModelLoads(n.tel.meters); err != nil {
			return err
		}
	}
	return observeModel(n.tel.meters, sc.Version, n.cat.Version, state)
}

// buildPipeline builds the decision pipeline on the feature store behind
// its breaker, and keeps its arbitration and batch lists current.
func (n *server) buildPipeline(ctx context.Context) error {
	n.limiter = api.NewServerLimiter(n.cfg.HTTP)
	// Past a few failed reads in a row, decisions stop waiting on Redis
	// and go degraded at once, until a probe finds it back. Reads that
	// time out while goroutines queue for the CPU are not held against
	// Redis.
	guarded := service.NewGuardedStore(n.store, service.StoreGuardOptions{
		CPUBusy: n.limiter.CPUBusy,
		OnStateChange: func(from, to gobreaker.State) {
			n.log.Warn("feature store breaker", slog.String("from", from.String()), slog.String("to", to.String()))
		},
	})
	if err := observeBreaker(n.tel.meters, "nbp.redis.breaker.state",
		"The feature store's circuit breaker: 0 closed, 1 half-open (probing), 2 open (decisions go degraded without reading Redis).", guarded.State); err != nil {
		return err
	}
	n.auditKey = []byte(n.cfg.Audit.Key.Reveal())
	if len(n.auditKey) == 0 {
		n.auditKey = make([]byte, 32)
		_, _ = rand.Read(n.auditKey)
		n.log.Warn("NBP_AUDIT_KEY is not set: customer hashes in the audit trail, and who the challenger ranks, change at every restart")
	}
	pc := service.PipelineConfig{
		Catalog:        n.cat,
		Store:          guarded,
		Scorer:         n.scorer,
		FeatureTimeout: n.cfg.FeatureTimeout,
		Now:            n.now,
		Logger:         n.log,
		MeterProvider:  n.tel.meters,
		TracerProvider: n.tel.tracers,
		// Sampled here, kept by the feature log (see openAudit).
		FeatureLogShare: n.featureLogShare(),
	}
	if ch := n.scorer.Challenger; ch != nil {
		pc.Challenger, pc.ChallengerShare, pc.ChallengerKey = ch, n.cfg.Model.ChallengerShare, n.auditKey
		// Once promoted, it is the champion: its share goes back.
		pc.ChallengerOff = func() bool { return n.scorer.Version() == ch.Version() }
		n.log.Info("challenger", slog.String("version", ch.Version()), slog.Float64("share", n.cfg.Model.ChallengerShare))
	}
	if sh := n.scorer.Shadow; sh != nil {
		pc.Shadow, pc.ShadowVersion, pc.ShadowShare = sh, sh.Version, n.cfg.Model.ShadowShare
		// Kept beside the audit (see openAudit), which starts the worker.
		pc.ShadowSink = func(sd *service.ShadowDecision) { n.shadows.Record(ctx, sd.Shadow) }
		n.log.Info("shadow", slog.String("version", sh.Version()), slog.Float64("share", n.cfg.Model.ShadowShare))
	}
	var err error
	if n.pipe, err = service.NewPipeline(pc); err != nil {
		return err
	}
	n.hup = watchHangups()
	n.onClose(n.hup.stop)
	if n.arb != nil {
		n.pipe.SetArbitration(n.arb)
		go service.WatchArbitration(ctx, n.pipe, n.cfg.Arbitration, 2*time.Second, n.hup.arbitration, n.log)
	}
	if reg := n.scorer.Registry; reg != nil {
		go service.WatchPointer(ctx, filepath.Join(string(reg.Dir()), model.PointerFile), 2*time.Second, n.hup.model, reg.Reload, reg.Serves, n.log)
	}
	// Last night's lists stand in for the model, before the rules: follow
	// the batch pointer.
	go followBatch(ctx, batch.NewStore(n.rdb, n.cfg.Redis.Prefix), n.pipe, n.log)
	return nil
}

// openAudit starts the audit trail's writer.
func (n *server) openAudit(ctx context.Context) error {
	a, err := audit.New(n.rdb, audit.Options{Prefix: n.cfg.Redis.Prefix, Retention: n.cfg.Audit.Retention,
		SpillDir: n.cfg.Audit.Spill, SpillMax: int64(n.cfg.Audit.SpillMaxMB) << 20, Hasher: audit.NewHasher(n.auditKey), Logger: n.log})
	if err != nil {
		return err
	}
	n.audit = a
	// On a failed start; after serving, serve has closed it already.
	n.onClose(func() { n.closeLog(a) })
	if n.cfg.Audit.Spill == "" {
		n.log.Warn("no audit spill directory (-audit-spill): while Redis cannot take audit records, they are lost")
	}
	if n.scorer.Shadow != nil {
		if err := n.openShadows(ctx); err != nil {
			return err
		}
	}
	if n.cfg.Audit.FeatureLog {
		if err := n.openFeatureLog(); err != nil {
			return err
		}
	}
	return audit.Observe(n.tel.meters, a)
}

// closeLog writes what an audit log still holds, within the shutdown
// timeout.
func (n *server) closeLog(l *audit.Log) {
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ShutdownTimeout)
	defer cancel()
	_ = l.Close(ctx)
}

// openFeatureLog keeps, for the sampled decisions, the feature values
// they were made on, as training data: an audit log of its own
// (<prefix>featlog:decisions:...) whose records also hold the features,
// with its own retention, no decision counts and no spill (a record Redis
// cannot take is counted lost, nbp_feature_log_records_lost_total).
func (n *server) openFeatureLog() error {
	f, err := audit.New(n.rdb, audit.Options{Prefix: n.cfg.Redis.Prefix + "featlog:", Retention: n.cfg.Audit.FeatureLogRetention,
		Hasher: audit.NewHasher(n.auditKey), Logger: n.log, WithFeatures: true, NoCounts: true})
	if err != nil {
		return err
	}
	n.featureLog = f
	n.onClose(func() { n.closeLog(f) })
	n.log.Info("feature log", slog.Float64("share", n.cfg.Audit.FeatureLogShare),
		slog.Duration("retention", n.cfg.Audit.FeatureLogRetention))
	_, err = telemetry.Meter(n.tel.meters).Int64ObservableCounter("nbp.feature_log.records.lost",
		metric.WithDescription("Feature log records never written: Redis failing, or the queue full."), metric.WithUnit("{record}"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(f.Stats().Lost)
			return nil
		}))
	return err
}

// featureLogShare is the share of decisions sampled for the feature log:
// 0 without one.
func (n *server) featureLogShare() float64 {
	if !n.cfg.Audit.FeatureLog {
		return 0
	}
	return n.cfg.Audit.FeatureLogShare
}

// auditor is the audit trail the API records decisions to: with a
// feature log, each decision goes to both.
func (n *server) auditor() api.Auditor {
	if n.featureLog == nil {
		return n.audit
	}
	return teeAuditor{n.audit, n.featureLog}
}

// teeAuditor records to the audit trail and to the feature log, and reads
// from the audit trail.
type teeAuditor struct {
	*audit.Log
	features *audit.Log
}

func (t teeAuditor) Record(ctx context.Context, d service.Decision) {
	t.Log.Record(ctx, d)
	t.features.Record(ctx, d) // keeps only the decisions that carry features
}

// openShadows keeps what the shadow version would have served, as audit
// records under their own keys (<prefix>shadow:decisions:...), with the
// audit's retention and no spill: a shadow record is a measurement, and
// one Redis cannot take is counted lost (nbp_shadow_decisions_total). Then
// it starts the shadow's worker.
func (n *server) openShadows(ctx context.Context) error {
	// What the shadow would have served: records alone, no decision
	// counts (nothing was served).
	s, err := audit.New(n.rdb, audit.Options{Prefix: n.cfg.Redis.Prefix + "shadow:", Retention: n.cfg.Audit.Retention,
		Hasher: audit.NewHasher(n.auditKey), Logger: n.log, NoCounts: true})
	if err != nil {
		return err
	}
	n.shadows = s
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { n.pipe.RunShadow(wctx); close(done) }()
	n.onClose(func() {
		cancel()
		<-done
		n.closeLog(s)
	})
	return observeShadow(n.tel.meters, n.pipe, s)
}

// buildServer builds the HTTP face, with its access control.
func (n *server) buildServer(ctx context.Context) error {
	var clients *api.Clients
	if n.cfg.Clients != "" {
		b, err := os.ReadFile(n.cfg.Clients)
		if err != nil {
			return fmt.Errorf("clients: %w", err)
		}
		if clients, err = api.ParseClients(b); err != nil {
			return fmt.Errorf("%s: %w", n.cfg.Clients, err)
		}
	} else {
		n.log.Warn("no clients file (-clients): the API is open to anyone who can reach it")
	}
	pages, err := n.pages()
	if err != nil {
		return err
	}
	modelReady := func(context.Context) error {
		if g := n.scorer.Guarded; g != nil && g.State() == gobreaker.StateOpen {
			return errors.New("model breaker open")
		}
		return nil
	}
	var shadows api.Auditor
	if n.shadows != nil {
		shadows = n.shadows
	}
	var models api.Models
	if n.scorer.Registry != nil {
		models = n.scorer.Registry
	}
	n.api = api.NewServer(api.ServerConfig{
		Pipeline: n.pipe,
		HTTP:     n.cfg.HTTP,
		Limiter:  n.limiter,
		Logger:   n.log,
		Checks: []api.Check{
			{Name: "redis", Run: n.store.Ping},
			{Name: "model", Run: modelReady},
		},
		Events:         n.store,
		Audit:          n.auditor(),
		Contacts:       n.store,
		Clients:        clients,
		MeterProvider:  n.tel.meters,
		TracerProvider: n.tel.tracers,
		Metrics:        n.tel.metrics,
		Pages:          pages,
		ModelVersion:   n.scorer.Version,
		Batch:          batch.NewStore(n.rdb, n.cfg.Redis.Prefix),
		Models:         models,
		Shadows:        shadows,
	})
	if n.cfg.Clients != "" {
		go service.WatchFile(ctx, n.cfg.Clients, 2*time.Second, n.hup.clients, func(b []byte) error {
			cs, err := api.ParseClients(b)
			if err != nil {
				return err
			}
			n.api.SetClients(cs)
			return nil
		}, n.log)
	}
	return nil
}

// pages builds the agent panel and the dashboard, with their logins: the
// demo's with -demo, WeCom's when its app is configured.
func (n *server) pages() (*web.Pages, error) {
	pc := n.cfg.Pages
	members := web.Members{}
	if pc.Members != "" {
		f, err := os.Open(pc.Members)
		if err != nil {
			return nil, fmt.Errorf("members: %w", err)
		}
		defer f.Close()
		if members, err = web.ParseMembers(f); err != nil {
			return nil, fmt.Errorf("%s: %w", pc.Members, err)
		}
	}
	var wc *web.WeCom
	if pc.CorpID != "" {
		wc = &web.WeCom{CorpID: pc.CorpID, AgentID: pc.AgentID, Secret: pc.Secret.Reveal(), APIBase: pc.APIBase}
	} else if !n.cfg.Demo.On {
		n.log.Warn("no WeCom app (NBP_WECOM_*): nobody can sign in to the panel and the dashboard")
	}
	return web.New(web.Config{Redis: n.rdb, Prefix: n.cfg.Redis.Prefix, TTL: pc.SessionTTL, Now: n.now, Demo: n.cfg.Demo.On,
		WeCom: wc, PublicURL: pc.PublicURL, Members: members, Logger: n.log}), nil
}

// serve listens and serves until ctx ends, then shuts down: the requests
// under way finish, and the audit records still queued are written.
func (n *server) serve(ctx context.Context) error {
	ln, err := net.Listen("tcp", n.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if err := n.serveDebug(ctx); err != nil {
		ln.Close()
		return err
	}
	fmt.Fprintf(n.stdout, "listening on %s\n", ln.Addr())
	n.log.Info("serving", slog.String("addr", ln.Addr().String()), slog.String("model_version", n.scorer.Version()),
		slog.String("catalog_version", n.cat.Version))
	if n.cfg.Demo.On {
		printDemoHelp(n.stdout, ln.Addr(), n.bank, n.now())
	}
	errc := make(chan error, 1)
	go func() { errc <- n.api.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	n.log.Info("shutting down", slog.Duration("timeout", n.cfg.ShutdownTimeout))
	sctx, cancel := context.WithTimeout(context.Background(), n.cfg.ShutdownTimeout)
	defer cancel()
	if err := n.api.Shutdown(sctx); err != nil {
		n.log.Warn("shutdown incomplete", slog.String("error", err.Error()))
	}
	if err := <-errc; err != nil {
		n.log.Warn("serve ended", slog.String("error", err.Error()))
	}
	if err := n.audit.Close(sctx); err != nil {
		n.log.Error("audit records lost at shutdown", slog.String("error", err.Error()))
	}
	if n.featureLog != nil {
		if err := n.featureLog.Close(sctx); err != nil {
			n.log.Error("feature log records lost at shutdown", slog.String("error", err.Error()))
		}
	}
	n.log.Info("stopped")
	return nil
}

// hangups turns SIGHUP into a reload of the arbitration, the clients file
// and the model pointer (each also reloads when its content changes).
type hangups struct {
	arbitration, clients, model chan struct{}
	stop                        func()
}

func watchHangups() hangups {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP)
	h := hangups{arbitration: make(chan struct{}, 1), clients: make(chan struct{}, 1), model: make(chan struct{}, 1)}
	done := make(chan struct{})
	h.stop = func() {
		signal.Stop(sig)
		close(done)
	}
	go func() {
		for {
			select {
			case <-sig:
			case <-done:
				return
			}
			for _, r := range []chan struct{}{h.arbitration, h.clients, h.model} {
				select {
				case r <- struct{}{}:
				default:
				}
			}
		}
	}()
	return h
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

func newLogger(level slog.Level, w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

func printDemoHelp(w io.Writer, addr net.Addr, bank *demobank.Bank, now time.Time) {
	valid, expired := panelCustomers(bank, now)
	port := addr.(*net.TCPAddr).Port
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	// The pages' session cookie is Secure: browsers keep it over plain
	// HTTP for localhost only.
	pages := fmt.Sprintf("http://localhost:%d", port)
	fmt.Fprintf(w, `
nbp demo is ready. Try:

  curl -s '%[1]s/v1/customers/%[2]s/recommendations?channel=app_feed&limit=3'
  curl -s '%[1]s/v1/customers/%[3]s/recommendations?channel=wecom_agent&limit=3'
  curl -s '%[1]s/v1/customers/C999999999/recommendations?channel=app_feed'   # a cold start
  curl -s '%[1]s/v1/contacts/%[4]s'        # the customer behind a WeCom contact
  curl -s '%[1]s/readyz'

In a browser (sign in with the demo login: demo-agent for the panel, demo-manager for the dashboard):

  %[5]s/panel/?customer=%[7]s     the WeCom agent panel
  %[5]s/panel/?customer=%[6]s     a customer whose risk assessment expired
  %[5]s/panel/?contact=%[8]s      a WeCom contact, as inside WeCom
  %[5]s/dashboard/                the operations dashboard

Ctrl-C stops the server.
`, base, demoCustomer, demoCustomer2, demoContact(demoCustomer), pages, expired, valid, demoContact(valid))
}
