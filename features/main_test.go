package features_test

import (
	"context"
	"errors"
	"math"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/features/featurestest"
)

// suite is the package's Redis: a private server, and a cluster on first
// use (or NBP_TEST_REDIS_ADDR and NBP_TEST_REDIS_CLUSTER_ADDRS).
var suite featurestest.Suite

func TestMain(m *testing.M) { os.Exit(suite.Run(m)) }

var (
	cst = catalog.Zone()
	nan = float32(math.NaN())
)

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
		features.RiskAssessedUntil:     featurestest.Day(2027, 3, 31),
		features.MarketingConsent:      1,
		features.PersonalisationOptOut: 0,
	}
	for f, x := range set {
		v.Values[f] = x
	}
	return v
}
