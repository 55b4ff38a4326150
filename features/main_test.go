package features_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
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

// srv is the package's private redis-server (or NBP_TEST_REDIS_ADDR).
var srv *redistest.Server

// The package's private Redis Cluster (or NBP_TEST_REDIS_CLUSTER_ADDRS),
// started by the first test that needs it and stopped by TestMain.
var (
	clusterOnce sync.Once
	cluster     *redistest.Cluster
	clusterErr  error
)

func TestMain(m *testing.M) {
	flag.Parse()
	// A fuzzing worker runs only the fuzz target, which needs no Redis; it
	// may also be killed without running deferred clean-up, which would
	// leave a server behind.
	if f := flag.Lookup("test.fuzzworker"); f != nil && f.Value.String() == "true" {
		os.Exit(m.Run())
	}
	// The unavailable-Redis tests make go-redis complain at every dial.
	redis.SetLogger(features.NewRedisLogger(slog.New(slog.DiscardHandler)))
	s, err := redistest.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "features tests need a Redis server:", err)
		os.Exit(1)
	}
	srv = s
	code := m.Run()
	s.Stop()
	if cluster != nil {
		cluster.Stop()
	}
	os.Exit(code)
}

// testRedis is a Redis the store's tests run on: the single server or the
// cluster.
type testRedis struct {
	name  string
	addrs []string
}

// single returns the package's server.
func single(t testing.TB) testRedis {
	t.Helper()
	if srv == nil {
		t.Fatal("no Redis server")
	}
	return testRedis{name: "single", addrs: []string{srv.Addr}}
}

// clustered returns the package's cluster, starting it on first use.
func clustered(t testing.TB) testRedis {
	t.Helper()
	clusterOnce.Do(func() { cluster, clusterErr = redistest.StartCluster() })
	if clusterErr != nil {
		t.Fatalf("features tests need a Redis Cluster: %v", clusterErr)
	}
	return testRedis{name: "cluster", addrs: cluster.Addrs}
}

// onEachRedis runs f as a subtest on the single server and on the cluster.
func onEachRedis(t *testing.T, f func(t *testing.T, r testRedis)) {
	t.Helper()
	for _, get := range []func(testing.TB) testRedis{single, clustered} {
		r := get(t)
		t.Run(r.name, func(t *testing.T) { f(t, r) })
	}
}

func (r testRedis) options() *redis.UniversalOptions {
	o := features.RedisOptions(r.addrs, "", features.DefaultTimeouts())
	// A cluster named by one address is still a cluster.
	o.IsClusterMode = r.name == "cluster"
	return o
}

// store returns a store with keys of its own, on a client built as
// production builds it. Its clock, unless o sets one, is loadTime: the
// fixtures are dated, and the store compares their dates with its clock.
func (r testRedis) store(t testing.TB, o features.Options) *features.Store {
	t.Helper()
	if o.Prefix == "" {
		o.Prefix = redistest.Prefix(t)
	}
	if o.Now == nil {
		o.Now = func() time.Time { return loadTime }
	}
	rdb := redis.NewUniversalClient(r.options())
	t.Cleanup(func() { _ = rdb.Close() })
	return features.NewStore(rdb, o)
}

// hookedStore is store with a hook on the store's client.
func (r testRedis) hookedStore(t testing.TB, o features.Options, h redis.Hook) *features.Store {
	t.Helper()
	if o.Prefix == "" {
		o.Prefix = redistest.Prefix(t)
	}
	if o.Now == nil {
		o.Now = func() time.Time { return loadTime }
	}
	rdb := redis.NewUniversalClient(r.options())
	t.Cleanup(func() { _ = rdb.Close() })
	rdb.AddHook(h)
	return features.NewStore(rdb, o)
}

// failAfterPipeline is a client hook that, once armed with n, lets the
// n-th pipeline from then on reach Redis and then answers it with an
// error, as a connection lost right after the write would; then it
// disarms.
type failAfterPipeline struct {
	mu   sync.Mutex
	left int // pipelines to let through before the failing one; 0: disarmed
}

func (f *failAfterPipeline) arm(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.left = n
}

func (f *failAfterPipeline) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (f *failAfterPipeline) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (f *failAfterPipeline) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.left == 0 {
			return err
		}
		if f.left--; f.left == 0 {
			return errors.New("connection lost after the write (injected)")
		}
		return err
	}
}

// client returns a client to inspect and tamper with what the store wrote:
// a cluster client on the cluster.
func (r testRedis) client(t testing.TB) redis.UniversalClient {
	t.Helper()
	o := r.options()
	o.ReadTimeout, o.WriteTimeout = time.Second, time.Second
	rdb := redis.NewUniversalClient(o)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// keysOf lists the keys that match pattern, on every master of a cluster.
func keysOf(t testing.TB, rdb redis.UniversalClient, pattern string) []string {
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

// newStore returns a store on the test server, with keys of its own, on a
// client built as production builds it.
func newStore(t *testing.T, o features.Options) *features.Store {
	t.Helper()
	return single(t).store(t, o)
}

var (
	cst = time.FixedZone("CST", 8*3600)
	nan = float32(math.NaN())
)

// day returns a date as the schema stores it: days since 1970-01-01.
func day(y int, m time.Month, d int) float32 {
	return float32(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400)
}

// sampleVector is a plausible customer: a 45-year-old in Guangdong, C3
// assessed until 2027-03-31, with some values missing.
func sampleVector() features.Vector {
	v := features.Missing()
	v.UpdatedAt = time.Date(2026, 11, 27, 2, 30, 0, 0, time.UTC)
	v.Salutation = "王女士"
	set := map[features.Field]float32{
		features.Age:                   45,
		features.Region:                19, // GD
		features.CityTier:              1,
		features.KYCLevel:              3,
		features.AUM:                   152000.25,
		features.DemandBalance:         30500.5,
		features.SalaryAccount:         1,
		features.SalaryInflowMonthly:   12000,
		features.HoldsCreditCard:       1,
		features.HoldsGold:             0,
		features.AppLogins30D:          14,
		features.RiskTolerance:         3,
		features.RiskAssessedUntil:     day(2027, 3, 31),
		features.MarketingConsent:      1,
		features.PersonalisationOptOut: 0,
	}
	for f, x := range set {
		v.Values[f] = x
	}
	return v
}

// equateVectors compares vectors field by field, NaN equal to NaN.
var equateVectors = cmp.Options{cmpopts.EquateNaNs()}

// valueBits compares values bit for bit (NaN payloads included).
var valueBits = cmp.Transformer("bits", func(vs [features.NumFields]float32) [features.NumFields]uint32 {
	var b [features.NumFields]uint32
	for i, x := range vs {
		b[i] = math.Float32bits(x)
	}
	return b
})
