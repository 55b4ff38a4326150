package service_test

import (
	"context"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/service"
	"github.com/directops/nbp/service/api"
	"github.com/directops/nbp/service/telemetry"
)

const benchCustomers = 10000

func BenchmarkDecide(b *testing.B) {
	e := newEnv(b, envOptions{customers: benchCustomers})
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if _, err := e.pipeline.Decide(ctx, service.Request{CustomerID: e.ids[i%benchCustomers], Channel: catalog.AppFeed, Limit: 3}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkDecideMany(b *testing.B) {
	e := newEnv(b, envOptions{customers: benchCustomers})
	const batch = 256
	reqs := make([]service.Request, batch)
	out := make([]service.Decision, batch)
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		for i := range reqs {
			reqs[i] = service.Request{CustomerID: e.ids[(n*batch+i)%benchCustomers], Channel: catalog.Batch, Limit: 3}
		}
		if err := e.pipeline.DecideMany(context.Background(), reqs, out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "customers/s")
}

// serveHTTP serves app on a loopback port and returns its address.
func serveHTTP(b *testing.B, app *fiber.App) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = app.Listener(ln) }()
	b.Cleanup(func() { _ = app.ShutdownWithTimeout(time.Second) })
	return ln.Addr().String()
}

// hammer sends b.N GETs over keep-alive connections from parallel
// clients, each expecting a 200.
func hammer(b *testing.B, addr string, ids []string) { hammerWant(b, addr, ids, 200) }

// hammerWant is hammer expecting status want.
func hammerWant(b *testing.B, addr string, ids []string, want int) {
	b.Helper()
	client := &fasthttp.Client{MaxConnsPerHost: 256}
	var i atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		for pb.Next() {
			id := ids[int(i.Add(1))%len(ids)]
			req.SetRequestURI("http://" + addr + "/v1/customers/" + id + "/recommendations?channel=app_feed&limit=3")
			if err := client.Do(req, resp); err != nil {
				b.Error(err)
				return
			}
			if resp.StatusCode() != want {
				b.Errorf("status %d: %s", resp.StatusCode(), resp.Body())
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkHTTPRecommend is the whole request path over loopback HTTP:
// fiber, one Redis read, the ONNX model, policies, arbitration, copy, JSON.
// Compare it with BenchmarkHTTPBaseline, run side by side:
//
//	go test -run '^$' -bench HTTP -cpu 2 ./service/
func BenchmarkHTTPRecommend(b *testing.B) {
	e := newEnv(b, envOptions{customers: benchCustomers})
	s := api.NewServer(api.ServerConfig{Pipeline: e.pipeline})
	hammer(b, serveHTTP(b, s.App()), e.ids)
}

// BenchmarkHTTPShed is the cost of shedding: every request finds the
// limiter full and gets the 503, over the same path as
// BenchmarkHTTPRecommendMetrics. Under overload this is what each excess
// request costs the service, taken from the requests it serves.
func BenchmarkHTTPShed(b *testing.B) {
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	e := newEnv(b, envOptions{customers: benchCustomers})
	s := api.NewServer(api.ServerConfig{Pipeline: e.pipeline, MeterProvider: mp,
		HTTP: api.HTTPConfig{MaxInFlight: 1}})
	if !s.Limiter().Acquire() {
		b.Fatal("the one slot is taken")
	}
	hammerWant(b, serveHTTP(b, s.App()), e.ids, 503)
}

// BenchmarkHTTPRecommendMetrics is BenchmarkHTTPRecommend with the
// metrics on, as cmd/nbp serves: the OTel SDK read by the Prometheus
// exporter, the Redis hook on the pipeline's client.
func BenchmarkHTTPRecommendMetrics(b *testing.B) {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		b.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	hook, err := telemetry.NewRedisHook(mp)
	if err != nil {
		b.Fatal(err)
	}
	e := newEnv(b, envOptions{customers: benchCustomers, meters: mp, hook: hook})
	s := api.NewServer(api.ServerConfig{Pipeline: e.pipeline, MeterProvider: mp})
	hammer(b, serveHTTP(b, s.App()), e.ids)
}

// BenchmarkHTTPBaseline is a bare fiber handler that does one Redis GET of
// the same keys: the floor any Redis-backed fiber service stands on.
func BenchmarkHTTPBaseline(b *testing.B) {
	e := newEnv(b, envOptions{customers: benchCustomers})
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/v1/customers/:customer_id/recommendations", func(c *fiber.Ctx) error {
		v, err := e.rdb.Get(c.UserContext(), e.store.Key(c.Params("customer_id"))).Bytes()
		if err != nil {
			return err
		}
		return c.JSON(fiber.Map{"customer_id": c.Params("customer_id"), "bytes": strconv.Itoa(len(v))})
	})
	hammer(b, serveHTTP(b, app), e.ids)
}
