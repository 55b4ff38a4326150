package main

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestTickTime(t *testing.T) {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		i    int64
		rate float64
		want time.Duration
	}{
		{0, 5000, 0},
		{1, 5000, 200 * time.Microsecond},
		{5000, 5000, time.Second}, // no drift after a second of ticks
		{3, 3, time.Second},       // 1/3 s does not divide evenly
		{300_000, 3, 100_000 * time.Second},
		{7, 0.5, 14 * time.Second},
	}
	for _, tt := range tests {
		if got := tickTime(start, tt.i, tt.rate).Sub(start); got != tt.want {
			t.Errorf("tickTime(i=%d, rate=%g) = start+%s, want start+%s", tt.i, tt.rate, got, tt.want)
		}
	}
	if got := numTicks(10*time.Second, 5000); got != 50_000 {
		t.Errorf("numTicks(10s, 5000) = %d, want 50000", got)
	}
}

// sleeper is a fake server that answers after d.
func sleeper(d time.Duration, calls *atomic.Int64) issuerFactory {
	return func(int) issueFunc {
		return func() (int, error) {
			calls.Add(1)
			time.Sleep(d)
			return 200, nil
		}
	}
}

func TestRunOpenKeepsTheRate(t *testing.T) {
	var calls atomic.Int64
	const rate, warmup, dur = 2000.0, 100 * time.Millisecond, 400 * time.Millisecond
	res := runOpen(context.Background(), rate, 64, warmup, dur, sleeper(time.Millisecond, &calls))

	if want := uint64(numTicks(dur, rate)); res.scheduled < want-2 || res.scheduled > want+2 {
		t.Errorf("scheduled %d in the window, want %d", res.scheduled, want)
	}
	if res.dropped != 0 {
		t.Errorf("dropped %d with 64 idle workers and 1ms answers", res.dropped)
	}
	if got := res.ok + res.errors; got != res.scheduled {
		t.Errorf("%d answered, want every one of the %d scheduled", got, res.scheduled)
	}
	if got := uint64(calls.Load()); got != uint64(numTicks(warmup+dur, rate)) {
		t.Errorf("%d requests sent in all, want %d (warm-up included)", got, numTicks(warmup+dur, rate))
	}
	if min := res.latency.min; min < 1000 {
		t.Errorf("min latency %dµs, below the fake server's 1ms", min)
	}
}

func TestRunOpenDropsWhenEveryWorkerIsBusy(t *testing.T) {
	var calls atomic.Int64
	// One worker answering in 20ms can take ~1 in 20 of 1000 req/s.
	res := runOpen(context.Background(), 1000, 1, 0, 300*time.Millisecond, sleeper(20*time.Millisecond, &calls))
	sent := res.scheduled - res.dropped
	if res.ok != sent {
		t.Errorf("%d answered, want the %d sent", res.ok, sent)
	}
	if sent < 5 || sent > 30 {
		t.Errorf("%d of %d sent, want about 15", sent, res.scheduled)
	}
	if res.dropped < res.scheduled/2 {
		t.Errorf("dropped %d of %d, want most", res.dropped, res.scheduled)
	}
}

// TestRunOpenCountsFromTheSchedule checks that latency runs from the
// scheduled time: with every worker held up for the first 50ms, the
// requests due then are sent late, and their latency includes the wait.
func TestRunOpenCountsFromTheSchedule(t *testing.T) {
	gate := make(chan struct{})
	time.AfterFunc(50*time.Millisecond, func() { close(gate) })
	var first atomic.Bool
	issuer := func(int) issueFunc {
		return func() (int, error) {
			if first.CompareAndSwap(false, true) {
				<-gate // the one worker is busy for the first 50ms...
			}
			return 200, nil
		}
	}
	// ... so with one worker the dispatcher drops what is due meanwhile,
	// and the one request it sent took 50ms from its scheduled time.
	res := runOpen(context.Background(), 1000, 1, 0, 100*time.Millisecond, issuer)
	if res.latency.max < 45_000 {
		t.Errorf("max latency %dµs, want about 50ms: the held-up request's", res.latency.max)
	}
	if res.dropped == 0 {
		t.Error("nothing dropped while the only worker was held up")
	}
}

func TestRunOpenStopsOnCancel(t *testing.T) {
	var calls atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	res := runOpen(ctx, 1000, 8, 0, 10*time.Second, sleeper(0, &calls))
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("runOpen took %s after its context ended", took)
	}
	if res.window > time.Second {
		t.Errorf("window %s, want about 50ms", res.window)
	}
}

func TestRunClosed(t *testing.T) {
	var calls atomic.Int64
	fail := errors.New("connection refused")
	issuer := func(w int) issueFunc {
		return func() (int, error) {
			n := calls.Add(1)
			time.Sleep(time.Millisecond)
			switch {
			case w == 0 && n%10 == 0:
				return 0, fail
			case w == 1 && n%10 == 0:
				return 503, errors.New("status 503")
			}
			return 200, nil
		}
	}
	res := runClosed(context.Background(), 4, 50*time.Millisecond, 200*time.Millisecond, issuer)
	total := res.ok + res.errors
	if total == 0 || total >= uint64(calls.Load()) {
		t.Fatalf("%d counted of %d sent: want some, and not the warm-up's", total, calls.Load())
	}
	// 4 workers at ~1ms a request for 200ms: at most ~800.
	if total > 1000 {
		t.Errorf("%d counted, more than 4 workers could send", total)
	}
	if res.statuses[200] != res.ok || res.statuses[0]+res.statuses[503] != res.errors {
		t.Errorf("statuses %v do not add up to ok=%d errors=%d", res.statuses, res.ok, res.errors)
	}
	if res.firstErr == "" && res.errors > 0 {
		t.Error("errors without a first error")
	}
	if res.latency.min < 1000 {
		t.Errorf("min latency %dµs, below the fake's 1ms", res.latency.min)
	}
}
