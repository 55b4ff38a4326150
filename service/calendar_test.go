package service_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/service"
	"github.com/directops/nbp/service/api"
	"github.com/directops/nbp/service/audit"
	"github.com/directops/nbp/service/batch"
)

// TestCoreFlowsOnAnyDate runs an online decision, an event batch, a batch
// page, a stats query and an audit read with the clock on three dates: the
// day the fixtures were written for, a day after some of the catalog's
// sale windows have closed, and a day after all of them have (the demo
// catalog then moved to that year, as the demo moves it). Each flow must
// take "now" from the clock it was given: a part that read the real clock
// instead would offer a product off sale, refuse the events as being in
// the future, count them on another day, find the features stale or stamp
// the audit record with another time.
func TestCoreFlowsOnAnyDate(t *testing.T) {
	for _, day := range []string{"2026-11-27", "2027-06-15", "2031-06-15"} {
		t.Run(day, func(t *testing.T) {
			midnight, err := time.ParseInLocation(time.DateOnly, day, catalog.Zone())
			if err != nil {
				t.Fatal(err)
			}
			now := midnight.Add(12 * time.Hour)
			cat, err := catalog.DefaultAt(now)
			if err != nil {
				t.Fatal(err)
			}
			e := newEnv(t, envOptions{customers: 200, now: func() time.Time { return now }, cat: cat, decisionIDs: true})
			s := newServer(t, e)
			onSale := map[string]bool{}
			for i := range cat.Products {
				if p := &cat.Products[i]; p.SaleWindow.Contains(now) {
					onSale[p.ID] = true
				}
			}

			// Online decisions: only products on sale that day.
			var first api.RecommendationResponse
			offered := map[string]bool{}
			for _, id := range e.ids[:40] {
				status, body := do(t, s, "GET", "/v1/customers/"+id+"/recommendations?channel=wecom_agent&limit=3")
				var r api.RecommendationResponse
				if err := json.Unmarshal(body, &r); err != nil || status != http.StatusOK {
					t.Fatalf("%s: %d %s", id, status, body)
				}
				for _, it := range r.Items {
					if !onSale[it.ProductID] {
						t.Errorf("%s offered %s, off sale on %s", id, it.ProductID, day)
					}
					offered[it.ProductID] = true
				}
				if first.DecisionID == "" && r.Strategy == "model" && len(r.Items) > 0 {
					first = r
				}
			}
			if len(offered) < 5 || first.DecisionID == "" {
				t.Fatalf("%d products offered to 40 customers; a model decision: %q", len(offered), first.DecisionID)
			}

			// The audit read: the record carries the clock's time, in its
			// id too, and the features were current on that day.
			var rec audit.Record
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				status, body := do(t, s, "GET", "/v1/decisions/"+first.DecisionID)
				if status == http.StatusOK {
					if err := json.Unmarshal(body, &rec); err != nil {
						t.Fatal(err)
					}
					break
				}
				if status != http.StatusNotFound || time.Now().After(deadline) {
					t.Fatalf("decision %s: %d %s", first.DecisionID, status, body)
				}
			}
			if !rec.At.Equal(now) || rec.FeatureStatus != "found" {
				t.Errorf("audit record at %v with features %s; want %v and found", rec.At, rec.FeatureStatus, now)
			}
			if want := service.NewDecisionID(now); first.DecisionID[:10] != want[:10] {
				t.Errorf("decision id %s does not carry the clock's time (%s...)", first.DecisionID, want[:10])
			}

			// An event batch: an hour ago is neither in the future nor
			// too old.
			product := first.Items[0].ProductID
			evs := []ev{
				{"event_id": "e1", "customer_id": first.CustomerID, "product_id": product, "channel": "wecom_agent", "type": "impression",
					"decision_id": first.DecisionID, "at": now.Add(-time.Hour).Format(time.RFC3339)},
				{"event_id": "e2", "customer_id": first.CustomerID, "product_id": product, "channel": "wecom_agent", "type": "click",
					"decision_id": first.DecisionID, "at": now.Add(-time.Minute).Format(time.RFC3339)},
			}
			if status, r, body := postEvents(t, s, eventsBody(evs...)); status != http.StatusOK || r.Accepted != 2 {
				t.Fatalf("events: %d %s", status, body)
			}

			// The stats query: by default the week ending today, and so
			// the day of the events.
			status, body := do(t, s, "GET", "/v1/stats")
			var st api.StatsResponse
			if err := json.Unmarshal(body, &st); err != nil || status != http.StatusOK {
				t.Fatalf("stats: %d %s", status, body)
			}
			if st.To != day {
				t.Errorf("stats to %s, want %s", st.To, day)
			}
			var got []string
			for _, row := range st.Rows {
				got = append(got, fmt.Sprintf("%s/%s/%s %d/%d", row.ProductID, row.Channel, row.Strategy, row.Impressions, row.Clicks))
			}
			if want := product + "/wecom_agent/model 1/1"; len(got) != 1 || got[0] != want {
				t.Errorf("stats rows %v, want [%s]", got, want)
			}

			// A batch page: the run decides on the same day.
			r, _ := runner(e)
			var parts memParts
			ck, _, err := r.Run(context.Background(), batch.Options{RunID: "cal" + day[:4], Chunk: 100, Segment: 1}, parts.open)
			if err != nil {
				t.Fatal(err)
			}
			rows := parts.all()
			if ck.Customers != len(e.ids) || len(rows) == 0 {
				t.Fatalf("batch: %d customers, %d rows", ck.Customers, len(rows))
			}
			for _, row := range rows {
				if !onSale[row.ProductID] {
					t.Errorf("batch offered %s to %s, off sale on %s", row.ProductID, row.CustomerID, day)
				}
			}
		})
	}
}
