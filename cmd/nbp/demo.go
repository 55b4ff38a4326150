package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
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
)

// Demo customers the ready-to-paste curl lines name.
const (
	demoCustomer  = "C000000001"
	demoCustomer2 = "C000000002"
)

// loadDemo generates the demo bank as of now's day as CSV files (the export
// format) and loads the customers into the store through the regular CSV
// loader.
func loadDemo(ctx context.Context, cfg demoSettings, cat *catalog.Catalog, store *features.Store, now time.Time, stdout io.Writer) error {
	asOf := now.UTC().Truncate(24 * time.Hour)
	bank, err := demobank.New(cfg.Seed, asOf, cat)
	if err != nil {
		return err
	}
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
