package service

import (
	"bytes"
	"context"
	"crypto/sha256"
	"log/slog"
	"os"
	"time"
)

// WatchArbitration keeps the pipeline's arbitration in step with a file:
// it reloads it when its content changes (checked every interval) and when
// reload fires (SIGHUP). A file that does not parse or validate is refused,
// logged, and the arbitration in force stays. It returns when ctx ends.
func WatchArbitration(ctx context.Context, p *Pipeline, path string, interval time.Duration, reload <-chan struct{}, log *slog.Logger) {
	var last []byte // hash of the content last tried
	load := func(trigger string) {
		b, err := os.ReadFile(path)
		if err != nil {
			log.ErrorContext(ctx, "arbitration file unreadable; keeping the one in force", slog.String("path", path), slog.String("error", err.Error()))
			return
		}
		sum := sha256.Sum256(b)
		if trigger == "change" && bytes.Equal(sum[:], last) {
			return
		}
		last = sum[:]
		a, err := p.Catalog().ParseArbitration(b)
		if err != nil {
			log.ErrorContext(ctx, "arbitration file refused; keeping the one in force",
				slog.String("in_force", p.Arbitration().Version), slog.String("error", err.Error()))
			return
		}
		p.SetArbitration(a)
		log.InfoContext(ctx, "arbitration reloaded", slog.String("version", a.Version), slog.String("trigger", trigger))
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
