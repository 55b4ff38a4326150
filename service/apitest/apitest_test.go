package apitest_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/directops/nbp/service/apitest"
)

// recorder is a testing.TB that records what Check reports instead of
// failing the test.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func jsonHeader() http.Header {
	return http.Header{"Content-Type": {"application/json"}}
}

// recommendation is a 200 recommendation body, with its items put in.
func recommendation(items string) string {
	return `{"customer_id":"C1","channel":"app_feed","decision_id":"01ARZ3NDEKTSV4RRFFQ69G5FAV",` +
		`"model_version":"m","catalog_version":"c","strategy":"model","degraded":false,` +
		`"degraded_reasons":[],"items":` + items + `}`
}

const item = `{"rank":1,"product_id":"WM_CASH","name":"n","category":"c","risk_level":null,` +
	`"propensity":0.5,"priority":1,"scored_by":"model","copy":{"title":"t","body":"b","cta":"c","disclaimer":"d"},` +
	`"reasons":[{"code":"x","text":"y"}]}`

func TestValidate(t *testing.T) {
	const rec = "/v1/customers/C1/recommendations?channel=app_feed"
	text := http.Header{"Content-Type": {"text/plain; version=0.0.4; charset=utf-8; escaping=underscores"}}
	tests := []struct {
		name           string
		method, target string
		status         int
		header         http.Header
		body           string
		ok             bool
	}{
		{"recommendation", "GET", rec, 200, jsonHeader(), recommendation("[" + item + "]"), true},
		{"healthz", "GET", "/healthz", 200, jsonHeader(), `{"status":"ok"}`, true},
		{"readyz not ready", "GET", "/readyz", 503, jsonHeader(), `{"status":"not_ready","checks":{"redis":"failing"}}`, true},
		{"error", "GET", rec, 400, jsonHeader(), `{"error":{"code":"invalid_limit","message":"m"}}`, true},
		{"overloaded", "GET", rec, 503, http.Header{"Content-Type": {"application/json"}, "Retry-After": {"1"}}, `{"error":{"code":"overloaded","message":"m"}}`, true},
		{"metrics", "GET", "/metrics", 200, text, "# HELP x y\nx 1\n", true},
		{"unknown path", "GET", "/v1/products", 404, jsonHeader(), `{"error":{"code":"not_found","message":"m"}}`, true},
		{"wrong method", "DELETE", rec, 405, jsonHeader(), `{"error":{"code":"method_not_allowed","message":"m"}}`, true},
		{"head", "HEAD", "/healthz", 200, nil, "", true},

		{"wrong type", "GET", "/healthz", 200, jsonHeader(), `{"status":1}`, false},
		{"missing required field", "GET", "/healthz", 200, jsonHeader(), `{}`, false},
		{"unknown field", "GET", "/healthz", 200, jsonHeader(), `{"status":"ok","uptime":3}`, false},
		{"not JSON", "GET", "/healthz", 200, jsonHeader(), `ok`, false},
		{"undocumented content type", "GET", "/healthz", 200, text, `{"status":"ok"}`, false},
		{"undocumented status", "GET", "/healthz", 500, jsonHeader(), `{"error":{"code":"internal","message":"m"}}`, false},
		{"item without copy", "GET", rec, 200, jsonHeader(), recommendation(`[` + strings.Replace(item, `"copy"`, `"kopy"`, 1) + `]`), false},
		{"null items", "GET", rec, 200, jsonHeader(), recommendation("null"), false},
		{"bad decision id", "GET", rec, 200, jsonHeader(), strings.Replace(recommendation("[]"), "01ARZ", "X1ARZ", 1), false},
		{"error of the wrong shape", "GET", rec, 400, jsonHeader(), `{"error":"invalid limit"}`, false},
		{"unknown path, wrong shape", "GET", "/v1/products", 404, jsonHeader(), `{"error":{"code":"not_found"}}`, false},
		{"unknown path, extra field", "GET", "/v1/products", 404, jsonHeader(), `{"error":{"code":"not_found","message":"m","path":"/v1/products"}}`, false},
		{"unknown path, plain text", "GET", "/v1/products", 404, http.Header{"Content-Type": {"text/plain"}}, `Not Found`, false},
		{"wrong method, no body", "POST", rec, 405, jsonHeader(), ``, false},
		{"success from an undocumented path", "GET", "/v1/products", 200, jsonHeader(), `[]`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := apitest.Validate(tt.method, tt.target, nil, tt.status, tt.header, []byte(tt.body))
			switch {
			case tt.ok && err != nil:
				t.Errorf("a documented response refused: %v", err)
			case !tt.ok && err == nil:
				t.Error("a response against openapi.json accepted")
			case err != nil:
				t.Logf("refused: %v", err)
			}
		})
	}
}

func TestCheckReports(t *testing.T) {
	r := &recorder{TB: t}
	apitest.Check(r, "GET", "/healthz", nil, 200, jsonHeader(), []byte(`{"status":"ok"}`))
	if len(r.errs) != 0 {
		t.Fatalf("a good response reported: %q", r.errs)
	}
	apitest.Check(r, "GET", "/healthz", nil, 200, jsonHeader(), []byte(`{"status":true}`))
	if len(r.errs) != 1 || !strings.Contains(r.errs[0], "GET /healthz -> 200 does not match openapi.json") {
		t.Fatalf("a bad response reported as %q", r.errs)
	}
}

// TestTransport: a response through the transport is checked, and the
// caller still reads its body whole.
func TestTransport(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch req.URL.Path {
		case "/healthz":
			_, _ = io.WriteString(w, `{"status":"ok"}`)
		case "/readyz":
			_, _ = io.WriteString(w, `{"status":"ready","checks":{"redis":"maybe"}}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"message":"no such endpoint"}`)
		}
	}))
	defer srv.Close()
	tests := []struct {
		path, body string
		reports    bool
	}{
		{"/healthz", `{"status":"ok"}`, false},
		{"/readyz", `{"status":"ready","checks":{"redis":"maybe"}}`, true},
		{"/nowhere", `{"message":"no such endpoint"}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			r := &recorder{TB: t}
			client := apitest.Client(r)
			resp, err := client.Get(srv.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || string(body) != tt.body {
				t.Fatalf("body %q (%v), want %q", body, err, tt.body)
			}
			if got := len(r.errs) > 0; got != tt.reports {
				t.Fatalf("reported %q, want a report: %v", r.errs, tt.reports)
			}
		})
	}
}

// TestCheckRaw: every whole answer a connection read is checked; one cut
// short is not.
func TestCheckRaw(t *testing.T) {
	answer := func(status int, body string) string {
		return fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
			status, http.StatusText(status), len(body), body)
	}
	good, bad := answer(200, `{"status":"ok"}`), answer(200, `{"status":["ok"]}`)
	tests := []struct {
		name          string
		raw           string
		whole, failed int
	}{
		{"nothing", "", 0, 0},
		{"one good", good, 1, 0},
		{"pipelined, one bad", good + bad + good, 3, 1},
		{"cut in the body", good + good[:len(good)-3], 1, 0},
		{"cut in the header", good + good[:10], 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			if n := apitest.CheckRaw(r, "GET", "/healthz", []byte(tt.raw)); n != tt.whole {
				t.Errorf("%d answers checked, want %d", n, tt.whole)
			}
			if len(r.errs) != tt.failed {
				t.Errorf("reported %q, want %d reports", r.errs, tt.failed)
			}
		})
	}
	// An answer to a request never read whole must be an error.
	r := &recorder{TB: t}
	apitest.CheckRaw(r, "GET", "", []byte(good+answer(408, `{"error":{"code":"timeout","message":"m"}}`)))
	if len(r.errs) != 1 || !strings.Contains(r.errs[0], "-> 200") {
		t.Errorf("reported %q, want the 200 alone", r.errs)
	}
}

// TestAppAnswersChecked: Test checks what a fiber app answers.
func TestAppAnswersChecked(t *testing.T) {
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/healthz", func(c *fiber.Ctx) error { return c.JSON(map[string]any{"status": "ok"}) })
	app.Get("/readyz", func(c *fiber.Ctx) error { return c.JSON(map[string]any{"ready": true}) })
	for path, reports := range map[string]bool{"/healthz": false, "/readyz": true, "/nowhere": true} {
		t.Run(path, func(t *testing.T) {
			r := &recorder{TB: t}
			resp, err := apitest.Test(r, app, httptest.NewRequest("GET", path, nil), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if got := len(r.errs) > 0; got != reports {
				t.Fatalf("%d %v: reported %q, want a report: %v", resp.StatusCode, resp.Header, r.errs, reports)
			}
		})
	}
}
