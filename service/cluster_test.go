package service_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/features/redistest"
	"github.com/directops/nbp/model"
	"github.com/directops/nbp/service"
	"github.com/directops/nbp/service/batch"
)

// TestOnRedisCluster runs the decision pipeline, the events and the batch
// on a real three-node Redis Cluster: every multi-key operation must stay
// within one hash slot.
func TestOnRedisCluster(t *testing.T) {
	cl, err := redistest.StartCluster()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Stop()
	ctx := context.Background()
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	t2 := features.Timeouts{Dial: 2 * time.Second, Read: 2 * time.Second, Write: 2 * time.Second, Pool: 2 * time.Second}
	rdb := redis.NewUniversalClient(features.RedisOptions(cl.Addrs, "", t2))
	defer rdb.Close()
	if _, ok := rdb.(*redis.ClusterClient); !ok {
		t.Fatalf("three addresses gave a %T, want a cluster client", rdb)
	}
	prefix := redistest.Prefix(t)
	store := features.NewStore(rdb, features.Options{Prefix: prefix, Now: func() time.Time { return testNow }})
	e := newEnv(t, envOptions{customers: 1500}) // for the bank, the model and the rules
	ids := e.ids
	vs := make([]features.Vector, len(ids))
	for i, id := range ids {
		vs[i] = e.vecs[id]
	}
	if err := store.PutMany(ctx, ids, vs); err != nil {
		t.Fatal(err)
	}
	pipe, err := service.NewPipeline(service.PipelineConfig{
		Catalog: cat, Store: store, FeatureTimeout: 2 * time.Second, Now: func() time.Time { return testNow },
		Scorer: model.NewGuarded(e.onnx, e.rules, len(cat.Products), model.GuardOptions{Budget: time.Second}),
	})
	if err != nil {
		t.Fatal(err)
	}
	// Decisions: personalised, one round trip across nodes.
	reqs := make([]service.Request, 300)
	for i := range reqs {
		reqs[i] = service.Request{CustomerID: ids[i], Channel: catalog.AppFeed, Limit: 3}
	}
	out := make([]service.Decision, len(reqs))
	if err := pipe.DecideMany(ctx, reqs, out); err != nil {
		t.Fatal(err)
	}
	for _, d := range out {
		if d.Degraded && d.DegradedReasons[0] == service.ReasonFeaturesUnavailable {
			t.Fatalf("%s: features unavailable on the cluster", d.CustomerID)
		}
	}
	// Events: recorded once, however often sent.
	evs := []features.Event{{ID: "K1", CustomerID: ids[0], ProductID: "WM_CASH", Channel: catalog.AppFeed,
		Type: features.EventImpression, Strategy: "model", At: testNow}}
	for i := 0; i < 2; i++ {
		fresh, err := store.RecordEvents(ctx, evs, features.EventOptions{Policy: cat.Contact, Now: testNow})
		if err != nil || fresh[0] != (i == 0) {
			t.Fatalf("send %d: fresh %v, %v", i, fresh, err)
		}
	}
	// The batch: two shards, volume limits, the pointer.
	bs := batch.NewStore(rdb, prefix)
	runner := batch.NewRunner(pipe, bs, store)
	rows := 0
	for shard := 0; shard < 2; shard++ {
		var parts memParts
		ck, _, err := runner.Run(ctx, batch.Options{RunID: "cluster", Shard: shard, Shards: 2, Chunk: 200,
			Volume: map[string]int{"TD_1Y": 25}}, parts.open)
		if err != nil {
			t.Fatalf("shard %d: %v", shard, err)
		}
		rows += ck.Rows
	}
	if cur, err := bs.Current(ctx); err != nil || cur != "cluster" {
		t.Fatalf("pointer %q %v", cur, err)
	}
	vol, err := bs.Volume(ctx, "cluster")
	if err != nil || vol["TD_1Y"] != 25 {
		t.Fatalf("TD_1Y volume %d %v, want 25", vol["TD_1Y"], err)
	}
	if rows == 0 {
		t.Fatal("no rows")
	}
	t.Logf("%d rows over %d nodes", rows, len(cl.Addrs))
}
