package service

import (
	"bytes"
	"context"
	"crypto/sha256"
	"log/slog"
	"os"
	"time"
)

// WatchFile applies a file when its content changes (checked every
// interval) and when reload fires (SIGHUP). When apply refuses the content,
// the refusal is logged and what is in force stays. It returns when ctx
// ends.
func WatchFile(ctx context.Context, path string, interval time.Duration, reload <-chan struct{}, apply func([]byte) error, log *slog.Logger) {
	var last []byte // hash of the content last tried
	load := func(trigger string) {
		b, err := os.ReadFile(path)
		if err != nil {
			log.ErrorContext(ctx, "file unreadable; keeping what is in force", slog.String("path", path), slog.String("error", err.Error()))
			return
		}
		sum := sha256.Sum256(b)
		if trigger == "change" && bytes.Equal(sum[:], last) {
			return
		}
		last = sum[:]
		if err := apply(b); err != nil {
			log.ErrorContext(ctx, "file refused; keeping what is in force", slog.String("path", path), slog.String("error", err.Error()))
			return
		}
		log.InfoContext(ctx, "file reloaded", slog.String("path", path), slog.String("trigger", trigger))
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			load("change")
		case <-reload:
			load("signal")
		}
	}
}

// WatchArbitration keeps the pipeline's arbitration in step with a file
// (see WatchFile): a file that does not parse or validate is refused and
// the arbitration in force stays.
func WatchArbitration(ctx context.Context, p *Pipeline, path string, interval time.Duration, reload <-chan struct{}, log *slog.Logger) {
	WatchFile(ctx, path, interval, reload, func(b []byte) error {
		a, err := p.Catalog().ParseArbitration(b)
		if err != nil {
			return err
		}
		p.SetArbitration(a)
		return nil
	}, log)
}
