//go:build linux && (amd64 || arm64)

package service_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/directops/nbp/service"
	"github.com/directops/nbp/service/api"
	"github.com/directops/nbp/service/apitest"
	"github.com/directops/nbp/service/overload"
)

// The server learns from the kernel how long each request waited before
// it was read, and its limiter sheds the ones that waited too long while
// requests queue. Here eight callers each pipeline 30 requests in one
// write, and every decision takes 20ms: a request waits for the ones
// before it on its connection, so the later ones wait longer and longer.
// With QueueWait 15ms, the first are served and the late ones shed with
// a 503 overloaded; with no QueueWait, all are served.
func TestServerShedsRequestsThatWaited(t *testing.T) {
	if os.Getenv("NBP_CLOCK_SHIFT") != "" {
		t.Skip("the kernel stamps arrivals on the real wall clock, which .ci/shifted-clock moves the process's away from")
	}
	for _, c := range []struct {
		name      string
		queueWait time.Duration
	}{{"shed-wait 15ms", 15 * time.Millisecond}, {"off", 0}} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, envOptions{customers: 5, scorer: func(e *env) service.Scorer { return slowScorer{e.rules, 20 * time.Millisecond} }})
			l := overload.NewLimiter(overload.LimiterConfig{Min: 4, Max: 1000, Window: 10 * time.Millisecond, QueueWait: c.queueWait})
			s := api.NewServer(api.ServerConfig{Pipeline: e.pipeline, Limiter: l, HTTP: api.HTTPConfig{RequestTimeout: 5 * time.Second}})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go func() { _ = s.Serve(ln) }()
			defer s.Shutdown(context.Background())

			const conns, each = 8, 30
			target := "/v1/customers/" + e.ids[0] + "/recommendations?channel=app_feed"
			req := "GET " + target + " HTTP/1.1\r\nHost: nbp\r\n\r\n"
			var mu sync.Mutex
			statuses := map[int]int{}
			var wg sync.WaitGroup
			for range conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					conn, err := net.Dial("tcp", ln.Addr().String())
					if err != nil {
						t.Error(err)
						return
					}
					defer conn.Close()
					_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
					br := bufio.NewReader(conn)
					// One request first: the kernel turns receive
					// timestamps on asynchronously when the first
					// socket asks for them.
					if _, err := conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: nbp\r\n\r\n")); err != nil {
						t.Error(err)
						return
					}
					warm, err := http.ReadResponse(br, nil)
					if err != nil {
						t.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, warm.Body)
					warm.Body.Close()
					time.Sleep(10 * time.Millisecond)
					if _, err := conn.Write([]byte(strings.Repeat(req, each))); err != nil {
						t.Error(err)
						return
					}
					for range each {
						resp, err := http.ReadResponse(br, nil)
						if err != nil {
							t.Error(err)
							return
						}
						body, err := io.ReadAll(resp.Body)
						resp.Body.Close()
						if err != nil {
							t.Error(err)
							return
						}
						apitest.Check(t, http.MethodGet, target, nil, resp.StatusCode, resp.Header, body)
						mu.Lock()
						statuses[resp.StatusCode]++
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if t.Failed() {
				return
			}
			if statuses[200]+statuses[503] != conns*each {
				t.Fatalf("statuses %v, want only 200 and 503", statuses)
			}
			if c.queueWait == 0 {
				if statuses[200] != conns*each || l.Shed() != 0 {
					t.Fatalf("statuses %v, %d shed, with no QueueWait; want every request served", statuses, l.Shed())
				}
				return
			}
			// Each connection's first request waits for nothing; by the
			// fifth, every one has waited 80ms.
			if statuses[200] < conns || statuses[503] < conns*each/2 {
				t.Fatalf("statuses %v; want the first of each connection served, and most of the late ones shed", statuses)
			}
			if l.ShedFor(overload.ShedWait) != int64(statuses[503]) {
				t.Fatalf("%d shed for their wait, %d 503s; want all of them shed for it", l.ShedFor(overload.ShedWait), statuses[503])
			}
		})
	}
}
