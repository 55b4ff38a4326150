package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/features/demobank"
	"github.com/directops/nbp/features/redistest"
	"github.com/directops/nbp/model/modeltest"
	"github.com/directops/nbp/service/batch"
)

var redisServer *redistest.Server

// testNow is the clock of the batch's tests: the demo bank is built as of
// this day, and the embedded catalog's sale windows are open on it.
var testNow = time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)

func testClock() time.Time { return testNow }

func TestMain(m *testing.M) {
	var err error
	if redisServer, err = redistest.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	redisServer.Stop()
	os.Exit(code)
}

// loadBank writes the first n customers of the demo bank of seed to store
// and returns their ids.
func loadBank(t *testing.T, store *features.Store, seed uint64, n int) []string {
	t.Helper()
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	bank, err := demobank.New(seed, testNow.Truncate(24*time.Hour), cat)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	vs := make([]features.Vector, n)
	for i := range ids {
		ids[i], vs[i] = bank.Customer(i)
	}
	if err := store.PutMany(context.Background(), ids, vs); err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestBatchCommand(t *testing.T) {
	ctx := context.Background()
	prefix := redistest.Prefix(t)
	rdb := redis.NewClient(&redis.Options{Addr: redisServer.Addr})
	defer rdb.Close()
	store := features.NewStore(rdb, features.Options{Prefix: prefix})
	const n = 2000
	loadBank(t, store, 42, n)
	lib, _ := modeltest.LibPath()
	mp, _ := modeltest.ModelPath()
	env := map[string]string{"REDIS_ADDR": redisServer.Addr, "NBP_REDIS_PREFIX": prefix, "ONNXRUNTIME_LIB": lib, "NBP_MODEL": mp}
	getenv := func(k string) string { return env[k] }
	out := t.TempDir()
	args := []string{"-run", "t1", "-out", out, "-format", "csv", "-chunk", "100", "-segment", "4"}
	var stdout bytes.Buffer
	if err := runAt(ctx, testClock, args, getenv, &stdout); err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	if !strings.Contains(stdout.String(), "run t1 complete") || !strings.Contains(stdout.String(), fmt.Sprintf("%d customers", n)) {
		t.Fatalf("summary:\n%s", stdout.String())
	}
	files, _ := filepath.Glob(filepath.Join(out, "t1", "part-*.csv"))
	if len(files) < 2 {
		t.Fatalf("parts: %v", files)
	}
	rows := 0
	customers := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(recs[0], ",") != strings.Join(batch.Columns(), ",") {
			t.Fatalf("%s: header %v", f, recs[0])
		}
		for _, r := range recs[1:] {
			rows++
			customers[r[1]] = true
		}
	}
	if rows == 0 || len(customers) < n/2 {
		t.Fatalf("%d rows for %d customers", rows, len(customers))
	}
	if cur, _ := rdb.Get(ctx, prefix+"batch:current").Result(); cur != "t1" {
		t.Fatalf("pointer %q", cur)
	}
	// Again without -resume: refused. With it: nothing changes.
	if err := runAt(ctx, testClock, args, getenv, &stdout); !errors.Is(err, batch.ErrRunExists) {
		t.Fatalf("second start: %v", err)
	}
	if err := runAt(ctx, testClock, append(args, "-resume"), getenv, &stdout); err != nil {
		t.Fatal(err)
	}
	again, _ := filepath.Glob(filepath.Join(out, "t1", "part-*.csv"))
	if len(again) != len(files) {
		t.Fatalf("re-running a finished run wrote parts: %d, was %d", len(again), len(files))
	}
	// Parquet, another run, sharded.
	for i := 0; i < 2; i++ {
		if err := runAt(ctx, testClock, []string{"-run", "t2", "-out", out, "-shard", fmt.Sprintf("%d/2", i)}, getenv, &stdout); err != nil {
			t.Fatal(err)
		}
	}
	if pq, _ := filepath.Glob(filepath.Join(out, "t2", "part-*.parquet")); len(pq) != 2 {
		t.Fatalf("parquet parts: %v", pq)
	}
	if cur, _ := rdb.Get(ctx, prefix+"batch:current").Result(); cur != "t2" {
		t.Fatalf("pointer %q after both shards of t2", cur)
	}
}

func TestBatchConfig(t *testing.T) {
	getenv := func(k string) string {
		if k == "JOB_COMPLETION_INDEX" {
			return "3"
		}
		return ""
	}
	c, err := parseConfig([]string{"-shards", "8", "-rules-only"}, getenv, testNow)
	if err != nil || c.opts.Shard != 3 || c.opts.Shards != 8 {
		t.Fatalf("indexed job: %+v %v", c.opts, err)
	}
	for _, bad := range [][]string{{"-shard", "8/8"}, {"-shard", "x"}, {"-volume", "TD_1Y"}, {"-format", "xml"}, {"-limit", "11"},
		{"-metrics-linger", "1m"}, {"-metrics-addr", ":0", "-metrics-linger", "-1s"}} {
		if _, err := parseConfig(append(bad, "-rules-only"), func(string) string { return "" }, testNow); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
