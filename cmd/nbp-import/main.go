// Command nbp-import loads the data warehouse's feature export into Redis:
// CSV with a header, or Parquet with the same columns (by the .parquet
// extension). Rows are checked against the feature schema and written in
// pipelined chunks; a bad row is reported with its line and reason and
// never half-written. Each customer's write is atomic, so a load can be
// re-run safely.
//
// With -contacts, the files are the bank's WeCom contact links instead:
// CSV with the columns external_userid and customer_id, which the agent
// sidebar reads to find the customer behind a chat.
//
//	nbp-import -redis 127.0.0.1:6379 export-20261127.csv
//	nbp-import -contacts wecom-links-20261127.csv
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/directops/nbp/cmd/internal/config"
	"github.com/directops/nbp/cmd/internal/progress"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/features/export"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "nbp-import:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("nbp-import", flag.ContinueOnError)
	var rc config.Redis
	rc.Register(fs, config.NewEnv(getenv), "127.0.0.1:6379", "Redis address, or comma-separated cluster nodes (env REDIS_ADDR)")
	rc.Timeouts = features.BulkTimeouts()
	chunk := fs.Int("chunk", 1000, "customers per pipeline")
	ttl := fs.Duration("ttl", 0, "expire vectors not refreshed within this time (0: never)")
	maxReport := fs.Int("report", 100, "bad rows to print (all are counted)")
	contacts := fs.Bool("contacts", false, "the files are WeCom contact links (external_userid,customer_id), not feature exports")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("name the export files to load")
	}
	rdb := rc.Client()
	defer rdb.Close()
	store := features.NewStore(rdb, features.Options{Prefix: rc.Prefix, TTL: *ttl})
	var total export.LoadSummary
	for _, path := range fs.Args() {
		reported := 0
		o := export.LoadOptions{Chunk: *chunk, OnReject: func(e *export.RowError) {
			if reported++; reported <= *maxReport {
				fmt.Fprintf(stderr, "%s: %v\n", path, e)
			}
		}}
		start := time.Now()
		sum, err := load(ctx, store, path, *contacts, o, stderr)
		total.Loaded += sum.Loaded
		total.Rejected += sum.Rejected
		if err != nil {
			return fmt.Errorf("%s: %w (loaded %d before it stopped)", path, err, sum.Loaded)
		}
		took := time.Since(start)
		fmt.Fprintf(stdout, "%s: %d loaded, %d rejected in %s (%.0f rows/s)\n", path, sum.Loaded, sum.Rejected,
			took.Round(time.Millisecond), float64(sum.Loaded+sum.Rejected)/took.Seconds())
	}
	fmt.Fprintf(stdout, "total: %d loaded, %d rejected\n", total.Loaded, total.Rejected)
	return nil
}

func load(ctx context.Context, store *features.Store, path string, contacts bool, o export.LoadOptions, term io.Writer) (export.LoadSummary, error) {
	f, err := os.Open(path)
	if err != nil {
		return export.LoadSummary{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return export.LoadSummary{}, err
	}
	// On a terminal, the file's bytes read, the rate and the time left,
	// with the rows loaded so far.
	bar := progress.New(term, st.Size(), "bytes", filepath.Base(path))
	defer bar.Finish()
	if report := o.OnReject; report != nil && bar != nil {
		o.OnReject = func(e *export.RowError) {
			bar.Clear() // the bad row's line is printed where the bar was
			report(e)
		}
	}
	o.Progress = func(loaded, rejected int) {
		bar.Describe(fmt.Sprintf("%s: %d loaded, %d rejected", filepath.Base(path), loaded, rejected))
	}
	r := &counted{f: f, bar: bar, size: st.Size()}
	if contacts {
		return export.LoadContactLinks(ctx, store, r, o)
	}
	if strings.EqualFold(filepath.Ext(path), ".parquet") {
		return export.LoadParquet(ctx, store, r, st.Size(), o)
	}
	return export.LoadCSV(ctx, store, r, o)
}

// counted moves a progress bar as a file is read, through either reader.
type counted struct {
	f    *os.File
	bar  *progress.Bar
	size int64
	n    atomic.Int64
}

func (c *counted) Read(p []byte) (int, error) {
	n, err := c.f.Read(p)
	c.set(c.n.Add(int64(n)))
	return n, err
}

// set moves the bar, short of its end: Finish takes it there, after the
// last chunk is written.
func (c *counted) set(n int64) { c.bar.Set(min(c.size-1, n)) }

func (c *counted) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.f.ReadAt(p, off)
	c.set(c.n.Add(int64(n)))
	return n, err
}
