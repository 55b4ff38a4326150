package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/directops/nbp/features"
)

var errHelp = errors.New("help requested")

// config is every setting of the server, from flags with environment
// defaults. Secrets are masked when logged (see redacted).
type config struct {
	addr            string
	redisAddrs      []string
	redisPassword   string
	redisPrefix     string
	redisTimeouts   features.Timeouts
	redisBin        string
	staleAfter      time.Duration
	catalog         string
	modelPath       string
	modelWorkers    int
	modelBudget     time.Duration
	rulesOnly       bool
	ortLib          string
	requestTimeout  time.Duration
	featureTimeout  time.Duration
	readTimeout     time.Duration
	writeTimeout    time.Duration
	idleTimeout     time.Duration
	shutdownTimeout time.Duration
	logLevel        slog.Level
	demo            bool
	demoN           int
	demoSeed        uint64
	demoDir         string
	healthcheck     bool
	auditKey        string
	auditRetention  time.Duration
	auditSpill      string
	auditSpillMax   int
	arbitration     string
	printArb        bool
	maxInFlight     int
	adaptiveLimit   bool
	limitTarget     time.Duration
	shedDelay       time.Duration
	shedWait        time.Duration
	clients         string
}

func parseConfig(args []string, getenv func(string) string) (config, error) {
	var c config
	var errs []error
	env := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return def
	}
	dur := func(key string, def time.Duration) time.Duration {
		v := getenv(key)
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
			return def
		}
		return d
	}
	num := func(key string, def int) int {
		v := getenv(key)
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
			return def
		}
		return n
	}

	fs := flag.NewFlagSet("nbp", flag.ContinueOnError)
	var redisAddr, logLevel string
	t := features.DefaultTimeouts()
	fs.StringVar(&c.addr, "addr", env("NBP_ADDR", ":8080"), "listen address (env NBP_ADDR)")
	fs.StringVar(&redisAddr, "redis", getenv("REDIS_ADDR"), "Redis address, or comma-separated cluster nodes (env REDIS_ADDR; default 127.0.0.1:6379, or a private server with -demo)")
	c.redisPassword = getenv("REDIS_PASSWORD")
	c.auditKey = getenv("NBP_AUDIT_KEY")
	fs.DurationVar(&c.auditRetention, "audit-retention", dur("NBP_AUDIT_RETENTION", 400*24*time.Hour), "how long decision audit records are kept (env NBP_AUDIT_RETENTION)")
	fs.StringVar(&c.auditSpill, "audit-spill", getenv("NBP_AUDIT_SPILL"), "directory where audit records wait while Redis cannot take them, written to Redis once it can; one process a directory (env NBP_AUDIT_SPILL; none: such records are lost, and counted)")
	fs.IntVar(&c.auditSpillMax, "audit-spill-max-mb", num("NBP_AUDIT_SPILL_MAX_MB", 1024), "most MiB waiting in -audit-spill; past it records are lost, and counted (env NBP_AUDIT_SPILL_MAX_MB)")
	fs.StringVar(&c.redisPrefix, "redis-prefix", env("NBP_REDIS_PREFIX", features.DefaultPrefix), "key prefix (env NBP_REDIS_PREFIX)")
	fs.DurationVar(&t.Read, "redis-read-timeout", dur("NBP_REDIS_READ_TIMEOUT", t.Read), "Redis read timeout")
	fs.DurationVar(&t.Write, "redis-write-timeout", dur("NBP_REDIS_WRITE_TIMEOUT", t.Write), "Redis write timeout")
	fs.DurationVar(&t.Pool, "redis-pool-timeout", dur("NBP_REDIS_POOL_TIMEOUT", t.Pool), "wait for a Redis connection")
	fs.DurationVar(&t.Dial, "redis-dial-timeout", dur("NBP_REDIS_DIAL_TIMEOUT", t.Dial), "Redis dial timeout")
	fs.StringVar(&c.redisBin, "redis-server", env("NBP_REDIS_SERVER", "redis-server"), "redis-server binary for -demo")
	fs.DurationVar(&c.staleAfter, "stale-after", dur("NBP_STALE_AFTER", 48*time.Hour), "features older than this are flagged stale (env NBP_STALE_AFTER)")
	fs.StringVar(&c.catalog, "catalog", getenv("NBP_CATALOG"), "catalog file (env NBP_CATALOG; default: the embedded demo catalog)")
	fs.StringVar(&c.arbitration, "arbitration", getenv("NBP_ARBITRATION"), "arbitration file: business values, context weights, campaign levers; reloaded on change and on SIGHUP (env NBP_ARBITRATION; default: the catalog's)")
	fs.BoolVar(&c.printArb, "print-arbitration", false, "print the catalog's arbitration as a file to start from, and exit")
	fs.StringVar(&c.modelPath, "model", env("NBP_MODEL", "models/propensity.onnx"), "ONNX model file (env NBP_MODEL)")
	fs.IntVar(&c.modelWorkers, "model-workers", num("NBP_MODEL_WORKERS", 4), "concurrent model calls (env NBP_MODEL_WORKERS)")
	fs.DurationVar(&c.modelBudget, "model-budget", dur("NBP_MODEL_BUDGET", 20*time.Millisecond), "latency budget of one model call; over it the rules answer (env NBP_MODEL_BUDGET)")
	fs.BoolVar(&c.rulesOnly, "rules-only", getenv("NBP_RULES_ONLY") == "1", "serve the rules scorer without a model (env NBP_RULES_ONLY=1)")
	fs.StringVar(&c.ortLib, "onnxruntime", env("ONNXRUNTIME_LIB", ".cache/onnxruntime/libonnxruntime.so.1"), "ONNX Runtime shared library (env ONNXRUNTIME_LIB)")
	fs.DurationVar(&c.requestTimeout, "request-timeout", dur("NBP_REQUEST_TIMEOUT", 100*time.Millisecond), "deadline of one request (env NBP_REQUEST_TIMEOUT)")
	fs.DurationVar(&c.featureTimeout, "feature-timeout", dur("NBP_FEATURE_TIMEOUT", 40*time.Millisecond), "budget of the feature read within a request (env NBP_FEATURE_TIMEOUT)")
	fs.DurationVar(&c.readTimeout, "read-timeout", dur("NBP_READ_TIMEOUT", 5*time.Second), "HTTP read timeout")
	fs.DurationVar(&c.writeTimeout, "write-timeout", dur("NBP_WRITE_TIMEOUT", 5*time.Second), "HTTP write timeout")
	fs.DurationVar(&c.idleTimeout, "idle-timeout", dur("NBP_IDLE_TIMEOUT", 30*time.Second), "HTTP keep-alive idle timeout")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", dur("NBP_SHUTDOWN_TIMEOUT", 10*time.Second), "graceful shutdown limit")
	fs.StringVar(&c.clients, "clients", getenv("NBP_CLIENTS"), "API clients file: key hashes, endpoints, channels, rate limits; reloaded on change and SIGHUP (env NBP_CLIENTS; none: the API is open)")
	fs.IntVar(&c.maxInFlight, "max-in-flight", num("NBP_MAX_IN_FLIGHT", 0), "decisions under way before requests are shed with 503 (env NBP_MAX_IN_FLIGHT; default 32 per CPU)")
	fs.BoolVar(&c.adaptiveLimit, "adaptive-limit", getenv("NBP_ADAPTIVE_LIMIT") == "1", "lower the limit, and let in only a share of arriving requests, while goroutines queue for the CPU; for dedicated CPUs (env NBP_ADAPTIVE_LIMIT=1)")
	fs.DurationVar(&c.limitTarget, "limit-target", dur("NBP_LIMIT_TARGET", 0), "CPU scheduling delay (90th percentile) the adaptive limit tolerates before it sheds (env NBP_LIMIT_TARGET; default request-timeout/20)")
	fs.DurationVar(&c.shedDelay, "shed-delay", dur("NBP_SHED_DELAY", 0), "CPU scheduling delay (90th percentile) past which the fixed limit lets in only a share of arriving requests, so that admitted ones keep their deadline, where how long requests waited to be read is unknown (env NBP_SHED_DELAY; default request-timeout/20; negative: never)")
	fs.DurationVar(&c.shedWait, "shed-wait", dur("NBP_SHED_WAIT", 0), "while most requests wait over half of this before nbp reads them (the kernel's receive time; Linux), those that waited past it are shed, so that admitted ones keep their deadline (env NBP_SHED_WAIT; default request-timeout/20; negative: never)")
	fs.StringVar(&logLevel, "log-level", env("NBP_LOG_LEVEL", "info"), "debug, info, warn or error (env NBP_LOG_LEVEL)")
	fs.BoolVar(&c.demo, "demo", false, "load the demo bank into Redis (a private redis-server unless -redis is given) and serve it")
	fs.IntVar(&c.demoN, "demo-n", 10000, "demo bank size")
	fs.Uint64Var(&c.demoSeed, "demo-seed", 42, "demo bank seed")
	fs.StringVar(&c.demoDir, "demo-dir", "var/demo", "where the demo bank's CSV files are written")
	fs.BoolVar(&c.healthcheck, "healthcheck", false, "probe /healthz of the server at -addr and exit 0 when it answers (for container health checks)")
	c.redisTimeouts = t
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, errHelp
		}
		return c, err
	}
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	c.redisTimeouts = t
	if redisAddr != "" {
		for _, a := range strings.Split(redisAddr, ",") {
			if a = strings.TrimSpace(a); a != "" {
				c.redisAddrs = append(c.redisAddrs, a)
			}
		}
	}
	if err := c.logLevel.UnmarshalText([]byte(logLevel)); err != nil {
		errs = append(errs, fmt.Errorf("log level: %w", err))
	}
	positive := map[string]time.Duration{
		"request-timeout": c.requestTimeout, "feature-timeout": c.featureTimeout, "model-budget": c.modelBudget,
		"read-timeout": c.readTimeout, "write-timeout": c.writeTimeout, "idle-timeout": c.idleTimeout,
		"shutdown-timeout": c.shutdownTimeout, "stale-after": c.staleAfter, "audit-retention": c.auditRetention,
		"redis-read-timeout": t.Read, "redis-write-timeout": t.Write, "redis-pool-timeout": t.Pool, "redis-dial-timeout": t.Dial,
	}
	for name, d := range positive {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("-%s must be positive", name))
		}
	}
	if c.featureTimeout >= c.requestTimeout {
		errs = append(errs, fmt.Errorf("-feature-timeout %s must be below -request-timeout %s", c.featureTimeout, c.requestTimeout))
	}
	if c.modelWorkers < 1 {
		errs = append(errs, fmt.Errorf("-model-workers must be at least 1"))
	}
	if c.auditSpillMax < 1 {
		errs = append(errs, fmt.Errorf("-audit-spill-max-mb must be at least 1"))
	}
	if c.demoN < 1 {
		errs = append(errs, fmt.Errorf("-demo-n must be at least 1"))
	}
	if !c.rulesOnly && !c.healthcheck && !c.printArb {
		abs, err := filepath.Abs(c.ortLib)
		if err != nil {
			errs = append(errs, fmt.Errorf("onnxruntime: %w", err))
		}
		c.ortLib = abs
		if _, err := os.Stat(c.ortLib); err != nil {
			errs = append(errs, fmt.Errorf("onnxruntime library %s not found: run .ci/fetch-onnxruntime (or make demo), or set ONNXRUNTIME_LIB", c.ortLib))
		}
		if _, err := os.Stat(c.modelPath); err != nil {
			errs = append(errs, fmt.Errorf("model %s: %w (start with -rules-only to serve without a model)", c.modelPath, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("configuration:\n%w", err)
	}
	return c, nil
}

// redacted is the configuration as it may be logged.
func (c config) redacted() map[string]any {
	mask := func(secret string) string {
		if secret == "" {
			return ""
		}
		return "***"
	}
	pw := mask(c.redisPassword)
	return map[string]any{
		"addr": c.addr, "redis": c.redisAddrs, "redis_password": pw, "redis_prefix": c.redisPrefix,
		"catalog": c.catalog, "model": c.modelPath, "rules_only": c.rulesOnly, "model_budget": c.modelBudget.String(),
		"request_timeout": c.requestTimeout.String(), "feature_timeout": c.featureTimeout.String(),
		"stale_after": c.staleAfter.String(), "demo": c.demo, "audit_key": mask(c.auditKey),
		"audit_retention": c.auditRetention.String(), "audit_spill": c.auditSpill, "audit_spill_max_mb": c.auditSpillMax,
	}
}
