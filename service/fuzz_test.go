package service_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/directops/nbp/service/api"
	"github.com/directops/nbp/service/apitest"
)

// FuzzRecommendRequest sends arbitrary customer ids and query strings: the
// answer is a decision or a JSON 4xx, never a 5xx or a panic.
func FuzzRecommendRequest(f *testing.F) {
	for _, seed := range [][2]string{
		{"C000000001", "channel=app_feed&limit=3"},
		{"C000000002", "channel=wecom_agent"},
		{"C000000003", "channel=batch&limit=10"},
		{"C1", "channel=app_feed&limit=0"},
		{"x", "limit=3&channel=app_feed&limit=4"},
		{"张三", "channel=%E5%BC%A0"},
		{"C%00", "channel=app_feed%00"},
		{"C1", "channel=app_feed&&&&limit=%"},
		{strings.Repeat("9", 80), ";;;"},
	} {
		f.Add(seed[0], seed[1])
	}
	e := newEnv(f, envOptions{customers: 20, scorerRules: true})
	s := api.NewServer(api.ServerConfig{Pipeline: e.pipeline})
	f.Fuzz(func(t *testing.T, id, query string) {
		for _, c := range []byte(query) {
			if c <= ' ' || c >= 0x7f || c == '#' {
				return // not a request line a client could send
			}
		}
		target := "/v1/customers/" + url.PathEscape(id) + "/recommendations?" + query
		if len(target) > 3000 {
			return // past fasthttp's header buffer: a 431, tested on a real listener
		}
		req, err := http.NewRequest("GET", "http://nbp"+target, nil)
		if err != nil {
			return // not a request a client could send
		}
		start := time.Now()
		resp, err := s.App().Test(req, 5000)
		if time.Since(start) > time.Second {
			t.Fatalf("%q: took %s", target, time.Since(start))
		}
		if err != nil {
			t.Fatalf("%q: %v", target, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		apitest.Check(t, "GET", target, nil, resp.StatusCode, resp.Header, body)
		switch {
		case resp.StatusCode == 200:
			var r api.RecommendationResponse
			if err := json.Unmarshal(body, &r); err != nil || r.DecisionID == "" {
				t.Fatalf("%q: 200 with %s", target, body)
			}
		case resp.StatusCode >= 400 && resp.StatusCode < 500:
			var er api.ErrorResponse
			if err := json.Unmarshal(body, &er); err != nil || er.Error.Code == "" {
				t.Fatalf("%q: %d without the error shape: %s", target, resp.StatusCode, body)
			}
		default:
			t.Fatalf("%q: status %d: %s", target, resp.StatusCode, body)
		}
		if !utf8.Valid(body) {
			t.Fatalf("%q: body is not UTF-8", target)
		}
	})
}
