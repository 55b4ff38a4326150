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
	watch(ctx, path, interval, reload, apply, nil, log)
}

// WatchPointer is WatchFile for a file that is also moved by other means
// (the model pointer, which PUT /v1/admin/model rewrites): inForce says
// whether a content is what serves already, and a file moved back to a
// content seen before is still followed. A refused content is tried again
// only when the file changes or on SIGHUP.
func WatchPointer(ctx context.Context, path string, interval time.Duration, reload <-chan struct{}, apply func([]byte) error, inForce func([]byte) bool, log *slog.Logger) {
	watch(ctx, path, interval, reload, apply, inForce, log)
}

func watch(ctx context.Context, path string, interval time.Duration, reload <-chan struct{}, apply func([]byte) error, inForce func([]byte) bool, log *slog.Logger) {
	var last []byte // hash of the content last tried
	refused := false
	load := func(trigger string) {
		b, err := os.ReadFile(path)
		if err != nil {
			log.ErrorContext(ctx, "file unreadable; keeping what is in force", slog.String("path", path), slog.String("error", err.Error()))
			return
		}
		sum := sha256.Sum256(b)
		if inForce != nil && inForce(b) {
			last, refused = sum[:], false
			return
		}
		if trigger == "change" && bytes.Equal(sum[:], last) && (inForce == nil || refused) {
			return
		}
		last = sum[:]
		if err := apply(b); err != nil {
			refused = true
			log.ErrorContext(ctx, "file refused; keeping what is in force", slog.String("path", path), slog.String("error", err.Error()))
			return
		}
		refused = false
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
