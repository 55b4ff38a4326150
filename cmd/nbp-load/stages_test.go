package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/pprof/profile"

	"github.com/directops/nbp/model"
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

// TestDirVersions: -swap-dir swaps to the other versions, then back.
func TestDirVersions(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []string{"a-1", "b-1", "c-1"} {
		if err := os.Mkdir(filepath.Join(dir, v), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := model.Dir(dir).SetCurrent("b-1"); err != nil {
		t.Fatal(err)
	}
	vs, err := dirVersions(dir)
	if err != nil || strings.Join(vs, ",") != "a-1,c-1,b-1" {
		t.Errorf("%v %v", vs, err)
	}
	only := t.TempDir()
	_ = os.Mkdir(filepath.Join(only, "a-1"), 0o755)
	_ = model.Dir(only).SetCurrent("a-1")
	if _, err := dirVersions(only); err == nil {
		t.Error("a directory of one version")
	}
}
