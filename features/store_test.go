package features_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/directops/nbp/features"
	"github.com/directops/nbp/features/featurestest"
	"github.com/directops/nbp/features/redistest"
)

func TestStorePutGet(t *testing.T) {
	suite.OnEach(t, func(t *testing.T, r featurestest.Redis) {
		ctx := context.Background()
		s := r.Store(t, features.Options{Now: func() time.Time { return featurestest.LoadTime }})
		v := sampleVector()
		v.UpdatedAt = time.Date(2026, 11, 27, 2, 30, 0, 987_654_321, time.UTC)
		if err := s.Put(ctx, "C000000001", &v); err != nil {
			t.Fatalf("Put: %v", err)
		}
		got, st, err := s.Get(ctx, "C000000001")
		if err != nil || st != features.Found {
			t.Fatalf("Get = %v, %v; want found", st, err)
		}
		want := v
		want.UpdatedAt = v.UpdatedAt.Truncate(time.Millisecond)
		if diff := cmp.Diff(want, got, featurestest.ValueBits); diff != "" {
			t.Errorf("Get (-want +got):\n%s", diff)
		}

		// A second Put replaces the vector.
		v.Values[features.Age] = 46
		v.Salutation = "李先生"
		if err := s.Put(ctx, "C000000001", &v); err != nil {
			t.Fatal(err)
		}
		got, _, err = s.Get(ctx, "C000000001")
		if err != nil || got.Values[features.Age] != 46 || got.Salutation != "李先生" {
			t.Errorf("after the second Put: age %v, salutation %q, %v", got.Values[features.Age], got.Salutation, err)
		}
	})
}

func TestStoreGetMissing(t *testing.T) {
	suite.OnEach(t, func(t *testing.T, r featurestest.Redis) {
		s := r.Store(t, features.Options{})
		v, st, err := s.Get(context.Background(), "NOBODY")
		if err != nil || st != features.NotFound {
			t.Fatalf("Get = %v, %v; want not found and no error", st, err)
		}
		if diff := cmp.Diff(features.Vector{}, v); diff != "" {
			t.Errorf("vector of a missing customer (-want +got):\n%s", diff)
		}
	})
}

func TestStoreStatus(t *testing.T) {
	suite.OnEach(t, func(t *testing.T, r featurestest.Redis) {
		ctx := context.Background()
		now := featurestest.LoadTime
		tests := []struct {
			name    string
			updated time.Time
			want    features.Status
		}{
			{"fresh", now.Add(-time.Hour), features.Found},
			{"exactly max age", now.Add(-48 * time.Hour), features.Found},
			{"just over max age", now.Add(-48*time.Hour - time.Millisecond), features.Stale},
			{"a week old", now.AddDate(0, 0, -7), features.Stale},
			{"from the future", now.Add(time.Hour), features.Found},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				s := r.Store(t, features.Options{Now: func() time.Time { return now }})
				v := sampleVector()
				v.UpdatedAt = tc.updated
				if err := s.Put(ctx, "C1", &v); err != nil {
					t.Fatal(err)
				}
				got, st, err := s.Get(ctx, "C1")
				if err != nil || st != tc.want {
					t.Fatalf("Get = %v, %v; want %v", st, err, tc.want)
				}
				if !st.Usable() || got.Values[features.Age] != 45 {
					t.Errorf("a %v vector must be served: usable %v, age %v", st, st.Usable(), got.Values[features.Age])
				}
			})
		}

		t.Run("custom max age", func(t *testing.T) {
			s := r.Store(t, features.Options{MaxAge: time.Hour, Now: func() time.Time { return now }})
			v := sampleVector()
			v.UpdatedAt = now.Add(-2 * time.Hour)
			if err := s.Put(ctx, "C1", &v); err != nil {
				t.Fatal(err)
			}
			if _, st, err := s.Get(ctx, "C1"); err != nil || st != features.Stale {
				t.Errorf("Get = %v, %v; want stale", st, err)
			}
		})
	})
}

func TestStoreCorrupt(t *testing.T) {
	suite.OnEach(t, func(t *testing.T, r featurestest.Redis) {
		ctx := context.Background()
		s := r.Store(t, features.Options{})
		rdb := r.Client(t)
		v := sampleVector()
		other := features.AppendRecord(nil, &v)
		other[1]++ // another schema version
		values := map[string]string{
			"garbage":      "not a vector",
			"empty":        "",
			"other schema": string(other),
		}
		for name, val := range values {
			t.Run(name, func(t *testing.T) {
				if err := rdb.Set(ctx, s.Key("C1"), val, 0).Err(); err != nil {
					t.Fatal(err)
				}
				got, st, err := s.Get(ctx, "C1")
				if err != nil || st != features.Corrupt || st.Usable() {
					t.Fatalf("Get = %v, %v; want corrupt", st, err)
				}
				if diff := cmp.Diff(features.Vector{}, got); diff != "" {
					t.Errorf("vector of a corrupt record (-want +got):\n%s", diff)
				}
			})
		}
	})
}

func TestStoreGetMany(t *testing.T) {
	suite.OnEach(t, func(t *testing.T, r featurestest.Redis) {
		ctx := context.Background()
		s := r.Store(t, features.Options{Now: func() time.Time { return featurestest.LoadTime }})
		fresh, stale := sampleVector(), sampleVector()
		fresh.UpdatedAt = featurestest.LoadTime.Add(-time.Hour)
		stale.UpdatedAt = featurestest.LoadTime.AddDate(0, 0, -3)
		stale.Salutation = "李先生"
		if err := s.PutMany(ctx, []string{"FRESH", "STALE"}, []features.Vector{fresh, stale}); err != nil {
			t.Fatalf("PutMany: %v", err)
		}
		if err := r.Client(t).Set(ctx, s.Key("BROKEN"), "\x01garbage", 0).Err(); err != nil {
			t.Fatal(err)
		}

		ids := []string{"STALE", "MISSING", "FRESH", "BROKEN", "FRESH"}
		dst := make([]features.Vector, len(ids))
		st := make([]features.Status, len(ids))
		if err := s.GetMany(ctx, ids, dst, st); err != nil {
			t.Fatalf("GetMany: %v", err)
		}
		want := []features.Status{features.Stale, features.NotFound, features.Found, features.Corrupt, features.Found}
		if diff := cmp.Diff(want, st); diff != "" {
			t.Errorf("statuses (-want +got):\n%s", diff)
		}
		for i, w := range map[int]features.Vector{0: stale, 2: fresh, 4: fresh} {
			if diff := cmp.Diff(w, dst[i], featurestest.ValueBits); diff != "" {
				t.Errorf("vector %d (%s) (-want +got):\n%s", i, ids[i], diff)
			}
		}

		// Only missing ids: the pipeline reports redis.Nil, which is no error.
		if err := s.GetMany(ctx, []string{"M1", "M2"}, dst, st); err != nil || st[0] != features.NotFound || st[1] != features.NotFound {
			t.Errorf("GetMany(missing) = %v, %v", st[:2], err)
		}
		if err := s.GetMany(ctx, nil, nil, nil); err != nil {
			t.Errorf("GetMany(none): %v", err)
		}
		if err := s.GetMany(ctx, ids, dst[:2], st); err == nil {
			t.Errorf("GetMany with a short destination succeeded")
		}
	})
}

func TestStorePutMany(t *testing.T) {
	suite.OnEach(t, func(t *testing.T, r featurestest.Redis) {
		ctx := context.Background()
		s := r.Store(t, features.Options{Now: func() time.Time { return featurestest.LoadTime }})
		const n = 250
		ids := make([]string, n)
		vs := make([]features.Vector, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("C%05d", i)
			vs[i] = sampleVector()
			vs[i].Values[features.Age] = float32(18 + i%70)
			vs[i].Salutation = []string{"", "王女士", "欧阳娜娜女士"}[i%3] // records of different lengths
		}
		if err := s.PutMany(ctx, ids, vs); err != nil {
			t.Fatalf("PutMany: %v", err)
		}
		dst := make([]features.Vector, n)
		st := make([]features.Status, n)
		if err := s.GetMany(ctx, ids, dst, st); err != nil {
			t.Fatal(err)
		}
		for i := range ids {
			if st[i] != features.Found {
				t.Errorf("%s: %v", ids[i], st[i])
			}
		}
		if diff := cmp.Diff(vs, dst, featurestest.ValueBits); diff != "" {
			t.Errorf("PutMany then GetMany (-want +got):\n%s", diff)
		}

		if err := s.PutMany(ctx, ids[:2], vs[:1]); err == nil {
			t.Error("PutMany with fewer vectors than ids succeeded")
		}
		if err := s.PutMany(ctx, []string{"OK_1", "not ok"}, vs[:2]); err == nil {
			t.Error("PutMany with a malformed id succeeded")
		}
		if _, st, _ := s.Get(ctx, "OK_1"); st != features.NotFound {
			t.Errorf("a rejected PutMany wrote OK_1 (%v)", st)
		}
		if err := s.PutMany(ctx, nil, nil); err != nil {
			t.Errorf("PutMany(none): %v", err)
		}
	})
}

func TestStoreKey(t *testing.T) {
	suite.OnEach(t, func(t *testing.T, r featurestest.Redis) {
		ctx := context.Background()
		prefix := redistest.Prefix(t)
		s := r.Store(t, features.Options{Prefix: prefix, TTL: time.Hour})
		if got, want := s.Key("C000000042"), prefix+"{C000000042}:f"; got != want {
			t.Errorf("Key = %q, want %q", got, want)
		}
		if got := features.NewStore(nil, features.Options{}).Key("C1"); got != "nbp:{C1}:f" {
			t.Errorf("default Key = %q, want nbp:{C1}:f", got)
		}

		v := sampleVector()
		if err := s.Put(ctx, "C000000042", &v); err != nil {
			t.Fatal(err)
		}
		rdb := r.Client(t)
		keys := featurestest.Keys(t, rdb, prefix+"*")
		if diff := cmp.Diff([]string{prefix + "{C000000042}:f", prefix + fmt.Sprintf("{idx:%d}", features.Bucket("C000000042"))}, keys); diff != "" {
			t.Errorf("keys written (-want +got):\n%s", diff)
		}
		ttl, err := rdb.TTL(ctx, s.Key("C000000042")).Result()
		if err != nil || ttl <= 0 || ttl > time.Hour {
			t.Errorf("TTL = %v, %v; want up to an hour", ttl, err)
		}
		// Redis Cluster hashes only the hash tag, so every key of a customer
		// lands in one slot.
		for _, id := range []string{"C000000042", "a", "x-y_z"} {
			if tag := hashTag(s.Key(id)); tag != id {
				t.Errorf("Key(%q) = %q has hash tag %q, want the id", id, s.Key(id), tag)
			}
		}

		for _, id := range []string{"", "C 1", "C{1}", "客户"} {
			if err := s.Put(ctx, id, &v); err == nil {
				t.Errorf("Put(%q) succeeded", id)
			}
		}
	})
}

// hashTag returns the part of a key Redis Cluster hashes: what is between
// the first '{' and the first '}' after it, when that is not empty.
func hashTag(key string) string {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return key
	}
	end := strings.IndexByte(key[open+1:], '}')
	if end <= 0 {
		return key
	}
	return key[open+1 : open+1+end]
}

func TestStoreUnavailable(t *testing.T) {
	port, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	rdb := redis.NewUniversalClient(features.RedisOptions([]string{addr}, "", features.DefaultTimeouts()))
	t.Cleanup(func() { _ = rdb.Close() })
	s := features.NewStore(rdb, features.Options{})
	v := sampleVector()
	ops := map[string]func(ctx context.Context) error{
		"Get": func(ctx context.Context) error { _, _, err := s.Get(ctx, "C1"); return err },
		"GetMany": func(ctx context.Context) error {
			return s.GetMany(ctx, []string{"C1", "C2"}, make([]features.Vector, 2), make([]features.Status, 2))
		},
		"Put":     func(ctx context.Context) error { return s.Put(ctx, "C1", &v) },
		"PutMany": func(ctx context.Context) error { return s.PutMany(ctx, []string{"C1"}, []features.Vector{v}) },
		"Ping":    func(ctx context.Context) error { return s.Ping(ctx) },
	}
	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			err := op(context.Background())
			elapsed := time.Since(start)
			if !errors.Is(err, features.ErrUnavailable) {
				t.Errorf("error %v, want ErrUnavailable", err)
			}
			// A refused connection is known at once: two dials (the
			// command and its one retry) and a backoff of a few ms.
			if elapsed > 200*time.Millisecond {
				t.Errorf("took %v to fail, want well under 200ms", elapsed)
			}
		})
	}
}

func TestStoreDeadline(t *testing.T) {
	// Not parallel: the pause holds every client of the server.
	ctx := context.Background()
	s := suite.Store(t, features.Options{})
	v := sampleVector()
	if err := s.Put(ctx, "C1", &v); err != nil {
		t.Fatal(err)
	}
	if _, st, err := s.Get(ctx, "C1"); err != nil || st != features.Found {
		t.Fatalf("Get before the pause = %v, %v", st, err)
	}

	admin := suite.Server().Client(t)
	const pause = 500 * time.Millisecond
	paused := time.Now()
	if err := admin.Do(ctx, "CLIENT", "PAUSE", pause.Milliseconds(), "ALL").Err(); err != nil {
		t.Fatalf("CLIENT PAUSE: %v", err)
	}
	t.Cleanup(func() {
		// Whatever happened, wait the pause out before the next test.
		_ = admin.Ping(context.Background()).Err()
	})

	dctx, cancel := context.WithTimeout(ctx, time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := s.Get(dctx, "C1")
	elapsed := time.Since(start)
	if !errors.Is(err, features.ErrUnavailable) {
		t.Errorf("Get with a 1ms deadline during the pause: error %v, want ErrUnavailable", err)
	}
	if elapsed > 100*time.Millisecond {
		t.Errorf("Get with a 1ms deadline took %v, want well under the %v pause", elapsed, pause)
	}
	t.Logf("1ms-deadline Get failed after %v: %v", elapsed, err)

	// The control: the server really was paused (a client without a
	// deadline waits it out), and the store serves again afterwards.
	if err := admin.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(paused); waited < pause-50*time.Millisecond {
		t.Errorf("a Ping during the pause returned after %v: the server was not paused", waited)
	}
	if _, st, err := s.Get(ctx, "C1"); err != nil || st != features.Found {
		t.Errorf("Get after the pause = %v, %v", st, err)
	}
}

func TestStatusString(t *testing.T) {
	want := map[features.Status]string{
		features.Found: "found", features.Stale: "stale", features.NotFound: "not_found", features.Corrupt: "corrupt", 9: "unknown",
	}
	for st, w := range want {
		if got := st.String(); got != w {
			t.Errorf("Status(%d).String() = %q, want %q", st, got, w)
		}
	}
	usable := map[features.Status]bool{features.Found: true, features.Stale: true, features.NotFound: false, features.Corrupt: false}
	for st, w := range usable {
		if st.Usable() != w {
			t.Errorf("%v.Usable() = %v", st, !w)
		}
	}
}
