package features

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// ErrUnavailable wraps every failure to reach Redis (refused, timed out,
// cut): the caller falls back, it is not the customer's fault.
var ErrUnavailable = errors.New("feature store unavailable")

// Status is what a read found for one customer.
type Status uint8

// The statuses of a read.
const (
	Found    Status = iota // a current vector
	Stale                  // a vector older than the store's MaxAge: served, and flagged
	NotFound               // no vector: a cold start
	Corrupt                // a vector that cannot be decoded (another schema version)
)

var statusNames = [...]string{"found", "stale", "not_found", "corrupt"}

// String returns the status's name.
func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "unknown"
}

// Usable reports whether the vector may be used.
func (s Status) Usable() bool { return s == Found || s == Stale }

// DefaultPrefix starts every key nbp writes to Redis, unless configured
// otherwise.
const DefaultPrefix = "nbp:"

// DefaultMaxAge is how old a vector may be before it is flagged stale,
// unless configured otherwise: two nightly exports.
const DefaultMaxAge = 48 * time.Hour

// Options configures a Store.
type Options struct {
	// Prefix starts every key; default DefaultPrefix.
	Prefix string
	// MaxAge is how old a vector may be before it is flagged stale;
	// default DefaultMaxAge.
	MaxAge time.Duration
	// TTL, when set, expires vectors that are not refreshed.
	TTL time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Store keeps customer vectors in Redis, one string key per customer, and
// their contact states, events and statistics (see Keys for the layout).
type Store struct {
	rdb    redis.UniversalClient
	keys   Keys
	maxAge time.Duration
	ttl    time.Duration
	now    func() time.Time
}

// NewStore returns a store on the given client. Build the client with
// RedisOptions so that deadlines are honoured.
func NewStore(rdb redis.UniversalClient, o Options) *Store {
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Store{rdb: rdb, keys: NewKeys(o.Prefix), maxAge: o.MaxAge, ttl: o.TTL, now: o.Now}
}

// Now returns the time on the store's clock.
func (s *Store) Now() time.Time { return s.now() }

// Key returns the Redis key of a customer's vector.
func (s *Store) Key(id string) string { return s.keys.Vector(id) }

// Put stores one customer's vector and lists the customer in the index.
// The write is atomic: a reader sees the old vector or the new one.
func (s *Store) Put(ctx context.Context, id string, v *Vector) error {
	if !ValidID(id) {
		return fmt.Errorf("put: malformed customer id")
	}
	return s.PutMany(ctx, []string{id}, []Vector{*v})
}

// PutMany stores many vectors in one pipeline, and lists the customers in
// the index (see PageIDs). Each customer's write is atomic on its own.
func (s *Store) PutMany(ctx context.Context, ids []string, vs []Vector) error {
	if len(ids) != len(vs) {
		return fmt.Errorf("put many: %d ids for %d vectors", len(ids), len(vs))
	}
	pipe := s.rdb.Pipeline()
	buf := make([]byte, 0, RecordLen("")*len(vs)+16*len(vs))
	for i, id := range ids {
		if !ValidID(id) {
			return fmt.Errorf("put many: malformed customer id at %d", i)
		}
		start := len(buf)
		buf = AppendRecord(buf, &vs[i])
		pipe.Set(ctx, s.Key(id), buf[start:len(buf):len(buf)], s.ttl)
	}
	s.index(ctx, pipe, ids)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("put many: %w: %w", ErrUnavailable, err)
	}
	return nil
}

// Get reads one customer's vector in one round trip. A missing or
// undecodable vector is a status, not an error; the error wraps
// ErrUnavailable when Redis could not answer in time.
func (s *Store) Get(ctx context.Context, id string) (Vector, Status, error) {
	b, err := s.rdb.Get(ctx, s.Key(id)).Bytes()
	if err != nil {
		if errors.Is(err, redis.Nil) {
			return Vector{}, NotFound, nil
		}
		return Vector{}, NotFound, fmt.Errorf("get: %w: %w", ErrUnavailable, err)
	}
	var v Vector
	return v, s.decode(b, &v), nil
}

// GetMany reads many customers' vectors in one pipelined round trip into
// dst and st, which must have len(ids) elements.
func (s *Store) GetMany(ctx context.Context, ids []string, dst []Vector, st []Status) error {
	if len(dst) < len(ids) || len(st) < len(ids) {
		return fmt.Errorf("get many: short destination")
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.Get(ctx, s.Key(id))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("get many: %w: %w", ErrUnavailable, err)
	}
	for i, cmd := range cmds {
		b, err := cmd.Bytes()
		switch {
		case errors.Is(err, redis.Nil):
			st[i] = NotFound
		case err != nil:
			return fmt.Errorf("get many: %w: %w", ErrUnavailable, err)
		default:
			st[i] = s.decode(b, &dst[i])
		}
	}
	return nil
}

func (s *Store) decode(b []byte, v *Vector) Status {
	if err := DecodeRecord(b, v); err != nil {
		return Corrupt
	}
	if s.now().Sub(v.UpdatedAt) > s.maxAge {
		return Stale
	}
	return Found
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}

// Timeouts bound every Redis call of the online path.
type Timeouts struct {
	Dial, Read, Write, Pool time.Duration
}

// DefaultTimeouts suit an online request with a deadline of tens of
// milliseconds.
func DefaultTimeouts() Timeouts {
	return Timeouts{Dial: 200 * time.Millisecond, Read: 100 * time.Millisecond, Write: 100 * time.Millisecond, Pool: 50 * time.Millisecond}
}

// BulkTimeouts suit pipelines of hundreds or thousands of rows: the
// nightly batch and the export loader.
func BulkTimeouts() Timeouts {
	return Timeouts{Dial: time.Second, Read: 5 * time.Second, Write: 5 * time.Second, Pool: 5 * time.Second}
}

// RedisOptions returns client options that honour context deadlines
// (ContextTimeoutEnabled), bound every wait with t, and retry a failed
// command at most once. addrs holds one address, or several for a cluster.
func RedisOptions(addrs []string, password string, t Timeouts) *redis.UniversalOptions {
	return &redis.UniversalOptions{
		Addrs:    addrs,
		Password: password,
		// One dial per attempt: the client's own default (5 dials, 100ms
		// apart) would hold a caller for most of a second, or for its whole
		// deadline, before it could fall back.
		DialerRetries:         1,
		DialTimeout:           t.Dial,
		ReadTimeout:           t.Read,
		WriteTimeout:          t.Write,
		PoolTimeout:           t.Pool,
		ContextTimeoutEnabled: true,
		MaxRetries:            1,
		MinRetryBackoff:       time.Millisecond,
		MaxRetryBackoff:       5 * time.Millisecond,
		// No connection-setup commands that servers may refuse: CLIENT
		// SETINFO (identity) and CLIENT MAINT_NOTIFICATIONS (Redis
		// Enterprise maintenance events; Redis before 8 answers "unknown
		// subcommand"). go-redis shrugs the refusal off, but it costs a
		// round trip and shows as a failed command on every new connection.
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
}
