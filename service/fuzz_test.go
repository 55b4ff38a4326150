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

// FuzzContactLinks sends arbitrary bodies to PUT /v1/contacts and reads
// the contacts back: every link is stored or refused with its reason, the
// answer is a JSON 200 or 4xx, never a 5xx or a panic.
func FuzzContactLinks(f *testing.F) {
	for _, seed := range []string{
		`{"links": [{"external_userid": "wmAAA1", "customer_id": "C000000001"}]}`,
		`{"links": [{"external_userid": "wm bad", "customer_id": "C1"}, {"external_userid": "wm2", "customer_id": ""}]}`,
		`{"links": []}`, `{"links": null}`, `{}`, `[]`, `{"links": [{}]}`, `{"links": [1]}`,
		`{"links": [{"external_userid": "wm1", "customer_id": "C1"}]} trailing`,
		`{"links": [{"external_userid": "张三", "customer_id": "C1\u0000"}]}`,
	} {
		f.Add(seed)
	}
	e := newEnv(f, envOptions{scorerRules: true})
	s := api.NewServer(api.ServerConfig{Pipeline: e.pipeline, Contacts: e.store})
	f.Fuzz(func(t *testing.T, body string) {
		req, _ := http.NewRequest("PUT", "http://nbp/v1/contacts", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := s.App().Test(req, 5000)
		if err != nil {
			t.Fatalf("%q: %v", body, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		apitest.Check(t, "PUT", "/v1/contacts", []byte(body), resp.StatusCode, resp.Header, b)
		switch {
		case resp.StatusCode == 200:
			var r api.ContactLinksResponse
			var in api.ContactLinksRequest
			if err := json.Unmarshal(b, &r); err != nil || json.Unmarshal([]byte(body), &in) != nil || r.Linked+len(r.Rejected) != len(in.Links) {
				t.Fatalf("%q: 200 with %s", body, b)
			}
		case resp.StatusCode >= 400 && resp.StatusCode < 500:
			var er api.ErrorResponse
			if err := json.Unmarshal(b, &er); err != nil || er.Error.Code == "" {
				t.Fatalf("%q: %d without the error shape: %s", body, resp.StatusCode, b)
			}
		default:
			t.Fatalf("%q: status %d: %s", body, resp.StatusCode, b)
		}
	})
}
