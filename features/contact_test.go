package features_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/redis/go-redis/v9"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/features/featurestest"
	"github.com/directops/nbp/features/redistest"
)

// eventNow is the clock of the event tests: late morning in China.
var eventNow = time.Date(2026, 11, 27, 10, 0, 0, 0, cst)

func evt(id, customer, product string, ch catalog.Channel, typ string, at time.Time) features.Event {
	return features.Event{ID: id, CustomerID: customer, ProductID: product, Channel: ch, Type: typ, Strategy: "model", At: at}
}

func eventOptions(t testing.TB) features.EventOptions {
	return features.EventOptions{Policy: defaultCatalog(t).Contact, Now: eventNow}
}

func dayField(at time.Time) string { return strconv.Itoa(catalog.Day(at)) }

// streamCounts returns how often each customer/event id is in the stream.
func streamCounts(t testing.TB, rdb redis.UniversalClient, prefix string) map[string]int {
	t.Helper()
	msgs, err := rdb.XRange(context.Background(), prefix+"events", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, m := range msgs {
		n[fmt.Sprint(m.Values["customer_id"], "/", m.Values["event_id"])]++
	}
	return n
}

// statCounts reads the statistics of from..to as day|product|channel|strategy
// -> [impressions clicks conversions dismissals].
func statCounts(t testing.TB, s *features.Store, from, to time.Time) map[string][4]int64 {
	t.Helper()
	rows, err := s.Stats(context.Background(), from, to)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	m := map[string][4]int64{}
	for _, r := range rows {
		k := r.Day.Format("20060102") + "|" + r.ProductID + "|" + r.Channel + "|" + r.Strategy
		if _, dup := m[k]; dup {
			t.Errorf("Stats: two rows for %s", k)
		}
		m[k] = [4]int64{r.Impressions, r.Clicks, r.Conversions, r.Dismisses}
	}
	return m
}

func contactOf(t testing.TB, s *features.Store, id string) map[string]string {
	t.Helper()
	rec, err := s.Read(context.Background(), id)
	if err != nil {
		t.Fatalf("Read(%s): %v", id, err)
	}
	return rec.Contact
}

func recordEvents(t testing.TB, s *features.Store, evs []features.Event, o features.EventOptions) []bool {
	t.Helper()
	fresh, err := s.RecordEvents(context.Background(), evs, o)
	if err != nil {
		t.Fatalf("RecordEvents: %v", err)
	}
	return fresh
}

func TestRecordEventsContactState(t *testing.T) {
	at := eventNow.Add(-time.Hour)
	sec := func(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }
	yesterday := at.AddDate(0, 0, -1)
	tests := []struct {
		name  string
		calls [][]features.Event // each recorded with eventNow, in turn
		want  map[string]string
	}{
		{
			name:  "an impression on the app",
			calls: [][]features.Event{{evt("E1", "C1", "WM_CASH", catalog.AppFeed, features.EventImpression, at)}},
			want:  map[string]string{"i:WM_CASH:app_feed:" + dayField(at): "1"},
		},
		{
			name: "impressions per product, channel and day",
			calls: [][]features.Event{{
				evt("E1", "C1", "WM_CASH", catalog.AppFeed, features.EventImpression, at),
				evt("E2", "C1", "WM_CASH", catalog.AppFeed, features.EventImpression, at),
				evt("E3", "C1", "WM_CASH", catalog.AppFeed, features.EventImpression, yesterday),
				evt("E4", "C1", "TD_1Y", catalog.AppFeed, features.EventImpression, at),
				evt("E5", "C1", "WM_CASH", catalog.WecomAgent, features.EventImpression, at),
			}},
			want: map[string]string{
				"i:WM_CASH:app_feed:" + dayField(at):        "2",
				"i:WM_CASH:app_feed:" + dayField(yesterday): "1",
				"i:TD_1Y:app_feed:" + dayField(at):          "1",
				"i:WM_CASH:wecom_agent:" + dayField(at):     "1",
			},
		},
		{
			name: "an impression on an outbound channel is a push",
			calls: [][]features.Event{{
				evt("E1", "C1", "WM_CASH", catalog.Batch, features.EventImpression, at),
				evt("E2", "C1", "TD_1Y", catalog.Batch, features.EventImpression, at),
			}},
			want: map[string]string{
				"i:WM_CASH:batch:" + dayField(at): "1",
				"i:TD_1Y:batch:" + dayField(at):   "1",
				"p:batch:" + dayField(at):         "2",
			},
		},
		{
			name:  "one dismissal is counted",
			calls: [][]features.Event{{evt("E1", "C1", "TD_1Y", catalog.AppFeed, features.EventDismiss, at)}},
			want:  map[string]string{"d:TD_1Y": "1"},
		},
		{
			name: "two dismissals suppress for 30 days from the second",
			calls: [][]features.Event{
				{evt("E1", "C1", "TD_1Y", catalog.AppFeed, features.EventDismiss, yesterday)},
				{evt("E2", "C1", "TD_1Y", catalog.WecomAgent, features.EventDismiss, at)},
			},
			want: map[string]string{"s:TD_1Y": sec(at.AddDate(0, 0, 30))},
		},
		{
			name:  "a conversion",
			calls: [][]features.Event{{evt("E1", "C1", "WM_CASH", catalog.AppFeed, features.EventConversion, at)}},
			want:  map[string]string{"v:WM_CASH": sec(at)},
		},
		{
			name: "a late conversion keeps the later one",
			calls: [][]features.Event{
				{evt("E1", "C1", "WM_CASH", catalog.AppFeed, features.EventConversion, at)},
				{evt("E2", "C1", "WM_CASH", catalog.WecomAgent, features.EventConversion, yesterday)},
			},
			want: map[string]string{"v:WM_CASH": sec(at)},
		},
		{
			name:  "a click changes nothing",
			calls: [][]features.Event{{evt("E1", "C1", "WM_CASH", catalog.AppFeed, features.EventClick, at)}},
			want:  map[string]string{},
		},
	}
	suite.OnEach(t, func(t *testing.T, r featurestest.Redis) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				s := r.Store(t, features.Options{})
				for _, evs := range tc.calls {
					recordEvents(t, s, evs, eventOptions(t))
				}
				if diff := cmp.Diff(tc.want, contactOf(t, s, "C1"), cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("contact state (-want +got):\n%s", diff)
				}
			})
		}

		t.Run("day counters past the longest cap are dropped", func(t *testing.T) {
			s := r.Store(t, features.Options{})
			long := eventNow.AddDate(0, 0, -400)
			o := eventOptions(t)
			o.Now = long
			recordEvents(t, s, []features.Event{evt("E1", "C1", "WM_CASH", catalog.Batch, features.EventImpression, long)}, o)
			recordEvents(t, s, []features.Event{evt("E2", "C1", "TD_1Y", catalog.AppFeed, features.EventImpression, at)}, eventOptions(t))
			want := map[string]string{"i:TD_1Y:app_feed:" + dayField(at): "1"}
			if diff := cmp.Diff(want, contactOf(t, s, "C1")); diff != "" {
				t.Errorf("contact state (-want +got):\n%s", diff)
			}
		})

		t.Run("the profile reads it back", func(t *testing.T) {
			cat := defaultCatalog(t)
			pr, err := features.NewProfile(cat)
			if err != nil {
				t.Fatal(err)
			}
			s := r.Store(t, features.Options{})
			recordEvents(t, s, []features.Event{
				evt("E1", "C1", "WM_CASH", catalog.Batch, features.EventImpression, at),
				evt("E2", "C1", "WM_CASH", catalog.AppFeed, features.EventConversion, at),
			}, eventOptions(t))
			h := pr.ContactHistory(contactOf(t, s, "C1"))
			if h == nil || len(h.Counts) != 2 || len(h.ConvertedAt) != 1 {
				t.Fatalf("history %+v, want an impression, a push and a conversion", h)
			}
			for _, c := range h.ConvertedAt {
				if !c.Equal(at.Truncate(time.Second)) {
					t.Errorf("converted at %v, want %v", c, at)
				}
			}
		})
	})
}

func TestRecordEventsIdempotent(t *testing.T) {
	at := eventNow.Add(-time.Hour)
	day := at.Format("20060102")
	evs := []features.Event{
		evt("E1", "C1", "WM_CASH", catalog.AppFeed, features.EventImpression, at),
		evt("E2", "C1", "WM_CASH", catalog.AppFeed, features.EventClick, at),
		evt("E2", "C1", "WM_CASH", catalog.AppFeed, features.EventClick, at), // twice in one batch
		evt("E3", "C2", "TD_1Y", catalog.WecomAgent, features.EventConversion, at),
		evt("E1", "C2", "TD_1Y", catalog.WecomAgent, features.EventImpression, at), // another customer's E1
	}
	suite.OnEach(t, func(t *testing.T, r featurestest.Redis) {
		prefix := redistest.Prefix(t)
		s := r.Store(t, features.Options{Prefix: prefix})
		rdb := r.Client(t)
		if diff := cmp.Diff([]bool{true, true, false, true, true}, recordEvents(t, s, evs, eventOptions(t))); diff != "" {
			t.Errorf("first: new (-want +got):\n%s", diff)
		}
		for i := range 2 {
			if diff := cmp.Diff(make([]bool, len(evs)), recordEvents(t, s, evs, eventOptions(t))); diff != "" {
				t.Errorf("repeat %d: new (-want +got):\n%s", i+1, diff)
			}
		}
		wantStats := map[string][4]int64{
			day + "|WM_CASH|app_feed|model":  {1, 1, 0, 0},
			day + "|TD_1Y|wecom_agent|model": {1, 0, 1, 0},
		}
		if diff := cmp.Diff(wantStats, statCounts(t, s, at, at)); diff != "" {
			t.Errorf("stats (-want +got):\n%s", diff)
		}
		wantStream := map[string]int{"C1/E1": 1, "C1/E2": 1, "C2/E3": 1, "C2/E1": 1}
		if diff := cmp.Diff(wantStream, streamCounts(t, rdb, prefix)); diff != "" {
			t.Errorf("stream (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(map[string]string{"i:WM_CASH:app_feed:" + dayField(at): "1"}, contactOf(t, s, "C1")); diff != "" {
			t.Errorf("C1 contact (-want +got):\n%s", diff)
		}
		if got := featurestest.Keys(t, rdb, prefix+"{*}:p"); len(got) != 0 {
			t.Errorf("events left pending: %v", got)
		}
		if fresh, err := s.RecordEvents(context.Background(), nil, eventOptions(t)); len(fresh) != 0 || err != nil {
			t.Errorf("RecordEvents(none) = %v, %v", fresh, err)
		}
	})
}

// TestRecordEventsRetry fails a batch after each step, as a Redis that went
// away would, then retries it: every event ends up counted once, in the
// contact state and in the statistics, and in the stream at least once.
func TestRecordEventsRetry(t *testing.T) {
	at := eventNow.Add(-time.Hour)
	day := at.Format("20060102")
	evs := []features.Event{
		evt("E1", "C1", "WM_CASH", catalog.AppFeed, features.EventImpression, at),
		evt("E2", "C1", "WM_CASH", catalog.AppFeed, features.EventClick, at),
		evt("E3", "C2", "TD_1Y", catalog.Batch, features.EventImpression, at),
		evt("E4", "C3", "TD_1Y", catalog.WecomAgent, features.EventDismiss, at),
		evt("E5", "C4", "WM_CASH", catalog.AppFeed, features.EventConversion, at),
	}
	wantStats := map[string][4]int64{
		day + "|WM_CASH|app_feed|model":  {1, 1, 1, 0},
		day + "|TD_1Y|batch|model":       {1, 0, 0, 0},
		day + "|TD_1Y|wecom_agent|model": {0, 0, 0, 1},
	}
	wantContact := map[string]map[string]string{
		"C1": {"i:WM_CASH:app_feed:" + dayField(at): "1"},
		"C2": {"i:TD_1Y:batch:" + dayField(at): "1", "p:batch:" + dayField(at): "1"},
		"C3": {"d:TD_1Y": "1"},
		"C4": {"v:WM_CASH": strconv.FormatInt(at.Unix(), 10)},
	}
	all := func(b bool) []bool {
		r := make([]bool, len(evs))
		for i := range r {
			r[i] = b
		}
		return r
	}
	tests := []struct {
		step int
		// what the retry reports: events the failed call recorded but did
		// not confirm are new to the caller; confirmed ones are not.
		retryNew []bool
		// how often each event is in the stream: the failed call's entry
		// and the retry's, when the failed call got that far.
		inStream int
	}{
		{step: 1, retryNew: all(true), inStream: 1},
		{step: 2, retryNew: all(true), inStream: 2},
		{step: 3, retryNew: all(false), inStream: 1},
	}
	suite.OnEach(t, func(t *testing.T, r featurestest.Redis) {
		for _, tc := range tests {
			t.Run(fmt.Sprintf("after step %d", tc.step), func(t *testing.T) {
				ctx := context.Background()
				prefix := redistest.Prefix(t)
				// Steps 1 to 3 are a pipeline each: the connection is lost
				// right after step tc.step's write.
				fault := &failAfterPipeline{}
				s := r.Store(t, features.Options{Prefix: prefix}, fault)
				rdb := r.Client(t)
				fault.arm(tc.step)
				fresh, err := s.RecordEvents(ctx, evs, eventOptions(t))
				if !errors.Is(err, features.ErrUnavailable) || fresh != nil {
					t.Fatalf("failing call = %v, %v; want nil and ErrUnavailable", fresh, err)
				}
				if tc.step == 2 {
					// Counted, not confirmed: the marks must outlast
					// the event window, for a retry may come that late.
					ttl, err := rdb.PTTL(ctx, s.CountedKey(prefix+"stats:"+day, "C1", "E1")).Result()
					if err != nil || ttl < 30*24*time.Hour {
						t.Errorf("counted mark of a pending event: TTL %v, %v; want past the 30-day window", ttl, err)
					}
				}

				if diff := cmp.Diff(tc.retryNew, recordEvents(t, s, evs, eventOptions(t))); diff != "" {
					t.Errorf("retry: new (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(all(false), recordEvents(t, s, evs, eventOptions(t))); diff != "" {
					t.Errorf("second retry: new (-want +got):\n%s", diff)
				}

				if diff := cmp.Diff(wantStats, statCounts(t, s, at, at)); diff != "" {
					t.Errorf("stats (-want +got):\n%s", diff)
				}
				for id, want := range wantContact {
					if diff := cmp.Diff(want, contactOf(t, s, id)); diff != "" {
						t.Errorf("%s contact (-want +got):\n%s", id, diff)
					}
				}
				wantStream := map[string]int{}
				for _, e := range evs {
					wantStream[e.CustomerID+"/"+e.ID] = tc.inStream
				}
				if diff := cmp.Diff(wantStream, streamCounts(t, rdb, prefix)); diff != "" {
					t.Errorf("stream (-want +got):\n%s", diff)
				}
				if got := featurestest.Keys(t, rdb, prefix+"{*}:p"); len(got) != 0 {
					t.Errorf("events left pending: %v", got)
				}
				// Confirmed, the marks need only outlive the calls
				// still under way.
				for _, e := range evs {
					ttl, err := rdb.PTTL(ctx, s.CountedKey(prefix+"stats:"+day, e.CustomerID, e.ID)).Result()
					if err != nil || ttl <= 0 || ttl > time.Hour {
						t.Errorf("counted mark of %s/%s: TTL %v, %v; want at most an hour", e.CustomerID, e.ID, ttl, err)
					}
				}
			})
		}

		t.Run("the retry keeps the first time", func(t *testing.T) {
			prefix := redistest.Prefix(t)
			fault := &failAfterPipeline{}
			s := r.Store(t, features.Options{Prefix: prefix}, fault)
			first := evt("E1", "C1", "WM_CASH", catalog.AppFeed, features.EventImpression, eventNow.AddDate(0, 0, -1))
			fault.arm(1)
			if _, err := s.RecordEvents(context.Background(), []features.Event{first}, eventOptions(t)); err == nil {
				t.Fatal("no failure")
			}
			again := first
			again.At = eventNow
			if diff := cmp.Diff([]bool{true}, recordEvents(t, s, []features.Event{again}, eventOptions(t))); diff != "" {
				t.Errorf("retry: new (-want +got):\n%s", diff)
			}
			want := map[string][4]int64{first.At.Format("20060102") + "|WM_CASH|app_feed|model": {1, 0, 0, 0}}
			if diff := cmp.Diff(want, statCounts(t, s, first.At, eventNow)); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
			msgs, err := r.Client(t).XRange(context.Background(), prefix+"events", "-", "+").Result()
			if err != nil || len(msgs) != 1 || msgs[0].Values["at"] != strconv.FormatInt(first.At.UnixMilli(), 10) {
				t.Errorf("stream %v, %v; want one entry at the first time", msgs, err)
			}
		})

		t.Run("the stream fails part way", func(t *testing.T) {
			// A real failure in the middle of step 2: the stream key is
			// of the wrong type, so every XADD fails while the counts,
			// on other slots, go through.
			ctx := context.Background()
			prefix := redistest.Prefix(t)
			s := r.Store(t, features.Options{Prefix: prefix})
			rdb := r.Client(t)
			if err := rdb.Set(ctx, prefix+"events", "in the way", 0).Err(); err != nil {
				t.Fatal(err)
			}
			if _, err := s.RecordEvents(ctx, evs, eventOptions(t)); !errors.Is(err, features.ErrUnavailable) {
				t.Fatalf("RecordEvents with a broken stream: %v, want ErrUnavailable", err)
			}
			if diff := cmp.Diff(wantStats, statCounts(t, s, at, at)); diff != "" {
				t.Errorf("stats after the failure (-want +got):\n%s", diff)
			}
			if err := rdb.Del(ctx, prefix+"events").Err(); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(all(true), recordEvents(t, s, evs, eventOptions(t))); diff != "" {
				t.Errorf("retry: new (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(wantStats, statCounts(t, s, at, at)); diff != "" {
				t.Errorf("stats after the retry (-want +got):\n%s", diff)
			}
			wantStream := map[string]int{}
			for _, e := range evs {
				wantStream[e.CustomerID+"/"+e.ID] = 1
			}
			if diff := cmp.Diff(wantStream, streamCounts(t, rdb, prefix)); diff != "" {
				t.Errorf("stream (-want +got):\n%s", diff)
			}
		})
	})
}

// TestRecordEventsConcurrent: callers racing with the same events count
// each once.
func TestRecordEventsConcurrent(t *testing.T) {
	at := eventNow.Add(-time.Hour)
	day := at.Format("20060102")
	var evs []features.Event
	for c := range 5 {
		for i := range 8 {
			evs = append(evs, evt(fmt.Sprintf("E%d", i), fmt.Sprintf("C%d", c), "WM_CASH", catalog.AppFeed, features.EventImpression, at))
		}
	}
	suite.OnEach(t, func(t *testing.T, r featurestest.Redis) {
		prefix := redistest.Prefix(t)
		s := r.Store(t, features.Options{Prefix: prefix})
		const callers = 8
		news := make([][]bool, callers)
		var retried atomic.Bool
		var wg sync.WaitGroup
		for c := range callers {
			wg.Go(func() {
				// An error means retry: a loaded machine may time
				// a call out, and the retry must still count once.
				for range 5 {
					fresh, err := s.RecordEvents(context.Background(), evs, eventOptions(t))
					if err == nil {
						news[c] = fresh
						return
					}
					retried.Store(true)
					if !errors.Is(err, features.ErrUnavailable) {
						t.Error(err)
						return
					}
				}
				t.Error("RecordEvents failed five times")
			})
		}
		wg.Wait()
		// A call that failed after confirming its events reported none of
		// them, and its retry finds them duplicates: only without
		// failures must every event have been reported new by someone.
		for i := range evs {
			if retried.Load() {
				t.Log("a call was retried: not checking who reported what")
				break
			}
			n := 0
			for c := range callers {
				if news[c] != nil && news[c][i] {
					n++
				}
			}
			if n == 0 {
				t.Errorf("%s/%s reported new by no caller", evs[i].CustomerID, evs[i].ID)
			}
		}
		want := map[string][4]int64{day + "|WM_CASH|app_feed|model": {int64(len(evs)), 0, 0, 0}}
		if diff := cmp.Diff(want, statCounts(t, s, at, at)); diff != "" {
			t.Errorf("stats (-want +got):\n%s", diff)
		}
		for c := range 5 {
			id := fmt.Sprintf("C%d", c)
			if diff := cmp.Diff(map[string]string{"i:WM_CASH:app_feed:" + dayField(at): "8"}, contactOf(t, s, id)); diff != "" {
				t.Errorf("%s contact (-want +got):\n%s", id, diff)
			}
		}
		rdb := r.Client(t)
		stream := streamCounts(t, rdb, prefix)
		for _, e := range evs {
			if stream[e.CustomerID+"/"+e.ID] == 0 {
				t.Errorf("%s/%s not in the stream", e.CustomerID, e.ID)
			}
		}
		if got := featurestest.Keys(t, rdb, prefix+"{*}:p"); len(got) != 0 {
			t.Errorf("events left pending: %v", got)
		}
	})
}

// TestReadManyAcrossNodes reads customers that, on the cluster, live on
// several nodes, in one call.
func TestReadManyAcrossNodes(t *testing.T) {
	at := eventNow.Add(-time.Hour)
	suite.OnEach(t, func(t *testing.T, r featurestest.Redis) {
		ctx := context.Background()
		prefix := redistest.Prefix(t)
		s := r.Store(t, features.Options{Prefix: prefix, Now: func() time.Time { return eventNow }})
		const n = 200
		ids := make([]string, n)
		vs := make([]features.Vector, n)
		var evs []features.Event
		for i := range ids {
			ids[i] = fmt.Sprintf("C%06d", i)
			vs[i] = sampleVector()
			vs[i].UpdatedAt = eventNow.Add(-time.Hour)
			vs[i].Values[features.Age] = float32(20 + i%60)
			if i%2 == 0 {
				evs = append(evs, evt("E1", ids[i], "WM_CASH", catalog.AppFeed, features.EventImpression, at))
			}
		}
		if err := s.PutMany(ctx, ids, vs); err != nil {
			t.Fatal(err)
		}
		recordEvents(t, s, evs, eventOptions(t))

		// Half the customers have no vector: the reads mix found and not found.
		read := append(append([]string{}, ids...), "NOBODY1", "NOBODY2")
		dst := make([]features.Record, len(read))
		if err := s.ReadMany(ctx, read, dst); err != nil {
			t.Fatalf("ReadMany: %v", err)
		}
		for i, id := range ids {
			if dst[i].Status != features.Found || dst[i].Vector.Values[features.Age] != float32(20+i%60) {
				t.Errorf("%s: %v, age %v", id, dst[i].Status, dst[i].Vector.Values[features.Age])
			}
			var want map[string]string
			if i%2 == 0 {
				want = map[string]string{"i:WM_CASH:app_feed:" + dayField(at): "1"}
			}
			if diff := cmp.Diff(want, dst[i].Contact, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("%s contact (-want +got):\n%s", id, diff)
			}
		}
		for _, d := range dst[n:] {
			if d.Status != features.NotFound || len(d.Contact) != 0 {
				t.Errorf("a customer without keys: %v, %v", d.Status, d.Contact)
			}
		}

		cc, ok := r.Client(t).(*redis.ClusterClient)
		if !ok {
			return
		}
		var mu sync.Mutex
		perNode := map[string]int{}
		err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			keys, err := m.Keys(ctx, prefix+"{*}:f").Result()
			mu.Lock()
			perNode[m.Options().Addr] = len(keys)
			mu.Unlock()
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		nodes, total := 0, 0
		for _, k := range perNode {
			total += k
			if k > 0 {
				nodes++
			}
		}
		if nodes < 2 || total != n {
			t.Errorf("the customers' vectors are on %d nodes (%v), %d in all; want at least 2 nodes and %d", nodes, perNode, total, n)
		}
		t.Logf("vectors per node: %v", perNode)
	})
}

func TestStats(t *testing.T) {
	// Two days, China time: the first events are late on the 26th, the
	// others early on the 27th (still the 26th in UTC).
	late := time.Date(2026, 11, 26, 23, 30, 0, 0, cst)
	early := time.Date(2026, 11, 27, 0, 30, 0, 0, cst)
	evs := []features.Event{
		evt("E1", "C1", "WM_CASH", catalog.AppFeed, features.EventImpression, late),
		evt("E2", "C1", "WM_CASH", catalog.AppFeed, features.EventClick, late),
		evt("E3", "C2", "WM_CASH", catalog.AppFeed, features.EventImpression, early),
		evt("E4", "C3", "WM_CASH", catalog.AppFeed, features.EventImpression, early),
		evt("E5", "C3", "WM_CASH", catalog.AppFeed, features.EventConversion, early),
		evt("E6", "C4", "TD_1Y", catalog.WecomAgent, features.EventDismiss, early),
	}
	evs[3].Strategy = "control"
	evs[4].Strategy = "control"
	suite.OnEach(t, func(t *testing.T, r featurestest.Redis) {
		s := r.Store(t, features.Options{})
		recordEvents(t, s, evs, eventOptions(t))
		tests := []struct {
			name     string
			from, to time.Time
			want     map[string][4]int64
		}{
			{"both days", late.AddDate(0, 0, -3), early, map[string][4]int64{
				"20261126|WM_CASH|app_feed|model":   {1, 1, 0, 0},
				"20261127|WM_CASH|app_feed|model":   {1, 0, 0, 0},
				"20261127|WM_CASH|app_feed|control": {1, 0, 1, 0},
				"20261127|TD_1Y|wecom_agent|model":  {0, 0, 0, 1},
			}},
			{"the first day", late, late, map[string][4]int64{
				"20261126|WM_CASH|app_feed|model": {1, 1, 0, 0},
			}},
			{"days without events", early.AddDate(0, 0, 1), early.AddDate(0, 0, 5), map[string][4]int64{}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				if diff := cmp.Diff(tc.want, statCounts(t, s, tc.from, tc.to)); diff != "" {
					t.Errorf("Stats(%v, %v) (-want +got):\n%s", tc.from, tc.to, diff)
				}
			})
		}
		rows, err := s.Stats(context.Background(), late, early)
		if err != nil {
			t.Fatal(err)
		}
		days := map[string]bool{}
		for _, row := range rows {
			days[row.Day.String()] = true
		}
		want := []string{time.Date(2026, 11, 26, 0, 0, 0, 0, cst).String(), time.Date(2026, 11, 27, 0, 0, 0, 0, cst).String()}
		got := make([]string, 0, len(days))
		for d := range days {
			got = append(got, d)
		}
		sort.Strings(got)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("row days (-want +got):\n%s", diff)
		}
	})
}

func TestReservePush(t *testing.T) {
	cp := catalog.Cap{Max: 2, Days: 7}
	suite.OnEach(t, func(t *testing.T, r featurestest.Redis) {
		ctx := context.Background()
		t.Run("concurrent pushes stop at the cap", func(t *testing.T) {
			s := r.Store(t, features.Options{})
			var mu sync.Mutex
			ok := 0
			var wg sync.WaitGroup
			for range 20 {
				wg.Go(func() {
					got, err := s.ReservePush(ctx, "C1", catalog.Batch, cp, eventNow)
					if err != nil {
						t.Error(err)
					}
					if got {
						mu.Lock()
						ok++
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if ok != 2 {
				t.Fatalf("%d pushes under a cap of 2", ok)
			}
			if got, err := s.ReservePush(ctx, "C1", catalog.Batch, cp, eventNow.AddDate(0, 0, 6)); got || err != nil {
				t.Errorf("a push on day 7 of the window: %v, %v", got, err)
			}
			if got, err := s.ReservePush(ctx, "C1", catalog.Batch, cp, eventNow.AddDate(0, 0, 7)); !got || err != nil {
				t.Errorf("a push once the window passed: %v, %v", got, err)
			}
		})
		t.Run("a recorded push counts", func(t *testing.T) {
			s := r.Store(t, features.Options{})
			recordEvents(t, s, []features.Event{evt("E1", "C1", "WM_CASH", catalog.Batch, features.EventImpression, eventNow)}, eventOptions(t))
			first, err1 := s.ReservePush(ctx, "C1", catalog.Batch, cp, eventNow)
			second, err2 := s.ReservePush(ctx, "C1", catalog.Batch, cp, eventNow)
			if !first || second || err1 != nil || err2 != nil {
				t.Errorf("after one recorded push: %v (%v), %v (%v); want one more", first, err1, second, err2)
			}
		})
		t.Run("no cap", func(t *testing.T) {
			s := r.Store(t, features.Options{})
			if got, err := s.ReservePush(ctx, "C1", catalog.AppFeed, catalog.Cap{}, eventNow); !got || err != nil {
				t.Errorf("ReservePush without a cap = %v, %v", got, err)
			}
		})
	})
}

func TestPing(t *testing.T) {
	suite.OnEach(t, func(t *testing.T, r featurestest.Redis) {
		if err := r.Store(t, features.Options{}).Ping(context.Background()); err != nil {
			t.Errorf("Ping: %v", err)
		}
	})
}

// TestCountedKeySlot: a count and its mark share a slot, whether the prefix
// is plain or holds a hash tag of its own; with such a prefix every key is
// in one slot, and the store works as well.
func TestCountedKeySlot(t *testing.T) {
	ctx := context.Background()
	r := suite.Clustered(t)
	cc := r.Client(t)
	for _, prefix := range []string{redistest.Prefix(t), "{" + redistest.Prefix(t) + "}:"} {
		t.Run(prefix, func(t *testing.T) {
			s := r.Store(t, features.Options{Prefix: prefix})
			stats := prefix + "stats:20261127"
			mark := s.CountedKey(stats, "C000000001", "e-1")
			want, err1 := cc.ClusterKeySlot(ctx, stats).Result()
			got, err2 := cc.ClusterKeySlot(ctx, mark).Result()
			if err1 != nil || err2 != nil || got != want {
				t.Errorf("slot of %q = %d (%v), of %q = %d (%v); want the same", mark, got, err2, stats, want, err1)
			}
			at := eventNow.Add(-time.Hour)
			evs := []features.Event{
				evt("E1", "C1", "WM_CASH", catalog.AppFeed, features.EventImpression, at),
				evt("E1", "C2", "WM_CASH", catalog.AppFeed, features.EventImpression, at),
			}
			if diff := cmp.Diff([]bool{true, true}, recordEvents(t, s, evs, eventOptions(t))); diff != "" {
				t.Errorf("new (-want +got):\n%s", diff)
			}
			want2 := map[string][4]int64{at.Format("20060102") + "|WM_CASH|app_feed|model": {2, 0, 0, 0}}
			if diff := cmp.Diff(want2, statCounts(t, s, at, at)); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
		})
	}
}
