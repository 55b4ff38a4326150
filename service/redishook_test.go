package service_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/directops/nbp/features"
	"github.com/directops/nbp/features/redistest"
	"github.com/directops/nbp/service/telemetry"
)

// failedCommands records every command that failed, by name, pipelined
// or not.
type failedCommands struct {
	mu    sync.Mutex
	names []string
}

func (f *failedCommands) DialHook(next redis.DialHook) redis.DialHook { return next }

func (f *failedCommands) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		f.add(cmd, err)
		return err
	}
}

func (f *failedCommands) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			f.add(c, c.Err())
		}
		return err
	}
}

func (f *failedCommands) add(cmd redis.Cmder, err error) {
	if err != nil && !errors.Is(err, redis.Nil) {
		f.mu.Lock()
		f.names = append(f.names, cmd.Name()+": "+err.Error())
		f.mu.Unlock()
	}
}

// TestRedisHookCountsNoConnectionSetup opens fresh connections and checks
// that nbp.redis.command.errors counts the one command that failed, not
// the commands go-redis sends to set a connection up (CLIENT SETINFO,
// CLIENT MAINT_NOTIFICATIONS, which Redis before 8 refuses), nor the
// NOSCRIPT a Script answers with EVAL.
func TestRedisHookCountsNoConnectionSetup(t *testing.T) {
	roomy := features.Timeouts{Dial: 2 * time.Second, Read: 2 * time.Second, Write: 2 * time.Second, Pool: 2 * time.Second}
	tests := []struct {
		name string
		opts *redis.UniversalOptions
		// quiet: the options send no setup command a server may refuse.
		quiet bool
	}{
		{"production options", features.RedisOptions([]string{redisServer.Addr}, "", roomy), true},
		{"go-redis defaults", &redis.UniversalOptions{Addrs: []string{redisServer.Addr}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			reader := sdkmetric.NewManualReader()
			hook, err := telemetry.NewRedisHook(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
			if err != nil {
				t.Fatal(err)
			}
			rdb := redis.NewUniversalClient(tt.opts)
			t.Cleanup(func() { _ = rdb.Close() })
			failed := &failedCommands{}
			rdb.AddHook(failed)
			rdb.AddHook(hook)

			// Several connections at once, each fresh: every one sets up.
			key := redistest.Prefix(t) + "empty"
			var wg sync.WaitGroup
			for i := 0; i < 4; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := rdb.BLPop(ctx, 200*time.Millisecond, key).Err(); !errors.Is(err, redis.Nil) {
						t.Errorf("blpop: %v", err)
					}
				}()
			}
			wg.Wait()
			if err := rdb.Ping(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			// A script the server does not know yet: EVALSHA is refused
			// with NOSCRIPT, and the Script sends EVAL.
			script := redis.NewScript("-- " + redistest.Prefix(t) + "\nreturn 1")
			if err := script.Run(ctx, rdb, nil).Err(); err != nil {
				t.Fatal(err)
			}
			// One real failure, which must be counted.
			word := redistest.Prefix(t) + "word"
			if err := rdb.Set(ctx, word, "x", time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
			if err := rdb.Incr(ctx, word).Err(); err == nil {
				t.Fatal("INCR of a word succeeded")
			}
			t.Logf("%d connections made; failed commands: %q", rdb.PoolStats().Misses, failed.names)

			m := collectBatchMetrics(t, reader)
			if got := m.byLabel("nbp.redis.command.errors", "command"); len(got) != 1 || got["incr"] != 1 {
				t.Errorf("command errors %v, want only incr=1", got)
			}
			if m.sum("nbp.redis.command.duration", attribute.String("command", "blpop")) != 4 {
				t.Errorf("blpop latencies: %v", m["nbp.redis.command.duration"])
			}
			if tt.quiet && len(failed.names) != 2 {
				t.Errorf("failed commands %q, want only the EVALSHA and the INCR", failed.names)
			}
		})
	}
}
