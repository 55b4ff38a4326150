package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Thresholds past which the report calls a number out.
const (
	noteP99US      = 2000 // nbp's open-loop p99, µs
	noteRatio      = 0.5  // nbp's closed-loop throughput over the baseline's
	noteSendLagP99 = 1000 // the generator's p99 lateness against its schedule, µs
	noteOtherCores = 0.25 // CPU used by processes other than ours during a run
)

// report is everything one run of nbp-load measured; it is also the JSON
// written by -json.
type report struct {
	Machine         machine     `json:"machine"`
	Settings        settings    `json:"settings"`
	Closed          []runResult `json:"closed_loop"`
	ThroughputRatio float64     `json:"throughput_ratio_nbp_over_baseline,omitempty"`
	// CompareRatio is nbp-b's closed-loop throughput over nbp's (-compare-args).
	CompareRatio float64         `json:"throughput_ratio_nbp_b_over_nbp,omitempty"`
	Open         []runResult     `json:"open_loop"`
	Overload     *overloadResult `json:"overload,omitempty"`
	// The overload again, with callers that throttle themselves.
	OverloadThrottled *overloadResult `json:"overload_throttled_callers,omitempty"`
	Degraded          []runResult     `json:"degraded,omitempty"`
	// Swaps is what -swaps did during nbp's open loop.
	Swaps *swapResult `json:"model_swaps,omitempty"`
	// Stages is nbp's CPU per request by stage, from -profile.
	Stages      []stageRow `json:"cpu_by_stage,omitempty"`
	profilePath string
	Notes       []string `json:"notes,omitempty"`
	Interrupted bool     `json:"interrupted,omitempty"`
}

type machine struct {
	GoVersion   string   `json:"go_version"`
	OS          string   `json:"os"`
	Arch        string   `json:"arch"`
	GOMAXPROCS  int      `json:"gomaxprocs"`
	NumCPU      int      `json:"num_cpu"`
	BusyAtStart *float64 `json:"busy_cores_at_start,omitempty"` // used by other processes before the run
}

type settings struct {
	DurationS   float64  `json:"duration_s"`
	WarmupS     float64  `json:"warmup_s"`
	Concurrency int      `json:"concurrency"`
	Rate        float64  `json:"rate"`
	Pool        int      `json:"pool"`
	Rounds      int      `json:"rounds"`
	Customers   int      `json:"customers"`
	Redis       string   `json:"redis"`                 // "private" or "external"
	ServerCPUs  string   `json:"server_cpus,omitempty"` // pinned servers; nbp-load and Redis on the rest
	NBP         string   `json:"nbp"`
	NBPArgs     []string `json:"nbp_args,omitempty"`
	CompareArgs []string `json:"compare_args,omitempty"` // nbp-b's, after NBPArgs
	// OverloadArgs are the extra flags of nbp-overload.
	OverloadArgs []string `json:"overload_args,omitempty"`
}

func (c config) settings() settings {
	redis := "private"
	if c.redisAddr != "" {
		redis = "external"
	}
	return settings{
		DurationS: c.duration.Seconds(), WarmupS: c.warmup.Seconds(),
		Concurrency: c.concurrency, Rate: c.rate, Pool: c.pool, Rounds: c.rounds,
		Customers: c.n, Redis: redis, NBP: c.nbpBin, NBPArgs: c.nbpArgs, CompareArgs: c.compareArgs,
		OverloadArgs: c.overloadArgs,
		ServerCPUs:   cpuList(c.serverSet),
	}
}

// runResult is one measured run of one server.
type runResult struct {
	Target     string             `json:"target"`
	Phase      string             `json:"phase,omitempty"` // degraded runs: what Redis was doing
	Round      int                `json:"round,omitempty"`
	TargetRate float64            `json:"target_rate,omitempty"` // open loop
	WindowS    float64            `json:"window_s"`
	Requests   uint64             `json:"requests"` // answered or failed
	OK         uint64             `json:"ok"`
	Degraded   uint64             `json:"degraded,omitempty"`  // of the 200s, degraded (not personalised)
	Errors     uint64             `json:"errors"`              // non-200 or no response
	Scheduled  *uint64            `json:"scheduled,omitempty"` // open loop: due in the window
	Dropped    *uint64            `json:"dropped,omitempty"`   // open loop: of those, not sent
	RPS        float64            `json:"rps"`
	LatencyUS  latencySummary     `json:"latency_us"`
	SendLagUS  *latencySummary    `json:"send_lag_us,omitempty"`          // open loop: actual send minus scheduled time
	FromSendUS *latencySummary    `json:"latency_from_send_us,omitempty"` // open loop: latency without the lag
	Statuses   map[string]uint64  `json:"statuses"`                       // by HTTP status; "transport" when none came
	FirstError string             `json:"first_error,omitempty"`
	ErrorsBy   map[string]uint64  `json:"errors_by_class,omitempty"`
	CPUCores   map[string]float64 `json:"cpu_cores"` // load (nbp-load), server, redis, other
	// ShedByReason is nbp's own count of 503s by reason (its /metrics),
	// over the run (and its warm-up); open-loop and degraded runs.
	ShedByReason map[string]int64 `json:"shed_by_reason,omitempty"`
}

// mode names the kind of run.
func (r runResult) mode() string {
	if r.TargetRate > 0 {
		return "open-loop"
	}
	return fmt.Sprintf("closed-loop (round %d)", r.Round)
}

type latencySummary struct {
	Min  uint64  `json:"min"`
	Mean float64 `json:"mean"`
	P50  uint64  `json:"p50"`
	P90  uint64  `json:"p90"`
	P99  uint64  `json:"p99"`
	P999 uint64  `json:"p99_9"`
	Max  uint64  `json:"max"`
}

func summarize(h *histogram) latencySummary {
	return latencySummary{
		Min: h.min, Mean: h.mean(), Max: h.max,
		P50: h.quantile(0.50), P90: h.quantile(0.90), P99: h.quantile(0.99), P999: h.quantile(0.999),
	}
}

func resultOf(name string, t *tally, window float64, cores map[string]float64) runResult {
	statuses := make(map[string]uint64, len(t.statuses))
	for s, n := range t.statuses {
		k := strconv.Itoa(s)
		if s == 0 {
			k = "transport"
		}
		statuses[k] = n
	}
	r := runResult{
		Target: name, WindowS: window,
		Requests: t.ok + t.errors, OK: t.ok, Degraded: t.degraded, Errors: t.errors,
		LatencyUS: summarize(&t.latency), Statuses: statuses, FirstError: t.firstErr, CPUCores: cores,
	}
	if len(t.classes) > 0 {
		r.ErrorsBy = t.classes
	}
	if window > 0 {
		r.RPS = float64(r.Requests) / window
	}
	return r
}

func closedRun(name string, round int, res closedResult, cores map[string]float64) runResult {
	r := resultOf(name, &res.tally, res.window.Seconds(), cores)
	r.Round = round
	return r
}

func openRun(name string, rate float64, res openResult, cores map[string]float64) runResult {
	r := resultOf(name, &res.tally, res.window.Seconds(), cores)
	r.TargetRate = rate
	r.Scheduled = &res.scheduled
	r.Dropped = &res.dropped
	lag, fromSend := summarize(&res.sendLag), summarize(&res.fromSend)
	r.SendLagUS, r.FromSendUS = &lag, &fromSend
	return r
}

// overloadResult is the run at twice nbp's peak.
type overloadResult struct {
	// Target is the nbp loaded: "nbp", or nbp-overload, started with
	// -overload-args too; the peak is nbp's either way.
	Target       string  `json:"target"`
	PeakRPS      float64 `json:"peak_rps"` // nbp's best closed-loop round
	OfferedRPS   float64 `json:"offered_rps"`
	Pool         int     `json:"pool"`
	WindowS      float64 `json:"window_s"`
	Scheduled    uint64  `json:"scheduled"`
	Dropped      uint64  `json:"dropped"`     // every sender busy
	GoodputRPS   float64 `json:"goodput_rps"` // 200s within the deadline, a second
	GoodputShare float64 `json:"goodput_share_of_peak"`
	// Personalised goodput: the 200s within the deadline that are not
	// degraded (a feature read given up, the Redis breaker open).
	FullGoodputRPS   float64 `json:"personalised_goodput_rps"`
	FullGoodputShare float64 `json:"personalised_goodput_share_of_peak"`
	// The best rate of personalised 200s nbp showed in the whole run: the
	// closed-loop peak, or an overload's personalised goodput when that is
	// higher (the closed loop then did not saturate nbp), and the
	// personalised goodput's share of it.
	BestRPS         float64 `json:"best_personalised_rps"`
	FullShareOfBest float64 `json:"personalised_goodput_share_of_best"`
	// nbp's closed-loop rate of personalised 200s in the round just
	// before the run and the one just after, and the personalised
	// goodput's share of their mean: this machine's speed drifts, and a
	// peak measured a minute earlier can be off by a tenth.
	BeforeRPS   float64            `json:"closed_loop_before_rps,omitempty"`
	AfterRPS    float64            `json:"closed_loop_after_rps,omitempty"`
	ShareAround float64            `json:"personalised_goodput_share_of_closed_loop_around,omitempty"`
	Degraded    uint64             `json:"degraded"` // of the admitted
	Admitted    uint64             `json:"admitted"` // 200s
	AdmittedUS  latencySummary     `json:"admitted_latency_us"`
	Shed        uint64             `json:"shed"` // 503s
	ThrottleK   float64            `json:"throttle_k,omitempty"`
	Throttled   uint64             `json:"refused_by_callers,omitempty"` // never sent
	ShedUS      latencySummary     `json:"shed_latency_us"`
	Statuses    map[string]uint64  `json:"statuses"`
	ErrorsBy    map[string]uint64  `json:"errors_by_class,omitempty"`
	SendLagUS   latencySummary     `json:"send_lag_us"`
	CPUCores    map[string]float64 `json:"cpu_cores"`
	// ShedByReason is nbp's own count of 503s by reason (its /metrics),
	// over the run and its warm-up.
	ShedByReason map[string]int64 `json:"shed_by_reason,omitempty"`
}

func overloadRun(target string, peak, rate float64, pool int, res openResult, cores map[string]float64) overloadResult {
	r := resultOf(target, &res.tally, res.window.Seconds(), cores)
	o := overloadResult{
		Target: target, PeakRPS: peak, OfferedRPS: rate, Pool: pool, WindowS: r.WindowS,
		Scheduled: res.scheduled, Dropped: res.dropped,
		Admitted: res.ok, AdmittedUS: summarize(&res.admitted),
		Shed: res.statuses[503], ShedUS: summarize(&res.shed), Throttled: res.throttled,
		Statuses: r.Statuses, ErrorsBy: r.ErrorsBy, SendLagUS: summarize(&res.sendLag), CPUCores: cores,
	}
	o.Degraded = res.degraded
	if r.WindowS > 0 {
		o.GoodputRPS = float64(res.okInTime) / r.WindowS
		o.FullGoodputRPS = float64(res.fullInTime) / r.WindowS
	}
	if peak > 0 {
		o.GoodputShare = o.GoodputRPS / peak
		o.FullGoodputShare = o.FullGoodputRPS / peak
	}
	return o
}

// bracket records nbp's closed-loop rates just before and after the run.
func (o *overloadResult) bracket(before, after float64) {
	o.BeforeRPS, o.AfterRPS = before, after
	if mean := (before + after) / 2; mean > 0 {
		o.ShareAround = o.FullGoodputRPS / mean
	}
}

// finish works out the throughput ratio and the notes on what was seen.
func (r *report) finish() {
	var base, nbp, nbpB float64
	var nb, nn, nnB int
	for _, c := range r.Closed {
		if c.Phase != "" { // a round after an overload run: the baseline has none
			continue
		}
		switch c.Target {
		case "baseline":
			base += c.RPS
			nb++
		case "nbp":
			nbp += c.RPS
			nn++
		case nbpCompareName:
			nbpB += c.RPS
			nnB++
		}
	}
	if nn > 0 && nnB > 0 && nbp > 0 {
		r.CompareRatio = (nbpB / float64(nnB)) / (nbp / float64(nn))
	}
	if nb > 0 && nn > 0 && base > 0 {
		r.ThroughputRatio = (nbp / float64(nn)) / (base / float64(nb))
		if r.ThroughputRatio < noteRatio {
			r.Notes = append(r.Notes, fmt.Sprintf("nbp's closed-loop throughput is %.0f%% of the baseline's (below %.0f%%)",
				100*r.ThroughputRatio, 100*noteRatio))
		}
	}
	r.finishOverload()
	for _, d := range r.Degraded {
		if d.Errors > 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("degraded, %s: %d requests not answered 200: %v", d.Phase, d.Errors, d.ErrorsBy))
		}
	}
	for _, run := range slices.Concat(r.Closed, r.Open) {
		if other := run.CPUCores["other"]; other > noteOtherCores {
			r.Notes = append(r.Notes, fmt.Sprintf("other processes used %.2f cores during the %s run of %s: that run's numbers are disturbed",
				other, run.mode(), run.Target))
		}
	}
	for _, c := range r.Closed {
		if c.Errors > 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("closed loop, %s round %d: %d errors, the first: %s", c.Target, c.Round, c.Errors, c.FirstError))
		}
	}
	for _, o := range r.Open {
		if o.Target == "nbp" && o.LatencyUS.P99 > noteP99US {
			r.Notes = append(r.Notes, fmt.Sprintf("nbp's p99 at %g req/s is %s ms (above %s ms)", o.TargetRate, ms(o.LatencyUS.P99), ms(noteP99US)))
		}
		if o.Errors > 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("open loop, %s: %d errors, the first: %s", o.Target, o.Errors, o.FirstError))
		}
		dropped := deref(o.Dropped)
		if dropped > 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("open loop, %s: %d of %d scheduled requests dropped, all %d workers busy: %s did not keep up with %g req/s on this machine (or raise -pool)",
				o.Target, dropped, deref(o.Scheduled), r.Settings.Pool, o.Target, o.TargetRate))
		}
		if o.WindowS > 0 && o.RPS < 0.99*o.TargetRate && dropped == 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("open loop, %s: achieved %.0f of %g req/s", o.Target, o.RPS, o.TargetRate))
		}
		if o.SendLagUS != nil && o.SendLagUS.P99 > noteSendLagP99 {
			r.Notes = append(r.Notes, fmt.Sprintf("open loop, %s: the generator sent late against its schedule (p99 %s ms, max %s ms), as it shares the CPU with the servers; the latencies include that lateness, as a client's would",
				o.Target, ms(o.SendLagUS.P99), ms(o.SendLagUS.Max)))
		}
	}
}

// noteGoodputShare is the share of the peak that the overload run must
// keep as goodput.
const noteGoodputShare = 0.8

func (r *report) finishOverload() {
	runs := []*overloadResult{r.Overload, r.OverloadThrottled}
	best := 0.0
	for _, o := range runs {
		if o != nil {
			best = max(best, o.PeakRPS, o.FullGoodputRPS, o.AfterRPS)
		}
	}
	for _, o := range runs {
		if o == nil {
			continue
		}
		o.BestRPS = best
		if best > 0 {
			o.FullShareOfBest = o.FullGoodputRPS / best
		}
	}
	if o := r.Overload; o != nil && best > o.PeakRPS {
		r.Notes = append(r.Notes, fmt.Sprintf("overload: nbp served %.0f personalised answers a second under overload, more than its closed-loop peak %.0f: the closed loop did not saturate it, and the offered load was under twice its capacity; shares of the best rate are reported too", best, o.PeakRPS))
	}
	for _, o := range runs {
		if o != nil {
			r.noteOverload(o)
		}
	}
}

// name says which overload run o is.
func (o *overloadResult) name() string {
	if o.ThrottleK > 0 {
		return fmt.Sprintf("overload, callers throttling at K %g", o.ThrottleK)
	}
	return "overload"
}

func (r *report) noteOverload(o *overloadResult) {
	name := o.name()
	if o.FullGoodputShare < noteGoodputShare {
		r.Notes = append(r.Notes, fmt.Sprintf("%s: personalised goodput is %.0f%% of the peak (below %.0f%%)", name, 100*o.FullGoodputShare, 100*noteGoodputShare))
	}
	if o.ShareAround > 0 && o.ShareAround < noteGoodputShare {
		r.Notes = append(r.Notes, fmt.Sprintf("%s: personalised goodput is %.0f%% of the closed loop just before and after it (below %.0f%%)", name, 100*o.ShareAround, 100*noteGoodputShare))
	}
	if o.Degraded > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%s: %d of the %d answers were degraded (features not read: the read ran out of budget, or the Redis breaker was open); personalised goodput is %.0f%% of the peak",
			name, o.Degraded, o.Admitted, 100*o.FullGoodputShare))
	}
	if o.AdmittedUS.P99 > uint64(goodputDeadline.Microseconds()) {
		r.Notes = append(r.Notes, fmt.Sprintf("%s: admitted p99 %s ms is past the %s deadline", name, ms(o.AdmittedUS.P99), goodputDeadline))
	}
	if o.Dropped > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%s: %d of %d scheduled requests not sent, all %d senders busy (each would have missed its deadline)", name, o.Dropped, o.Scheduled, o.Pool))
	}
	if lag := o.SendLagUS.P99; lag > noteSendLagP99 {
		r.Notes = append(r.Notes, fmt.Sprintf("%s: the generator sent late against its schedule (p99 %s ms); the latencies include it", name, ms(lag)))
	}
}

// print writes the report as plain-text tables.
func (r *report) print(w io.Writer) {
	s := r.Settings
	m := r.Machine
	fmt.Fprintf(w, "\n== nbp-load: %s %s/%s, GOMAXPROCS=%d, NumCPU=%d, Redis %s, %d customers drawn uniformly\n",
		m.GoVersion, m.OS, m.Arch, m.GOMAXPROCS, m.NumCPU, s.Redis, s.Customers)
	if m.BusyAtStart != nil {
		fmt.Fprintf(w, "   cores busy with other processes before the start: %.2f\n", *m.BusyAtStart)
	}
	fmt.Fprintf(w, "   latencies in ms; cpu = cores used by load generator / server / redis / other processes\n")

	if len(r.Closed) > 0 {
		fmt.Fprintf(w, "\nclosed loop: %d workers, %gs measured after %gs warm-up; latency from the actual send\n",
			s.Concurrency, s.DurationS, s.WarmupS)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "target\tround\treq/s\tp50\tp90\tp99\tp99.9\tmax\terrors\tcpu\t")
		for _, c := range r.Closed {
			l := c.LatencyUS
			fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t\n",
				c.Target, c.Round, c.RPS, ms(l.P50), ms(l.P90), ms(l.P99), ms(l.P999), ms(l.Max), c.Errors, cores(c.CPUCores))
		}
		tw.Flush()
		for _, c := range r.Closed {
			if c.Phase != "" {
				fmt.Fprintf(w, "(%s round %d: %s)\n", c.Target, c.Round, c.Phase)
			}
		}
		if r.ThroughputRatio > 0 {
			fmt.Fprintf(w, "throughput nbp/baseline: %.2f\n", r.ThroughputRatio)
		}
		if r.CompareRatio > 0 {
			fmt.Fprintf(w, "throughput nbp-b/nbp: %.3f (nbp-b: -compare-args %s)\n", r.CompareRatio, strings.Join(r.Settings.CompareArgs, " "))
		}
	}

	if len(r.Open) > 0 {
		fmt.Fprintf(w, "\nopen loop: %g req/s fixed schedule, %gs measured after %gs warm-up, pool of %d; latency from the scheduled time\n",
			s.Rate, s.DurationS, s.WarmupS, s.Pool)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "target\treq/s\tp50\tp90\tp99\tp99.9\tmax\terrors\tdropped\tlag p99\tsend p99\tcpu\t")
		for _, o := range r.Open {
			l := o.LatencyUS
			var lag, fromSend uint64
			if o.SendLagUS != nil && o.FromSendUS != nil {
				lag, fromSend = o.SendLagUS.P99, o.FromSendUS.P99
			}
			fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t\n",
				o.Target, o.RPS, ms(l.P50), ms(l.P90), ms(l.P99), ms(l.P999), ms(l.Max), o.Errors, deref(o.Dropped),
				ms(lag), ms(fromSend), cores(o.CPUCores))
		}
		tw.Flush()
		fmt.Fprintf(w, "(lag p99: how late the generator sent against its schedule, included in the latencies;\n send p99: latency from the actual send, without that lag, for reference only)\n")
		for _, o := range r.Open {
			if len(o.ShedByReason) > 0 {
				fmt.Fprintf(w, "  %s: shed by reason (nbp's count, warm-up included): %s\n", o.Target, reasons(o.ShedByReason))
			}
		}
	}

	if len(r.Stages) > 0 {
		printStages(w, r.Stages, r.profilePath)
	}
	if sw := r.Swaps; sw != nil {
		fmt.Fprintf(w, "\nmodel swaps during nbp's open loop: %d of %d PUTs put a version in force (%s), longest PUT %.0f ms;\n  nbp's answers meanwhile: %d errors, %d 200s over the %s deadline, %d degraded\n",
			sw.Swaps, sw.Swaps+sw.Failed, strings.Join(sw.Versions, " and "), sw.PutMaxMS, sw.Errors, sw.LateOK, goodputDeadline, sw.Degraded)
		if sw.FirstErr != "" {
			fmt.Fprintf(w, "  first failed swap: %s\n", sw.FirstErr)
		}
	}

	for _, o := range []*overloadResult{r.Overload, r.OverloadThrottled} {
		if o != nil {
			printOverload(w, o, s)
		}
	}

	if len(r.Degraded) > 0 {
		fmt.Fprintf(w, "\ndegraded: nbp at %g req/s while Redis fails, %gs measured from the failure on; latency from the scheduled time\n", s.Rate, s.DurationS)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "redis\treq/s\tp50\tp90\tp99\tp99.9\tmax\tdegraded 200\tnot 200\tdropped\tcpu\t")
		for _, d := range r.Degraded {
			l := d.LatencyUS
			fmt.Fprintf(tw, "%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t\n",
				d.Phase, d.RPS, ms(l.P50), ms(l.P90), ms(l.P99), ms(l.P999), ms(l.Max), d.Degraded, d.Errors, deref(d.Dropped), cores(d.CPUCores))
		}
		tw.Flush()
		for _, d := range r.Degraded {
			if len(d.ShedByReason) > 0 {
				fmt.Fprintf(w, "  %s: shed by reason (nbp's count): %s\n", d.Phase, reasons(d.ShedByReason))
			}
		}
	}

	if r.Interrupted {
		fmt.Fprintf(w, "\ninterrupted: the results above are partial\n")
	}
	if len(r.Notes) > 0 {
		fmt.Fprintf(w, "\nnotes:\n")
		for _, n := range r.Notes {
			fmt.Fprintf(w, "  - %s\n", n)
		}
	}
}

// writeJSON writes the report to path.
func (r *report) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

// ms formats microseconds as milliseconds.
func ms(us uint64) string { return strconv.FormatFloat(float64(us)/1000, 'f', 3, 64) }

// cores formats the CPU use of load generator, server, Redis and the rest.
func cores(c map[string]float64) string {
	var out string
	for i, role := range []string{"load", "server", "redis", "other"} {
		if i > 0 {
			out += "/"
		}
		if v, ok := c[role]; ok {
			out += strconv.FormatFloat(v, 'f', 2, 64)
		} else {
			out += "-"
		}
	}
	return out
}

func deref(p *uint64) uint64 {
	if p == nil {
		return 0
	}
	return *p
}

// classes formats failure counts, largest first.
func classes(m map[string]uint64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if m[a] != m[b] {
			return cmp.Compare(m[b], m[a])
		}
		return strings.Compare(a, b)
	})
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return strings.Join(out, "; ")
}

// printOverload writes one overload run.
func printOverload(w io.Writer, o *overloadResult, s settings) {
	fmt.Fprintf(w, "\n%s: %.0f req/s offered (2x the peak %.0f), %gs measured after %gs warm-up, pool of %d; latency from the scheduled time\n",
		o.name(), o.OfferedRPS, o.PeakRPS, s.DurationS, s.WarmupS, o.Pool)
	if o.Target != "" && o.Target != "nbp" {
		fmt.Fprintf(w, "  offered to %s, started with %s too; the peak is nbp's\n", o.Target, strings.Join(s.OverloadArgs, " "))
	}
	fmt.Fprintf(w, "  goodput (200 within %s): %.0f req/s = %.0f%% of the peak; personalised (not degraded) %.0f req/s = %.0f%%\n",
		goodputDeadline, o.GoodputRPS, 100*o.GoodputShare, o.FullGoodputRPS, 100*o.FullGoodputShare)
	if o.BestRPS > o.PeakRPS {
		fmt.Fprintf(w, "  personalised goodput = %.0f%% of the best rate nbp showed in this run, %.0f req/s\n", 100*o.FullShareOfBest, o.BestRPS)
	}
	if o.ShareAround > 0 {
		fmt.Fprintf(w, "  personalised goodput = %.0f%% of nbp's closed loop around the run: %.0f req/s just before, %.0f just after\n", 100*o.ShareAround, o.BeforeRPS, o.AfterRPS)
	}
	a, sh := o.AdmittedUS, o.ShedUS
	fmt.Fprintf(w, "  admitted (200): %d, %d of them degraded; p50 %s  p90 %s  p99 %s  p99.9 %s  max %s ms\n", o.Admitted, o.Degraded, ms(a.P50), ms(a.P90), ms(a.P99), ms(a.P999), ms(a.Max))
	fmt.Fprintf(w, "  shed (503):     %d; p50 %s  p90 %s  p99 %s  p99.9 %s  max %s ms\n", o.Shed, ms(sh.P50), ms(sh.P90), ms(sh.P99), ms(sh.P999), ms(sh.Max))
	if o.ThrottleK > 0 {
		fmt.Fprintf(w, "  refused by the callers' throttles (service/throttle), never sent: %d of %d\n", o.Throttled, o.Scheduled)
	}
	fmt.Fprintf(w, "  not sent (senders busy): %d of %d; send lag p99 %s ms; cpu %s\n", o.Dropped, o.Scheduled, ms(o.SendLagUS.P99), cores(o.CPUCores))
	if len(o.ErrorsBy) > 0 {
		fmt.Fprintf(w, "  failures by kind: %s\n", classes(o.ErrorsBy))
	}
	if len(o.ShedByReason) > 0 {
		fmt.Fprintf(w, "  shed by reason (nbp's count, warm-up included): %s\n", reasons(o.ShedByReason))
	}
}

// reasons lists nbp's shed counts by reason, in a fixed order.
func reasons(m map[string]int64) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
