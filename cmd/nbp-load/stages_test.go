package main

import (
	"testing"

	"github.com/google/pprof/profile"
)

// TestStagesClassify checks that a sample goes to its owner stage first,
// then to its innermost matching frame.
func TestStagesClassify(t *testing.T) {
	fn := func(names ...string) *profile.Sample {
		var locs []*profile.Location
		for _, n := range names {
			locs = append(locs, &profile.Location{Line: []profile.Line{{Function: &profile.Function{Name: n}}}})
		}
		return &profile.Sample{Location: locs, Value: []int64{1, 1000}}
	}
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples"}, {Type: "cpu"}},
		Sample: []*profile.Sample{
			// innermost first, as pprof stores them
			fn("syscall.write", "github.com/redis/go-redis/v9.(*baseClient).process", "github.com/directops/nbp/features.(*Store).ReadManyRun",
				"github.com/directops/nbp/service.(*Pipeline).Decide", "github.com/directops/nbp/service/api.(*Server).handleRecommend", "github.com/valyala/fasthttp.(*Server).serveConn"),
			fn("runtime.mallocgc", "github.com/directops/nbp/service/internal/appendjson.String", "github.com/directops/nbp/service/audit.(*Log).write"),
			fn("runtime.cgocall", "github.com/yalue/onnxruntime_go._Cfunc_Run", "github.com/directops/nbp/model.(*ONNX).Score", "github.com/directops/nbp/service.(*Pipeline).Decide"),
			fn("runtime.scanobject", "runtime.gcBgMarkWorker"),
			fn("syscall.write", "github.com/valyala/fasthttp.(*Server).serveConn"),
		},
	}
	rows := classify(p, 1)
	got := map[string]float64{}
	for _, r := range rows {
		got[r.Stage] = r.US
	}
	for stage, want := range map[string]float64{
		"Redis round trip (client side)":   1,
		"audit record (background writer)": 1,
		"scoring: ONNX Runtime (cgo)":      1,
		"garbage collector (background)":   1,
		"HTTP parse, routing, write":       1,
		"total":                            5,
	} {
		if got[stage] != want {
			t.Errorf("%s: %v µs, want %v (all: %v)", stage, got[stage], want, got)
		}
	}
}
