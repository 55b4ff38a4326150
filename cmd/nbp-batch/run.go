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
	"github.com/directops/nbp/cmd/internal/otlpenv"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/model"
	"github.com/directops/nbp/service"
	"github.com/directops/nbp/service/batch"
	"github.com/directops/nbp/service/telemetry"
)

var errHelp = errors.New("help requested")

type config struct {
	redisAddrs  []string
	password    string
	prefix      string
	catalog     string
	arbitration string
	modelPath   string
	rulesOnly   bool
	ortLib      string
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
}

func parseConfig(args []string, getenv func(string) string, now time.Time) (config, error) {
	var c config
	var errs []error
	env := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	dur := func(k string, def time.Duration) time.Duration {
		v := getenv(k)
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", k, err))
			return def
		}
		return d
	}
	fs := flag.NewFlagSet("nbp-batch", flag.ContinueOnError)
	var redisAddr, shard, volume string
	var shards int
	fs.StringVar(&redisAddr, "redis", env("REDIS_ADDR", "127.0.0.1:6379"), "Redis address, or comma-separated cluster nodes (env REDIS_ADDR)")
	c.password = getenv("REDIS_PASSWORD")
	c.metricsOTLP = otlpenv.Wanted(getenv, "METRICS")
	fs.StringVar(&c.prefix, "redis-prefix", env("NBP_REDIS_PREFIX", features.DefaultPrefix), "key prefix (env NBP_REDIS_PREFIX)")
	fs.StringVar(&c.catalog, "catalog", getenv("NBP_CATALOG"), "catalog file (default: the embedded demo catalog)")
	fs.StringVar(&c.arbitration, "arbitration", getenv("NBP_ARBITRATION"), "arbitration file (default: the catalog's)")
	fs.StringVar(&c.modelPath, "model", env("NBP_MODEL", "models/propensity.onnx"), "ONNX model (env NBP_MODEL)")
	fs.BoolVar(&c.rulesOnly, "rules-only", getenv("NBP_RULES_ONLY") == "1", "score with the rules alone")
	fs.StringVar(&c.ortLib, "onnxruntime", env("ONNXRUNTIME_LIB", ".cache/onnxruntime/libonnxruntime.so.1"), "ONNX Runtime library (env ONNXRUNTIME_LIB)")
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
	fs.DurationVar(&c.metricsLinger, "metrics-linger", dur("NBP_METRICS_LINGER", 0),
		"with -metrics-addr, keep serving the final metrics this long after the run (a scrape interval or two) unless stopped (env NBP_METRICS_LINGER)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, errHelp
		}
		return c, err
	}
	for _, a := range strings.Split(redisAddr, ",") {
		if a = strings.TrimSpace(a); a != "" {
			c.redisAddrs = append(c.redisAddrs, a)
		}
	}
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
	if !c.rulesOnly {
		abs, err := filepath.Abs(c.ortLib)
		if err == nil {
			c.ortLib = abs
		}
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
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	otel.SetErrorHandler(otlpenv.ErrorHandler(log))
	redis.SetLogger(features.NewRedisLogger(log))
	mets, err := startMetrics(cfg, stdout)
	if err != nil {
		return err
	}
	// Deferred first, so it runs last: the run has recorded its final
	// values, and the Redis client is closed.
	defer mets.finish(ctx, log)
	cat := (*catalog.Catalog)(nil)
	if cfg.catalog == "" {
		cat, err = catalog.Default()
	} else {
		cat, err = catalog.Load(cfg.catalog)
	}
	if err != nil {
		return err
	}
	for p := range cfg.opts.Volume {
		if _, err := cat.Product(p); err != nil {
			return fmt.Errorf("-volume: %w", err)
		}
	}
	// Batch calls carry hundreds of rows: roomier timeouts than online.
	t := features.Timeouts{Dial: time.Second, Read: 5 * time.Second, Write: 5 * time.Second, Pool: 5 * time.Second}
	rdb := redis.NewUniversalClient(features.RedisOptions(cfg.redisAddrs, cfg.password, t))
	defer rdb.Close()
	if mp := mets.provider(); mp != nil {
		hook, err := telemetry.NewRedisHook(mp)
		if err != nil {
			return err
		}
		rdb.AddHook(hook)
	}
	store := features.NewStore(rdb, features.Options{Prefix: cfg.prefix, Now: now})
	if cfg.redisOnly {
		return redisOnly(ctx, cfg, store, rdb, stdout)
	}

	rules, err := model.NewRules(cat, features.Names())
	if err != nil {
		return err
	}
	var scorer service.Scorer = rules
	if !cfg.rulesOnly {
		stopRT, err := model.StartRuntime(cfg.ortLib)
		if err != nil {
			return err
		}
		defer stopRT()
		m, err := model.LoadONNX(cfg.modelPath, features.Names(), cat.ProductIDs(), model.ONNXOptions{Workers: 1, FeatureReasons: cat.FeatureReasons})
		if err != nil {
			return err
		}
		defer m.Close()
		scorer = model.NewGuarded(m, rules, len(cat.Products), model.GuardOptions{BatchBudget: 10 * time.Second})
	}
	pipe, err := service.NewPipeline(service.PipelineConfig{Catalog: cat, Store: store, Scorer: scorer, FeatureTimeout: 10 * time.Second, Logger: log,
		Now: now, MeterProvider: mets.provider()})
	if err != nil {
		return err
	}
	if cfg.arbitration != "" {
		a, err := cat.LoadArbitration(cfg.arbitration)
		if err != nil {
			return err
		}
		pipe.SetArbitration(a)
	}

	dir := filepath.Join(cfg.out, cfg.opts.RunID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if cfg.cpuProfile != "" {
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	prog := newProgress(stdout)
	cfg.opts.Progress = prog.update
	cfg.opts.MeterProvider = mets.provider()
	runner := batch.NewRunner(pipe, batch.NewStore(rdb, cfg.prefix), store)
	start := time.Now()
	ck, flipped, err := runner.Run(ctx, cfg.opts, func(name string) (batch.PartWriter, error) {
		return openPart(dir, name, cfg.format)
	})
	prog.done()
	if err != nil {
		return err
	}
	summary(stdout, cfg, ck, flipped, time.Since(start), dir)
	return nil
}

func summary(w io.Writer, cfg config, ck batch.Checkpoint, flipped bool, took time.Duration, dir string) {
	fmt.Fprintf(w, "run %s shard %d/%d: %d customers, %d offers, %d without an offer, in %s (%.0f customers/s this session)\n",
		cfg.opts.RunID, cfg.opts.Shard, cfg.opts.Shards, ck.Customers, ck.Rows, ck.Skipped, took.Round(time.Millisecond),
		float64(ck.Customers)/took.Seconds())
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
func redisOnly(ctx context.Context, cfg config, store *features.Store, rdb redis.UniversalClient, stdout io.Writer) error {
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
