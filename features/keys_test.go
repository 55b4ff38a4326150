package features_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/directops/nbp/features"
)

// TestKeyLayout pins every key name: data in Redis outlives a release, so
// a name must never change by accident.
func TestKeyLayout(t *testing.T) {
	k := features.NewKeys("")
	day := time.Date(2026, 11, 26, 16, 30, 0, 0, time.UTC) // 2026-11-27 in China
	got := []string{
		k.Vector("C1"), k.Contact("C1"), k.Events("C1"), k.Pending("C1"), k.BatchResult("C1", "20261127"),
		k.Index(7), k.Stream(), k.Stats(day), k.Counted(k.Stats(day), "C1", "E1"),
		k.BatchRun("20261127", "ckpt"), k.BatchPointer(), k.AuditRecords("202611270400", 3),
		features.NewKeys("{bank}:").Counted("{bank}:stats:20261127", "C1", "E1"), k.WecomContact("wmAbC-1"),
		k.Session("ab12"), k.BatchLatest(), k.DecisionCounts(day), k.DecisionCount(day, "app_feed|model|0"),
	}
	want := []string{
		"nbp:{C1}:f", "nbp:{C1}:c", "nbp:{C1}:e", "nbp:{C1}:p", "nbp:{C1}:r:20261127",
		"nbp:{idx:7}", "nbp:events", "nbp:stats:20261127", "nbp:{nbp:stats:20261127}:m:C1:E1",
		"nbp:{batch:20261127}:ckpt", "nbp:batch:current", "nbp:decisions:202611270400:3",
		"{bank}:stats:20261127:m:C1:E1", "nbp:{wecom:wmAbC-1}:customer",
		"nbp:session:ab12", "nbp:batch:latest", "nbp:decision-counts:20261127", "nbp:decision-counts:20261127:app_feed|model|0",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("key layout (-want +got):\n%s", diff)
	}
}
