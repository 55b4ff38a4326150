package main

import (
	"errors"
	"slices"
	"testing"
)

func TestParseCPUList(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []int
	}{
		{"1", []int{1}},
		{"0-2", []int{0, 1, 2}},
		{"3,1, 1-2", []int{1, 2, 3}},
	} {
		got, err := parseCPUList(c.in, 4)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("parseCPUList(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "a", "4", "-1", "2-1", "1-x", "0-9"} {
		if got, err := parseCPUList(bad, 4); err == nil {
			t.Errorf("parseCPUList(%q) = %v, want an error", bad, got)
		}
	}
	if got := otherCPUs([]int{1, 3}, 4); !slices.Equal(got, []int{0, 2}) {
		t.Errorf("otherCPUs = %v, want [0 2]", got)
	}
	path, args, env := pinned([]int{1, 2}, "/bin/nbp", []string{"-demo"}, []string{"A=1"})
	if path != "taskset" || !slices.Equal(args, []string{"-c", "1,2", "/bin/nbp", "-demo"}) || !slices.Contains(env, "GOMAXPROCS=2") {
		t.Errorf("pinned = %s %v %v", path, args, env)
	}
	if path, args, _ := pinned(nil, "/bin/nbp", []string{"-demo"}, nil); path != "/bin/nbp" || len(args) != 1 {
		t.Errorf("unpinned = %s %v", path, args)
	}
}

func TestErrorClass(t *testing.T) {
	for _, c := range []struct {
		status int
		err    error
		want   string
	}{
		{503, errors.New(`status 503: {"error":{"code":"overloaded","message":"too many"}}`), "status 503 overloaded"},
		{503, errors.New(`status 503: <html>`), "status 503"},
		{0, errors.New("no free connections available to host"), "no free connections available to host"},
	} {
		if got := errorClass(c.status, c.err); got != c.want {
			t.Errorf("errorClass(%d, %v) = %q, want %q", c.status, c.err, got, c.want)
		}
	}
}

func TestOverloadRun(t *testing.T) {
	res := openResult{tally: *newTally(), scheduled: 400, dropped: 10}
	res.window = 2e9 // 2s
	for range 300 {
		res.record(5e6, 200, nil) // 5ms
	}
	for range 20 {
		res.record(5e6, 200, errDegraded) // in time, but degraded
	}
	for range 50 {
		res.record(150e6, 200, nil) // 150ms: admitted, but late
	}
	for range 40 {
		res.record(1e6, 503, errors.New(`status 503: {"error":{"code":"overloaded"}}`))
	}
	o := overloadRun("nbp", 200, 400, 40, res, nil)
	if o.GoodputRPS != 160 || o.FullGoodputRPS != 150 || o.FullGoodputShare != 0.75 || o.Admitted != 370 || o.Degraded != 20 || o.Shed != 40 {
		t.Errorf("goodput %.0f/s, personalised %.0f/s (%.2f of the peak), admitted %d (%d degraded), shed %d; want 160/s, 150/s, 0.75, 370 (20), 40",
			o.GoodputRPS, o.FullGoodputRPS, o.FullGoodputShare, o.Admitted, o.Degraded, o.Shed)
	}
	if o.ErrorsBy["status 503 overloaded"] != 40 {
		t.Errorf("errors by class %v", o.ErrorsBy)
	}
	r := &report{Overload: &o}
	r.finishOverload()
	if len(r.Notes) != 4 { // goodput below 80%, degraded answers, admitted p99 past the deadline, dropped
		t.Errorf("notes %q, want the three shortfalls", r.Notes)
	}
}
