package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/service"
	"github.com/directops/nbp/service/api"
	"github.com/directops/nbp/service/apitest"
	"github.com/directops/nbp/service/audit"
)

func postEvents(t testing.TB, s *api.Server, body string) (int, api.EventsResponse, []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", "/v1/events", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := apitest.Test(t, s.App(), req, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	var r api.EventsResponse
	_ = json.Unmarshal(buf.Bytes(), &r)
	return resp.StatusCode, r, buf.Bytes()
}

type ev map[string]any

func eventsBody(evs ...ev) string {
	b, _ := json.Marshal(map[string]any{"events": evs})
	return string(b)
}

func event(id, customer, product, channel, typ string, at time.Time) ev {
	return ev{"event_id": id, "customer_id": customer, "product_id": product, "channel": channel, "type": typ, "at": at.Format(time.RFC3339Nano)}
}

func TestEventsValidation(t *testing.T) {
	e := newEnv(t, envOptions{customers: 5})
	s := newServer(t, e)
	at := testNow.Add(-time.Hour)
	good := event("E1", "C000000001", "WM_CASH", "app_feed", "impression", at)
	bad := []struct {
		name string
		ev   ev
		code string
	}{
		{"unknown type", event("E2", "C000000001", "WM_CASH", "app_feed", "purchase", at), api.CodeInvalidType},
		{"unknown channel", event("E3", "C000000001", "WM_CASH", "sms", "click", at), api.CodeInvalidChannel},
		{"unknown product", event("E4", "C000000001", "SPACE_TRIP", "app_feed", "click", at), api.CodeUnknownProduct},
		{"future", event("E5", "C000000001", "WM_CASH", "app_feed", "click", testNow.Add(time.Hour)), api.CodeTimeInFuture},
		{"too old", event("E6", "C000000001", "WM_CASH", "app_feed", "click", testNow.AddDate(0, 0, -31)), api.CodeTooOld},
		{"bad time", ev{"event_id": "E7", "customer_id": "C000000001", "product_id": "WM_CASH", "channel": "app_feed", "type": "click", "at": "yesterday"}, api.CodeInvalidTime},
		{"bad event id", event("E 8", "C000000001", "WM_CASH", "app_feed", "click", at), api.CodeInvalidEventID},
		{"bad customer id", event("E9", "C{1}", "WM_CASH", "app_feed", "click", at), api.CodeInvalidCustomerID},
		{"bad decision id", func() ev {
			x := event("E10", "C000000001", "WM_CASH", "app_feed", "click", at)
			x["decision_id"] = "nope"
			return x
		}(), api.CodeInvalidDecisionID},
		{"unknown field", func() ev {
			x := event("E11", "C000000001", "WM_CASH", "app_feed", "click", at)
			x["amount"] = 5
			return x
		}(), api.CodeInvalidEvent},
		{"wrong type of field", ev{"event_id": 12, "customer_id": "C000000001"}, api.CodeInvalidEvent},
	}
	evs := []ev{good}
	for _, b := range bad {
		evs = append(evs, b.ev)
	}
	status, r, body := postEvents(t, s, eventsBody(evs...))
	if status != 200 || r.Accepted != 1 || len(r.Rejected) != len(bad) {
		t.Fatalf("partial acceptance: %d %s", status, body)
	}
	for i, b := range bad {
		got := r.Rejected[i]
		if got.Index != i+1 || got.Code != b.code || got.Message == "" {
			t.Errorf("%s: rejection %+v, want index %d code %s", b.name, got, i+1, b.code)
		}
	}

	for _, tc := range []struct{ name, body, code string }{
		{"not JSON", "{", api.CodeBadRequest},
		{"no events", `{"events": []}`, api.CodeBadRequest},
		{"array body", `[]`, api.CodeBadRequest},
		{"unknown top field", `{"events": [], "x": 1}`, api.CodeBadRequest},
		{"too many", func() string {
			many := make([]ev, api.MaxEvents+1)
			for i := range many {
				many[i] = event(fmt.Sprintf("M%d", i), "C000000001", "WM_CASH", "app_feed", "click", at)
			}
			return eventsBody(many...)
		}(), api.CodeTooManyEvents},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := postEvents(t, s, tc.body)
			var er api.ErrorResponse
			if err := json.Unmarshal(body, &er); status != 400 || err != nil || er.Error.Code != tc.code {
				t.Fatalf("%d %s, want 400 %s", status, body, tc.code)
			}
		})
	}
}

func TestEventsAreIdempotent(t *testing.T) {
	e := newEnv(t, envOptions{customers: 5})
	s := newServer(t, e)
	at := testNow.Add(-time.Hour)
	body := eventsBody(
		event("R1", "C000000001", "WM_CASH", "app_feed", "impression", at),
		event("R2", "C000000001", "WM_CASH", "app_feed", "click", at),
		event("R2", "C000000001", "WM_CASH", "app_feed", "click", at), // twice in one batch
		event("R3", "C000000002", "TD_1Y", "wecom_agent", "conversion", at),
	)
	_, first, raw := postEvents(t, s, body)
	if first.Accepted != 3 || first.Duplicates != 1 || len(first.Rejected) != 0 {
		t.Fatalf("first: %s", raw)
	}
	_, again, raw := postEvents(t, s, body)
	if again.Accepted != 0 || again.Duplicates != 4 {
		t.Fatalf("retry: %s", raw)
	}
	// The statistics counted each event once.
	day := at.In(catalog.Zone()).Format(time.DateOnly)
	status, b := do(t, s, "GET", "/v1/stats?from="+day+"&to="+day)
	var st api.StatsResponse
	if err := json.Unmarshal(b, &st); status != 200 || err != nil {
		t.Fatalf("stats: %d %s", status, b)
	}
	got := map[string]int64{}
	for _, r := range st.Rows {
		got[r.ProductID+"|"+r.Channel+"|"+r.Strategy] = r.Impressions*100 + r.Clicks*10 + r.Conversions
	}
	want := map[string]int64{"WM_CASH|app_feed|unknown": 110, "TD_1Y|wecom_agent|unknown": 1}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("stats %v, want %v", got, want)
	}
	// And the stream holds each once.
	n, err := e.rdb.XLen(context.Background(), e.prefix+"events").Result()
	if err != nil || n != 3 {
		t.Fatalf("stream length %d %v, want 3", n, err)
	}
}

// TestContactPolicyOverAWeek plays a simulated week: impressions up to the
// cap, dismissals up to suppression, a conversion and its cooling-off.
func TestContactPolicyOverAWeek(t *testing.T) {
	var now atomic.Int64
	now.Store(testNow.UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	e := newEnv(t, envOptions{customers: 3000, now: clock, scorer: func(e *env) service.Scorer { return e.rules }})
	s := newServer(t, e)
	// A customer who is offered WM_CASH on the app, with consent, not in
	// the control group.
	var id string
	for _, c := range e.ids {
		d, err := e.pipeline.Decide(context.Background(), service.Request{CustomerID: c, Channel: catalog.AppFeed, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		v := e.vecs[c]
		if d.Strategy == "rules" && offers(d, "WM_CASH") && offers(d, "TD_1Y") && v.Flag(features.MarketingConsent) {
			id = c
			break
		}
	}
	if id == "" {
		t.Fatal("no suitable customer in the demo bank")
	}
	seq := 0
	send := func(product, channel, typ string) {
		t.Helper()
		seq++
		_, r, raw := postEvents(t, s, eventsBody(event(fmt.Sprintf("W%d", seq), id, product, channel, typ, clock())))
		if r.Accepted != 1 {
			t.Fatalf("event not accepted: %s", raw)
		}
	}
	decide := func() service.Decision {
		t.Helper()
		d, err := e.pipeline.Decide(context.Background(), service.Request{CustomerID: id, Channel: catalog.AppFeed, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	// Day 1: three impressions of WM_CASH (the app_feed cap is 3 in 7 days).
	for i := 0; i < 3; i++ {
		if !offers(decide(), "WM_CASH") {
			t.Fatalf("impression %d: WM_CASH not offered before the cap", i+1)
		}
		send("WM_CASH", "app_feed", "impression")
	}
	if offers(decide(), "WM_CASH") {
		t.Fatal("WM_CASH offered past 3 impressions in 7 days")
	}
	// Day 7 (6 days later): still inside the window. Day 8: out of it.
	now.Store(testNow.AddDate(0, 0, 6).UnixNano())
	if offers(decide(), "WM_CASH") {
		t.Fatal("WM_CASH offered on day 7, the impressions of day 1 still count")
	}
	now.Store(testNow.AddDate(0, 0, 7).UnixNano())
	if !offers(decide(), "WM_CASH") {
		t.Fatal("WM_CASH not offered again once day 1 left the 7-day window")
	}
	// Two dismissals of TD_1Y suppress it for 30 days.
	send("TD_1Y", "app_feed", "dismiss")
	if !offers(decide(), "TD_1Y") {
		t.Fatal("one dismissal suppressed TD_1Y")
	}
	send("TD_1Y", "app_feed", "dismiss")
	if offers(decide(), "TD_1Y") {
		t.Fatal("TD_1Y offered after two dismissals")
	}
	// A conversion: WM_CASH is treated as held for the cooling-off period.
	send("WM_CASH", "app_feed", "conversion")
	if offers(decide(), "WM_CASH") {
		t.Fatal("WM_CASH offered right after a conversion")
	}
	now.Store(testNow.AddDate(0, 0, 7+29).UnixNano())
	if offers(decide(), "TD_1Y") {
		t.Fatal("TD_1Y offered inside its 30-day suppression")
	}
	now.Store(testNow.AddDate(0, 0, 7+31).UnixNano())
	if !offers(decide(), "TD_1Y") {
		t.Fatal("TD_1Y still suppressed after 30 days")
	}
}

func offers(d service.Decision, product string) bool {
	for _, it := range d.Items {
		if it.Product.ID == product {
			return true
		}
	}
	return false
}

// TestPushCapUnderConcurrency: fifty pushes race for a cap of two; exactly
// two go out.
func TestPushCapUnderConcurrency(t *testing.T) {
	e := newEnv(t, envOptions{})
	cp := e.cat.Contact.PushCaps[catalog.Batch]
	if cp.Max != 2 {
		t.Fatalf("demo push cap %+v, want 2", cp)
	}
	var ok atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := e.store.ReservePush(context.Background(), "C000000001", catalog.Batch, cp, testNow)
			if err != nil {
				t.Error(err)
			}
			if got {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 2 {
		t.Fatalf("%d pushes went out under a cap of 2", ok.Load())
	}
	// The next day the window still holds them; a week later it does not.
	if got, _ := e.store.ReservePush(context.Background(), "C000000001", catalog.Batch, cp, testNow.AddDate(0, 0, 1)); got {
		t.Fatal("a third push went out inside the window")
	}
	if got, _ := e.store.ReservePush(context.Background(), "C000000001", catalog.Batch, cp, testNow.AddDate(0, 0, 7)); !got {
		t.Fatal("no push allowed once the window passed")
	}
}

// TestConcurrentEventsCountExactly: many writers at once lose no count.
func TestConcurrentEventsCountExactly(t *testing.T) {
	e := newEnv(t, envOptions{customers: 1})
	var wg sync.WaitGroup
	for w := 0; w < 20; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			evs := make([]features.Event, 10)
			for i := range evs {
				evs[i] = features.Event{ID: fmt.Sprintf("X%d-%d", w, i%5), CustomerID: "C000000000", ProductID: "WM_CASH",
					Channel: catalog.AppFeed, Type: features.EventImpression, Strategy: "model", At: testNow}
			}
			if _, err := e.store.RecordEvents(context.Background(), evs, features.EventOptions{Policy: e.cat.Contact, Now: testNow}); err != nil {
				t.Error(err)
			}
		}(w)
	}
	wg.Wait()
	rec, err := e.store.Read(context.Background(), "C000000000")
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for f, v := range rec.Contact {
		if strings.HasPrefix(f, "i:WM_CASH:app_feed:") {
			fmt.Sscan(v, &total)
		}
	}
	if total != 100 { // 20 writers × 5 distinct ids
		t.Fatalf("%d impressions counted, want 100", total)
	}
}

// TestAuditTrail: every decision leaves a record, retrievable, with no
// personal data, and the same inputs replay to the same decision.
func TestAuditTrail(t *testing.T) {
	e := newEnv(t, envOptions{customers: 30})
	s := newServer(t, e)
	for _, id := range e.ids[:30] {
		status, body := do(t, s, "GET", "/v1/customers/"+id+"/recommendations?channel=wecom_agent&limit=3")
		var r api.RecommendationResponse
		if err := json.Unmarshal(body, &r); status != 200 || err != nil {
			t.Fatalf("%d %s", status, body)
		}
		var rec []byte
		for try := 0; try < 100; try++ { // written in the background
			status, rec = do(t, s, "GET", "/v1/decisions/"+r.DecisionID)
			if status == 200 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if status != 200 {
			t.Fatalf("%s: audit record not found: %d %s", r.DecisionID, status, rec)
		}
		var a audit.Record
		if err := json.Unmarshal(rec, &a); err != nil {
			t.Fatal(err)
		}
		if a.DecisionID != r.DecisionID || a.Strategy != r.Strategy || a.ModelVersion != r.ModelVersion || len(a.Items) != len(r.Items) || a.CustomerHash == "" {
			t.Fatalf("record %s does not match response %s", rec, body)
		}
		// No personal data: not the id, not the salutation, no feature value.
		v := e.vecs[id]
		for _, secret := range []string{id, v.Salutation, fmt.Sprint(v.Values[features.AUM]), fmt.Sprint(v.Values[features.DemandBalance])} {
			if secret != "" && secret != "0" && bytes.Contains(rec, []byte(secret)) {
				t.Fatalf("audit record of %s holds %q: %s", id, secret, rec)
			}
		}
		// Replay: the same inputs give the same decision.
		d, err := e.pipeline.Decide(context.Background(), service.Request{CustomerID: id, Channel: catalog.WecomAgent, Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		replay := audit.NewRecord(&d, audit.NewHasher([]byte("test key")))
		replay.DecisionID, replay.At = a.DecisionID, a.At
		rb, _ := json.Marshal(replay)
		ab, _ := json.Marshal(a)
		if !bytes.Equal(rb, ab) {
			t.Fatalf("replay differs:\n%s\n%s", rb, ab)
		}
	}
	for _, tc := range []struct {
		path   string
		status int
	}{{"/v1/decisions/nope", 400}, {"/v1/decisions/01ZZZZZZZZZZZZZZZZZZZZZZZZ", 404}} {
		if status, body := do(t, s, "GET", tc.path); status != tc.status {
			t.Errorf("%s: %d %s", tc.path, status, body)
		}
	}
}

// roundTrips counts what the client sends: one call or one pipeline is one
// round trip.
type roundTrips struct{ n atomic.Int64 }

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if name := cmd.Name(); name != "hello" && name != "client" { // a new connection's set-up
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.n.Add(1); return next(ctx, cmds) }
}

func TestOneRoundTripPerDecision(t *testing.T) {
	rt := &roundTrips{}
	e := newEnv(t, envOptions{customers: 50, hook: rt})
	s := api.NewServer(api.ServerConfig{Pipeline: e.pipeline, Events: e.store})
	// Connections are set up once (HELLO and the like), not per decision.
	if err := e.rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	for _, id := range e.ids {
		before := rt.n.Load()
		if status, body := do(t, s, "GET", "/v1/customers/"+id+"/recommendations?channel=app_feed"); status != 200 {
			t.Fatalf("%d %s", status, body)
		}
		if n := rt.n.Load() - before; n != 1 {
			t.Fatalf("%s: %d Redis round trips for one decision", id, n)
		}
	}
}
