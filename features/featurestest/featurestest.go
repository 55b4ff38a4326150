// Package featurestest runs the feature store's tests on real Redis: a
// private redis-server for the package and, on first use, a private Redis
// Cluster (see redistest), with clients built as production builds them;
// and the comparisons those tests share.
package featurestest

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/redis/go-redis/v9"

	"github.com/directops/nbp/features"
	"github.com/directops/nbp/features/redistest"
)

// Suite is a test package's Redis: one server, and a cluster started by
// the first test that asks for it.
type Suite struct {
	srv         *redistest.Server
	clusterOnce sync.Once
	cluster     *redistest.Cluster
	clusterErr  error
}

// Run is a TestMain: it starts the server, runs the tests, and stops the
// server and the cluster. A fuzzing worker runs only the fuzz target,
// which needs no Redis (it may also be killed without clean-up, which
// would leave a server behind).
func (s *Suite) Run(m *testing.M) int {
	flag.Parse()
	if f := flag.Lookup("test.fuzzworker"); f != nil && f.Value.String() == "true" {
		return m.Run()
	}
	// The unavailable-Redis tests make go-redis complain at every dial.
	redis.SetLogger(quiet{})
	srv, err := redistest.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "these tests need a Redis server:", err)
		return 1
	}
	s.srv = srv
	code := m.Run()
	srv.Stop()
	if s.cluster != nil {
		s.cluster.Stop()
	}
	return code
}

// Store returns a store on the suite's server (see Redis.Store).
func (s *Suite) Store(t testing.TB, o features.Options) *features.Store {
	t.Helper()
	return s.Single(t).Store(t, o)
}

// quiet is a go-redis logger that writes nothing.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

// Server returns the suite's server.
func (s *Suite) Server() *redistest.Server { return s.srv }

// Redis is a Redis the tests run on: the single server or the cluster.
type Redis struct {
	Name  string // single or cluster
	Addrs []string
}

// Single returns the suite's server.
func (s *Suite) Single(t testing.TB) Redis {
	t.Helper()
	if s.srv == nil {
		t.Fatal("no Redis server")
	}
	return Redis{Name: "single", Addrs: []string{s.srv.Addr}}
}

// Clustered returns the suite's cluster, starting it on first use.
func (s *Suite) Clustered(t testing.TB) Redis {
	t.Helper()
	s.clusterOnce.Do(func() { s.cluster, s.clusterErr = redistest.StartCluster() })
	if s.clusterErr != nil {
		t.Fatalf("these tests need a Redis Cluster: %v", s.clusterErr)
	}
	return Redis{Name: "cluster", Addrs: s.cluster.Addrs}
}

// OnEach runs f as a subtest on the single server and on the cluster.
func (s *Suite) OnEach(t *testing.T, f func(t *testing.T, r Redis)) {
	t.Helper()
	for _, get := range []func(testing.TB) Redis{s.Single, s.Clustered} {
		r := get(t)
		t.Run(r.Name, func(t *testing.T) { f(t, r) })
	}
}

// Options returns the client options production uses.
func (r Redis) Options() *redis.UniversalOptions {
	o := features.RedisOptions(r.Addrs, "", features.DefaultTimeouts())
	// A cluster named by one address is still a cluster.
	o.IsClusterMode = r.Name == "cluster"
	return o
}

// LoadTime is the stores' clock unless a test sets one: the day the
// fixtures were written for. The store compares their dates with it.
var LoadTime = time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)

// Store returns a store with keys of its own (unless o names a prefix) and
// the clock at LoadTime (unless o sets one), on a client built as
// production builds it with the hooks added, closed when the test ends.
func (r Redis) Store(t testing.TB, o features.Options, hooks ...redis.Hook) *features.Store {
	t.Helper()
	if o.Prefix == "" {
		o.Prefix = redistest.Prefix(t)
	}
	if o.Now == nil {
		o.Now = func() time.Time { return LoadTime }
	}
	rdb := redis.NewUniversalClient(r.Options())
	t.Cleanup(func() { _ = rdb.Close() })
	for _, h := range hooks {
		rdb.AddHook(h)
	}
	return features.NewStore(rdb, o)
}

// Client returns a client to inspect and tamper with what a store wrote: a
// cluster client on the cluster.
func (r Redis) Client(t testing.TB) redis.UniversalClient {
	t.Helper()
	o := r.Options()
	o.ReadTimeout, o.WriteTimeout = time.Second, time.Second
	rdb := redis.NewUniversalClient(o)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// Keys lists the keys that match pattern, on every master of a cluster,
// sorted.
func Keys(t testing.TB, rdb redis.UniversalClient, pattern string) []string {
	t.Helper()
	ctx := context.Background()
	cc, ok := rdb.(*redis.ClusterClient)
	if !ok {
		keys, err := rdb.Keys(ctx, pattern).Result()
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(keys)
		return keys
	}
	var mu sync.Mutex
	var all []string
	err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		keys, err := m.Keys(ctx, pattern).Result()
		mu.Lock()
		all = append(all, keys...)
		mu.Unlock()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(all)
	return all
}

// Day returns a date as the schema stores it: days since 1970-01-01.
func Day(y int, m time.Month, d int) float32 {
	return float32(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400)
}

// EquateVectors compares vectors field by field, NaN equal to NaN.
var EquateVectors = cmp.Options{cmpopts.EquateNaNs()}

// ValueBits compares values bit for bit (NaN payloads included).
var ValueBits = cmp.Transformer("bits", func(vs [features.NumFields]float32) [features.NumFields]uint32 {
	var b [features.NumFields]uint32
	for i, x := range vs {
		b[i] = math.Float32bits(x)
	}
	return b
})
