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
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/directops/nbp/features"
	"github.com/directops/nbp/features/demobank"
	"github.com/directops/nbp/service/throttle"
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
const baselinePrefix = features.DefaultPrefix

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

	if len(cfg.serverSet) > 0 {
		if err := pinSelf(cfg.loadSet); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "pinned: servers and Redis on CPU %s (servers with GOMAXPROCS=%d), nbp-load on CPU %s\n",
			cpuList(cfg.serverSet), len(cfg.serverSet), cpuList(cfg.loadSet))
	}
	redisAddr := cfg.redisAddr
	var redisProc *process
	if redisAddr == "" {
		p, addr, err := startRedis(ctx, cfg.redisBin, childEnv(getenv), cfg.serverSet)
		if err != nil {
			return err
		}
		defer p.stop(2 * time.Second)
		redisAddr, redisProc = addr, p
		fmt.Fprintf(stdout, "redis: private redis-server on %s (pid %d)\n", addr, p.pid())
	} else {
		fmt.Fprintf(stdout, "redis: %s (REDIS_ADDR)\n", redisAddr)
	}

	// Each nbp spills its audit records to a directory of its own, as in
	// production, while -degraded fails its Redis.
	spills, err := os.MkdirTemp("", "nbp-load-audit-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(spills)
	cfg.spillDir = spills

	if cfg.swaps > 0 && cfg.swapDir != "" {
		versions, err := dirVersions(cfg.swapDir)
		if err != nil {
			return err
		}
		cfg.nbpArgs = append(slices.Clone(cfg.nbpArgs), "-model", cfg.swapDir)
		cfg.swapVersions = versions
	} else if cfg.swaps > 0 {
		dir, versions, err := swapModelDir("models")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		cfg.nbpArgs = append(slices.Clone(cfg.nbpArgs), "-model", dir)
		cfg.swapVersions = versions
	}
	if cfg.profile != "" {
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		cfg.debugAddr = addr
		cfg.nbpArgs = append(slices.Clone(cfg.nbpArgs), "-debug-addr", addr)
	}
	maxConns := max(cfg.concurrency, cfg.pool) + 16
	env := childEnv(getenv, "REDIS_ADDR="+redisAddr, "ONNXRUNTIME_LIB="+cfg.ortLib)
	nbpS, err := startNBP(ctx, cfg, "nbp", cfg.nbpArgs, env, maxConns, stdout)
	if err != nil {
		return err
	}
	defer nbpS.p.stop(5 * time.Second)
	servers := []server{nbpS}
	var overloaded *server // the nbp -overload offers its load to
	if cfg.overload {
		overloaded = &nbpS
	}
	if len(cfg.compareArgs) > 0 {
		s, err := startNBP(ctx, cfg, nbpCompareName, append(slices.Clone(cfg.nbpArgs), cfg.compareArgs...), env, maxConns, stdout)
		if err != nil {
			return err
		}
		defer s.p.stop(5 * time.Second)
		servers = append(servers, s)
	}
	var second []server // nbp-overload, with -overload-args
	if len(cfg.overloadArgs) > 0 {
		s, err := startNBP(ctx, cfg, nbpOverloadName, append(slices.Clone(cfg.nbpArgs), cfg.overloadArgs...), env, maxConns, stdout)
		if err != nil {
			return err
		}
		defer s.p.stop(5 * time.Second)
		second = []server{s}
		overloaded = &second[0]
	}

	ids := make([]string, cfg.n)
	for i := range ids {
		ids[i] = demobank.ID(i)
	}
	for _, s := range append(slices.Clone(servers), second...) {
		for _, id := range []string{ids[0], ids[len(ids)-1]} {
			n, err := checkNBP(s.t, id)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "sanity: %s GET %s -> 200, %d items\n", s.t.name, s.t.url(id), n)
		}
	}

	if !cfg.skipBaseline {
		baseLog := &serverLog{name: "baseline", all: true}
		base, baseAddr, err := startServer(ctx, "baseline", self,
			[]string{"-serve-baseline", "-addr", "127.0.0.1:0", "-redis", redisAddr, "-prefix", baselinePrefix},
			childEnv(getenv), cfg.serverSet, 30*time.Second, baseLog.add)
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
	interrupted := measure(ctx, cfg, servers, overloaded, ids, redisProc, rep, stdout)
	rep.Interrupted = interrupted != nil

	for _, s := range append(slices.Clone(servers), second...) {
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

// nbpOverloadName names the second nbp of -overload-args.
const nbpOverloadName = "nbp-overload"

// nbpCompareName names the nbp of -compare-args.
const nbpCompareName = "nbp-b"

// startNBP starts an nbp on the demo bank with extra args, waits until it
// listens, and returns it with a client of maxConns connections.
func startNBP(ctx context.Context, cfg config, name string, extra, env []string, maxConns int, stdout io.Writer) (server, error) {
	log := &serverLog{name: name}
	if cfg.logDir != "" {
		f, err := os.Create(filepath.Join(cfg.logDir, name+".log"))
		if err != nil {
			return server{}, fmt.Errorf("-logs: %w", err)
		}
		log.keep = f // closed when nbp-load exits
	}
	args := []string{"-demo", "-addr", "127.0.0.1:0", "-log-level", "warn", "-demo-n", strconv.Itoa(cfg.n)}
	if cfg.spillDir != "" {
		args = append(args, "-audit-spill", filepath.Join(cfg.spillDir, name))
	}
	args = append(args, extra...)
	fmt.Fprintf(stdout, "%s: starting %s %s (loads the %d-customer demo bank)\n", name, cfg.nbpBin, strings.Join(args, " "), cfg.n)
	p, addr, err := startServer(ctx, name, cfg.nbpBin, args, env, cfg.serverSet, 2*time.Minute, log.add)
	if err != nil {
		return server{}, err
	}
	log.listening()
	fmt.Fprintf(stdout, "%s: listening on %s (pid %d)\n", name, addr, p.pid())
	return server{newTarget(name, addr, maxConns), p, log}, nil
}

// nbpServer returns the nbp of servers (the baseline may be there too).
func nbpServer(servers []server) server {
	for _, s := range servers {
		if s.t.name == "nbp" {
			return s
		}
	}
	panic("no nbp among the servers")
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
func measure(ctx context.Context, cfg config, servers []server, overloaded *server, ids []string, redis *process, rep *report, stdout io.Writer) error {
	cpu := func(s server) *cpuMeter {
		pids := map[string]int{"server": s.p.pid()}
		if redis != nil && !redis.exited() {
			pids["redis"] = redis.pid()
		}
		return newCPUMeter(pids)
	}
	for round := 1; round <= cfg.rounds; round++ {
		for _, s := range servers {
			fmt.Fprintf(stdout, "running closed loop: %-8s round %d: %d workers, %s + %s warm-up\n",
				s.t.name, round, cfg.concurrency, cfg.duration, cfg.warmup)
			meter := cpu(s)
			var profiled chan error
			if s.t.name == "nbp" && round == 1 && cfg.profile != "" {
				profiled = make(chan error, 1)
				go func() { profiled <- captureProfile(ctx, cfg.debugAddr, cfg.warmup, cfg.duration, cfg.profile) }()
			}
			res := runClosed(ctx, cfg.concurrency, cfg.warmup, cfg.duration, s.t.issuer(ids, cfg.seed+uint64(round)))
			if profiled != nil {
				if err := <-profiled; err != nil {
					rep.Notes = append(rep.Notes, "-profile: "+err.Error())
				} else if res.window > 0 {
					rep.Stages, rep.profilePath = stageTable(cfg.profile, res.ok), cfg.profile
				}
			}
			if res.window > 0 { // not interrupted during the warm-up
				rep.Closed = append(rep.Closed, closedRun(s.t.name, round, res, meter.cores()))
			}
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	if overloaded != nil {
		if err := overload(ctx, cfg, nbpServer(servers), *overloaded, ids, rep, cpu, stdout); err != nil {
			return err
		}
	}
	defer func() {
		// Last, as it ends Redis.
		if cfg.degraded && redis != nil && ctx.Err() == nil {
			target := nbpServer(servers)
			if overloaded != nil {
				target = *overloaded // the setting under test
			}
			degraded(ctx, cfg, target, ids, redis, rep, cpu, stdout)
		}
	}()
	for _, s := range servers {
		fmt.Fprintf(stdout, "running open loop:   %-8s %g req/s for %s + %s warm-up, pool of %d\n",
			s.t.name, cfg.rate, cfg.duration, cfg.warmup, cfg.pool)
		meter := cpu(s)
		run := runOpen
		if len(cfg.serverSet) > 0 {
			// Pinned, the generator has fewer CPUs than the precise
			// dispatcher's own thread wants.
			run = runOpenCoarse
		}
		shed := shedCounter(s.t)
		var swapped chan swapResult
		if s.t.name == "nbp" && cfg.swaps > 0 {
			swapped = make(chan swapResult, 1)
			go func() { swapped <- swapDuring(ctx, s.t.addr, cfg.swapVersions, cfg.swaps, cfg.warmup, cfg.duration) }()
		}
		res := run(ctx, cfg.rate, cfg.pool, cfg.warmup, cfg.duration, s.t.issuer(ids, cfg.seed+1000))
		if swapped != nil {
			sw := <-swapped
			sw.LateOK, sw.Degraded, sw.Errors = res.ok-res.okInTime, res.degraded, res.errors
			rep.Swaps = &sw
		}
		if res.window > 0 {
			o := openRun(s.t.name, cfg.rate, res, meter.cores())
			o.ShedByReason = shed()
			rep.Open = append(rep.Open, o)
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
	keep   io.Writer // every line, when set (-logs)
}

func (l *serverLog) listening() {
	l.mu.Lock()
	l.up = true
	l.mu.Unlock()
}

func (l *serverLog) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.keep != nil {
		fmt.Fprintln(l.keep, line)
	}
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
// requests, and how many were shed with 503 and how fast. The pool of
// senders holds a deadline's worth of requests at the offered rate: a
// request that finds every sender busy would have missed its deadline
// anyway, and is counted dropped.
func overload(ctx context.Context, cfg config, peakS, s server, ids []string, rep *report, cpu func(server) *cpuMeter, stdout io.Writer) error {
	// The peak is the best closed-loop rate of personalised 200s of the
	// first nbp: requests shed or answered degraded there are not
	// throughput.
	personalised := func(c runResult) float64 { return float64(c.OK-c.Degraded) / c.WindowS }
	peak, last := 0.0, 0.0
	for _, c := range rep.Closed {
		if c.Target == "nbp" && c.WindowS > 0 {
			peak = max(peak, personalised(c))
			last = personalised(c)
		}
	}
	if peak == 0 {
		return nil
	}
	rate := 2 * peak
	pool := max(64, int(rate*goodputDeadline.Seconds()))
	round := cfg.rounds
	run := func(k float64) *overloadResult {
		// A client of its own, with a connection for every sender
		// unless -overload-conns bounds them.
		t := newTarget(s.t.name, s.t.addr, pool+16)
		if cfg.conns > 0 {
			t.client.MaxConns = cfg.conns
			t.client.MaxConnWaitTimeout = goodputDeadline
		}
		issuer := t.issuer(ids, cfg.seed+2000)
		if k > 0 {
			issuer = throttled(throttle.New(throttle.Config{K: k}), issuer)
		}
		name := (&overloadResult{ThrottleK: k}).name()
		fmt.Fprintf(stdout, "running %s: %s at 2x the peak of nbp, %.0f req/s for %s + %s warm-up, pool of %d\n", name, s.t.name, rate, cfg.duration, cfg.warmup, pool)
		meter := cpu(s)
		shedSince := shedCounter(s.t)
		res := runOpenCoarse(ctx, rate, pool, cfg.warmup, cfg.duration, issuer)
		shed := shedSince()
		t.client.CloseIdleConnections() // before the closed loop that follows
		if res.window <= 0 {
			return nil
		}
		o := overloadRun(s.t.name, peak, rate, pool, res, meter.cores())
		o.ThrottleK = k
		o.ShedByReason = shed
		// The speed of this machine drifts by a tenth or more within a
		// minute: judge the run by nbp's closed loop just before and
		// just after it, too.
		round++
		fmt.Fprintf(stdout, "running closed loop: nbp      round %d, after the %s: %d workers, %s + %s warm-up\n", round, name, cfg.concurrency, cfg.duration, cfg.warmup)
		cm := cpu(peakS)
		cr := runClosed(ctx, cfg.concurrency, cfg.warmup, cfg.duration, peakS.t.issuer(ids, cfg.seed+uint64(round)))
		if cr.window <= 0 {
			return nil
		}
		after := closedRun(peakS.t.name, round, cr, cm.cores())
		after.Phase = "after the " + name
		rep.Closed = append(rep.Closed, after)
		o.bracket(last, personalised(after))
		last = personalised(after)
		fmt.Fprintf(stdout, "%s: personalised goodput %.0f req/s = %.0f%% of the peak %.0f, %.0f%% of the closed loop around it (%.0f, %.0f); admitted p99 %s ms; shed %d (p99 %s ms); refused by the callers %d\n",
			name, o.FullGoodputRPS, 100*o.FullGoodputShare, peak, 100*o.ShareAround, o.BeforeRPS, o.AfterRPS, ms(o.AdmittedUS.P99), o.Shed, ms(o.ShedUS.P99), o.Throttled)
		return &o
	}
	if rep.Overload = run(0); rep.Overload == nil {
		return ctx.Err()
	}
	if cfg.throttleK > 0 {
		if rep.OverloadThrottled = run(cfg.throttleK); rep.OverloadThrottled == nil {
			return ctx.Err()
		}
	}
	return nil
}

// degraded measures nbp at -rate while its Redis is black-holed (stopped
// with SIGSTOP: connections stay open and nothing answers), then, after
// it is resumed and nbp has recovered, while it is down (killed: every
// connection refused). Nothing is warmed up: the measured window includes
// the moment Redis goes away. It ends Redis; it runs last.
func degraded(ctx context.Context, cfg config, nbp server, ids []string, redis *process, rep *report, cpu func(server) *cpuMeter, stdout io.Writer) {
	phase := func(name string, seed uint64) {
		pool := max(64, int(cfg.rate*goodputDeadline.Seconds()))
		fmt.Fprintf(stdout, "running degraded:    %s with Redis %s, %g req/s for %s, pool of %d\n", nbp.t.name, name, cfg.rate, cfg.duration, pool)
		meter := cpu(nbp)
		shed := shedCounter(nbp.t)
		res := runOpenCoarse(ctx, cfg.rate, pool, 0, cfg.duration, nbp.t.issuer(ids, seed))
		if res.window > 0 {
			r := openRun(nbp.t.name, cfg.rate, res, meter.cores())
			r.Phase = "redis " + name
			r.ShedByReason = shed()
			rep.Degraded = append(rep.Degraded, r)
		}
	}
	_ = syscall.Kill(redis.pid(), syscall.SIGSTOP)
	phase("black-holed", cfg.seed+3000)
	_ = syscall.Kill(redis.pid(), syscall.SIGCONT)
	if ctx.Err() != nil {
		return
	}
	// Let the breakers close again before the next fault.
	recovered := false
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; time.Sleep(200 * time.Millisecond) {
		if d, err := checkDegraded(nbp.t, ids[0]); err == nil && !d {
			recovered = true
			break
		}
	}
	if !recovered {
		rep.Notes = append(rep.Notes, "nbp still answered degraded 30s after Redis was resumed")
	}
	redis.stop(2 * time.Second)
	phase("down", cfg.seed+4000)
}
