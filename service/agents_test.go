package service_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/service/api"
)

// agentEvent is an event from an agent's panel.
func agentEvent(id, customer, product, typ, agent, team string, at time.Time) ev {
	e := event(id, customer, product, "wecom_agent", typ, at)
	if agent != "" {
		e["agent_id"] = agent
	}
	if team != "" {
		e["team"] = team
	}
	return e
}

// statsRows reads GET /v1/stats for the day of at, with the query q, as
// "agent/team/product/channel/strategy impressions/clicks/conversions/dismissals".
func statsRows(t *testing.T, s *api.Server, at time.Time, q string) []string {
	t.Helper()
	day := at.In(catalog.Zone()).Format(time.DateOnly)
	status, b := do(t, s, "GET", "/v1/stats?from="+day+"&to="+day+q)
	var st api.StatsResponse
	if err := json.Unmarshal(b, &st); status != 200 || err != nil {
		t.Fatalf("stats%s: %d %s", q, status, b)
	}
	var rows []string
	for _, r := range st.Rows {
		rows = append(rows, fmt.Sprintf("%s/%s/%s/%s/%s %d/%d/%d/%d", r.AgentID, r.Team, r.ProductID, r.Channel, r.Strategy,
			r.Impressions, r.Clicks, r.Conversions, r.Dismissals))
	}
	return rows
}

// TestAgentStats: events from an agent's panel carry the agent's WeCom
// userid and team; the statistics count each event once per grouping, and
// a retry counts nothing again.
func TestAgentStats(t *testing.T) {
	e := newEnv(t, envOptions{customers: 5})
	s := newServer(t, e)
	at := testNow.Add(-time.Hour)
	body := eventsBody(
		agentEvent("A1", "C000000001", "WM_CASH", "impression", "zhangwei", "直营一组", at),
		agentEvent("A2", "C000000001", "WM_CASH", "conversion", "zhangwei", "直营一组", at),
		agentEvent("A3", "C000000002", "WM_CASH", "impression", "lina", "直营一组", at),
		agentEvent("A4", "C000000003", "TD_1Y", "dismiss", "wangfang", "", at),
		agentEvent("A5", "C000000004", "TD_1Y", "impression", "", "", at), // a panel without agents configured
		event("A6", "C000000005", "WM_CASH", "app_feed", "impression", at),
	)
	for i := range 2 { // the retry counts nothing again
		if status, r, raw := postEvents(t, s, body); status != 200 || r.Accepted+r.Duplicates != 6 || len(r.Rejected) != 0 {
			t.Fatalf("post %d: %d %s", i, status, raw)
		}
	}
	for _, tc := range []struct {
		q    string
		want []string
	}{
		{"", []string{
			"//TD_1Y/wecom_agent/unknown 1/0/0/1",
			"//WM_CASH/app_feed/unknown 1/0/0/0",
			"//WM_CASH/wecom_agent/unknown 2/0/1/0",
		}},
		{"&group_by=agent", []string{
			"lina/直营一组/WM_CASH/wecom_agent/unknown 1/0/0/0",
			"wangfang//TD_1Y/wecom_agent/unknown 0/0/0/1",
			"zhangwei/直营一组/WM_CASH/wecom_agent/unknown 1/0/1/0",
		}},
		{"&group_by=team", []string{
			"//TD_1Y/wecom_agent/unknown 0/0/0/1",
			"/直营一组/WM_CASH/wecom_agent/unknown 2/0/1/0",
		}},
	} {
		if got := statsRows(t, s, at, tc.q); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("stats%s:\n got %q\nwant %q", tc.q, got, tc.want)
		}
	}
	if status, _ := do(t, s, "GET", "/v1/stats?group_by=branch"); status != 400 {
		t.Errorf("group_by=branch: %d, want 400", status)
	}
	// Refused: whatever could mislabel the statistics.
	for _, bad := range []ev{
		agentEvent("B1", "C000000001", "WM_CASH", "impression", "", "直营一组", at), // a team without an agent
		{"event_id": "B2", "customer_id": "C000000001", "product_id": "WM_CASH", "channel": "app_feed", "type": "impression",
			"at": at.Format(time.RFC3339Nano), "agent_id": "zhangwei"}, // an agent on the app
		agentEvent("B3", "C000000001", "WM_CASH", "impression", "zhang wei", "", at),                     // a malformed userid
		agentEvent("B7", "C000000001", "WM_CASH", "impression", ".zhangwei", "", at),                     // not a letter or digit first
		agentEvent("B4", "C000000001", "WM_CASH", "impression", "zhangwei", "一组|二组", at),                 // the separator
		agentEvent("B5", "C000000001", "WM_CASH", "impression", "zhangwei", strings.Repeat("组", 33), at), // too long
	} {
		status, r, raw := postEvents(t, s, eventsBody(bad))
		if status != 200 || r.Accepted != 0 || len(r.Rejected) != 1 || r.Rejected[0].Code != api.CodeInvalidAgent {
			t.Errorf("%s: %d %s, want refused with %s", bad["event_id"], status, raw, api.CodeInvalidAgent)
		}
	}
	// WeCom userids may hold . and @.
	if status, r, raw := postEvents(t, s, eventsBody(agentEvent("B8", "C000000001", "WM_CASH", "click", "zhang.wei@hq", "", at))); status != 200 || r.Accepted != 1 {
		t.Errorf("a userid with . and @: %d %s", status, raw)
	}
	// 32 characters of Chinese are a team name.
	if status, r, raw := postEvents(t, s, eventsBody(agentEvent("B6", "C000000001", "WM_CASH", "click", "zhangwei", strings.Repeat("组", 32), at))); status != 200 || r.Accepted != 1 {
		t.Errorf("a 32-character team: %d %s", status, raw)
	}
}

// TestStatsUplift: with decisions of both strategies and their outcomes,
// the statistics compare the model with the control group, with the
// interval of the difference around it.
func TestStatsUplift(t *testing.T) {
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	cat.Policy.ControlShare = 0.5
	e := newEnv(t, envOptions{customers: 200, cat: cat, decisionIDs: true})
	s := newServer(t, e)
	at := testNow.Add(-time.Minute)
	var evs []ev
	n := map[string]int64{}
	for i, id := range e.ids {
		status, body := do(t, s, "GET", "/v1/customers/"+id+"/recommendations?channel=app_feed&limit=1")
		var r api.RecommendationResponse
		if err := json.Unmarshal(body, &r); err != nil || status != 200 || len(r.Items) == 0 {
			continue
		}
		if r.Strategy != "model" && r.Strategy != "control" {
			continue
		}
		n[r.Strategy]++
		imp := event(fmt.Sprintf("U%d", i), id, r.Items[0].ProductID, "app_feed", "impression", at)
		imp["decision_id"] = r.DecisionID
		evs = append(evs, imp)
		if r.Strategy == "model" || i%4 == 0 { // the model's offers are clicked more
			click := event(fmt.Sprintf("V%d", i), id, r.Items[0].ProductID, "app_feed", "click", at)
			click["decision_id"] = r.DecisionID
			evs = append(evs, click)
		}
	}
	if n["model"] < 20 || n["control"] < 20 {
		t.Fatalf("decisions by strategy %v", n)
	}
	// The audit records the events are attributed through are written in
	// the background.
	waitFor(t, 5*time.Second, "every decision's audit record", func() bool {
		last, _ := evs[len(evs)-1]["decision_id"].(string)
		status, _ := do(t, s, "GET", "/v1/decisions/"+last)
		return status == 200
	})
	for start := 0; start < len(evs); start += api.MaxEvents {
		if status, _, raw := postEvents(t, s, eventsBody(evs[start:min(start+api.MaxEvents, len(evs))]...)); status != 200 {
			t.Fatalf("events: %d %s", status, raw)
		}
	}
	day := at.In(catalog.Zone()).Format(time.DateOnly)
	status, b := do(t, s, "GET", "/v1/stats?from="+day+"&to="+day)
	var st api.StatsResponse
	if err := json.Unmarshal(b, &st); status != 200 || err != nil {
		t.Fatalf("stats: %d %s", status, b)
	}
	var ctr *api.Uplift
	for i := range st.Uplift {
		if u := &st.Uplift[i]; u.Channel == "app_feed" && u.Metric == "click_through_rate" {
			ctr = u
		}
	}
	if ctr == nil || ctr.ModelImpressions != n["model"] || ctr.ControlImpressions != n["control"] || ctr.Model != 1 ||
		!(ctr.Difference > 0 && ctr.Low > 0 && ctr.Low < ctr.Difference && ctr.High >= ctr.Difference) {
		t.Errorf("uplift %+v for %v decisions: %s", ctr, n, b)
	}
}
