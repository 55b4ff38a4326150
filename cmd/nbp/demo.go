package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/features/demobank"
	"github.com/directops/nbp/features/export"
	"github.com/directops/nbp/service"
)

// Demo customers the ready-to-paste curl lines name.
const (
	demoCustomer  = "C000000001"
	demoCustomer2 = "C000000002"
)

// loadDemo generates the demo bank as of now's day as CSV files (the export
// format) and loads the customers into the store through the regular CSV
// loader.
func loadDemo(ctx context.Context, cfg demoSettings, cat *catalog.Catalog, store *features.Store, now time.Time, stdout io.Writer) (*demobank.Bank, error) {
	asOf := now.UTC().Truncate(24 * time.Hour)
	bank, err := demobank.New(cfg.Seed, asOf, cat)
	if err != nil {
		return nil, err
	}
	return bank, writeDemo(ctx, cfg, bank, store, stdout)
}

func writeDemo(ctx context.Context, cfg demoSettings, bank *demobank.Bank, store *features.Store, stdout io.Writer) error {
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return err
	}
	custPath := filepath.Join(cfg.Dir, "customers.csv")
	if err := writeWith(custPath, func(w io.Writer) error { return bank.WriteCSV(ctx, w, cfg.N) }); err != nil {
		return fmt.Errorf("demo bank: %w", err)
	}
	outPath := filepath.Join(cfg.Dir, "outcomes.csv")
	if err := writeWith(outPath, func(w io.Writer) error { return bank.WriteOutcomes(ctx, w, cfg.N) }); err != nil {
		return fmt.Errorf("demo outcomes: %w", err)
	}
	f, err := os.Open(custPath)
	if err != nil {
		return err
	}
	defer f.Close()
	start := time.Now()
	sum, err := export.LoadCSV(ctx, store, f, export.LoadOptions{})
	if err != nil {
		return fmt.Errorf("load demo bank: %w", err)
	}
	fmt.Fprintf(stdout, "demo bank: %d customers written to %s (outcomes in %s), %d loaded into Redis in %s, %d rejected\n",
		cfg.N, custPath, outPath, sum.Loaded, time.Since(start).Round(time.Millisecond), sum.Rejected)
	// The demo's agents have added the first customers on WeCom.
	links := make([]features.ContactLink, min(cfg.N, demoContacts))
	for i := range links {
		id := demobank.ID(i)
		links[i] = features.ContactLink{ExternalUserID: demoContact(id), CustomerID: id}
	}
	return store.LinkContacts(ctx, links)
}

// demoContacts is how many demo customers have a WeCom contact.
const demoContacts = 100

// demoContact is the WeCom external_userid of a demo customer.
func demoContact(customerID string) string { return "wmdemo" + customerID }

func writeWith(path string, write func(io.Writer) error) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	if err := write(bw); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// redisProcess is a private redis-server started for the demo.
type redisProcess struct {
	addr string
	cmd  *exec.Cmd
}

// startRedis starts redis-server on a free loopback port, without
// persistence. stop kills it.
func startRedis(ctx context.Context, bin string) (*redisProcess, error) {
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("redis-server not found (apt-get install redis-server, or set REDIS_ADDR): %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(path, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning")
	cmd.Stderr = os.Stderr
	// The private server dies with us, whatever way we go.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	p := &redisProcess{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cmd: cmd}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		c, err := net.DialTimeout("tcp", p.addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return p, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.stop()
	return nil, fmt.Errorf("redis-server on %s did not start", p.addr)
}

func (p *redisProcess) stop() {
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}

// The demo's agents: panel events carry their userid and team.
var demoAgents = []struct{ id, team string }{
	{"demo-agent", "直营一组"}, {"agent-li", "直营一组"}, {"agent-wang", "直营二组"},
}

// demoDays is how many days of traffic the demo simulates, today included.
const demoDays = 7

// trafficSummary counts what simulateTraffic recorded.
type trafficSummary struct {
	decisions, impressions, clicks, conversions int
}

// simulateTraffic gives the dashboard something to show: a week of
// decisions for the demo customers past the first demoContacts (whose
// panel stays fresh), on the app feed and, for some, from an agent's
// WeCom panel, with outcomes drawn from the demo bank's ground truth. The
// control group's random lists get the same draw, so the uplift shown is
// the model's real one on this bank. The events are recorded with their
// decision's strategy, as /v1/events would once the audit has the
// decision; the decisions go to the audit trail (record).
func simulateTraffic(ctx context.Context, pipe *service.Pipeline, store *features.Store, bank *demobank.Bank, n int, seed uint64, now time.Time, record func(service.Decision)) (trafficSummary, error) {
	var sum trafficSummary
	cat := pipe.Catalog()
	byDay := make([][]features.Event, demoDays)
	const chunk = 256
	reqs := make([]service.Request, 0, chunk)
	out := make([]service.Decision, chunk)
	idx := make([]int, 0, chunk)
	flush := func() error {
		if err := pipe.DecideMany(ctx, reqs, out[:len(reqs)]); err != nil {
			return err
		}
		for k, d := range out[:len(reqs)] {
			i := idx[k]
			_, v := bank.Customer(i)
			r := rand.New(rand.NewPCG(seed^0x5eed, uint64(i)<<2|uint64(d.Channel)))
			day := r.IntN(demoDays)
			agent := demoAgents[i%len(demoAgents)]
			sum.decisions++
			d.At = now.AddDate(0, 0, -day)
			record(d) // into the audit trail, on its simulated day
			for _, it := range d.Items {
				ev := features.Event{CustomerID: d.CustomerID, ProductID: it.Product.ID, Channel: d.Channel,
					DecisionID: d.ID, Strategy: string(d.Strategy), At: now.AddDate(0, 0, -day)}
				if d.Channel == catalog.WecomAgent {
					ev.Agent, ev.Team = agent.id, agent.team
				}
				truth := demobank.Truth(d.CustomerID, &v, it.Product)
				pClick := min(0.9, 0.02+0.6*truth)
				add := func(typ string) {
					e := ev
					e.Type, e.ID = typ, "sim-"+d.ID+"-"+it.Product.ID+"-"+typ
					byDay[day] = append(byDay[day], e)
				}
				add(features.EventImpression)
				sum.impressions++
				if r.Float64() < pClick {
					add(features.EventClick)
					sum.clicks++
					if r.Float64() < min(1, 0.4*truth/pClick) {
						add(features.EventConversion)
						sum.conversions++
					}
				}
			}
		}
		reqs, idx = reqs[:0], idx[:0]
		return nil
	}
	for i := demoContacts; i < n; i++ {
		chs := []catalog.Channel{catalog.AppFeed}
		if i < demoContacts+n/10 {
			chs = append(chs, catalog.WecomAgent)
		}
		for _, ch := range chs {
			reqs = append(reqs, service.Request{CustomerID: demobank.ID(i), Channel: ch, Limit: 3})
			idx = append(idx, i)
			if len(reqs) == chunk {
				if err := flush(); err != nil {
					return sum, err
				}
			}
		}
	}
	if len(reqs) > 0 {
		if err := flush(); err != nil {
			return sum, err
		}
	}
	for day, evs := range byDay {
		at := now.AddDate(0, 0, -day)
		for len(evs) > 0 {
			k := min(len(evs), 500)
			if _, err := store.RecordEvents(ctx, evs[:k], features.EventOptions{Policy: cat.Contact, Now: at}); err != nil {
				return sum, fmt.Errorf("demo traffic: %w", err)
			}
			evs = evs[k:]
		}
	}
	return sum, nil
}

// panelCustomers returns two demo customers with a WeCom contact and
// marketing consent, for the panel: one whose risk assessment is valid, and
// one whose assessment expired (the panel shows the hint to re-assess, and
// no investment product).
func panelCustomers(bank *demobank.Bank, now time.Time) (valid, expired string) {
	valid, expired = demoCustomer, demoCustomer
	var gotValid, gotExpired bool
	for i := range demoContacts {
		id, v := bank.Customer(i)
		until := v.AssessedUntil()
		if !v.Flag(features.MarketingConsent) || v.Flag(features.PersonalisationOptOut) || v.Tolerance() == 0 || until.IsZero() {
			continue
		}
		switch {
		case now.Before(until) && v.Tolerance() >= 3 && !gotValid:
			valid, gotValid = id, true
		case !now.Before(until) && !gotExpired:
			expired, gotExpired = id, true
		}
	}
	return valid, expired
}
