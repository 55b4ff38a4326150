package service_test

import (
	"context"
	"math"
	"slices"
	"testing"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/service"
)

// sameValues compares feature values, NaN equal to NaN.
func sameValues(a []float32, b []float32) bool {
	return slices.EqualFunc(a, b, func(x, y float32) bool { return x == y || math.IsNaN(float64(x)) && math.IsNaN(float64(y)) })
}

// TestFeatureLogSampling: decisions carry the feature values they were
// made on for the sampled share, every batch decision does, and none does
// without a feature log; the values are the customer's vector, and a
// customer whose features are unknown carries none.
func TestFeatureLogSampling(t *testing.T) {
	const n = 400
	ctx := context.Background()
	count := func(e *env, ch catalog.Channel) (carried int) {
		t.Helper()
		for _, id := range e.ids {
			d, err := e.pipeline.Decide(ctx, service.Request{CustomerID: id, Channel: ch, Limit: 3})
			if err != nil {
				t.Fatal(err)
			}
			if d.Features == nil {
				continue
			}
			carried++
			v := e.vecs[id]
			if !sameValues(d.Features, v.Values[:]) {
				t.Fatalf("%s: carried %v, the vector holds %v", id, d.Features, v.Values)
			}
			if len(d.Features) != int(features.NumFields) {
				t.Fatalf("%d values, want the schema's %d", len(d.Features), features.NumFields)
			}
		}
		return carried
	}
	if c := count(newEnv(t, envOptions{customers: n}), catalog.AppFeed); c != 0 {
		t.Errorf("without a feature log, %d decisions carried features", c)
	}
	e := newEnv(t, envOptions{customers: n, featureLogShare: 0.25})
	if c := count(e, catalog.AppFeed); c < n/8 || c > n*3/8 {
		t.Errorf("share 0.25: %d of %d decisions carried features", c, n)
	}
	if c := count(e, catalog.Batch); c != n {
		t.Errorf("batch: %d of %d decisions carried features", c, n)
	}
	d, err := e.pipeline.Decide(ctx, service.Request{CustomerID: "NOBODY_KNOWN", Channel: catalog.Batch, Limit: 3})
	if err != nil || d.Features != nil {
		t.Errorf("an unknown customer: %v, features %v", err, d.Features)
	}
}
