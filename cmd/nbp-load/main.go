// Command nbp-load is the load script of nbp. On one machine and one
// Redis, it measures nbp against a baseline, a bare fiber handler that
// does one Redis GET of the same feature key, so the numbers say what
// nbp's pipeline costs on top of the floor:
//
//  1. closed loop: -concurrency workers send back to back for -duration
//     after -warmup, baseline then nbp (-rounds times): requests/s and
//     latency percentiles, and nbp's throughput as a share of the baseline's;
//  2. open loop: -rate requests a second on a fixed schedule, latency
//     counted from the scheduled time (coordinated-omission safe), for
//     the baseline then nbp.
//
// It starts everything it needs and stops it on exit, Ctrl-C included: a
// private redis-server (unless REDIS_ADDR is set), nbp -demo (which loads
// the demo bank into that Redis) and the baseline (nbp-load
// -serve-baseline, a child process of its own). Results are a table on
// stdout and, with -json, a JSON file.
//
// Run it from the repository root, where nbp finds its model:
//
//	go build -o bin/ ./cmd/... && ./bin/nbp-load -duration 10s -json var/load.json
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/directops/nbp/features/demobank"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		if errors.Is(err, errHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "nbp-load:", err)
		os.Exit(1)
	}
}

// run parses the configuration and either serves the baseline
// (-serve-baseline) or runs the benchmark.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("locate nbp-load: %w", err)
	}
	cfg, err := parseConfig(args, getenv, self)
	if err != nil {
		return err
	}
	if cfg.serveBaseline {
		return serveBaseline(ctx, cfg, stdout)
	}
	return bench(ctx, cfg, self, getenv, stdout)
}

// baselinePrefix is the key prefix the baseline reads: nbp's default, so
// both read the keys nbp -demo loaded.
const baselinePrefix = "nbp:"

// bench starts Redis, nbp and the baseline, measures, reports, and stops
// every process it started.
func bench(ctx context.Context, cfg config, self string, getenv func(string) string, stdout io.Writer) error {
	rep := &report{Machine: thisMachine(), Settings: cfg.settings()}
	m := rep.Machine
	fmt.Fprintf(stdout, "nbp-load: %s %s/%s, GOMAXPROCS=%d, NumCPU=%d; load generator, servers and Redis share this machine\n",
		m.GoVersion, m.OS, m.Arch, m.GOMAXPROCS, m.NumCPU)
	if m.BusyAtStart != nil && *m.BusyAtStart > noteOtherCores {
		fmt.Fprintf(stdout, "warning: other processes keep %.2f cores busy before the start: the numbers will be disturbed\n", *m.BusyAtStart)
	}

	redisAddr, redisPID := cfg.redisAddr, 0
	if redisAddr == "" {
		p, addr, err := startRedis(ctx, cfg.redisBin, childEnv(getenv))
		if err != nil {
			return err
		}
		defer p.stop(2 * time.Second)
		redisAddr, redisPID = addr, p.pid()
		fmt.Fprintf(stdout, "redis: private redis-server on %s (pid %d)\n", addr, redisPID)
	} else {
		fmt.Fprintf(stdout, "redis: %s (REDIS_ADDR)\n", redisAddr)
	}

	nbpLog := &serverLog{name: "nbp"}
	nbpArgs := append([]string{"-demo", "-addr", "127.0.0.1:0", "-log-level", "warn", "-demo-n", strconv.Itoa(cfg.n)}, cfg.nbpArgs...)
	fmt.Fprintf(stdout, "nbp: starting %s %s (loads the %d-customer demo bank)\n", cfg.nbpBin, strings.Join(nbpArgs, " "), cfg.n)
	nbp, nbpAddr, err := startServer(ctx, "nbp", cfg.nbpBin, nbpArgs,
		childEnv(getenv, "REDIS_ADDR="+redisAddr, "ONNXRUNTIME_LIB="+cfg.ortLib), 2*time.Minute, nbpLog.add)
	if err != nil {
		return err
	}
	defer nbp.stop(5 * time.Second)
	nbpLog.listening()
	fmt.Fprintf(stdout, "nbp: listening on %s (pid %d)\n", nbpAddr, nbp.pid())

	maxConns := max(cfg.concurrency, cfg.pool) + 16
	nbpT := newTarget("nbp", nbpAddr, maxConns)
	servers := []server{{nbpT, nbp, nbpLog}}

	ids := make([]string, cfg.n)
	for i := range ids {
		ids[i] = demobank.ID(i)
	}
	for _, id := range []string{ids[0], ids[len(ids)-1]} {
		n, err := checkNBP(nbpT, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "sanity: nbp GET %s -> 200, %d items\n", nbpT.url(id), n)
	}

	if !cfg.skipBaseline {
		baseLog := &serverLog{name: "baseline", all: true}
		base, baseAddr, err := startServer(ctx, "baseline", self,
			[]string{"-serve-baseline", "-addr", "127.0.0.1:0", "-redis", redisAddr, "-prefix", baselinePrefix},
			childEnv(getenv), 30*time.Second, baseLog.add)
		if err != nil {
			return err
		}
		defer base.stop(5 * time.Second)
		baseLog.listening()
		fmt.Fprintf(stdout, "baseline: listening on %s (pid %d)\n", baseAddr, base.pid())
		baseT := newTarget("baseline", baseAddr, maxConns)
		for _, id := range []string{ids[0], ids[len(ids)-1]} {
			n, err := checkBaseline(baseT, id)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "sanity: baseline GET %s -> 200, %d bytes of features\n", baseT.url(id), n)
		}
		servers = append([]server{{baseT, base, baseLog}}, servers...)
	}

	fmt.Fprintf(stdout, "\n")
	interrupted := measure(ctx, cfg, servers, ids, redisPID, rep, stdout)
	rep.Interrupted = interrupted != nil

	for _, s := range servers {
		if s.p.exited() {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s exited during the run (%v): its results are not valid", s.t.name, s.p.err))
		}
		rep.Notes = append(rep.Notes, s.log.notes()...)
	}
	rep.finish()
	rep.print(stdout)
	if cfg.jsonPath != "" {
		if err := rep.writeJSON(cfg.jsonPath); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nresults written to %s\n", cfg.jsonPath)
	}
	if interrupted != nil {
		return fmt.Errorf("interrupted: %w", interrupted)
	}
	return nil
}

// server is one server under test.
type server struct {
	t   *target
	p   *process
	log *serverLog
}

// measure runs the closed loop, -rounds times alternating the servers,
// then the open loop on each, and adds the results to rep. It stops early,
// returning ctx's error, when ctx ends.
func measure(ctx context.Context, cfg config, servers []server, ids []string, redisPID int, rep *report, stdout io.Writer) error {
	cpu := func(s server) *cpuMeter {
		pids := map[string]int{"server": s.p.pid()}
		if redisPID != 0 {
			pids["redis"] = redisPID
		}
		return newCPUMeter(pids)
	}
	for round := 1; round <= cfg.rounds; round++ {
		for _, s := range servers {
			fmt.Fprintf(stdout, "running closed loop: %-8s round %d: %d workers, %s + %s warm-up\n",
				s.t.name, round, cfg.concurrency, cfg.duration, cfg.warmup)
			meter := cpu(s)
			res := runClosed(ctx, cfg.concurrency, cfg.warmup, cfg.duration, s.t.issuer(ids, cfg.seed+uint64(round)))
			if res.window > 0 { // not interrupted during the warm-up
				rep.Closed = append(rep.Closed, closedRun(s.t.name, round, res, meter.cores()))
			}
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	if cfg.overload {
		if err := overload(ctx, cfg, servers, ids, rep, stdout); err != nil {
			return err
		}
	}
	for _, s := range servers {
		fmt.Fprintf(stdout, "running open loop:   %-8s %g req/s for %s + %s warm-up, pool of %d\n",
			s.t.name, cfg.rate, cfg.duration, cfg.warmup, cfg.pool)
		meter := cpu(s)
		res := runOpen(ctx, cfg.rate, cfg.pool, cfg.warmup, cfg.duration, s.t.issuer(ids, cfg.seed+1000))
		if res.window > 0 {
			rep.Open = append(rep.Open, openRun(s.t.name, cfg.rate, res, meter.cores()))
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// childEnv is the environment of a child: the few variables of
// nbp-load's own that matter to a process (path, locale, Go runtime
// knobs, the Redis password), then set. Nothing else leaks in, so an
// NBP_* variable in the shell cannot silently change what is measured
// (use -nbp-args for that).
func childEnv(getenv func(string) string, set ...string) []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "LANG", "LD_LIBRARY_PATH",
		"GOMAXPROCS", "GOGC", "GOMEMLIMIT", "GODEBUG", "REDIS_PASSWORD"} {
		if v := getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	return append(env, set...)
}

// serverLog watches a server's output once it listens: nbp runs at
// -log-level warn, so every JSON log line it prints is a warning or an
// error worth reporting, as is a panic. With all, every line counts (the
// baseline prints nothing after "listening on").
type serverLog struct {
	name   string
	all    bool
	mu     sync.Mutex
	up     bool
	count  int
	sample []string
}

func (l *serverLog) listening() {
	l.mu.Lock()
	l.up = true
	l.mu.Unlock()
}

func (l *serverLog) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.up {
		return
	}
	if !l.all && !strings.HasPrefix(line, "{") && !strings.HasPrefix(line, "panic") && !strings.HasPrefix(line, "fatal error") {
		return
	}
	l.count++
	if len(l.sample) < 2 {
		if len(line) > 300 {
			line = line[:300] + "..."
		}
		l.sample = append(l.sample, line)
	}
}

func (l *serverLog) notes() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.count == 0 {
		return nil
	}
	n := fmt.Sprintf("%s logged %d warning/error lines once listening; the first: %s", l.name, l.count, strings.Join(l.sample, " | "))
	return []string{n}
}

// thisMachine describes where the numbers come from, including how busy
// the machine is before nbp-load starts anything (a one-second sample).
func thisMachine() machine {
	var busy *float64
	if b, err := busyCores(time.Second); err == nil {
		busy = &b
	}
	return machine{
		BusyAtStart: busy,
		GoVersion:   runtime.Version(),
		OS:          runtime.GOOS,
		Arch:        runtime.GOARCH,
		GOMAXPROCS:  runtime.GOMAXPROCS(0),
		NumCPU:      runtime.NumCPU(),
	}
}

// overload offers nbp twice the throughput it sustained in the closed
// loop, on a fixed schedule, and reports the goodput (200s within the
// request deadline) against that peak, the latency of the admitted
// requests, and how many were shed with 503.
func overload(ctx context.Context, cfg config, servers []server, ids []string, rep *report, stdout io.Writer) error {
	peak := 0.0
	for _, c := range rep.Closed {
		if c.Target == "nbp" && c.RPS > peak {
			peak = c.RPS
		}
	}
	for _, s := range servers {
		if s.t.name != "nbp" || peak == 0 {
			continue
		}
		rate := 2 * peak
		pool := int(rate / 5)
		fmt.Fprintf(stdout, "running overload:    nbp at 2x its peak, %.0f req/s for %s + %s warm-up, pool of %d\n", rate, cfg.duration, cfg.warmup, pool)
		res := runOpen(ctx, rate, pool, cfg.warmup, cfg.duration, s.t.issuer(ids, cfg.seed+2000))
		if res.window <= 0 {
			return ctx.Err()
		}
		secs := res.window.Seconds()
		good := float64(res.okInTime) / secs
		fmt.Fprintf(stdout, "overload: offered %.0f req/s (%d not sent: generator busy); goodput %.0f req/s = %.0f%% of the peak %.0f; "+
			"admitted p50 %s ms, p99 %s ms; shed (503) %d, other errors %d\n",
			rate, res.dropped, good, 100*good/peak, peak,
			ms(res.admitted.quantile(0.5)), ms(res.admitted.quantile(0.99)), res.statuses[503], res.errors-res.statuses[503])
	}
	return nil
}
