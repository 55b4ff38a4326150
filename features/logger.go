package features

import (
	"context"
	"fmt"
	"log/slog"
)

// RedisLogger adapts a slog.Logger to go-redis's logger (redis.SetLogger),
// so that the client's own messages (dial failures, pool trouble) reach the
// structured log at warn level instead of the standard logger.
type RedisLogger struct {
	Log *slog.Logger
}

// Printf implements go-redis's internal logging interface.
func (l RedisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.Log.WarnContext(ctx, "redis client", slog.String("detail", fmt.Sprintf(format, v...)))
}
