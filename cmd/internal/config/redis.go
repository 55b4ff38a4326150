package config

import (
	"flag"

	"github.com/redis/go-redis/v9"

	"github.com/directops/nbp/features"
)

// Redis is the connection to the feature store's Redis.
type Redis struct {
	Addrs    []string // one address, or a cluster's nodes
	Password Secret
	Prefix   string
	Timeouts features.Timeouts
}

// Register adds -redis and -redis-prefix to fs, with REDIS_ADDR,
// REDIS_PASSWORD and NBP_REDIS_PREFIX as defaults; addr is the default
// address when REDIS_ADDR is unset ("" for none).
func (r *Redis) Register(fs *flag.FlagSet, env *Env, addr, usage string) {
	r.Addrs = List(env.String("REDIS_ADDR", addr))
	r.Password = Secret(env.Get("REDIS_PASSWORD"))
	fs.Func("redis", usage, func(s string) error {
		r.Addrs = List(s)
		return nil
	})
	fs.StringVar(&r.Prefix, "redis-prefix", env.String("NBP_REDIS_PREFIX", features.DefaultPrefix), "key prefix (env NBP_REDIS_PREFIX)")
}

// RegisterTimeouts adds the client's timeouts to fs, starting from t.
func (r *Redis) RegisterTimeouts(fs *flag.FlagSet, env *Env, t features.Timeouts) {
	r.Timeouts = t
	fs.DurationVar(&r.Timeouts.Read, "redis-read-timeout", env.Duration("NBP_REDIS_READ_TIMEOUT", t.Read), "Redis read timeout")
	fs.DurationVar(&r.Timeouts.Write, "redis-write-timeout", env.Duration("NBP_REDIS_WRITE_TIMEOUT", t.Write), "Redis write timeout")
	fs.DurationVar(&r.Timeouts.Pool, "redis-pool-timeout", env.Duration("NBP_REDIS_POOL_TIMEOUT", t.Pool), "wait for a Redis connection")
	fs.DurationVar(&r.Timeouts.Dial, "redis-dial-timeout", env.Duration("NBP_REDIS_DIAL_TIMEOUT", t.Dial), "Redis dial timeout")
}

// Client returns a client built as the store needs it (deadlines honoured,
// one retry).
func (r *Redis) Client() redis.UniversalClient {
	return redis.NewUniversalClient(features.RedisOptions(r.Addrs, r.Password.Reveal(), r.Timeouts))
}
