package features_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/directops/nbp/features"
	"github.com/directops/nbp/features/featurestest"
	"github.com/directops/nbp/features/redistest"
)

func TestPageIDs(t *testing.T) {
	suite.OnEach(t, func(t *testing.T, r featurestest.Redis) {
		ctx := context.Background()
		s := r.Store(t, features.Options{Prefix: redistest.Prefix(t)})
		const n = 3000
		ids := make([]string, n)
		vs := make([]features.Vector, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("P%06d", i)
			vs[i] = sampleVector()
		}
		if err := s.PutMany(ctx, ids, vs); err != nil {
			t.Fatal(err)
		}
		walk := func(shard, shards int, count int64) []string {
			var all []string
			cursor := ""
			for {
				page, next, err := s.PageIDs(ctx, cursor, count, shard, shards)
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, page...)
				if next == "" {
					return all
				}
				cursor = next
			}
		}
		whole := walk(0, 1, 97)
		if got := slices.Sorted(slices.Values(whole)); !slices.Equal(got, ids) {
			t.Fatalf("one shard walked %d ids, want every one of %d exactly once", len(whole), n)
		}
		if again := walk(0, 1, 97); !slices.Equal(again, whole) {
			t.Fatal("a second walk went in another order")
		}
		if other := walk(0, 1, 1000); !slices.Equal(other, whole) {
			t.Fatal("another page size went in another order")
		}
		seen := map[string]int{}
		for shard := 0; shard < 4; shard++ {
			for _, id := range walk(shard, 4, 50) {
				seen[id]++
				if features.Bucket(id)%4 != shard {
					t.Fatalf("%s in shard %d, bucket %d", id, shard, features.Bucket(id))
				}
			}
		}
		for _, id := range ids {
			if seen[id] != 1 {
				t.Fatalf("%s in %d shards", id, seen[id])
			}
		}
		// A cursor resumes where its page ended.
		page, next, err := s.PageIDs(ctx, "", 40, 0, 1)
		if err != nil || len(page) == 0 {
			t.Fatal(err)
		}
		rest, _, err := s.PageIDs(ctx, next, 40, 0, 1)
		if err != nil || !slices.Equal(append(page, rest...), whole[:len(page)+len(rest)]) {
			t.Fatalf("resumed page does not continue the walk: %v", err)
		}
		for _, bad := range []string{"x", "2000|a", "1|a"} {
			if _, _, err := s.PageIDs(ctx, bad, 10, 0, 2); err == nil {
				t.Errorf("cursor %q accepted for shard 0/2", bad)
			}
		}
	})
}
