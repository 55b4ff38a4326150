package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/model"
	"github.com/directops/nbp/service"
	"github.com/directops/nbp/service/api"
	"github.com/directops/nbp/service/batch"
)

// memParts collects committed output parts in memory.
type memParts struct {
	mu    sync.Mutex
	parts map[string][]batch.Row
}

type memPart struct {
	m    *memParts
	name string
	rows []batch.Row
}

func (m *memParts) open(name string) (batch.PartWriter, error) {
	return &memPart{m: m, name: name}, nil
}

func (p *memPart) Write(rows []batch.Row) error {
	p.rows = append(p.rows, rows...)
	return nil
}

func (p *memPart) Commit() error {
	p.m.mu.Lock()
	defer p.m.mu.Unlock()
	if p.m.parts == nil {
		p.m.parts = map[string][]batch.Row{}
	}
	if _, dup := p.m.parts[p.name]; dup {
		return fmt.Errorf("part %s committed twice", p.name)
	}
	p.m.parts[p.name] = p.rows
	return nil
}

func (p *memPart) Abort() {}

// all returns every row, in part order, with the run id blanked.
func (m *memParts) all() []batch.Row {
	names := make([]string, 0, len(m.parts))
	for n := range m.parts {
		names = append(names, n)
	}
	sort.Strings(names)
	var rows []batch.Row
	for _, n := range names {
		for _, r := range m.parts[n] {
			r.RunID = ""
			rows = append(rows, r)
		}
	}
	return rows
}

func runner(e *env) (*batch.Runner, *batch.Store) {
	bs := batch.NewStore(e.rdb, e.prefix)
	return batch.NewRunner(e.pipeline, bs, e.store), bs
}

func TestBatchParityWithOnline(t *testing.T) {
	e := newEnv(t, envOptions{customers: 2000})
	r, _ := runner(e)
	var parts memParts
	ck, flipped, err := r.Run(context.Background(), batch.Options{RunID: "parity", Chunk: 300, Segment: 2}, parts.open)
	if err != nil {
		t.Fatal(err)
	}
	if ck.Customers != 2000 || !flipped || !ck.Done {
		t.Fatalf("checkpoint %+v, flipped %v", ck, flipped)
	}
	byCustomer := map[string][]batch.Row{}
	for _, row := range parts.all() {
		byCustomer[row.CustomerID] = append(byCustomer[row.CustomerID], row)
	}
	s := newServer(t, e)
	for _, id := range e.ids {
		_, body := do(t, s, "GET", "/v1/customers/"+id+"/recommendations?channel=batch&limit=3")
		var online api.RecommendationResponse
		if err := json.Unmarshal(body, &online); err != nil {
			t.Fatal(err)
		}
		rows := byCustomer[id]
		if len(rows) != len(online.Items) {
			t.Fatalf("%s: batch %d rows, online %d items", id, len(rows), len(online.Items))
		}
		for i, it := range online.Items {
			b := rows[i]
			if b.Rank != it.Rank || b.ProductID != it.ProductID || b.Propensity != it.Propensity || b.Priority != it.Priority ||
				b.Title != it.Copy.Title || b.Body != it.Copy.Body || b.Strategy != online.Strategy || b.ModelVersion != online.ModelVersion {
				t.Fatalf("%s rank %d: batch %+v, online %+v (%s)", id, i+1, b, it, online.Strategy)
			}
		}
	}
}

func TestBatchShardsAndPointer(t *testing.T) {
	e := newEnv(t, envOptions{customers: 1500, scorer: func(e *env) service.Scorer { return e.rules }})
	r, bs := runner(e)
	seen := map[string]int{}
	const shards = 3
	for i := 0; i < shards; i++ {
		if cur, _ := bs.Current(context.Background()); cur == "sharded" {
			t.Fatalf("the pointer moved before shard %d ran", i)
		}
		var parts memParts
		opts := batch.Options{RunID: "sharded", Shard: i, Shards: shards, Chunk: 200, ModelVersion: "m-1"}
		if i == 1 {
			// The pointer moved after the run started: a shard that opened
			// the new version is refused; the run keeps its first.
			changed := opts
			changed.ModelVersion = "m-2"
			if _, _, err := r.Run(context.Background(), changed, (&memParts{}).open); !errors.Is(err, batch.ErrModelChanged) {
				t.Fatalf("a shard with another model: %v", err)
			}
			if v, _ := bs.RunModel(context.Background(), "sharded"); v != "m-1" {
				t.Fatalf("the run's model is %q", v)
			}
		}
		ck, flipped, err := r.Run(context.Background(), opts, parts.open)
		if err != nil {
			t.Fatal(err)
		}
		if flipped != (i == shards-1) {
			t.Fatalf("shard %d: flipped %v", i, flipped)
		}
		customers := map[string]bool{}
		for _, row := range parts.all() {
			customers[row.CustomerID] = true
		}
		for c := range customers {
			seen[c]++
		}
		if ck.Customers < 1500/shards/2 {
			t.Fatalf("shard %d got %d customers: the split is lopsided", i, ck.Customers)
		}
	}
	if cur, _ := bs.Current(context.Background()); cur != "sharded" {
		t.Fatalf("pointer %q after every shard finished", cur)
	}
	if st, err := bs.Status(context.Background()); err != nil || st.ModelVersion != "m-1" {
		t.Fatalf("status %+v %v", st, err)
	}
	offered := 0
	for _, id := range e.ids {
		switch seen[id] {
		case 0:
		case 1:
			offered++
		default:
			t.Fatalf("%s in %d shards", id, seen[id])
		}
	}
	if offered < 1000 {
		t.Fatalf("only %d of 1500 customers got offers", offered)
	}
	// Each customer's offers are in Redis under the run.
	got, err := e.rdb.Get(context.Background(), bs.ResultKey(e.ids[1], "sharded")).Result()
	if err != nil {
		t.Fatalf("result of %s: %v", e.ids[1], err)
	}
	t.Logf("%s: %s", e.ids[1], got)
}

func TestBatchResumeGivesTheSameOutput(t *testing.T) {
	e := newEnv(t, envOptions{customers: 3000})
	r, _ := runner(e)
	opts := batch.Options{Chunk: 100, Segment: 3, Volume: map[string]int{"WM_CASH": 120, "TD_1Y": 200}}

	var whole memParts
	opts.RunID = "whole"
	if _, _, err := r.Run(context.Background(), opts, whole.open); err != nil {
		t.Fatal(err)
	}

	// Kill the run after its second checkpoint, mid-way through the third
	// segment, then resume.
	var killed memParts
	opts.RunID = "killed"
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	opts.Progress = func(batch.Checkpoint) {
		if n++; n == 2 {
			cancel()
		}
	}
	if _, _, err := r.Run(ctx, opts, killed.open); !errors.Is(err, context.Canceled) {
		t.Fatalf("killed run: %v", err)
	}
	opts.Progress = nil
	if _, _, err := r.Run(context.Background(), opts, killed.open); !errors.Is(err, batch.ErrRunExists) {
		t.Fatalf("a second start without resume: %v", err)
	}
	opts.Resume = true
	ck, flipped, err := r.Run(context.Background(), opts, killed.open)
	if err != nil || !flipped {
		t.Fatalf("resume: %v %v", err, flipped)
	}
	a, b := whole.all(), killed.all()
	if len(a) != len(b) {
		t.Fatalf("uninterrupted %d rows, resumed %d", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("row %d differs:\n whole   %+v\n resumed %+v", i, a[i], b[i])
		}
	}
	// Re-running a finished run changes nothing.
	before := len(killed.parts)
	again, _, err := r.Run(context.Background(), opts, killed.open)
	if err != nil || len(killed.parts) != before || again.Customers != ck.Customers {
		t.Fatalf("re-run of a finished run: %v, %d parts (was %d)", err, len(killed.parts), before)
	}
}

func TestBatchVolumeLimitsAreExact(t *testing.T) {
	e := newEnv(t, envOptions{customers: 3000, scorer: func(e *env) service.Scorer { return e.rules }})
	r, bs := runner(e)
	limits := map[string]int{"WM_CASH": 37, "TD_1Y": 100, "DCEP_WALLET": 0}
	// Two shards at once, racing for the same volume.
	var wg sync.WaitGroup
	counts := make([]map[string]int, 2)
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var parts memParts
			_, _, err := r.Run(context.Background(), batch.Options{RunID: "volume", Shard: i, Shards: 2, Chunk: 150, Volume: limits}, parts.open)
			if err != nil {
				t.Error(err)
				return
			}
			counts[i] = map[string]int{}
			for _, row := range parts.all() {
				counts[i][row.ProductID]++
			}
		}(i)
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	vol, err := bs.Volume(context.Background(), "volume")
	if err != nil {
		t.Fatal(err)
	}
	for p, max := range limits {
		rows := counts[0][p] + counts[1][p]
		if rows != max || vol[p] != max {
			t.Errorf("%s: %d offers in the output, %d counted, want exactly %d", p, rows, vol[p], max)
		}
	}
}

func TestBatchListBacksUpTheModel(t *testing.T) {
	e := newEnv(t, envOptions{customers: 400, scorer: func(e *env) service.Scorer {
		return model.NewGuarded(failingModel{}, e.rules, len(e.cat.Products), model.GuardOptions{})
	}})
	r, bs := runner(e)
	var parts memParts
	if _, flipped, err := r.Run(context.Background(), batch.Options{RunID: "nightly", Limit: 5}, parts.open); err != nil || !flipped {
		t.Fatalf("run: %v %v", err, flipped)
	}
	run, err := bs.Current(context.Background())
	if err != nil || run != "nightly" {
		t.Fatalf("current run %q %v", run, err)
	}
	e.pipeline.SetBatchRun(run)
	batched := 0
	for _, id := range e.ids {
		d, err := e.pipeline.Decide(context.Background(), service.Request{CustomerID: id, Channel: catalog.Batch, Limit: 5})
		if err != nil {
			t.Fatal(err)
		}
		list, err := e.rdb.Get(context.Background(), bs.ResultKey(id, run)).Result()
		if err != nil || list == "" || d.Strategy == model.StrategyControl || d.Strategy == model.StrategyNonPersonalised {
			continue
		}
		if d.Strategy != model.StrategyBatch || d.ModelVersion != "batch@nightly" || !d.Degraded {
			t.Fatalf("%s: model down, batch list %q: strategy %s %s", id, list, d.Strategy, d.ModelVersion)
		}
		var got []string
		for _, it := range d.Items {
			got = append(got, it.Product.ID)
		}
		if strings.Join(got, ",") != list {
			t.Fatalf("%s: served %v, the batch ranked %s", id, got, list)
		}
		batched++
	}
	if batched < 100 {
		t.Fatalf("only %d decisions came from the batch list", batched)
	}
}
