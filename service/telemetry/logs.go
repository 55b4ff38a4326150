package telemetry

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// RedisLogger adapts a slog.Logger to go-redis's logger (redis.SetLogger),
// so that the client's own messages (dial failures, pool trouble) reach the
// structured log at warn level instead of the standard logger. While Redis
// is down every request's dial fails: at most 10 lines a second are
// written, the next one saying how many were suppressed.
type RedisLogger struct {
	log     *slog.Logger
	sampler LogSampler
}

// NewRedisLogger returns a RedisLogger writing to log.
func NewRedisLogger(log *slog.Logger) *RedisLogger {
	return &RedisLogger{log: log, sampler: LogSampler{PerSecond: 10}}
}

// Printf implements go-redis's internal logging interface.
func (l *RedisLogger) Printf(ctx context.Context, format string, v ...any) {
	if ok, suppressed := l.sampler.Allow(time.Now()); ok {
		l.log.WarnContext(ctx, "redis client", slog.String("detail", fmt.Sprintf(format, v...)),
			slog.Int64("similar_lines_suppressed", suppressed))
	}
}

// LogSampler lets PerSecond lines through each second and counts the
// rest, so that the next line let through can say how many were dropped.
// In an outage every request fails the same way, and a line each would
// cost more than the answer. The zero value lets nothing through.
type LogSampler struct {
	PerSecond  int64
	second     atomic.Int64 // unix second of the current budget
	used       atomic.Int64
	suppressed atomic.Int64
}

// Allow reports whether a line may be written at now, and how many lines
// were suppressed since the last one written.
func (l *LogSampler) Allow(now time.Time) (bool, int64) {
	sec := now.Unix()
	if cur := l.second.Load(); cur != sec && l.second.CompareAndSwap(cur, sec) {
		l.used.Store(0)
	}
	if l.used.Add(1) > l.PerSecond {
		l.suppressed.Add(1)
		return false, 0
	}
	return true, l.suppressed.Swap(0)
}
