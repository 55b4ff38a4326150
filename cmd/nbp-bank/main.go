// Command nbp-bank writes the demo bank: n generated customers as a feature
// export (CSV with a header, the format the loader ingests) and their
// simulated take-ups. The same seed always gives the same bank.
//
//	nbp-bank -n 1000000 -out var/bank
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features/demobank"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "nbp-bank:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("nbp-bank", flag.ContinueOnError)
	n := fs.Int("n", 10000, "customers")
	seed := fs.Uint64("seed", 42, "seed")
	asOf := fs.String("as-of", time.Now().UTC().Format(time.DateOnly), "export date (YYYY-MM-DD): assessments expire relative to it")
	out := fs.String("out", "var/bank", "output directory: customers.csv and outcomes.csv")
	catPath := fs.String("catalog", getenv("NBP_CATALOG"), "catalog file (default: the embedded demo catalog)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var errs []error
	if *n < 1 {
		errs = append(errs, fmt.Errorf("-n must be at least 1"))
	}
	day, err := time.Parse(time.DateOnly, *asOf)
	if err != nil {
		errs = append(errs, fmt.Errorf("-as-of: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	cat, err := catalog.Default()
	if *catPath != "" {
		cat, err = catalog.Load(*catPath)
	}
	if err != nil {
		return err
	}
	bank, err := demobank.New(*seed, day, cat)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	start := time.Now()
	for _, f := range []struct {
		name  string
		write func(io.Writer) error
	}{
		{"customers.csv", func(w io.Writer) error { return bank.WriteCSV(ctx, w, *n) }},
		{"outcomes.csv", func(w io.Writer) error { return bank.WriteOutcomes(ctx, w, *n) }},
	} {
		path := filepath.Join(*out, f.name)
		if err := writeFile(path, f.write); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		fmt.Fprintf(stdout, "wrote %s\n", path)
	}
	fmt.Fprintf(stdout, "%d customers in %s\n", *n, time.Since(start).Round(time.Millisecond))
	return nil
}

func writeFile(path string, write func(io.Writer) error) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := write(bw); err != nil {
		f.Close()
		os.Remove(tmp)
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
