package service_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/directops/nbp/service/api"
	"github.com/directops/nbp/service/apitest"
)

// putLinks sends PUT /v1/contacts with body, as the key's client when key
// is set.
func putLinks(t *testing.T, s *api.Server, body, key string) (int, api.ContactLinksResponse, string) {
	t.Helper()
	req, _ := http.NewRequest("PUT", "/v1/contacts", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := apitest.Test(t, s.App(), req, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var r api.ContactLinksResponse
	_ = json.Unmarshal(b, &r)
	return resp.StatusCode, r, string(b)
}

// TestContactLinksAPI: the bank links WeCom contacts to customers, the
// sidebar reads a contact's customer, and an unknown contact is a clear
// "not linked", never an error page.
func TestContactLinksAPI(t *testing.T) {
	e := newEnv(t, envOptions{})
	s := newServer(t, e)
	status, r, body := putLinks(t, s, `{"links": [
		{"external_userid": "wmAAA1", "customer_id": "C000000001"},
		{"external_userid": "wm bad", "customer_id": "C000000002"},
		{"external_userid": "wmCCC3", "customer_id": ""},
		{"external_userid": "wmDDD4", "customer_id": "C000000004"}]}`, "")
	if status != 200 || r.Linked != 2 || len(r.Rejected) != 2 ||
		r.Rejected[0].Index != 1 || r.Rejected[0].Code != api.CodeInvalidExternalUserID ||
		r.Rejected[1].Index != 2 || r.Rejected[1].Code != api.CodeInvalidCustomerID || r.Rejected[1].ExternalUserID != "wmCCC3" {
		t.Fatalf("PUT: %d %s", status, body)
	}
	for _, tc := range []struct {
		ext    string
		status int
		want   string // customer id, or error code
	}{
		{"wmAAA1", 200, "C000000001"},
		{"wmDDD4", 200, "C000000004"},
		{"wmNEVER", 404, api.CodeContactNotLinked},
		{"wm%20bad", 400, api.CodeInvalidExternalUserID},
	} {
		status, body := do(t, s, "GET", "/v1/contacts/"+tc.ext)
		if status != tc.status || !strings.Contains(string(body), `"`+tc.want+`"`) {
			t.Errorf("GET %s: %d %s, want %d %s", tc.ext, status, body, tc.status, tc.want)
		}
	}
	for name, bad := range map[string]string{
		"no links":      `{"links": []}`,
		"not an object": `[1, 2]`,
		"unknown field": `{"links": [{"external_userid": "wm1", "customer_id": "C1", "name": "王女士"}]}`,
		"too many":      `{"links": [` + strings.Repeat(`{"external_userid": "wm1", "customer_id": "C1"},`, api.MaxLinks) + `{"external_userid": "wm1", "customer_id": "C1"}]}`,
	} {
		if status, _, body := putLinks(t, s, bad, ""); status != 400 {
			t.Errorf("%s: %d %s, want 400", name, status, body)
		}
	}
	// Access: the panel reads links, the bank's system writes them.
	s.SetClients(clientsFile(t, fmt.Sprintf(`{"clients": [
		{"name": "wecom-panel", "key_sha256": [%q], "endpoints": ["recommend", "events", "contacts"], "channels": ["wecom_agent"]},
		{"name": "crm", "key_sha256": [%q], "endpoints": ["links"], "channels": []}
	]}`, keyHash("panel-key"), keyHash("crm-key"))))
	link := `{"links": [{"external_userid": "wmEEE5", "customer_id": "C000000005"}]}`
	if status, _, body := putLinks(t, s, link, "panel-key"); status != 403 {
		t.Errorf("the panel wrote a link: %d %s", status, body)
	}
	if status, r, body := putLinks(t, s, link, "crm-key"); status != 200 || r.Linked != 1 {
		t.Errorf("the CRM's link: %d %s", status, body)
	}
	if status, body := doKey(t, s, "GET", "/v1/contacts/wmEEE5", "panel-key"); status != 200 || !strings.Contains(body, "C000000005") {
		t.Errorf("the panel's read: %d %s", status, body)
	}
	if status, _ := doKey(t, s, "GET", "/v1/contacts/wmEEE5", "crm-key"); status != 403 {
		t.Errorf("the CRM read a link: %d", status)
	}
}
