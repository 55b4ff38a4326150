package export_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/features/export"
	"github.com/directops/nbp/features/featurestest"
	"github.com/directops/nbp/features/redistest"
)

func TestLoadCSV(t *testing.T) {
	suite.OnEach(t, func(t *testing.T, r featurestest.Redis) {
		ctx := context.Background()
		s := r.Store(t, features.Options{Now: func() time.Time { return featurestest.LoadTime }})
		rdb := r.Client(t)
		in, err := os.ReadFile(filepath.Join("testdata", "load.csv"))
		if err != nil {
			t.Fatal(err)
		}
		good := []string{"C001", "C002", "C005", "C008", "C010"}
		wantRejected := map[int]string{ // line -> the reason's key word
			4:  "age",            // C003: 200 years old
			5:  "risk_tolerance", // C004: C6
			7:  "bare",           // C006: a quote inside a field
			8:  "fields",         // C007: too few fields
			11: "customer_id",    // "C 009"
		}
		rejectedIDs := []string{"C003", "C004", "C006", "C007", "C009", "C 009"}

		load := func() (export.LoadSummary, map[int]string) {
			t.Helper()
			got := map[int]string{}
			sum, err := export.LoadCSV(ctx, s, bytes.NewReader(in), export.LoadOptions{
				Chunk: 2, // several pipelines, one of them partly filled
				Now:   featurestest.LoadTime,
				OnReject: func(re *export.RowError) {
					if !errors.Is(re, export.ErrBadRow) {
						t.Errorf("rejected line %d: %v does not wrap ErrBadRow", re.Line, re)
					}
					got[re.Line] = re.Error()
				},
			})
			if err != nil {
				t.Fatalf("LoadCSV: %v", err)
			}
			return sum, got
		}

		sum, rejected := load()
		if diff := cmp.Diff(export.LoadSummary{Loaded: len(good), Rejected: len(wantRejected)}, sum); diff != "" {
			t.Errorf("summary (-want +got):\n%s", diff)
		}
		for line, word := range wantRejected {
			msg, ok := rejected[line]
			if !ok {
				t.Errorf("line %d not rejected", line)
				continue
			}
			if !strings.Contains(msg, word) {
				t.Errorf("line %d rejected for %q, want a reason about %s", line, msg, word)
			}
		}
		if len(rejected) != len(wantRejected) {
			t.Errorf("rejected lines %v, want %v", rejected, wantRejected)
		}

		// Nothing of a rejected row is written.
		for _, id := range rejectedIDs {
			if n, err := rdb.Exists(ctx, s.Key(id)).Result(); err != nil || n != 0 {
				t.Errorf("rejected %q: key exists (%d, %v)", id, n, err)
			}
		}

		// The good rows, as they were written.
		c1, st, err := s.Get(ctx, "C001")
		if err != nil || st != features.Found {
			t.Fatalf("Get(C001) = %v, %v", st, err)
		}
		want := features.Missing()
		want.UpdatedAt = time.Date(2026, 11, 26, 20, 0, 0, 0, time.UTC)
		want.Salutation = "王女士"
		for f, x := range map[features.Field]float32{
			features.Age: 45, features.KYCLevel: 3, features.Region: float32(catalog.RegionIndex("GD")),
			features.AUM: 150000.5, features.HoldsCreditCard: 1, features.RiskTolerance: 3,
			features.RiskAssessedUntil: featurestest.Day(2027, 3, 31), features.MarketingConsent: 1, features.PersonalisationOptOut: 0,
		} {
			want.Values[f] = x
		}
		if diff := cmp.Diff(want, c1, featurestest.EquateVectors); diff != "" {
			t.Errorf("C001 (-want +got):\n%s", diff)
		}
		c8, _, _ := s.Get(ctx, "C008")
		c10, _, _ := s.Get(ctx, "C010")
		if c8.Salutation != "欧阳\n女士" || c8.Values[features.Age] != 66 {
			t.Errorf("C008 (a quoted field over two lines): salutation %q, age %v", c8.Salutation, c8.Values[features.Age])
		}
		if !c10.UpdatedAt.Equal(featurestest.LoadTime) {
			t.Errorf("C010 without updated_at: %v, want the load time %v", c10.UpdatedAt, featurestest.LoadTime)
		}

		// Loading again changes nothing, byte for byte.
		raw := func() map[string]string {
			m := map[string]string{}
			for _, id := range good {
				b, err := rdb.Get(ctx, s.Key(id)).Result()
				if err != nil {
					t.Fatalf("%s: %v", id, err)
				}
				m[id] = b
			}
			return m
		}
		before := raw()
		sum2, rejected2 := load()
		if diff := cmp.Diff(sum, sum2); diff != "" {
			t.Errorf("second load's summary (-first +second):\n%s", diff)
		}
		if diff := cmp.Diff(rejected, rejected2); diff != "" {
			t.Errorf("second load's rejects (-first +second):\n%s", diff)
		}
		if diff := cmp.Diff(before, raw()); diff != "" {
			t.Errorf("stored records changed on the second load (-first +second):\n%s", diff)
		}
		if keys := featurestest.Keys(t, rdb, s.Key("*")); len(keys) != len(good) {
			t.Errorf("%d keys after two loads (%v), want %d", len(keys), keys, len(good))
		}
	})
}

func TestLoadCSVNoOnReject(t *testing.T) {
	suite.OnEach(t, func(t *testing.T, r featurestest.Redis) {
		s := r.Store(t, features.Options{})
		in := strings.Join(export.RequiredColumns(), ",") + "\nC1,45,3,,,1,0\nC2,abc,3,,,1,0\n"
		sum, err := export.LoadCSV(context.Background(), s, strings.NewReader(in), export.LoadOptions{})
		if err != nil || sum != (export.LoadSummary{Loaded: 1, Rejected: 1}) {
			t.Errorf("LoadCSV = %+v, %v; want 1 loaded and 1 rejected", sum, err)
		}
		// Without Now, rows without updated_at are stamped with the store's
		// clock.
		v, st, err := s.Get(context.Background(), "C1")
		if err != nil || st != features.Found || !v.UpdatedAt.Equal(featurestest.LoadTime) {
			t.Errorf("Get(C1) = %v (updated %v), %v", st, v.UpdatedAt, err)
		}
	})
}

func TestLoadCSVStops(t *testing.T) {
	ctx := context.Background()
	head := strings.Join(export.RequiredColumns(), ",") + "\n"

	t.Run("bad header", func(t *testing.T) {
		s := suite.Store(t, features.Options{})
		sum, err := export.LoadCSV(ctx, s, strings.NewReader("customer_id,age\nC1,45\n"), export.LoadOptions{})
		if err == nil || sum != (export.LoadSummary{}) {
			t.Errorf("LoadCSV = %+v, %v; want an error and nothing loaded", sum, err)
		}
	})

	t.Run("input fails", func(t *testing.T) {
		// A failing input is no bad row: the load must stop, not count
		// the same failure as a reject for ever.
		s := suite.Store(t, features.Options{})
		disk := errors.New("disk gone")
		in := io.MultiReader(strings.NewReader(head+"C1,45,3,,,1,0\n"), iotest.ErrReader(disk))
		type result struct {
			sum export.LoadSummary
			err error
		}
		done := make(chan result, 1)
		go func() {
			sum, err := export.LoadCSV(ctx, s, in, export.LoadOptions{})
			done <- result{sum, err}
		}()
		select {
		case r := <-done:
			if !errors.Is(r.err, disk) || r.sum.Rejected != 0 {
				t.Errorf("LoadCSV = %+v, %v; want it stopped by the read error", r.sum, r.err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("LoadCSV did not stop on a failing input")
		}
	})

	t.Run("store unreachable", func(t *testing.T) {
		port, err := redistest.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		rdb := redis.NewUniversalClient(features.RedisOptions([]string{net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}, "", features.DefaultTimeouts()))
		t.Cleanup(func() { _ = rdb.Close() })
		s := features.NewStore(rdb, features.Options{})
		sum, err := export.LoadCSV(ctx, s, strings.NewReader(head+"C1,45,3,,,1,0\nC2,45,3,,,1,0\n"), export.LoadOptions{Chunk: 1})
		if !errors.Is(err, features.ErrUnavailable) || sum.Loaded != 0 {
			t.Errorf("LoadCSV = %+v, %v; want ErrUnavailable and nothing loaded", sum, err)
		}
	})
}
