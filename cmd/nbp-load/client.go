package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// recommendQuery is the query string of every request.
const recommendQuery = "?channel=app_feed&limit=3"

// target is one server under test and the keep-alive client that loads it.
type target struct {
	name   string
	addr   string // host:port
	client *fasthttp.HostClient
}

func newTarget(name, addr string, maxConns int) *target {
	return &target{
		name: name,
		addr: addr,
		client: &fasthttp.HostClient{
			Addr:                          addr,
			MaxConns:                      maxConns,
			ReadTimeout:                   5 * time.Second,
			WriteTimeout:                  5 * time.Second,
			MaxIdleConnDuration:           10 * time.Second, // below the servers' 30s idle timeout
			MaxIdemponentCallAttempts:     1,                // a failure is counted, not retried
			NoDefaultUserAgentHeader:      true,
			DisableHeaderNamesNormalizing: true,
			ConnPoolStrategy:              fasthttp.LIFO, // as few connections as the load needs
		},
	}
}

// url returns the recommendation URL of one customer.
func (t *target) url(id string) string {
	return "http://" + t.addr + "/v1/customers/" + id + "/recommendations" + recommendQuery
}

// issuer returns workers that each ask for uniformly drawn customers of
// ids, with a random source seeded from seed and the worker's number.
func (t *target) issuer(ids []string, seed uint64) issuerFactory {
	return func(worker int) issueFunc {
		rng := rand.New(rand.NewPCG(seed, uint64(worker)))
		req, resp := new(fasthttp.Request), new(fasthttp.Response)
		var uri []byte
		prefix := "http://" + t.addr + "/v1/customers/"
		return func() (int, error) {
			id := ids[rng.IntN(len(ids))]
			uri = append(append(append(append(uri[:0], prefix...), id...), "/recommendations"...), recommendQuery...)
			req.SetRequestURIBytes(uri)
			if err := t.client.Do(req, resp); err != nil {
				return 0, err
			}
			if s := resp.StatusCode(); s != fasthttp.StatusOK {
				return s, fmt.Errorf("status %d: %.200s", s, resp.Body())
			}
			if bytes.Contains(resp.Body(), degradedTrue) {
				return fasthttp.StatusOK, errDegraded
			}
			return fasthttp.StatusOK, nil
		}
	}
}

// degradedTrue is how nbp's JSON says an answer is degraded (the baseline
// never does).
var degradedTrue = []byte(`"degraded":true`)

// get fetches url once and returns the status and a copy of the body.
func (t *target) get(url string) (int, []byte, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	if err := t.client.DoTimeout(req, resp, 5*time.Second); err != nil {
		return 0, nil, fmt.Errorf("GET %s: %w", url, err)
	}
	return resp.StatusCode(), append([]byte(nil), resp.Body()...), nil
}

// checkNBP asks nbp for one customer's recommendations and fails unless
// the answer is a 200 with a JSON body holding "items". It returns the
// number of items.
func checkNBP(t *target, id string) (int, error) {
	url := t.url(id)
	status, body, err := t.get(url)
	if err != nil {
		return 0, fmt.Errorf("sanity check of %s: %w", t.name, err)
	}
	var resp struct {
		Items *[]json.RawMessage `json:"items"`
	}
	if status != fasthttp.StatusOK {
		return 0, fmt.Errorf("sanity check of %s: GET %s: status %d, want 200; body: %.500s", t.name, url, status, body)
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return 0, fmt.Errorf("sanity check of %s: GET %s: body is not JSON (%v): %.500s", t.name, url, err, body)
	}
	if resp.Items == nil {
		return 0, fmt.Errorf("sanity check of %s: GET %s: no \"items\" in the body: %.500s", t.name, url, body)
	}
	return len(*resp.Items), nil
}

// checkBaseline asks the baseline for one customer and fails unless it
// found the feature key nbp loaded: both must read the same keys.
func checkBaseline(t *target, id string) (int, error) {
	url := t.url(id)
	status, body, err := t.get(url)
	if err != nil {
		return 0, fmt.Errorf("sanity check of %s: %w", t.name, err)
	}
	if status != fasthttp.StatusOK {
		return 0, fmt.Errorf("sanity check of %s: GET %s: status %d, want 200 (is the key prefix the one nbp loaded?); body: %.500s", t.name, url, status, body)
	}
	var resp baselineResponse
	if err := json.Unmarshal(body, &resp); err != nil || resp.Bytes <= 0 {
		return 0, fmt.Errorf("sanity check of %s: GET %s: want {\"bytes\": n > 0}, got: %.500s", t.name, url, body)
	}
	return resp.Bytes, nil
}

// checkDegraded asks nbp for one customer and reports whether the answer
// says it is degraded.
func checkDegraded(t *target, id string) (bool, error) {
	status, body, err := t.get(t.url(id))
	if err != nil {
		return false, err
	}
	if status != fasthttp.StatusOK {
		return false, fmt.Errorf("status %d", status)
	}
	var resp struct {
		Degraded *bool `json:"degraded"`
	}
	if err := json.Unmarshal(body, &resp); err != nil || resp.Degraded == nil {
		return false, fmt.Errorf("no \"degraded\" in the body: %.300s", body)
	}
	return *resp.Degraded, nil
}

// shedByReason reads nbp's count of requests shed, by reason, from its
// /metrics (nbp_requests_shed_total{reason="..."}).
func shedByReason(t *target) (map[string]int64, error) {
	status, body, err := t.get("http://" + t.addr + "/metrics")
	if err != nil {
		return nil, err
	}
	if status != fasthttp.StatusOK {
		return nil, fmt.Errorf("GET /metrics: status %d", status)
	}
	return parseShed(body), nil
}

// parseShed finds the shed counters in a Prometheus text scrape.
func parseShed(scrape []byte) map[string]int64 {
	const name, label = "nbp_requests_shed_total{", `reason="`
	out := map[string]int64{}
	for _, line := range strings.Split(string(scrape), "\n") {
		if !strings.HasPrefix(line, name) {
			continue
		}
		i := strings.Index(line, label)
		end := strings.LastIndexByte(line, '}')
		if i < 0 || end < i {
			continue
		}
		reason, _, ok := strings.Cut(line[i+len(label):], `"`)
		fields := strings.Fields(line[end+1:])
		if !ok || len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		out[reason] = int64(v)
	}
	return out
}

// shedCounter reads nbp's shed counts now and returns a function giving
// what it shed since, by reason; that is nil when either read failed (the
// baseline has no /metrics).
func shedCounter(t *target) func() map[string]int64 {
	before, err := shedByReason(t)
	return func() map[string]int64 {
		if err != nil {
			return nil
		}
		after, err := shedByReason(t)
		if err != nil {
			return nil
		}
		for k, v := range before {
			after[k] -= v
		}
		return after
	}
}
