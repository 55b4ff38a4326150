package features

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/directops/nbp/catalog"
)

// A customer's contact state lives next to the vector, in the same hash
// slot, so that the online read fetches both in one pipelined round trip:
//
//	<prefix>{<id>}:c   hash: the contact state
//	    i:<product>:<channel>:<day>   impressions that day (day: China time, days since 1970-01-01)
//	    p:<channel>:<day>             pushes that day, on an outbound channel
//	    d:<product>                   dismissals since the last suppression
//	    s:<product>                   suppressed until, Unix seconds
//	    v:<product>                   last conversion, Unix seconds
//	<prefix>{<id>}:e   sorted set: event ids seen (score: event time, ms), for idempotency
//
// Outcome events also go to a bounded stream and to daily counters:
//
//	<prefix>events            stream: every accepted event
//	<prefix>stats:<YYYYMMDD>  hash: <product>|<channel>|<strategy>|<type> -> count
//
// The event script touches all four keys at once, so it needs a single
// Redis node (or a cluster where they share a slot); see RecordEvents.

// Event types.
const (
	EventImpression = "impression"
	EventClick      = "click"
	EventConversion = "conversion"
	EventDismiss    = "dismiss"
)

// Event is one validated outcome to record.
type Event struct {
	ID         string
	CustomerID string
	ProductID  string
	Channel    catalog.Channel
	Type       string
	DecisionID string
	Strategy   string // of the decision, "unknown" when not known
	At         time.Time
}

// Record is what the online read returns for one customer.
type Record struct {
	Vector  Vector
	Status  Status
	Contact map[string]string // the raw contact hash; nil or empty when none
}

func (s *Store) contactKey(id string) string { return s.prefix + "{" + id + "}:c" }
func (s *Store) eventsKey(id string) string  { return s.prefix + "{" + id + "}:e" }
func (s *Store) streamKey() string           { return s.prefix + "events" }
func (s *Store) statsKey(day time.Time) string {
	return s.prefix + "stats:" + day.In(chinaTime).Format("20060102")
}

// Read fetches a customer's vector and contact state in one pipelined
// round trip. The error wraps ErrUnavailable when Redis could not answer.
func (s *Store) Read(ctx context.Context, id string) (Record, error) {
	var r [1]Record
	err := s.ReadMany(ctx, []string{id}, r[:])
	return r[0], err
}

// ReadMany fetches many customers' vectors and contact states in one
// pipelined round trip.
func (s *Store) ReadMany(ctx context.Context, ids []string, dst []Record) error {
	if len(dst) < len(ids) {
		return fmt.Errorf("read many: short destination")
	}
	pipe := s.rdb.Pipeline()
	gets := make([]*redis.StringCmd, len(ids))
	hashes := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		gets[i] = pipe.Get(ctx, s.Key(id))
		hashes[i] = pipe.HGetAll(ctx, s.contactKey(id))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("read: %w: %w", ErrUnavailable, err)
	}
	for i := range ids {
		dst[i] = Record{}
		b, err := gets[i].Bytes()
		switch {
		case errors.Is(err, redis.Nil):
			dst[i].Status = NotFound
		case err != nil:
			return fmt.Errorf("read: %w: %w", ErrUnavailable, err)
		default:
			dst[i].Status = s.decode(b, &dst[i].Vector)
		}
		m, err := hashes[i].Result()
		if err != nil {
			return fmt.Errorf("read: %w: %w", ErrUnavailable, err)
		}
		dst[i].Contact = m
	}
	return nil
}

// recordScript records one event atomically: idempotent on its id, it
// updates the contact state, appends to the stream and counts it in the
// day's statistics. It returns 1 for a new event, 0 for a repeat.
var recordScript = redis.NewScript(`
local contact, seen, stream, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, at, typ, prod, ch, day = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local outbound, dismissAfter, dismissDays = ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9])
local now, windowMs, keepDays, keepSec = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])
if redis.call('ZSCORE', seen, id) then return 0 end
redis.call('ZREMRANGEBYSCORE', seen, '-inf', now - windowMs)
redis.call('ZADD', seen, at, id)
redis.call('PEXPIRE', seen, windowMs)
if typ == 'impression' then
  redis.call('HINCRBY', contact, 'i:' .. prod .. ':' .. ch .. ':' .. day, 1)
  if outbound == '1' then redis.call('HINCRBY', contact, 'p:' .. ch .. ':' .. day, 1) end
  local oldest = math.floor(now / 86400000) - keepDays
  for _, f in ipairs(redis.call('HKEYS', contact)) do
    local p = string.sub(f, 1, 2)
    if p == 'i:' or p == 'p:' then
      local d = tonumber(string.match(f, ':(%d+)$'))
      if d and d < oldest then redis.call('HDEL', contact, f) end
    end
  end
elseif typ == 'dismiss' then
  local n = redis.call('HINCRBY', contact, 'd:' .. prod, 1)
  if n >= dismissAfter then
    redis.call('HSET', contact, 's:' .. prod, math.floor(at / 1000) + dismissDays * 86400)
    redis.call('HDEL', contact, 'd:' .. prod)
  end
elseif typ == 'conversion' then
  local sec = math.floor(at / 1000)
  local old = tonumber(redis.call('HGET', contact, 'v:' .. prod) or '0')
  if sec > old then redis.call('HSET', contact, 'v:' .. prod, sec) end
end
redis.call('EXPIRE', contact, keepSec)
redis.call('XADD', stream, 'MAXLEN', '~', ARGV[14], '*', 'event_id', id, 'customer_id', ARGV[15],
  'product_id', prod, 'channel', ch, 'type', typ, 'at', ARGV[2], 'decision_id', ARGV[16], 'strategy', ARGV[17])
redis.call('HINCRBY', stats, prod .. '|' .. ch .. '|' .. ARGV[17] .. '|' .. typ, 1)
redis.call('EXPIRE', stats, ARGV[18])
return 1
`)

// EventOptions are the contact policy and retention an event write needs.
type EventOptions struct {
	Policy    catalog.ContactPolicy
	StreamMax int64         // approximate bound of the stream; default 1,000,000
	StatsTTL  time.Duration // how long daily statistics are kept; default 400 days
	Now       time.Time
}

// RecordEvents writes events, each atomically and idempotently (a repeated
// event id is not counted again), in one pipelined round trip, and reports
// per event whether it was new. Nothing is acknowledged before Redis has
// it: an error means none may be assumed written, and a retry is safe.
func (s *Store) RecordEvents(ctx context.Context, evs []Event, o EventOptions) ([]bool, error) {
	if o.StreamMax <= 0 {
		o.StreamMax = 1_000_000
	}
	if o.StatsTTL <= 0 {
		o.StatsTTL = 400 * 24 * time.Hour
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	pol := o.Policy
	// Day counters are kept as long as the longest cap can look back (caps
	// are at most 366 days); the hash as long as a suppression or a
	// cooling-off can last.
	const pruneDays = 367
	keepSec := (max(pruneDays, pol.DismissDays, pol.ConversionCooloffDays) + 2) * 86400
	window := time.Duration(pol.EventWindowDays) * 24 * time.Hour
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(evs))
	for i := range evs {
		e := &evs[i]
		outbound := "0"
		if pol.PushCaps[e.Channel].Days > 0 {
			outbound = "1"
		}
		cmds[i] = recordScript.Eval(ctx, pipe,
			[]string{s.contactKey(e.CustomerID), s.eventsKey(e.CustomerID), s.streamKey(), s.statsKey(e.At)},
			e.ID, e.At.UnixMilli(), e.Type, e.ProductID, e.Channel.String(), catalog.Day(e.At),
			outbound, pol.DismissAfter, pol.DismissDays,
			o.Now.UnixMilli(), window.Milliseconds(), pruneDays, keepSec,
			o.StreamMax, e.CustomerID, e.DecisionID, e.Strategy, int64(o.StatsTTL.Seconds()))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("record events: %w: %w", ErrUnavailable, err)
	}
	fresh := make([]bool, len(evs))
	for i, c := range cmds {
		n, err := c.Int()
		if err != nil {
			return nil, fmt.Errorf("record events: %w: %w", ErrUnavailable, err)
		}
		fresh[i] = n == 1
	}
	return fresh, nil
}

// reserveScript takes one push from a customer's budget on an outbound
// channel, atomically: it succeeds only while the pushes of the window are
// under the cap.
var reserveScript = redis.NewScript(`
local contact, ch, today, days, maxn = KEYS[1], ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local n = 0
for d = today - days + 1, today do
  n = n + tonumber(redis.call('HGET', contact, 'p:' .. ch .. ':' .. d) or '0')
end
if n >= maxn then return 0 end
redis.call('HINCRBY', contact, 'p:' .. ch .. ':' .. today, 1)
redis.call('EXPIRE', contact, ARGV[5])
return 1
`)

// ReservePush takes one push on an outbound channel from the customer's
// cap, atomically: concurrent callers can never push past it. It reports
// whether the push may go out.
func (s *Store) ReservePush(ctx context.Context, id string, ch catalog.Channel, cp catalog.Cap, now time.Time) (bool, error) {
	if cp.Days <= 0 {
		return true, nil
	}
	n, err := reserveScript.Run(ctx, s.rdb, []string{s.contactKey(id)},
		ch.String(), catalog.Day(now), cp.Days, cp.Max, 400*86400).Int()
	if err != nil {
		return false, fmt.Errorf("reserve push: %w: %w", ErrUnavailable, err)
	}
	return n == 1, nil
}

// ContactHistory parses a raw contact hash for the catalog's policies.
// Fields it does not understand (another catalog's products) are skipped.
func (pr *Profile) ContactHistory(raw map[string]string) *catalog.ContactHistory {
	if len(raw) == 0 {
		return nil
	}
	h := &catalog.ContactHistory{}
	for f, v := range raw {
		parts := strings.Split(f, ":")
		switch parts[0] {
		case "i", "p":
			want := 4
			if parts[0] == "p" {
				want = 3
			}
			if len(parts) != want {
				continue
			}
			k := -1
			if parts[0] == "i" {
				var ok bool
				if k, ok = pr.index[parts[1]]; !ok {
					continue
				}
			}
			ch, err := catalog.ParseChannel(parts[len(parts)-2])
			day, err2 := strconv.Atoi(parts[len(parts)-1])
			n, err3 := strconv.Atoi(v)
			if err != nil || err2 != nil || err3 != nil {
				continue
			}
			h.Counts = append(h.Counts, catalog.DayCount{Product: k, Channel: ch, Day: day, N: n})
		case "s", "v":
			if len(parts) != 2 {
				continue
			}
			k, ok := pr.index[parts[1]]
			sec, err := strconv.ParseInt(v, 10, 64)
			if !ok || err != nil {
				continue
			}
			m := &h.SuppressedUntil
			if parts[0] == "v" {
				m = &h.ConvertedAt
			}
			if *m == nil {
				*m = make(map[int]time.Time, 2)
			}
			(*m)[k] = time.Unix(sec, 0)
		}
	}
	return h
}

// StatRow is one day's counts for a product on a channel under a strategy.
type StatRow struct {
	Day                                         time.Time
	ProductID, Channel, Strategy                string
	Impressions, Clicks, Conversions, Dismisses int64
}

// Stats reads the daily counters of the days from..to (China time,
// inclusive) in one round trip.
func (s *Store) Stats(ctx context.Context, from, to time.Time) ([]StatRow, error) {
	from, to = from.In(chinaTime), to.In(chinaTime)
	var days []time.Time
	for d := time.Date(from.Year(), from.Month(), from.Day(), 0, 0, 0, 0, chinaTime); !d.After(to); d = d.AddDate(0, 0, 1) {
		days = append(days, d)
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(days))
	for i, d := range days {
		cmds[i] = pipe.HGetAll(ctx, s.statsKey(d))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("stats: %w: %w", ErrUnavailable, err)
	}
	var rows []StatRow
	for i, c := range cmds {
		m, err := c.Result()
		if err != nil {
			return nil, fmt.Errorf("stats: %w: %w", ErrUnavailable, err)
		}
		byKey := map[[3]string]int{} // index in rows
		for field, v := range m {
			parts := strings.Split(field, "|")
			n, err := strconv.ParseInt(v, 10, 64)
			if len(parts) != 4 || err != nil {
				continue
			}
			k := [3]string{parts[0], parts[1], parts[2]}
			j, ok := byKey[k]
			if !ok {
				j = len(rows)
				rows = append(rows, StatRow{Day: days[i], ProductID: parts[0], Channel: parts[1], Strategy: parts[2]})
				byKey[k] = j
			}
			r := &rows[j]
			switch parts[3] {
			case EventImpression:
				r.Impressions += n
			case EventClick:
				r.Clicks += n
			case EventConversion:
				r.Conversions += n
			case EventDismiss:
				r.Dismisses += n
			}
		}
	}
	return rows, nil
}
