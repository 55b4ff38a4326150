package service_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/service"
)

func writeArbitration(t *testing.T, path, version string, pensionBoost float64) {
	t.Helper()
	body := fmt.Sprintf(`{"version": %q, "levers": [{"product": "PENSION_ACCOUNT", "factor": %v, "from": "2026-11-01", "until": "2027-01-01"}]}`, version, pensionBoost)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil { // atomic, as a deploy tool writes
		t.Fatal(err)
	}
}

// refusalCounter is a log handler that counts the watcher's refusals.
type refusalCounter struct{ n atomic.Int64 }

func (r *refusalCounter) Enabled(context.Context, slog.Level) bool { return true }
func (r *refusalCounter) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *refusalCounter) WithGroup(string) slog.Handler            { return r }
func (r *refusalCounter) Handle(_ context.Context, rec slog.Record) error {
	if strings.HasPrefix(rec.Message, "file refused") {
		r.n.Add(1)
	}
	return nil
}

func TestArbitrationReloadUnderLoad(t *testing.T) {
	e := newEnv(t, envOptions{customers: 500, scorer: func(e *env) service.Scorer { return e.rules }})
	path := filepath.Join(t.TempDir(), "arbitration.json")
	writeArbitration(t, path, "v1", 1)
	a, err := e.cat.LoadArbitration(path)
	if err != nil {
		t.Fatal(err)
	}
	e.pipeline.SetArbitration(a)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reload := make(chan struct{}, 1)
	refusals := &refusalCounter{}
	go service.WatchArbitration(ctx, e.pipeline, path, 5*time.Millisecond, reload, slog.New(refusals))

	var failed, served atomic.Int64
	seen := sync.Map{}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; ; i += 4 {
				select {
				case <-stop:
					return
				default:
				}
				d, err := e.pipeline.Decide(context.Background(), service.Request{CustomerID: e.ids[i%len(e.ids)], Channel: catalog.AppFeed, Limit: 3})
				if err != nil {
					failed.Add(1)
					continue
				}
				served.Add(1)
				seen.Store(d.ConfigVersion, true)
			}
		}(w)
	}
	waitFor := func(version string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for e.pipeline.Arbitration().Version != version {
			if time.Now().After(deadline) {
				t.Fatalf("arbitration %q not in force, %q is", version, e.pipeline.Arbitration().Version)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	for i := 2; i <= 20; i++ {
		v := fmt.Sprintf("v%d", i)
		writeArbitration(t, path, v, 1+float64(i)/10)
		if i%2 == 0 {
			reload <- struct{}{} // SIGHUP
		}
		waitFor(v)
	}
	// A bad file is refused; the one in force stays.
	if err := os.WriteFile(path, []byte(`{"version": "bad", "levers": [{"product": "NOPE", "factor": 99}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	reload <- struct{}{}
	// Wait until the watcher has read the bad file and refused it.
	for deadline := time.Now().Add(5 * time.Second); refusals.n.Load() == 0; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the watcher never refused the bad file")
		}
	}
	if v := e.pipeline.Arbitration().Version; v != "v20" {
		t.Fatalf("after a bad file, %q is in force, want v20", v)
	}
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d decisions failed during reloads", failed.Load(), failed.Load()+served.Load())
	}
	versions := 0
	seen.Range(func(k, v any) bool { versions++; return true })
	if versions < 3 || served.Load() < 100 {
		t.Fatalf("decisions saw %d arbitration versions over %d decisions", versions, served.Load())
	}
}

func TestLeverMovesTheRanking(t *testing.T) {
	e := newEnv(t, envOptions{customers: 2000, scorer: func(e *env) service.Scorer { return e.rules }})
	count := func() int {
		n := 0
		for _, id := range e.ids {
			d, err := e.pipeline.Decide(context.Background(), service.Request{CustomerID: id, Channel: catalog.AppFeed, Limit: 3})
			if err != nil {
				t.Fatal(err)
			}
			if offers(d, "PENSION_ACCOUNT") {
				n++
			}
		}
		return n
	}
	off, err := e.cat.ParseArbitration([]byte(`{"version": "off", "levers": []}`))
	if err != nil {
		t.Fatal(err)
	}
	e.pipeline.SetArbitration(off)
	without := count()
	on, err := e.cat.ParseArbitration([]byte(`{"version": "on", "levers": [{"product": "PENSION_ACCOUNT", "factor": 3, "from": "2026-11-01", "until": "2027-01-01"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	e.pipeline.SetArbitration(on)
	with := count()
	if with <= without {
		t.Fatalf("a 3x lever on the pension account: offered to %d customers, %d without", with, without)
	}
	// Outside its window the lever does nothing.
	later, _ := e.cat.ParseArbitration([]byte(`{"version": "later", "levers": [{"product": "PENSION_ACCOUNT", "factor": 3, "from": "2027-01-01"}]}`))
	e.pipeline.SetArbitration(later)
	if got := count(); got != without {
		t.Fatalf("a lever not yet in force changed the ranking: %d, want %d", got, without)
	}
}

// TestWatchPointerFollowsAPointerMovedBack: the pointer is moved by other
// means too (the admin endpoint), so a file that returns to a content the
// watcher saw before is followed; a refused content is not retried until
// it changes or a signal comes.
func TestWatchPointerFollowsAPointerMovedBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "CURRENT")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	inForce, applied := "a", map[string]int{}
	apply := func(b []byte) error {
		mu.Lock()
		defer mu.Unlock()
		applied[string(b)]++
		if string(b) == "bad" {
			return errors.New("refused")
		}
		inForce = string(b)
		return nil
	}
	serves := func(b []byte) bool { mu.Lock(); defer mu.Unlock(); return string(b) == inForce }
	state := func() (string, int, int) { mu.Lock(); defer mu.Unlock(); return inForce, applied["b"], applied["bad"] }
	move := func(v string) { mu.Lock(); inForce = v; mu.Unlock() } // what the endpoint does, file included
	write("a")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reload := make(chan struct{}, 1)
	go service.WatchPointer(ctx, path, 50*time.Millisecond, reload, apply, serves, slog.New(&refusalCounter{}))
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatal(what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	write("b")
	waitFor("b not followed", func() bool { v, _, _ := state(); return v == "b" })
	// The endpoint moves it to c, and before the watcher looks the file is
	// edited back to b by hand: the content it last tried, yet not in force.
	move("c")
	write("c")
	write("b")
	waitFor("b, seen before, not followed after c", func() bool { v, _, _ := state(); return v == "b" })
	write("bad")
	waitFor("bad not tried", func() bool { _, _, n := state(); return n >= 1 })
	time.Sleep(200 * time.Millisecond)
	if v, _, n := state(); v != "b" || n != 1 {
		t.Fatalf("after a refusal: in force %s, tried %d times", v, n)
	}
	reload <- struct{}{}
	waitFor("a signal does not retry", func() bool { _, _, n := state(); return n == 2 })
}
