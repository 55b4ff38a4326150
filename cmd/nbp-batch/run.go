package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/cmd/internal/config"
	"github.com/directops/nbp/cmd/internal/otlpenv"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/model"
	"github.com/directops/nbp/service"
	"github.com/directops/nbp/service/batch"
	"github.com/directops/nbp/service/telemetry"
)

var errHelp = errors.New("help requested")

type settings struct {
	Redis       config.Redis // exported: fmt then masks the password
	Model       config.Model
	catalog     string
	arbitration string
	out         string
	format      string
	redisOnly   bool
	cpuProfile  string
	opts        batch.Options
	// metricsAddr serves /metrics while the job runs; metricsPush is a
	// Pushgateway the final values go to; metricsLinger keeps serving
	// them after the run.
	metricsAddr   string
	metricsPush   string
	metricsLinger time.Duration
	// metricsOTLP: the OTEL_* variables ask for a push over OTLP (every
	// OTEL_METRIC_EXPORT_INTERVAL, and the final values at the end).
	metricsOTLP bool
	// challengerKey picks the challenger's customers, as the server does
	// (NBP_AUDIT_KEY): the same customers, the same model.
	challengerKey config.Secret
}

func parseConfig(args []string, getenv func(string) string, now time.Time) (settings, error) {
	var c settings
	env := config.NewEnv(getenv)
	fs := flag.NewFlagSet("nbp-batch", flag.ContinueOnError)
	var shard, volume string
	var shards int
	c.Redis.Register(fs, env, "127.0.0.1:6379", "Redis address, or comma-separated cluster nodes (env REDIS_ADDR)")
	c.Redis.Timeouts = features.BulkTimeouts()
	c.Model.Register(fs, env)
	c.Model.Workers = 1 // one session: the batch scores hundreds of rows a call
	c.challengerKey = config.Secret(getenv("NBP_AUDIT_KEY"))
	c.metricsOTLP = otlpenv.Wanted(getenv, "METRICS")
	fs.StringVar(&c.catalog, "catalog", getenv("NBP_CATALOG"), "catalog file (default: the embedded demo catalog)")
	fs.StringVar(&c.arbitration, "arbitration", getenv("NBP_ARBITRATION"), "arbitration file (default: the catalog's)")
	fs.StringVar(&c.opts.RunID, "run", now.In(catalog.Zone()).Format("20060102"), "run id")
	fs.IntVar(&c.opts.Limit, "limit", 3, "offers per customer")
	fs.IntVar(&c.opts.Chunk, "chunk", 512, "customers per decision call")
	fs.IntVar(&c.opts.Segment, "segment", 32, "chunks per output part and checkpoint")
	fs.StringVar(&shard, "shard", "", "this machine's shard, i/N (default: JOB_COMPLETION_INDEX of -shards, else 0/1)")
	fs.IntVar(&shards, "shards", 0, "number of shards, with JOB_COMPLETION_INDEX (a Kubernetes Indexed Job)")
	fs.StringVar(&volume, "volume", "", "per-product volume limits of the run, PRODUCT=N,PRODUCT=N")
	fs.BoolVar(&c.opts.Resume, "resume", false, "continue the run from its checkpoint")
	fs.StringVar(&c.out, "out", "var/batch", "output directory (a folder per run)")
	fs.StringVar(&c.format, "format", "parquet", "output format: parquet or csv")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
	fs.BoolVar(&c.redisOnly, "redis-only", false, "measure Redis alone: the run's reads and writes, pipelined the same way, without deciding")
	fs.StringVar(&c.metricsAddr, "metrics-addr", getenv("NBP_METRICS_ADDR"),
		"serve the run's progress metrics (nbp_batch_*, Prometheus text format) at http://ADDR/metrics while the job runs, e.g. :9464 (env NBP_METRICS_ADDR; default off). "+
			"A short job may end between two scrapes: keep serving with -metrics-linger, or push the final values to a Prometheus Pushgateway with -metrics-push")
	fs.StringVar(&c.metricsPush, "metrics-push", getenv("NBP_METRICS_PUSHGATEWAY"),
		"Prometheus Pushgateway URL the final metrics are pushed to when the job ends, job=nbp-batch, instance=shard-I-of-N (env NBP_METRICS_PUSHGATEWAY; default off)")
	fs.DurationVar(&c.metricsLinger, "metrics-linger", env.Duration("NBP_METRICS_LINGER", 0),
		"with -metrics-addr, keep serving the final metrics this long after the run (a scrape interval or two) unless stopped (env NBP_METRICS_LINGER)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, errHelp
		}
		return c, err
	}
	errs := env.Errs()
	switch {
	case shard != "":
		i, n, ok := strings.Cut(shard, "/")
		var err1, err2 error
		c.opts.Shard, err1 = strconv.Atoi(i)
		c.opts.Shards, err2 = strconv.Atoi(n)
		if !ok || err1 != nil || err2 != nil {
			errs = append(errs, fmt.Errorf("-shard %q: want i/N", shard))
		}
	case shards > 0:
		idx := getenv("JOB_COMPLETION_INDEX")
		i, err := strconv.Atoi(idx)
		if err != nil {
			errs = append(errs, fmt.Errorf("-shards %d needs JOB_COMPLETION_INDEX, got %q", shards, idx))
		}
		c.opts.Shard, c.opts.Shards = i, shards
	default:
		c.opts.Shard, c.opts.Shards = 0, 1
	}
	if c.opts.Shards < 1 || c.opts.Shard < 0 || c.opts.Shard >= c.opts.Shards {
		errs = append(errs, fmt.Errorf("shard %d of %d", c.opts.Shard, c.opts.Shards))
	}
	if volume != "" {
		c.opts.Volume = map[string]int{}
		for _, kv := range strings.Split(volume, ",") {
			p, n, ok := strings.Cut(kv, "=")
			v, err := strconv.Atoi(n)
			if !ok || err != nil || v < 0 {
				errs = append(errs, fmt.Errorf("-volume %q: want PRODUCT=N", kv))
				continue
			}
			c.opts.Volume[strings.TrimSpace(p)] = v
		}
	}
	if c.format != "parquet" && c.format != "csv" {
		errs = append(errs, fmt.Errorf("-format %q: want parquet or csv", c.format))
	}
	if c.metricsLinger < 0 || c.metricsLinger > 0 && c.metricsAddr == "" {
		errs = append(errs, fmt.Errorf("-metrics-linger %s: want a duration of 0 or more, with -metrics-addr", c.metricsLinger))
	}
	if c.opts.Limit < 1 || c.opts.Limit > service.MaxLimit {
		errs = append(errs, fmt.Errorf("-limit %d: want 1..%d", c.opts.Limit, service.MaxLimit))
	}
	if !c.redisOnly { // Redis alone needs no model
		errs = append(errs, c.Model.Check()...)
	}
	return c, errors.Join(errs...)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	return runAt(ctx, time.Now, args, getenv, stdout)
}

// runAt is run on the given clock: the run's decisions, the staleness of
// the features it reads and its default run id (today, China time) all
// take the time from it.
func runAt(ctx context.Context, now func() time.Time, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := parseConfig(args, getenv, now())
	if err != nil {
		return err
	}
	if getenv("GOGC") == "" {
		debug.SetGCPercent(400) // a small, churning heap: collect less often
	}
	j := &job{cfg: cfg, now: now, stdout: stdout, log: slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	defer j.close()
	otel.SetErrorHandler(otlpenv.ErrorHandler(j.log))
	redis.SetLogger(telemetry.NewRedisLogger(j.log))
	if err := j.startMetrics(ctx); err != nil {
		return err
	}
	if err := j.openCatalog(); err != nil {
		return err
	}
	if err := j.openStore(); err != nil {
		return err
	}
	if cfg.redisOnly {
		return redisOnly(ctx, cfg, j.store, j.rdb, stdout)
	}
	for _, open := range []func() error{j.buildPipeline, j.startProfile} {
		if err := open(); err != nil {
			return err
		}
	}
	return j.run(ctx)
}

// job is a batch run being wired: what each step opened, and what closes
// it.
type job struct {
	cfg     settings
	now     func() time.Time
	stdout  io.Writer
	log     *slog.Logger
	closers []func() // run in reverse by close

	mets  *metrics
	cat   *catalog.Catalog
	rdb   redis.UniversalClient
	store *features.Store
	pipe  *service.Pipeline
	dir   string
	// modelVersion is the version the run scores with.
	modelVersion string
}

func (j *job) onClose(f func()) { j.closers = append(j.closers, f) }

func (j *job) close() {
	for i := len(j.closers) - 1; i >= 0; i-- {
		j.closers[i]()
	}
}

// startMetrics serves or pushes the run's metrics. Closed last: the run
// has recorded its final values, and the Redis client is closed.
func (j *job) startMetrics(ctx context.Context) error {
	mets, err := startMetrics(j.cfg, j.stdout)
	if err != nil {
		return err
	}
	j.mets = mets
	j.onClose(func() { mets.finish(ctx, j.log) })
	return nil
}

// openCatalog reads the catalog, and checks the run's volume limits
// against it.
func (j *job) openCatalog() error {
	var err error
	if j.cfg.catalog == "" {
		j.cat, err = catalog.DefaultAt(j.now()) // the demo's, at the clock's year
	} else {
		j.cat, err = catalog.Load(j.cfg.catalog)
	}
	if err != nil {
		return err
	}
	for p := range j.cfg.opts.Volume {
		if _, err := j.cat.Product(p); err != nil {
			return fmt.Errorf("-volume: %w", err)
		}
	}
	return nil
}

// openStore connects to Redis, measured when the run has metrics.
func (j *job) openStore() error {
	j.rdb = j.cfg.Redis.Client()
	j.onClose(func() { _ = j.rdb.Close() })
	if mp := j.mets.provider(); mp != nil {
		hook, err := telemetry.NewRedisHook(mp)
		if err != nil {
			return err
		}
		j.rdb.AddHook(hook)
	}
	j.store = features.NewStore(j.rdb, features.Options{Prefix: j.cfg.Redis.Prefix, Now: j.now})
	return nil
}

// buildPipeline loads the scorer and builds the same decision pipeline as
// the server's, with the run's arbitration.
func (j *job) buildPipeline() error {
	// A run scores with one version: the one in force when its first
	// shard started.
	pinned, err := batch.NewStore(j.rdb, j.cfg.Redis.Prefix).RunModel(context.Background(), j.cfg.opts.RunID)
	if err != nil {
		return err
	}
	j.cfg.Model.Version = pinned
	sc, err := j.cfg.Model.Open(j.cat, model.GuardOptions{BatchBudget: 10 * time.Second}, j.log)
	if err != nil {
		return err
	}
	j.onClose(sc.Close)
	j.modelVersion = sc.Version()
	pc := service.PipelineConfig{Catalog: j.cat, Store: j.store, Scorer: sc, FeatureTimeout: 10 * time.Second,
		Logger: j.log, Now: j.now, MeterProvider: j.mets.provider()}
	if ch := sc.Challenger; ch != nil {
		if j.cfg.challengerKey == "" {
			return fmt.Errorf("-challenger needs NBP_AUDIT_KEY, the server's: it picks the same customers")
		}
		pc.Challenger, pc.ChallengerShare, pc.ChallengerKey = ch, j.cfg.Model.ChallengerShare, []byte(j.cfg.challengerKey.Reveal())
		pc.ChallengerOff = func() bool { return sc.Version() == ch.Version() }
	}
	j.pipe, err = service.NewPipeline(pc)
	if err != nil || j.cfg.arbitration == "" {
		return err
	}
	a, err := j.cat.LoadArbitration(j.cfg.arbitration)
	if err != nil {
		return err
	}
	j.pipe.SetArbitration(a)
	return nil
}

// startProfile makes the run's output directory and, with -cpuprofile,
// profiles the run.
func (j *job) startProfile() error {
	j.dir = filepath.Join(j.cfg.out, j.cfg.opts.RunID)
	if err := os.MkdirAll(j.dir, 0o755); err != nil {
		return err
	}
	if j.cfg.cpuProfile == "" {
		return nil
	}
	f, err := os.Create(j.cfg.cpuProfile)
	if err != nil {
		return err
	}
	j.onClose(func() { _ = f.Close() })
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	j.onClose(pprof.StopCPUProfile)
	return nil
}

// run scores the shard and prints the summary.
func (j *job) run(ctx context.Context) error {
	prog := newProgress(j.stdout)
	opts := j.cfg.opts
	opts.Progress, opts.Size = prog.update, prog.size
	opts.MeterProvider = j.mets.provider()
	opts.ModelVersion = j.modelVersion
	runner := batch.NewRunner(j.pipe, batch.NewStore(j.rdb, j.cfg.Redis.Prefix), j.store)
	start := time.Now()
	ck, flipped, err := runner.Run(ctx, opts, func(name string) (batch.PartWriter, error) {
		return openPart(j.dir, name, j.cfg.format)
	})
	prog.done()
	if err != nil {
		return err
	}
	summary(j.stdout, j.cfg, j.modelVersion, ck, flipped, time.Since(start), j.dir)
	return nil
}

func summary(w io.Writer, cfg settings, modelVersion string, ck batch.Checkpoint, flipped bool, took time.Duration, dir string) {
	fmt.Fprintf(w, "run %s shard %d/%d: %d customers, %d offers, %d without an offer, in %s (%.0f customers/s this session)\n",
		cfg.opts.RunID, cfg.opts.Shard, cfg.opts.Shards, ck.Customers, ck.Rows, ck.Skipped, took.Round(time.Millisecond),
		float64(ck.Customers)/took.Seconds())
	fmt.Fprintf(w, "model: %s (for every shard of the run)\n", modelVersion)
	fmt.Fprintf(w, "strategies: %s\n", counts(ck.Strategy))
	fmt.Fprintf(w, "offers by product: %s\n", counts(ck.Products))
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Fprintf(w, "peak memory: %d MiB resident, %d MiB Go heap in use\n", ru.Maxrss/1024, ms.HeapInuse>>20)
	fmt.Fprintf(w, "output: %s\n", dir)
	if flipped {
		fmt.Fprintf(w, "run %s complete: readers now see it\n", cfg.opts.RunID)
	}
}

func counts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s=%d", k, m[k])
	}
	return b.String()
}

// redisOnly walks the shard as a run does and does the same Redis work
// (read vectors and contact states, write each customer's offers), in the
// same pipelines, without deciding: the ceiling a run can approach.
func redisOnly(ctx context.Context, cfg settings, store *features.Store, rdb redis.UniversalClient, stdout io.Writer) error {
	start := time.Now()
	recs := make([]features.Record, cfg.opts.Chunk)
	n, cursor := 0, ""
	for {
		ids, next, err := store.PageIDs(ctx, cursor, int64(cfg.opts.Chunk), cfg.opts.Shard, cfg.opts.Shards)
		if err != nil {
			return err
		}
		if len(ids) > 0 {
			if err := store.ReadMany(ctx, ids, recs[:len(ids)]); err != nil {
				return err
			}
			pipe := rdb.Pipeline()
			for _, id := range ids {
				pipe.Set(ctx, store.ResultKey(id, "redis-only"), "TD_1Y,WM_CASH,DCEP_WALLET", time.Hour)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				return err
			}
			n += len(ids)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	took := time.Since(start)
	fmt.Fprintf(stdout, "redis alone: %d customers read and written in %s: %.0f customers/s\n", n, took.Round(time.Millisecond), float64(n)/took.Seconds())
	return nil
}
