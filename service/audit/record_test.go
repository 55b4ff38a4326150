package audit_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/service"
	"github.com/directops/nbp/service/audit"
)

// lines is a log handler that keeps the messages it is given.
type lines struct {
	mu   sync.Mutex
	msgs []string
}

func (l *lines) Enabled(context.Context, slog.Level) bool { return true }
func (l *lines) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *lines) WithGroup(string) slog.Handler            { return l }
func (l *lines) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.Key + "=" + a.Value.String())
		return true
	})
	l.msgs = append(l.msgs, b.String())
	return nil
}

// TestRecordNeverHoldsTheDecision: with the queue full (the writer asleep
// for an hour), Record waits a moment at most, counts the record lost and
// logs it, with the decision id and never the customer.
func TestRecordNeverHoldsTheDecision(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never reached: the writer never wakes
	defer rdb.Close()
	logs := &lines{}
	a, err := audit.New(rdb, audit.Options{Queue: 2, Linger: time.Hour, Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)
	var ids []string
	for i := range 5 {
		d := service.Decision{ID: service.NewDecisionID(at.Add(time.Duration(i) * time.Millisecond)), At: at,
			CustomerID: "C000000042", Channel: catalog.AppFeed, Strategy: "model"}
		ids = append(ids, d.ID)
		start := time.Now()
		a.Record(context.Background(), d)
		if took := time.Since(start); took > time.Second {
			t.Fatalf("Record held the decision %s", took)
		}
	}
	if got := a.Stats().Lost; got != 3 {
		t.Errorf("%d records lost, want 3 (a queue of 2, 5 records)", got)
	}
	logs.mu.Lock()
	defer logs.mu.Unlock()
	if len(logs.msgs) != 3 {
		t.Fatalf("log lines %q, want 3", logs.msgs)
	}
	for i, m := range logs.msgs {
		if !strings.HasPrefix(m, "audit record not queued") || !strings.Contains(m, "decision_id="+ids[2+i]) || strings.Contains(m, "C000000042") {
			t.Errorf("log line %q", m)
		}
	}
}
