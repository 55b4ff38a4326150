package telemetry

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// RedisHook measures the commands a go-redis client sends: latency and
// errors by command name ("pipeline" for a pipeline). Keys and values are
// never recorded. Attach it with AddHook.
//
// Answers go-redis deals with itself are not errors: the commands it
// sends on its own to set up a new connection (HELLO, AUTH, SELECT,
// READONLY, CLIENT SETINFO, CLIENT MAINT_NOTIFICATIONS...) pass through
// the hook, their latency is recorded, their errors are not (a refusal the
// client shrugs off is no failure; one it does not shrug off fails the
// connection, and so the command that wanted it, counted under its own
// name); nor is the NOSCRIPT of an EVALSHA, which a Script answers with
// EVAL.
type RedisHook struct {
	latency metric.Float64Histogram
	errs    metric.Int64Counter
	opts    *OptionCache[string]
}

// NewRedisHook returns a hook recording to mp (nil: nowhere).
func NewRedisHook(mp metric.MeterProvider) (*RedisHook, error) {
	m := Meter(mp)
	h := &RedisHook{opts: NewOptionCache(func(cmd string) []attribute.KeyValue {
		return []attribute.KeyValue{AttrCommand.String(cmd)}
	})}
	var err error
	h.latency, err = m.Float64Histogram("nbp.redis.command.duration",
		metric.WithDescription("Time of a Redis command or pipeline, by command name."),
		metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(latencyBuckets[:]...))
	if err != nil {
		return nil, err
	}
	h.errs, err = m.Int64Counter("nbp.redis.command.errors",
		metric.WithDescription("Redis commands or pipelines that failed (a missing key is not a failure), by command name."),
		metric.WithUnit("{command}"))
	if err != nil {
		return nil, err
	}
	return h, nil
}

// DialHook implements redis.Hook.
func (h *RedisHook) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook implements redis.Hook.
func (h *RedisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		h.record(ctx, cmd.Name(), start, redisFailure(cmd, err))
		return err
	}
}

// ProcessPipelineHook implements redis.Hook.
func (h *RedisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		if err == nil {
			for _, c := range cmds {
				if e := c.Err(); e != nil && !errors.Is(e, redis.Nil) {
					err = e
					break
				}
			}
		}
		// A failed command, or a failure no command holds (a Redis error
		// is always some command's).
		var rerr redis.Error
		bad := err != nil && !errors.Is(err, redis.Nil) && !errors.As(err, &rerr)
		setup := true
		for _, c := range cmds {
			bad = bad || redisFailure(c, c.Err())
			setup = setup && connSetup(c)
		}
		h.record(ctx, "pipeline", start, bad && !setup)
		return err
	}
}

func (h *RedisHook) record(ctx context.Context, cmd string, start time.Time, failed bool) {
	o := h.opts.Get(cmd)
	h.latency.Record(ctx, time.Since(start).Seconds(), o.Rec...)
	if failed {
		h.errs.Add(ctx, 1, o.Add...)
	}
}

// redisFailure reports whether err, cmd's answer, is a failure: not a
// missing key, nor an answer go-redis deals with itself.
func redisFailure(cmd redis.Cmder, err error) bool {
	switch {
	case err == nil || errors.Is(err, redis.Nil) || connSetup(cmd):
		return false
	case redis.HasErrorPrefix(err, "NOSCRIPT"):
		n := cmd.Name()
		return n != "evalsha" && n != "evalsha_ro"
	}
	return true
}

// connSetup reports whether go-redis sends cmd to set up a connection:
// nbp itself sends none of these.
func connSetup(cmd redis.Cmder) bool {
	switch cmd.Name() {
	case "hello", "auth", "client", "select", "readonly":
		return true
	}
	return false
}
