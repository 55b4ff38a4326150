package telemetry_test

import (
	"testing"
	"time"

	"github.com/directops/nbp/service/telemetry"
)

func TestLogSampler(t *testing.T) {
	s := telemetry.LogSampler{PerSecond: 3}
	t0 := time.Unix(1_700_000_000, 0)
	for i := range 3 {
		if ok, n := s.Allow(t0.Add(time.Duration(i) * time.Millisecond)); !ok || n != 0 {
			t.Fatalf("line %d of the second: %v, %d suppressed; want let through", i, ok, n)
		}
	}
	for i := range 5 {
		if ok, _ := s.Allow(t0.Add(500 * time.Millisecond)); ok {
			t.Fatalf("line %d past the budget let through", 4+i)
		}
	}
	if ok, n := s.Allow(t0.Add(time.Second)); !ok || n != 5 {
		t.Fatalf("first line of the next second: %v, %d suppressed; want let through, saying 5", ok, n)
	}
	if ok, n := s.Allow(t0.Add(time.Second)); !ok || n != 0 {
		t.Fatalf("second line: %v, %d suppressed; want let through, saying 0", ok, n)
	}
}
