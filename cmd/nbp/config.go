package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/directops/nbp/cmd/internal/config"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/service/api"
)

var errHelp = errors.New("help requested")

// settings is every setting of the server, one struct per concern, from
// flags with environment defaults. Logged whole: secrets are of type
// config.Secret, which masks itself.
type settings struct {
	Addr            string
	Redis           config.Redis
	Model           config.Model
	ModelBudget     time.Duration // one model call; over it the rules answer
	HTTP            api.HTTPConfig
	FeatureTimeout  time.Duration
	StaleAfter      time.Duration
	ShutdownTimeout time.Duration
	Catalog         string
	Arbitration     string
	Clients         string
	Audit           auditSettings
	Demo            demoSettings
	Pages           pageSettings
	LogLevel        slog.Level
	DebugAddr       string // Go's profiles, on a listener of their own
	// PrintArbitration and Healthcheck do their one thing and exit.
	PrintArbitration bool
	Healthcheck      bool
}

// auditSettings configure the audit trail.
type auditSettings struct {
	Key        config.Secret // keys the customer hashes
	Retention  time.Duration
	Spill      string // directory of the records Redis cannot take yet
	SpillMaxMB int
	// The feature log: training data as served, opt-in.
	FeatureLog          bool
	FeatureLogShare     float64
	FeatureLogRetention time.Duration
}

// pageSettings configure the agent panel, the dashboard and their login.
type pageSettings struct {
	Members    string        // the members file: roles and teams by WeCom userid
	PublicURL  string        // the address users reach nbp at, for the WeCom redirect
	SessionTTL time.Duration // how long a login lasts
	// The bank's self-built WeCom app; the login is on when all three are
	// set.
	CorpID, AgentID string
	Secret          config.Secret
	APIBase         string // the WeCom server API, or the bank's egress proxy to it
}

// demoSettings configure -demo.
type demoSettings struct {
	On          bool
	N           int
	Seed        uint64
	Dir         string
	RedisServer string // the binary of the private redis-server
	Traffic     bool   // simulate a week of traffic and outcomes
}

func parseConfig(args []string, getenv func(string) string) (settings, error) {
	var c settings
	env := config.NewEnv(getenv)
	fs := flag.NewFlagSet("nbp", flag.ContinueOnError)
	fs.StringVar(&c.Addr, "addr", env.String("NBP_ADDR", ":8080"), "listen address (env NBP_ADDR)")
	c.Redis.Register(fs, env, "", "Redis address, or comma-separated cluster nodes (env REDIS_ADDR; default 127.0.0.1:6379, or a private server with -demo)")
	c.Redis.RegisterTimeouts(fs, env, features.DefaultTimeouts())
	c.Model.Register(fs, env)
	c.Model.RegisterShadow(fs, env)
	fs.IntVar(&c.Model.Workers, "model-workers", env.Int("NBP_MODEL_WORKERS", 4), "concurrent model calls (env NBP_MODEL_WORKERS)")
	fs.DurationVar(&c.ModelBudget, "model-budget", env.Duration("NBP_MODEL_BUDGET", 20*time.Millisecond), "latency budget of one model call; over it the rules answer (env NBP_MODEL_BUDGET)")
	c.Audit.Key = config.Secret(getenv("NBP_AUDIT_KEY"))
	fs.DurationVar(&c.Audit.Retention, "audit-retention", env.Duration("NBP_AUDIT_RETENTION", 400*24*time.Hour), "how long decision audit records are kept (env NBP_AUDIT_RETENTION)")
	fs.StringVar(&c.Audit.Spill, "audit-spill", getenv("NBP_AUDIT_SPILL"), "directory where audit records wait while Redis cannot take them, written to Redis once it can; one process a directory (env NBP_AUDIT_SPILL; none: such records are lost, and counted)")
	fs.IntVar(&c.Audit.SpillMaxMB, "audit-spill-max-mb", env.Int("NBP_AUDIT_SPILL_MAX_MB", 1024), "most MiB waiting in -audit-spill; past it records are lost, and counted (env NBP_AUDIT_SPILL_MAX_MB)")
	fs.BoolVar(&c.Audit.FeatureLog, "feature-log", env.On("NBP_FEATURE_LOG"), "keep the feature values of -feature-log-share of the decisions, as training data, in the feature log (<prefix>featlog:decisions:...): personal data, never logged (env NBP_FEATURE_LOG=1)")
	fs.Float64Var(&c.Audit.FeatureLogShare, "feature-log-share", env.Float("NBP_FEATURE_LOG_SHARE", 0.1), "share of the decisions the feature log keeps, sampled at random (env NBP_FEATURE_LOG_SHARE)")
	fs.DurationVar(&c.Audit.FeatureLogRetention, "feature-log-retention", env.Duration("NBP_FEATURE_LOG_RETENTION", 90*24*time.Hour), "how long the feature log keeps a decision's features (env NBP_FEATURE_LOG_RETENTION)")
	fs.DurationVar(&c.StaleAfter, "stale-after", env.Duration("NBP_STALE_AFTER", features.DefaultMaxAge), "features older than this are flagged stale (env NBP_STALE_AFTER)")
	fs.StringVar(&c.Catalog, "catalog", getenv("NBP_CATALOG"), "catalog file (env NBP_CATALOG; default: the embedded demo catalog)")
	fs.StringVar(&c.Arbitration, "arbitration", getenv("NBP_ARBITRATION"), "arbitration file: business values, context weights, campaign levers; reloaded on change and on SIGHUP (env NBP_ARBITRATION; default: the catalog's)")
	fs.BoolVar(&c.PrintArbitration, "print-arbitration", false, "print the catalog's arbitration as a file to start from, and exit")
	h := &c.HTTP
	fs.DurationVar(&h.RequestTimeout, "request-timeout", env.Duration("NBP_REQUEST_TIMEOUT", 100*time.Millisecond), "deadline of one request (env NBP_REQUEST_TIMEOUT)")
	fs.DurationVar(&c.FeatureTimeout, "feature-timeout", env.Duration("NBP_FEATURE_TIMEOUT", 40*time.Millisecond), "budget of the feature read within a request (env NBP_FEATURE_TIMEOUT)")
	fs.DurationVar(&h.ReadTimeout, "read-timeout", env.Duration("NBP_READ_TIMEOUT", 5*time.Second), "HTTP read timeout")
	fs.DurationVar(&h.WriteTimeout, "write-timeout", env.Duration("NBP_WRITE_TIMEOUT", 5*time.Second), "HTTP write timeout")
	fs.DurationVar(&h.IdleTimeout, "idle-timeout", env.Duration("NBP_IDLE_TIMEOUT", 30*time.Second), "HTTP keep-alive idle timeout")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", env.Duration("NBP_SHUTDOWN_TIMEOUT", 10*time.Second), "graceful shutdown limit")
	fs.StringVar(&c.Clients, "clients", getenv("NBP_CLIENTS"), "API clients file: key hashes, endpoints, channels, rate limits; reloaded on change and SIGHUP (env NBP_CLIENTS; none: the API is open)")
	fs.IntVar(&h.MaxInFlight, "max-in-flight", env.Int("NBP_MAX_IN_FLIGHT", 0), "decisions under way before requests are shed with 503 (env NBP_MAX_IN_FLIGHT; default 32 per CPU)")
	fs.BoolVar(&h.AdaptiveLimit, "adaptive-limit", env.On("NBP_ADAPTIVE_LIMIT"), "lower the limit, and let in only a share of arriving requests, while goroutines queue for the CPU; for dedicated CPUs (env NBP_ADAPTIVE_LIMIT=1)")
	fs.DurationVar(&h.LimitTarget, "limit-target", env.Duration("NBP_LIMIT_TARGET", 0), "CPU scheduling delay (90th percentile) the adaptive limit tolerates before it sheds (env NBP_LIMIT_TARGET; default request-timeout/20)")
	fs.DurationVar(&h.ShedDelay, "shed-delay", env.Duration("NBP_SHED_DELAY", 0), "CPU scheduling delay (90th percentile) past which the fixed limit lets in only a share of arriving requests, so that admitted ones keep their deadline, where how long requests waited to be read is unknown (env NBP_SHED_DELAY; default request-timeout/20; negative: never)")
	fs.DurationVar(&h.ShedWait, "shed-wait", env.Duration("NBP_SHED_WAIT", 0), "while most requests wait over half of this before nbp reads them (the kernel's receive time; Linux), those that waited past it are shed, so that admitted ones keep their deadline (env NBP_SHED_WAIT; default request-timeout/20; negative: never)")
	fs.StringVar(&c.Pages.Members, "members", getenv("NBP_MEMBERS"), "the pages' members file, CSV userid,role,team: managers and agents' teams by WeCom userid (env NBP_MEMBERS; unlisted WeCom members sign in as agents without a team)")
	fs.StringVar(&c.Pages.PublicURL, "public-url", getenv("NBP_PUBLIC_URL"), "the address the bank's users reach nbp at, e.g. https://nbp.bank.example, for the WeCom login's redirect (env NBP_PUBLIC_URL; default the request's host)")
	fs.DurationVar(&c.Pages.SessionTTL, "session-ttl", env.Duration("NBP_SESSION_TTL", 8*time.Hour), "how long a page login lasts (env NBP_SESSION_TTL)")
	c.Pages.CorpID, c.Pages.AgentID = getenv("NBP_WECOM_CORP_ID"), getenv("NBP_WECOM_AGENT_ID")
	c.Pages.Secret = config.Secret(getenv("NBP_WECOM_SECRET"))
	c.Pages.APIBase = getenv("NBP_WECOM_API_BASE")
	fs.StringVar(&c.DebugAddr, "debug-addr", getenv("NBP_DEBUG_ADDR"), "serve Go's profiles (/debug/pprof/) on this address, apart from the API; loopback or an operations network only (env NBP_DEBUG_ADDR; none: not served)")
	logLevel := fs.String("log-level", env.String("NBP_LOG_LEVEL", "info"), "debug, info, warn or error (env NBP_LOG_LEVEL)")
	fs.BoolVar(&c.Demo.On, "demo", false, "load the demo bank into Redis (a private redis-server unless -redis is given) and serve it")
	fs.IntVar(&c.Demo.N, "demo-n", 10000, "demo bank size")
	fs.Uint64Var(&c.Demo.Seed, "demo-seed", 42, "demo bank seed")
	fs.StringVar(&c.Demo.Dir, "demo-dir", "var/demo", "where the demo bank's CSV files are written")
	fs.BoolVar(&c.Demo.Traffic, "demo-traffic", true, "with -demo, simulate a week of traffic and outcomes from the bank's ground truth, for the dashboard")
	fs.StringVar(&c.Demo.RedisServer, "redis-server", env.String("NBP_REDIS_SERVER", "redis-server"), "redis-server binary for -demo")
	fs.BoolVar(&c.Healthcheck, "healthcheck", false, "probe /healthz of the server at -addr and exit 0 when it answers (for container health checks)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, errHelp
		}
		return c, err
	}
	errs := env.Errs()
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	if err := c.LogLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		errs = append(errs, fmt.Errorf("log level: %w", err))
	}
	errs = append(errs, c.check()...)
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("configuration:\n%w", err)
	}
	return c, nil
}

// check reports every setting out of its range.
func (c *settings) check() []error {
	var errs []error
	t := c.Redis.Timeouts
	positive := map[string]time.Duration{
		"request-timeout": c.HTTP.RequestTimeout, "feature-timeout": c.FeatureTimeout, "model-budget": c.ModelBudget,
		"read-timeout": c.HTTP.ReadTimeout, "write-timeout": c.HTTP.WriteTimeout, "idle-timeout": c.HTTP.IdleTimeout,
		"shutdown-timeout": c.ShutdownTimeout, "stale-after": c.StaleAfter, "audit-retention": c.Audit.Retention,
		"feature-log-retention": c.Audit.FeatureLogRetention,
		"session-ttl":           c.Pages.SessionTTL,
		"redis-read-timeout":    t.Read, "redis-write-timeout": t.Write, "redis-pool-timeout": t.Pool, "redis-dial-timeout": t.Dial,
	}
	for name, d := range positive {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("-%s must be positive", name))
		}
	}
	if c.FeatureTimeout >= c.HTTP.RequestTimeout {
		errs = append(errs, fmt.Errorf("-feature-timeout %s must be below -request-timeout %s", c.FeatureTimeout, c.HTTP.RequestTimeout))
	}
	if c.Model.Challenger != "" && !(c.Model.ChallengerShare > 0 && c.Model.ChallengerShare <= 0.5) {
		errs = append(errs, fmt.Errorf("-challenger-share %v: want more than 0, at most 0.5", c.Model.ChallengerShare))
	}
	if c.Model.Shadow != "" && !(c.Model.ShadowShare > 0 && c.Model.ShadowShare <= 1) {
		errs = append(errs, fmt.Errorf("-shadow-share %v: want more than 0, at most 1", c.Model.ShadowShare))
	}
	if c.Model.Workers < 1 {
		errs = append(errs, fmt.Errorf("-model-workers must be at least 1"))
	}
	if c.Audit.SpillMaxMB < 1 {
		errs = append(errs, fmt.Errorf("-audit-spill-max-mb must be at least 1"))
	}
	if c.Audit.FeatureLog && !(c.Audit.FeatureLogShare > 0 && c.Audit.FeatureLogShare <= 1) {
		errs = append(errs, fmt.Errorf("-feature-log-share %v: want more than 0, at most 1", c.Audit.FeatureLogShare))
	}
	if c.Demo.N < 1 {
		errs = append(errs, fmt.Errorf("-demo-n must be at least 1"))
	}
	if !c.Healthcheck && !c.PrintArbitration {
		errs = append(errs, c.Model.Check()...)
	}
	if set := btoi(c.Pages.CorpID != "") + btoi(c.Pages.AgentID != "") + btoi(c.Pages.Secret != ""); set != 0 && set != 3 {
		errs = append(errs, fmt.Errorf("the WeCom login needs NBP_WECOM_CORP_ID, NBP_WECOM_AGENT_ID and NBP_WECOM_SECRET, all three"))
	}
	return errs
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
