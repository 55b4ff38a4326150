package features_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/directops/nbp/features"
	"github.com/directops/nbp/features/featurestest"
	"github.com/directops/nbp/features/redistest"
)

func TestCountIDs(t *testing.T) {
	suite.OnEach(t, func(t *testing.T, r featurestest.Redis) {
		ctx := context.Background()
		s := r.Store(t, features.Options{Prefix: redistest.Prefix(t)})
		if n, err := s.CountIDs(ctx, 0, 1); err != nil || n != 0 {
			t.Fatalf("empty index: %d, %v", n, err)
		}
		const n = 700
		ids := make([]string, n)
		vs := make([]features.Vector, n)
		want := make([]int64, 3)
		for i := range ids {
			ids[i] = fmt.Sprintf("C%05d", i)
			vs[i] = sampleVector()
			want[features.Bucket(ids[i])%3]++
		}
		if err := s.PutMany(ctx, ids, vs); err != nil {
			t.Fatal(err)
		}
		if got, err := s.CountIDs(ctx, 0, 1); err != nil || got != n {
			t.Errorf("one shard: %d, %v; want %d", got, err, n)
		}
		for shard := range want {
			if got, err := s.CountIDs(ctx, shard, 3); err != nil || got != want[shard] {
				t.Errorf("shard %d/3: %d, %v; want %d", shard, got, err, want[shard])
			}
		}
		for _, bad := range [][2]int{{1, 1}, {-1, 2}, {0, 0}} {
			if _, err := s.CountIDs(ctx, bad[0], bad[1]); err == nil {
				t.Errorf("shard %d of %d accepted", bad[0], bad[1])
			}
		}
	})
}
