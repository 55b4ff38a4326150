package service_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/directops/nbp/features/redistest"
	"github.com/directops/nbp/service"
	"github.com/directops/nbp/service/api"
	"github.com/directops/nbp/service/audit"
)

// auditRecords returns n audit records of distinct decisions.
func auditRecords(n int) []audit.Record {
	rs := make([]audit.Record, n)
	for i := range rs {
		rs[i] = audit.Record{DecisionID: service.NewDecisionID(testNow.Add(time.Duration(i) * time.Millisecond)), At: testNow.Add(time.Duration(i) * time.Millisecond),
			Channel: "app_feed", CustomerHash: strings.Repeat("0f", 16), Strategy: "model", DegradedReasons: []string{},
			ModelVersion: "propensity-test", CatalogVersion: "catalog-test", ConfigVersion: "arbitration-test", FeatureStatus: "found",
			Items: []audit.Item{{Rank: 1, ProductID: "WM_CASH", Propensity: 0.5, Priority: float64(i), Reasons: []string{"IDLE_BALANCE"}}}}
	}
	return rs
}

// writeAll queues records as the request path does, 2,000 a second, and
// fails if any write holds its caller past the request path's 5ms.
func writeAll(t *testing.T, a *audit.Log, rs []audit.Record) {
	t.Helper()
	var slowest time.Duration
	for i, r := range rs {
		if i%10 == 9 {
			time.Sleep(5 * time.Millisecond)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
		start := time.Now()
		err := a.Write(ctx, r)
		cancel()
		slowest = max(slowest, time.Since(start))
		if err != nil {
			t.Fatalf("write %s: %v", r.DecisionID, err)
		}
	}
	t.Logf("%d records queued, the slowest in %s", len(rs), slowest)
}

// checkInRedis fails unless every record is in Redis as written, read
// with a client of its own.
func checkInRedis(t *testing.T, rdb redis.UniversalClient, prefix string, rs []audit.Record) {
	t.Helper()
	reader := newAudit(t, rdb, audit.Options{Prefix: prefix})
	for _, want := range rs {
		got, err := reader.Get(context.Background(), want.DecisionID)
		if err != nil {
			t.Fatalf("%s: %v", want.DecisionID, err)
		}
		if !bytes.Equal(got.AppendJSON(nil), want.AppendJSON(nil)) {
			t.Fatalf("%s: read back\n%s\nwritten\n%s", want.DecisionID, got.AppendJSON(nil), want.AppendJSON(nil))
		}
	}
}

// waitFor polls cond until it holds or within passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func spillFiles(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "audit-*.spill"))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// auditOptions are quick to notice a fault and to retry, for tests, with
// a queue of half a second of writeAll: room while a write finds out
// that Redis fails (WriteTimeout), not if the writer tried Redis with
// every batch.
func auditOptions(prefix, dir string) audit.Options {
	return audit.Options{Prefix: prefix, Linger: time.Millisecond, SpillDir: dir, Queue: 1000, Batch: 32,
		WriteTimeout: 100 * time.Millisecond, RetryEvery: 50 * time.Millisecond}
}

// TestAuditKeepsEveryRecordThroughARedisOutage: while Redis refuses,
// black-holes or cuts the writes, the records wait in the spill, no write
// holds its caller, and once Redis is back every record is in it, exactly
// as written, with none lost and the spill empty.
func TestAuditKeepsEveryRecordThroughARedisOutage(t *testing.T) {
	for _, f := range []struct {
		name string
		set  func(*redistest.Proxy) error
	}{
		{"refused", (*redistest.Proxy).Refuse},
		{"black-holed", (*redistest.Proxy).BlackHole},
		{"cut mid-reply", func(p *redistest.Proxy) error { return p.Cut(3) }},
	} {
		t.Run(f.name, func(t *testing.T) {
			px, rdb := proxiedRedis(t)
			prefix, dir := redistest.Prefix(t), t.TempDir()
			a := newAudit(t, rdb, auditOptions(prefix, dir))

			before := auditRecords(50)
			writeAll(t, a, before)
			checkInRedisEventually(t, rdb, prefix, before)
			if err := f.set(px); err != nil {
				t.Fatal(err)
			}
			during := auditRecords(2000)
			writeAll(t, a, during)
			waitFor(t, 5*time.Second, "every record of the outage spilled", func() bool { return a.Stats().Spilled == int64(len(during)) })
			if len(spillFiles(t, dir)) == 0 || a.Stats().SpillBytes == 0 {
				t.Fatalf("spilled, yet no spill file: %+v", a.Stats())
			}

			if err := px.Pass(); err != nil {
				t.Fatal(err)
			}
			after := auditRecords(50)
			writeAll(t, a, after)
			waitFor(t, 5*time.Second, "the spill written to Redis", func() bool {
				// Records written before the writer finds Redis again
				// are spilled too.
				s := a.Stats()
				return s.Replayed == s.Spilled && s.SpillBytes == 0
			})
			checkInRedis(t, redisServer.Client(t), prefix, append(append(before, during...), after...))
			if s := a.Stats(); s.Lost != 0 {
				t.Fatalf("records lost: %+v", s)
			}
			if f := spillFiles(t, dir); len(f) != 0 {
				t.Fatalf("spill files left once replayed: %v", f)
			}
			// The day's decision count has each decision once, those
			// written twice (a reply cut after Redis took the write)
			// included: within the HyperLogLog's error.
			dc, err := newAudit(t, redisServer.Client(t), audit.Options{Prefix: prefix}).Counts(context.Background(), testNow, testNow)
			want := int64(len(before) + len(during) + len(after))
			if err != nil || len(dc) != 1 || dc[0].Channel != "app_feed" || dc[0].Strategy != "model" || dc[0].Degraded != 0 ||
				dc[0].Decisions < want*97/100 || dc[0].Decisions > want*103/100 {
				t.Fatalf("decision counts %+v %v, want about %d", dc, err, want)
			}
		})
	}
}

// checkInRedisEventually waits for the background writer, then checks.
func checkInRedisEventually(t *testing.T, rdb redis.UniversalClient, prefix string, rs []audit.Record) {
	t.Helper()
	reader := newAudit(t, rdb, audit.Options{Prefix: prefix})
	last := rs[len(rs)-1].DecisionID
	waitFor(t, 5*time.Second, "the records in Redis", func() bool {
		_, err := reader.Get(context.Background(), last)
		return err == nil
	})
	checkInRedis(t, rdb, prefix, rs)
}

// TestAuditSpillOutlivesTheProcess: records spilled while Redis was down
// stay on disk when the process stops, and the next process on the same
// directory writes them to Redis; meanwhile it refuses a second process
// on that directory.
func TestAuditSpillOutlivesTheProcess(t *testing.T) {
	px, rdb := proxiedRedis(t)
	prefix, dir := redistest.Prefix(t), t.TempDir()
	if err := px.BlackHole(); err != nil {
		t.Fatal(err)
	}
	first, err := audit.New(rdb, auditOptions(prefix, dir))
	if err != nil {
		t.Fatal(err)
	}
	rs := auditRecords(1000)
	writeAll(t, first, rs)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	start := time.Now()
	if err := first.Close(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	if took := time.Since(start); took > time.Second {
		t.Errorf("closing with Redis black-holed took %s", took)
	}
	if s := first.Stats(); s.Spilled != int64(len(rs)) || s.Lost != 0 {
		t.Fatalf("with Redis black-holed: %+v, want all %d spilled", s, len(rs))
	}
	if len(spillFiles(t, dir)) == 0 {
		t.Fatal("nothing left on disk for the next process")
	}

	next := newAudit(t, redisServer.Client(t), auditOptions(prefix, dir))
	if _, err := audit.New(rdb, auditOptions(prefix, dir)); err == nil {
		t.Fatal("a second audit log opened the spill directory in use")
	}
	waitFor(t, 5*time.Second, "the earlier process's records written", func() bool {
		s := next.Stats()
		return s.Replayed == int64(len(rs)) && s.SpillBytes == 0
	})
	checkInRedis(t, redisServer.Client(t), prefix, rs)
	if f := spillFiles(t, dir); len(f) != 0 {
		t.Fatalf("spill files left once replayed: %v", f)
	}
}

// TestAuditWithoutSpill: with no spill directory, a Redis outage loses
// the records written meanwhile, and counts them, but never holds the
// caller; the writer finds Redis again once it is back.
func TestAuditWithoutSpill(t *testing.T) {
	px, rdb := proxiedRedis(t)
	prefix := redistest.Prefix(t)
	a := newAudit(t, rdb, auditOptions(prefix, ""))
	if err := px.BlackHole(); err != nil {
		t.Fatal(err)
	}
	during := auditRecords(2000)
	writeAll(t, a, during)
	waitFor(t, 5*time.Second, "the outage's records counted lost", func() bool { return a.Stats().Lost == int64(len(during)) })
	if err := px.Pass(); err != nil {
		t.Fatal(err)
	}
	// Past RetryEvery the writer tries Redis again: a probe record gets
	// there.
	probe, reader := auditRecords(2001)[2000], newAudit(t, rdb, audit.Options{Prefix: prefix})
	waitFor(t, 5*time.Second, "the writer back on Redis", func() bool {
		writeAll(t, a, []audit.Record{probe})
		_, err := reader.Get(context.Background(), probe.DecisionID)
		return err == nil
	})
	after := auditRecords(20)
	writeAll(t, a, after)
	checkInRedisEventually(t, rdb, prefix, after)
	if _, err := a.Get(context.Background(), during[0].DecisionID); !errors.Is(err, audit.ErrNotFound) {
		t.Fatalf("a record of the outage: %v", err)
	}
}

// TestAuditBehindIsNotNotFound: while the spill holds records not yet in
// Redis, a decision not found there is a 503 to retry, not a 404 that
// would say it was never made; once they are written, it is found.
func TestAuditBehindIsNotNotFound(t *testing.T) {
	e := newEnv(t, envOptions{customers: 3})
	px, rdb := proxiedRedis(t)
	prefix, dir := redistest.Prefix(t), t.TempDir()
	o := auditOptions(prefix, dir)
	o.RetryEvery = time.Hour // nothing is written back within the test
	a, err := audit.New(rdb, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := px.BlackHole(); err != nil {
		t.Fatal(err)
	}
	rs := auditRecords(20)
	writeAll(t, a, rs)
	waitFor(t, 5*time.Second, "the records spilled", func() bool { return a.Stats().Spilled == int64(len(rs)) })
	if err := px.Pass(); err != nil {
		t.Fatal(err)
	}

	lookup := func(s *api.Server, id string) (int, http.Header, []byte) {
		t.Helper()
		return doHeader(t, s, "GET", "/v1/decisions/"+id)
	}
	s := api.NewServer(api.ServerConfig{Pipeline: e.pipeline, Audit: a})
	status, h, body := lookup(s, rs[0].DecisionID)
	if status != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || !bytes.Contains(body, []byte(`"unavailable"`)) {
		t.Fatalf("a spilled decision: %d %v %s; want a 503 unavailable with Retry-After", status, h, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// The next process writes them, and they are found.
	next := newAudit(t, redisServer.Client(t), auditOptions(prefix, dir))
	waitFor(t, 5*time.Second, "the spill written", func() bool { return next.Stats().SpillBytes == 0 && next.Stats().Replayed == int64(len(rs)) })
	s = api.NewServer(api.ServerConfig{Pipeline: e.pipeline, Audit: next})
	for _, r := range rs {
		if status, _, body := lookup(s, r.DecisionID); status != http.StatusOK {
			t.Fatalf("%s once written: %d %s", r.DecisionID, status, body)
		}
	}
	if status, _, body := lookup(s, "01ZZZZZZZZZZZZZZZZZZZZZZZZ"); status != http.StatusNotFound {
		t.Fatalf("a decision never made, nothing spilled: %d %s", status, body)
	}
}

// TestAuditNoCounts: a log of decisions never served (a shadow's) keeps
// the records and no decision counts, while a log beside it counts its own.
func TestAuditNoCounts(t *testing.T) {
	rdb := redisServer.Client(t)
	prefix := "nocounts:" + t.Name() + ":"
	rs := auditRecords(20)
	shadow := newAudit(t, rdb, audit.Options{Prefix: prefix, Linger: time.Millisecond, NoCounts: true})
	writeAll(t, shadow, rs)
	waitFor(t, 5*time.Second, "the records written", func() bool {
		_, err := shadow.Get(context.Background(), rs[len(rs)-1].DecisionID)
		return err == nil
	})
	checkInRedis(t, rdb, prefix, rs)
	dc, err := shadow.Counts(context.Background(), testNow, testNow)
	if err != nil || len(dc) != 0 {
		t.Errorf("counts of a log without: %+v %v", dc, err)
	}
	served := newAudit(t, rdb, audit.Options{Prefix: prefix + "served:", Linger: time.Millisecond})
	writeAll(t, served, rs)
	waitFor(t, 5*time.Second, "the records written", func() bool {
		_, err := served.Get(context.Background(), rs[len(rs)-1].DecisionID)
		return err == nil
	})
	if dc, err := served.Counts(context.Background(), testNow, testNow); err != nil || len(dc) != 1 || dc[0].Decisions < int64(len(rs))*9/10 { // a HyperLogLog's estimate
		t.Errorf("counts of a log with: %+v %v", dc, err)
	}
}
