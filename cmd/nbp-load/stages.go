package main

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/google/pprof/profile"
)

// A stage is a part of a decision's CPU. A sample belongs to the first
// owner stage any frame of its stack matches (work done in the background
// for many decisions: the audit writer, the shadow, the collector); else
// to the stage of its innermost frame that a stage matches, so that the
// Redis round trip of the features counts to the read, not to the HTTP
// handler that waits for it; else to a fallback.
type stage struct {
	name string
	re   *regexp.Regexp
}

var (
	owners = []stage{
		{"garbage collector (background)", regexp.MustCompile(`^runtime\.(gcBgMarkWorker|bgsweep|bgscavenge)`)},
		{"audit record (background writer)", regexp.MustCompile(`/service/audit\.\(\*Log\)\.(run|write|put)`)},
		{"shadow scoring", regexp.MustCompile(`/service\.\(\*Pipeline\)\.(RunShadow|runShadow)|/service\.\(\*shadow\)`)},
	}
	inner = []stage{
		{"audit record (queued)", regexp.MustCompile(`/service/audit\.`)},
		{"metrics and traces", regexp.MustCompile(`^go\.opentelemetry\.io/|^github\.com/prometheus/|/service/telemetry\.\(\*RedisHook\)\.(record|observe)|/service/api\.\(\*Server\)\.(record|metric)`)},
		{"limiter and auth", regexp.MustCompile(`/service/overload\.\(\*(Limiter|schedDelay)\)|/service/api\.\(\*Server\)\.(limit|authorize)$|/service/api\.\(\*clientSet\)|/service/api\.(verify|lookupKey)`)},
		{"Redis round trip (client side)", regexp.MustCompile(`^github\.com/redis/go-redis/`)},
		{"scoring: ONNX Runtime (cgo)", regexp.MustCompile(`^github\.com/yalue/onnxruntime_go`)},
		{"scoring: reasons and contributions", regexp.MustCompile(`/nbp/model\.`)},
		{"copy rendering", regexp.MustCompile(`/nbp/catalog\.\(\*Copy|/nbp/catalog\.\(\*Template|/nbp/catalog\.[a-zA-Z.()*]*[Rr]ender`)},
		{"feature decoding", regexp.MustCompile(`/nbp/features\.`)},
		{"JSON", regexp.MustCompile(`/internal/appendjson\.|^encoding/json\.|/service/api\..*[Jj][Ss][Oo][Nn]`)},
		{"policies and arbitration", regexp.MustCompile(`/nbp/service\.|/nbp/catalog\.|^github\.com/sony/gobreaker`)},
		{"HTTP parse, routing, write", regexp.MustCompile(`^github\.com/valyala/fasthttp|/service/overload\.\(\*stampedConn\)|^github\.com/gofiber/|/service/api\.`)},
	}
	fallbacks = []stage{
		{"Go scheduler and network poller", regexp.MustCompile(`^runtime\.`)},
	}
	stages = slices.Concat(owners, inner, fallbacks)
)

// stageRow is one stage's CPU per request.
type stageRow struct {
	Stage  string  `json:"stage"`
	US     float64 `json:"cpu_us_per_request"`
	Share  float64 `json:"share"`
	Sample int64   `json:"samples"`
}

// stageTable classifies the CPU profile at path by stage and divides it by
// the requests served while it was taken.
func stageTable(path string, requests uint64) []stageRow {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil || requests == 0 {
		return nil
	}
	return classify(p, requests)
}

func classify(p *profile.Profile, requests uint64) []stageRow {
	vi := len(p.SampleType) - 1 // cpu nanoseconds
	ns := make([]int64, len(stages)+1)
	counts := make([]int64, len(stages)+1)
	var total int64
	for _, s := range p.Sample {
		var names []string // innermost first
		for _, loc := range s.Location {
			for _, line := range loc.Line {
				if line.Function != nil {
					names = append(names, line.Function.Name)
				}
			}
		}
		i := stageOf(names)
		v := s.Value[vi]
		ns[i] += v
		counts[i]++
		total += v
	}
	var rows []stageRow
	for i, v := range ns {
		if v == 0 {
			continue
		}
		name := "other"
		if i < len(stages) {
			name = stages[i].name
		}
		rows = append(rows, stageRow{Stage: name, US: float64(v) / 1e3 / float64(requests),
			Share: float64(v) / float64(total), Sample: counts[i]})
	}
	slices.SortStableFunc(rows, func(a, b stageRow) int {
		switch {
		case a.US > b.US:
			return -1
		case a.US < b.US:
			return 1
		}
		return 0
	})
	rows = append(rows, stageRow{Stage: "total", US: float64(total) / 1e3 / float64(requests), Share: 1})
	return rows
}

// stageOf returns the index in stages of a stack's stage, len(stages)
// for none.
func stageOf(names []string) int {
	for i, st := range owners {
		for _, n := range names {
			if st.re.MatchString(n) {
				return i
			}
		}
	}
	for _, group := range []struct {
		off    int
		stages []stage
	}{{len(owners), inner}, {len(owners) + len(inner), fallbacks}} {
		for _, n := range names {
			for i, st := range group.stages {
				if st.re.MatchString(n) {
					return group.off + i
				}
			}
		}
	}
	return len(stages)
}

// printStages prints the stage table.
func printStages(w io.Writer, rows []stageRow, path string) {
	fmt.Fprintf(w, "\nnbp's CPU per request by stage (closed loop, round 1; profile %s):\n", path)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "stage\tµs/request\tshare\t")
	for _, r := range rows {
		name := r.Stage
		if name == "total" {
			name = strings.Repeat(" ", 2) + name
		}
		fmt.Fprintf(tw, "%s\t%6.1f\t%5.1f%%\t\n", name, r.US, 100*r.Share)
	}
	tw.Flush()
}
