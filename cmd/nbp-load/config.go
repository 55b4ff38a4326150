package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/directops/nbp/features"
)

var errHelp = errors.New("help requested")

// config is every setting of nbp-load, from flags with environment
// defaults.
type config struct {
	duration     time.Duration
	warmup       time.Duration
	concurrency  int
	rate         float64
	overload     bool
	throttleK    float64
	conns        int
	degraded     bool
	serverCPUs   string
	serverSet    []int // parsed -server-cpus
	loadSet      []int // the other CPUs: nbp-load alone
	pool         int
	rounds       int
	n            int
	seed         uint64
	nbpBin       string
	nbpArgs      []string
	spillDir     string   // where each nbp gets an audit spill directory (set by bench)
	overloadArgs []string // -overload on a second nbp with these flags too
	compareArgs  []string // a second nbp measured beside the first, with these flags too
	skipBaseline bool
	swaps        int // during nbp's open loop, model versions put in force
	swapVersions []string
	swapDir      string // -swaps on this model directory's versions instead
	jsonPath     string
	profile      string // CPU profile of nbp's first closed-loop round, written here
	debugAddr    string // nbp's -debug-addr with -profile
	logDir       string // keep every line the servers print here
	redisAddr    string // empty: start a private redis-server
	redisBin     string
	ortLib       string

	// -serve-baseline: be the baseline server instead.
	serveBaseline bool
	addr          string
	prefix        string

	redisPassword string // from REDIS_PASSWORD only; never printed
}

// parseConfig reads flags and environment. self is the path of the
// running executable: the default nbp binary sits next to it.
func parseConfig(args []string, getenv func(string) string, self string) (config, error) {
	var c config
	fs := flag.NewFlagSet("nbp-load", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `nbp-load measures nbp against a bare fiber+Redis handler on the same Redis:
closed-loop maximum throughput, then fixed-rate latency (coordinated-omission safe).

  nbp-load [flags]                          run the benchmark
  nbp-load -serve-baseline -redis ADDR      serve the baseline handler (started by the benchmark)

`)
		fs.PrintDefaults()
	}
	var nbpArgs, overloadArgs, compareArgs string
	defaultNBP := ""
	if self != "" {
		defaultNBP = filepath.Join(filepath.Dir(self), "nbp")
	}
	ortDefault := getenv("ONNXRUNTIME_LIB")
	if ortDefault == "" {
		ortDefault = ".cache/onnxruntime/libonnxruntime.so.1"
	}
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "measured time of each run")
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "unmeasured load before each run")
	fs.IntVar(&c.concurrency, "concurrency", 32, "closed loop: concurrent workers (each one keep-alive connection)")
	fs.Float64Var(&c.rate, "rate", 5000, "open loop: requests a second")
	fs.BoolVar(&c.overload, "overload", false, "also offer nbp twice its closed-loop peak and report goodput, admitted latency and shedding")
	fs.Float64Var(&c.throttleK, "throttle-k", 0, "-overload: run it again with callers that throttle themselves (service/throttle) at this K, at least 1; 0: not")
	fs.IntVar(&c.conns, "overload-conns", 0, "-overload: keep-alive connections the callers share, as a caller's pool would; a request waits up to the deadline for a free one (0: one for every sender)")
	fs.StringVar(&compareArgs, "compare-args", "", "also measure a second nbp (nbp-b), started with these extra space-separated flags (after -nbp-args), in every closed-loop round and in the open loop beside the first: a setting's cost, side by side in one run")
	fs.StringVar(&overloadArgs, "overload-args", "", "-overload: offer the overload to a second nbp started with these extra space-separated flags (after -nbp-args), against the first one's closed-loop peak: a setting such as -adaptive-limit is then judged by the default's peak, not by its own")
	fs.BoolVar(&c.degraded, "degraded", false, "also measure nbp (nbp-overload with -overload-args) at -rate with its private Redis black-holed (SIGSTOP), then down (killed): the degraded-mode latency")
	fs.StringVar(&c.serverCPUs, "server-cpus", "", "pin the system under test (the servers and the private Redis) to these CPUs (taskset form: 1 or 2-3) and nbp-load to the others, so the generator cannot take the servers' CPU nor they its; empty: no pinning")
	fs.IntVar(&c.pool, "pool", 0, "open loop: goroutines sending requests; a due request finding none idle is dropped (0: rate/10, at least 64)")
	fs.IntVar(&c.rounds, "rounds", 1, "closed loop: rounds of (baseline, nbp)")
	fs.IntVar(&c.n, "n", 10000, "demo customers to load and draw from (nbp -demo-n)")
	fs.Uint64Var(&c.seed, "seed", 1, "seed of the customer draw")
	fs.StringVar(&c.nbpBin, "nbp", defaultNBP, "nbp server binary")
	fs.StringVar(&nbpArgs, "nbp-args", "", "extra space-separated flags for nbp")
	fs.BoolVar(&c.skipBaseline, "skip-baseline", false, "measure nbp only")
	fs.IntVar(&c.swaps, "swaps", 0, "during nbp's open loop, put model versions in force this many times (PUT /v1/admin/model), alternating the committed model and the catalog's rules as tree ensembles in a model directory nbp-load makes")
	fs.StringVar(&c.profile, "profile", "", "write a CPU profile of nbp during its first closed-loop round to this file, and print nbp's CPU per request by stage of a decision (go tool pprof reads the file)")
	fs.StringVar(&c.swapDir, "swap-dir", "", "-swaps: serve this model directory and put its versions in force in turn, the one its CURRENT names last (default: a directory of the committed model and the catalog's rules as tree ensembles)")
	fs.StringVar(&c.jsonPath, "json", "", "also write the results as JSON to this file")
	fs.StringVar(&c.logDir, "logs", "", "keep every line each server prints in DIR/NAME.log (default: only warnings are counted and two shown)")
	fs.StringVar(&c.redisAddr, "redis", getenv("REDIS_ADDR"), "Redis address (env REDIS_ADDR; default: a private redis-server)")
	fs.StringVar(&c.redisBin, "redis-server", "redis-server", "redis-server binary for the private Redis")
	fs.StringVar(&c.ortLib, "onnxruntime", ortDefault, "ONNX Runtime library handed to nbp (env ONNXRUNTIME_LIB)")
	fs.BoolVar(&c.serveBaseline, "serve-baseline", false, "serve the baseline handler and print \"listening on HOST:PORT\"")
	fs.StringVar(&c.addr, "addr", "127.0.0.1:0", "-serve-baseline: listen address")
	fs.StringVar(&c.prefix, "prefix", features.DefaultPrefix, "-serve-baseline: Redis key prefix")
	c.redisPassword = getenv("REDIS_PASSWORD")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, errHelp
		}
		return c, err
	}
	c.nbpArgs = strings.Fields(nbpArgs)
	c.overloadArgs = strings.Fields(overloadArgs)
	c.compareArgs = strings.Fields(compareArgs)
	if err := c.validate(fs.Args()); err != nil {
		return c, fmt.Errorf("configuration:\n%w", err)
	}
	return c, nil
}

// validate checks every setting and reports every problem together.
// It makes the paths of the binaries and the library absolute.
func (c *config) validate(rest []string) error {
	var errs []error
	if len(rest) > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", rest))
	}
	if c.serveBaseline {
		if c.redisAddr == "" {
			errs = append(errs, errors.New("-serve-baseline needs -redis"))
		}
		return errors.Join(errs...)
	}
	if c.duration <= 0 {
		errs = append(errs, errors.New("-duration must be positive"))
	}
	if c.warmup < 0 {
		errs = append(errs, errors.New("-warmup must not be negative"))
	}
	if c.concurrency < 1 {
		errs = append(errs, errors.New("-concurrency must be at least 1"))
	}
	if !(c.rate > 0) || math.IsInf(c.rate, 0) {
		errs = append(errs, errors.New("-rate must be positive"))
	} else if c.pool == 0 {
		c.pool = max(64, int(math.Ceil(c.rate/10)))
	}
	if c.pool < 1 {
		errs = append(errs, errors.New("-pool must be at least 1"))
	}
	if c.serverCPUs != "" {
		cpus, err := parseCPUList(c.serverCPUs, runtime.NumCPU())
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("-server-cpus: %w", err))
		case len(otherCPUs(cpus, runtime.NumCPU())) == 0:
			errs = append(errs, errors.New("-server-cpus: leave at least one CPU for nbp-load and Redis"))
		default:
			c.serverSet, c.loadSet = cpus, otherCPUs(cpus, runtime.NumCPU())
			if _, err := exec.LookPath("taskset"); err != nil {
				errs = append(errs, fmt.Errorf("-server-cpus needs taskset (util-linux): %w", err))
			}
		}
	}
	if len(c.overloadArgs) > 0 && !c.overload {
		errs = append(errs, errors.New("-overload-args needs -overload"))
	}
	if c.degraded && c.redisAddr != "" {
		errs = append(errs, errors.New("-degraded stops and kills Redis: it needs the private redis-server (unset REDIS_ADDR and -redis)"))
	}
	if c.rounds < 1 {
		errs = append(errs, errors.New("-rounds must be at least 1"))
	}
	if c.n < 1 {
		errs = append(errs, errors.New("-n must be at least 1"))
	}
	for _, p := range []struct {
		name string
		path *string
		hint string
	}{
		{"nbp", &c.nbpBin, "build it with `go build -o bin/ ./cmd/...`"},
		{"onnxruntime", &c.ortLib, "fetch it with .ci/fetch-onnxruntime, or set ONNXRUNTIME_LIB"},
	} {
		if *p.path == "" {
			errs = append(errs, fmt.Errorf("-%s is required", p.name))
			continue
		}
		abs, err := filepath.Abs(*p.path)
		if err != nil {
			errs = append(errs, fmt.Errorf("-%s: %w", p.name, err))
			continue
		}
		*p.path = abs
		if _, err := os.Stat(abs); err != nil {
			errs = append(errs, fmt.Errorf("-%s: %w (%s)", p.name, err, p.hint))
		}
	}
	return errors.Join(errs...)
}
