package service_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/directops/nbp/service/api"
	"github.com/directops/nbp/service/apitest"
)

func keyHash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

func clientsFile(t *testing.T, body string) *api.Clients {
	t.Helper()
	cs, err := api.ParseClients([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func doKey(t *testing.T, s *api.Server, method, target, key string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, target, strings.NewReader(`{"events":[]}`))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := apitest.Test(t, s.App(), req, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 429 && resp.Header.Get("Retry-After") == "" {
		t.Errorf("429 without Retry-After")
	}
	return resp.StatusCode, string(body)
}

func TestAccessControl(t *testing.T) {
	e := newEnv(t, envOptions{customers: 5})
	s := newServer(t, e)
	s.SetClients(clientsFile(t, fmt.Sprintf(`{"clients": [
		{"name": "app", "key_sha256": [%q], "endpoints": ["recommend", "events"], "channels": ["app_feed"]},
		{"name": "admin", "key_sha256": [%q], "endpoints": ["recommend", "stats", "decisions"], "channels": ["app_feed", "wecom_agent", "batch"]},
		{"name": "tight", "key_sha256": [%q], "endpoints": ["recommend"], "channels": ["app_feed"], "rate_per_second": 1, "burst": 2}
	]}`, keyHash("app-key-1"), keyHash("admin-key"), keyHash("tight-key"))))
	rec := "/v1/customers/C000000001/recommendations?channel="
	tests := []struct {
		name, method, target, key string
		status                    int
		code                      string
	}{
		{"no key", "GET", rec + "app_feed", "", 401, api.CodeUnauthorized},
		{"wrong key", "GET", rec + "app_feed", "app-key-2", 401, api.CodeUnauthorized},
		{"app on its channel", "GET", rec + "app_feed", "app-key-1", 200, ""},
		{"app on another channel", "GET", rec + "wecom_agent", "app-key-1", 403, api.CodeForbidden},
		{"app on stats", "GET", "/v1/stats", "app-key-1", 403, api.CodeForbidden},
		{"app on decisions", "GET", "/v1/decisions/01ZZZZZZZZZZZZZZZZZZZZZZZZ", "app-key-1", 403, api.CodeForbidden},
		{"admin on stats", "GET", "/v1/stats", "admin-key", 200, ""},
		{"admin on events", "POST", "/v1/events", "admin-key", 403, api.CodeForbidden},
		{"health stays open", "GET", "/healthz", "", 200, ""},
		{"openapi stays open", "GET", "/openapi.json", "", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := doKey(t, s, tt.method, tt.target, tt.key)
			if status != tt.status || tt.code != "" && !strings.Contains(body, `"code":"`+tt.code+`"`) {
				t.Fatalf("%d %s, want %d %s", status, body, tt.status, tt.code)
			}
		})
	}
	// The rate limit: a burst of two, then 429 with Retry-After.
	limited := 0
	for i := 0; i < 5; i++ {
		if status, _ := doKey(t, s, "GET", rec+"app_feed", "tight-key"); status == 429 {
			limited++
		}
	}
	if limited < 3 {
		t.Fatalf("%d of 5 requests limited at 1/s with a burst of 2", limited)
	}
	// Under overload the limit comes first: a 503 without looking at the
	// key, so that a request turned away costs no hash.
	release := takeEverySlot(s.Limiter())
	for _, key := range []string{"", "app-key-1"} {
		if status, body := doKey(t, s, "GET", rec+"app_feed", key); status != 503 || !strings.Contains(body, api.CodeOverloaded) {
			t.Fatalf("key %q with every slot taken: %d %s, want a 503 overloaded", key, status, body)
		}
	}
	release()
	// Rotation without a restart: the new key works, the old one stops.
	s.SetClients(clientsFile(t, fmt.Sprintf(`{"clients": [{"name": "app", "key_sha256": [%q], "endpoints": ["recommend"], "channels": ["app_feed"]}]}`, keyHash("app-key-2"))))
	if status, _ := doKey(t, s, "GET", rec+"app_feed", "app-key-2"); status != 200 {
		t.Fatalf("rotated key: %d", status)
	}
	if status, _ := doKey(t, s, "GET", rec+"app_feed", "app-key-1"); status != 401 {
		t.Fatalf("old key after rotation: %d", status)
	}
}

func TestParseClientsRefusesBadFiles(t *testing.T) {
	for _, body := range []string{
		`{"clients": [{"name": "a", "key_sha256": ["abc"], "endpoints": ["recommend"]}]}`,
		`{"clients": [{"name": "a", "key_sha256": [], "endpoints": ["recommend"]}]}`,
		`{"clients": [{"name": "a", "key_sha256": ["` + keyHash("k") + `"], "endpoints": ["admin"]}]}`,
		`{"clients": [{"name": "a", "key_sha256": ["` + keyHash("k") + `"], "channels": ["sms"]}]}`,
		`{"clients": [{"name": "", "key_sha256": ["` + keyHash("k") + `"]}]}`,
		`{"clients": [], "extra": 1}`,
	} {
		if _, err := api.ParseClients([]byte(body)); err == nil {
			t.Errorf("accepted: %s", body)
		}
	}
}
