package features_test

import (
	"flag"
	"fmt"
	"math"
	"os"
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

func TestMain(m *testing.M) {
	flag.Parse()
	// A fuzzing worker runs only the fuzz target, which needs no Redis; it
	// may also be killed without running deferred clean-up, which would
	// leave a server behind.
	if f := flag.Lookup("test.fuzzworker"); f != nil && f.Value.String() == "true" {
		os.Exit(m.Run())
	}
	s, err := redistest.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "features tests need a Redis server:", err)
		os.Exit(1)
	}
	srv = s
	code := m.Run()
	s.Stop()
	os.Exit(code)
}

// newStore returns a store on the test server, with keys of its own, on a
// client built as production builds it.
func newStore(t *testing.T, o features.Options) *features.Store {
	t.Helper()
	if srv == nil {
		t.Fatal("no Redis server")
	}
	if o.Prefix == "" {
		o.Prefix = redistest.Prefix(t)
	}
	rdb := redis.NewUniversalClient(features.RedisOptions([]string{srv.Addr}, "", features.DefaultTimeouts()))
	t.Cleanup(func() { _ = rdb.Close() })
	return features.NewStore(rdb, o)
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
