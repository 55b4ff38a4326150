// Command nbp-batch scores every customer in the feature store for
// channel=batch through the same decision pipeline as the online API, and
// hands campaigns their lists: each customer's offers in Redis under a
// run-versioned key (readers follow <prefix>batch:current, flipped only
// when the run completed), and output files for the campaign system.
//
//	nbp-batch -run 2026-11-27 -out var/batch -format parquet
//	nbp-batch -run 2026-11-27 -shard 3/8 -resume        # one of eight machines
//
// A killed run resumes from its last checkpoint with -resume and ends with
// the same output as an uninterrupted one; re-running a finished run
// changes nothing.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/directops/nbp/service/batch"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		if errors.Is(err, errHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "nbp-batch:", err)
		if errors.Is(err, batch.ErrRunExists) {
			os.Exit(3)
		}
		os.Exit(1)
	}
}

var _ io.Writer = os.Stdout
