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
//	<prefix>{<id>}:p   sorted set: those of them whose stream entry and count are not
//	                   confirmed yet (score: event time, ms); see RecordEvents
//
// Outcome events also go to a bounded stream and to daily counters. Each of
// these keys hashes to a slot of its own:
//
//	<prefix>events            stream: every accepted event, at least once
//	<prefix>stats:<YYYYMMDD>  hash: <product>|<channel>|<strategy>|<type> -> count, and for
//	                          an agent's events @|<agent>|<team>|<product>|<channel>|<strategy>|<type> -> count
//	<prefix>{<prefix>stats:<YYYYMMDD>}:m:<customer_id>:<event_id>
//	                          string: the event is counted in that day's hash. Its
//	                          hash tag is the hash's name, so it lives in the
//	                          hash's slot and is set in the same script as the count.
//
// No command and no script touches keys of two slots, so the same code
// runs on a single Redis and on a Redis Cluster. (A prefix that holds a
// hash tag of its own puts every key in that one slot, which works too; a
// prefix with an unmatched brace is not supported on a cluster.)

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
	// Agent is the WeCom userid of the agent (an employee, not customer
	// data) whose panel the event came from, "" for none; Team is the
	// agent's team or branch, "" when not configured. Neither holds '|'.
	Agent, Team string
}

// Record is what the online read returns for one customer.
type Record struct {
	Vector  Vector
	Status  Status
	Contact map[string]string // the raw contact hash; nil or empty when none
	// Batch is the customer's offers in the batch run asked for (product
	// ids by rank), nil when none.
	Batch []string
}

// ResultKey is a customer's offers in a batch run: product ids by rank,
// comma-separated.
func (s *Store) ResultKey(id, run string) string { return s.keys.BatchResult(id, run) }

func (s *Store) contactKey(id string) string   { return s.keys.Contact(id) }
func (s *Store) eventsKey(id string) string    { return s.keys.Events(id) }
func (s *Store) pendingKey(id string) string   { return s.keys.Pending(id) }
func (s *Store) streamKey() string             { return s.keys.Stream() }
func (s *Store) statsKey(day time.Time) string { return s.keys.Stats(day) }

// countedKey returns the key of the mark that says an event is counted in
// the statistics hash stats.
func (s *Store) countedKey(stats, customerID, eventID string) string {
	return s.keys.Counted(stats, customerID, eventID)
}

// hashTag returns the part of a key Redis Cluster hashes when it is not
// the whole key: what is between the first '{' and the first '}' after
// it, when that is not empty; "" otherwise.
func hashTag(key string) string {
	_, rest, ok := strings.Cut(key, "{")
	if !ok {
		return ""
	}
	tag, _, ok := strings.Cut(rest, "}")
	if !ok {
		return ""
	}
	return tag
}

// Read fetches a customer's vector and contact state in one pipelined
// round trip. The error wraps ErrUnavailable when Redis could not answer.
func (s *Store) Read(ctx context.Context, id string) (Record, error) {
	var r [1]Record
	err := s.ReadMany(ctx, []string{id}, r[:])
	return r[0], err
}

// ReadMany fetches many customers' vectors and contact states in one
// pipelined round trip (on a cluster, one to each node that holds some of
// them, in parallel).
func (s *Store) ReadMany(ctx context.Context, ids []string, dst []Record) error {
	return s.ReadManyRun(ctx, ids, "", dst)
}

// ReadManyRun is ReadMany that also fetches, in the same round trip, each
// customer's offers in a batch run (none when run is "").
func (s *Store) ReadManyRun(ctx context.Context, ids []string, run string, dst []Record) error {
	if len(dst) < len(ids) {
		return fmt.Errorf("read many: short destination")
	}
	pipe := s.rdb.Pipeline()
	gets := make([]*redis.StringCmd, len(ids))
	hashes := make([]*redis.MapStringStringCmd, len(ids))
	var batch []*redis.StringCmd
	if run != "" {
		batch = make([]*redis.StringCmd, len(ids))
	}
	for i, id := range ids {
		gets[i] = pipe.Get(ctx, s.Key(id))
		hashes[i] = pipe.HGetAll(ctx, s.contactKey(id))
		if batch != nil {
			batch[i] = pipe.Get(ctx, s.ResultKey(id, run))
		}
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
		if batch != nil {
			if list, err := batch[i].Result(); err == nil && list != "" {
				dst[i].Batch = strings.Split(list, ",")
			}
		}
	}
	return nil
}

// recordScript is the first step of recording one event, on the customer's
// slot, atomically. A new event id is remembered as seen and as pending
// (its stream entry and count not yet confirmed), and the contact state is
// updated. It returns {state, event time in ms}: eventNew with the event's
// time; eventPending, for an id an earlier attempt recorded but did not
// confirm, with the time that attempt recorded; eventDone for an id
// recorded and confirmed, a duplicate. The contact state changes only for
// a new event.
var recordScript = redis.NewScript(`
local contact, seen, pending = KEYS[1], KEYS[2], KEYS[3]
local id, at, typ, prod, ch, day = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local outbound, dismissAfter, dismissDays = ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9])
local now, windowMs, keepDays, keepSec = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])
local t = redis.call('ZSCORE', seen, id)
if t then
  local p = redis.call('ZSCORE', pending, id)
  if p then return {2, p} end
  return {0, t}
end
redis.call('ZREMRANGEBYSCORE', seen, '-inf', now - windowMs)
redis.call('ZADD', seen, at, id)
redis.call('PEXPIRE', seen, windowMs)
redis.call('ZREMRANGEBYSCORE', pending, '-inf', now - windowMs)
redis.call('ZADD', pending, at, id)
redis.call('PEXPIRE', pending, windowMs)
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
return {1, ARGV[2]}
`)

// The states recordScript returns.
const (
	eventDone    = 0
	eventNew     = 1
	eventPending = 2
)

// countScript counts one event in a day's statistics once: only the call
// that sets the event's mark (KEYS[2], in the hash's slot) increments the
// counter. It returns 1 when it counted, 0 when the event was counted
// before.
var countScript = redis.NewScript(`
if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[3]) then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
if ARGV[4] then redis.call('HINCRBY', KEYS[1], ARGV[4], 1) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
`)

const (
	// attemptLimit bounds one call of RecordEvents.
	attemptLimit = time.Minute
	// countedLinger is how long an event's counted mark is kept once the
	// event is confirmed: long enough for any attempt still under way
	// (one that saw the event pending before it was confirmed) to find
	// it. It must exceed attemptLimit by far more than a write can lag.
	countedLinger = time.Hour
)

// EventOptions are the contact policy and retention an event write needs.
type EventOptions struct {
	Policy    catalog.ContactPolicy
	StreamMax int64         // approximate bound of the stream; default 1,000,000
	StatsTTL  time.Duration // how long daily statistics are kept; default 400 days
	// Now is when the events are recorded, which day's contact counts and
	// statistics they join; default the store's clock.
	Now time.Time
}

// recorded is evs[i] as step 1 found it: at is the time first recorded.
type recorded struct {
	i  int
	at time.Time
}

// RecordEvents writes events idempotently (an event id already recorded
// for its customer is not counted again) and reports per event whether it
// was new. Nothing is acknowledged before Redis has it: an error means none
// may be assumed written, and a retry of the same events is safe. The
// error wraps ErrUnavailable.
//
// An event touches keys in three hash slots (the customer's, the stream's
// and its day's statistics), which on a Redis Cluster may live on three
// nodes, so it is written in steps, each pipelined for the whole batch and
// each safe to repeat:
//
//  1. On the customer's slot, one script: an id seen before is a duplicate
//     (reported not new; nothing more is written) unless it is still
//     pending; a new id is remembered as seen and as pending, and the
//     contact state is updated. So the contact state changes once per
//     event id, whatever is retried.
//  2. For every new or pending event: its count in the day's statistics,
//     by a script on the statistics' slot that increments only when it
//     sets the event's counted mark (so once, however often this step
//     runs), and its stream entry.
//  3. On the customer's slot: the events are confirmed (no longer pending).
//  4. The counted marks of the batch's confirmed events (new ones and
//     duplicates: this also finishes a call that failed after step 3),
//     kept for twice the event window while their event may be pending,
//     are shortened to countedLinger. A failure here is no error: the
//     events are recorded, the marks just expire later.
//
// A failure in steps 1 to 3 is an error; what was done stays done, and the
// retry goes on from there: an event it finds pending (recorded, not
// confirmed) goes through steps 2 and 3 again and is reported new, since
// no call has reported it yet; an event it finds confirmed is a duplicate.
// The count is never repeated. The stream entry may be, when the failed
// call had written it: the stream holds every acknowledged event at least
// once, and a consumer that needs each exactly once drops the
// (customer_id, event_id) pairs it has seen. Two calls racing with the same
// new event may both report it new and both add it to the stream; it is
// still counted once and changes the contact state once. A retry records
// the event as first recorded: its time, and so its statistics day, is the
// first attempt's.
//
// The count is exact as long as no write reaches Redis more than
// countedLinger after the call that sent it started (a call gives up after
// attemptLimit): a call that saw an event pending could otherwise count it
// after another call had confirmed it and its mark had expired.
func (s *Store) RecordEvents(ctx context.Context, evs []Event, o EventOptions) ([]bool, error) {
	if o.StreamMax <= 0 {
		o.StreamMax = 1_000_000
	}
	if o.StatsTTL <= 0 {
		o.StatsTTL = 400 * 24 * time.Hour
	}
	if o.Now.IsZero() {
		o.Now = s.now()
	}
	ctx, cancel := context.WithTimeout(ctx, attemptLimit)
	defer cancel()
	fresh := make([]bool, len(evs))
	todo, done, err := s.recordContact(ctx, evs, o)
	if err != nil {
		return nil, err
	}
	if len(todo) > 0 {
		window := time.Duration(o.Policy.EventWindowDays) * 24 * time.Hour
		if err := s.publish(ctx, evs, todo, o, 2*window+24*time.Hour); err != nil {
			return nil, err
		}
		if err := s.confirm(ctx, evs, todo); err != nil {
			return nil, err
		}
	}
	s.shortenMarks(ctx, evs, append(todo, done...))
	for _, p := range todo {
		fresh[p.i] = true
	}
	return fresh, nil
}

// recordContact is step 1: it returns the events that are new or pending
// (todo), and those recorded and confirmed before (done), in the order
// given. The second of two events with the same customer and id in one
// batch is a duplicate, in neither.
func (s *Store) recordContact(ctx context.Context, evs []Event, o EventOptions) (todo, done []recorded, err error) {
	pol := o.Policy
	// Day counters are kept as long as the longest cap can look back (caps
	// are at most 366 days); the hash as long as a suppression or a
	// cooling-off can last.
	const pruneDays = 367
	keepSec := (max(pruneDays, pol.DismissDays, pol.ConversionCooloffDays) + 2) * 86400
	window := time.Duration(pol.EventWindowDays) * 24 * time.Hour
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(evs))
	first := make(map[[2]string]bool, len(evs))
	for i := range evs {
		e := &evs[i]
		k := [2]string{e.CustomerID, e.ID}
		if first[k] {
			continue
		}
		first[k] = true
		outbound := "0"
		if pol.PushCaps[e.Channel].Days > 0 {
			outbound = "1"
		}
		cmds[i] = recordScript.Eval(ctx, pipe,
			[]string{s.contactKey(e.CustomerID), s.eventsKey(e.CustomerID), s.pendingKey(e.CustomerID)},
			e.ID, e.At.UnixMilli(), e.Type, e.ProductID, e.Channel.String(), catalog.Day(e.At),
			outbound, pol.DismissAfter, pol.DismissDays,
			o.Now.UnixMilli(), window.Milliseconds(), pruneDays, keepSec)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, nil, fmt.Errorf("record events: %w: %w", ErrUnavailable, err)
	}
	for i, c := range cmds {
		if c == nil {
			continue
		}
		state, at, err := recordResult(c)
		if err != nil {
			return nil, nil, fmt.Errorf("record events: %w: %w", ErrUnavailable, err)
		}
		switch state {
		case eventNew, eventPending:
			todo = append(todo, recorded{i: i, at: at})
		case eventDone:
			done = append(done, recorded{i: i, at: at})
		}
	}
	return todo, done, nil
}

// recordResult reads recordScript's answer.
func recordResult(c *redis.Cmd) (state int64, at time.Time, err error) {
	r, err := c.Slice()
	if err != nil {
		return 0, time.Time{}, err
	}
	if len(r) != 2 {
		return 0, time.Time{}, fmt.Errorf("record script answered %v", r)
	}
	state, ok := r[0].(int64)
	score, ok2 := r[1].(string)
	ms, err := strconv.ParseFloat(score, 64)
	if !ok || !ok2 || err != nil {
		return 0, time.Time{}, fmt.Errorf("record script answered %v", r)
	}
	return state, time.UnixMilli(int64(ms)), nil
}

// publish is step 2: each event's count, exactly once, and its stream
// entry. markTTL is how long a counted mark is kept while its event may be
// pending.
func (s *Store) publish(ctx context.Context, evs []Event, todo []recorded, o EventOptions, markTTL time.Duration) error {
	statsTTL := int64(o.StatsTTL.Seconds())
	pipe := s.rdb.Pipeline()
	for _, p := range todo {
		e := &evs[p.i]
		ch := e.Channel.String()
		stats := s.statsKey(p.at)
		field := e.ProductID + "|" + ch + "|" + e.Strategy + "|" + e.Type
		args := []any{field, statsTTL, markTTL.Milliseconds()}
		values := []any{"event_id", e.ID, "customer_id", e.CustomerID, "product_id", e.ProductID,
			"channel", ch, "type", e.Type, "at", p.at.UnixMilli(),
			"decision_id", e.DecisionID, "strategy", e.Strategy}
		if e.Agent != "" {
			// Counted with the same mark: once, or not at all.
			args = append(args, agentField+"|"+e.Agent+"|"+e.Team+"|"+field)
			values = append(values, "agent", e.Agent, "team", e.Team)
		}
		countScript.Eval(ctx, pipe, []string{stats, s.countedKey(stats, e.CustomerID, e.ID)}, args...)
		pipe.XAdd(ctx, &redis.XAddArgs{Stream: s.streamKey(), MaxLen: o.StreamMax, Approx: true, Values: values})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("record events: %w: %w", ErrUnavailable, err)
	}
	return nil
}

// confirm is step 3: the events are no longer pending.
func (s *Store) confirm(ctx context.Context, evs []Event, todo []recorded) error {
	ids := make(map[string][]any)
	var customers []string
	for _, p := range todo {
		e := &evs[p.i]
		if _, ok := ids[e.CustomerID]; !ok {
			customers = append(customers, e.CustomerID)
		}
		ids[e.CustomerID] = append(ids[e.CustomerID], e.ID)
	}
	pipe := s.rdb.Pipeline()
	for _, c := range customers {
		pipe.ZRem(ctx, s.pendingKey(c), ids[c]...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("record events: %w: %w", ErrUnavailable, err)
	}
	return nil
}

// shortenMarks is step 4: confirmed events' counted marks need only
// outlive the attempts still under way.
func (s *Store) shortenMarks(ctx context.Context, evs []Event, confirmed []recorded) {
	if len(confirmed) == 0 {
		return
	}
	pipe := s.rdb.Pipeline()
	for _, p := range confirmed {
		e := &evs[p.i]
		pipe.PExpire(ctx, s.countedKey(s.statsKey(p.at), e.CustomerID, e.ID), countedLinger)
	}
	_, _ = pipe.Exec(ctx) // the marks expire anyway
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
	// Agent and Team are set on an agent's rows, which count the agent's
	// events again: the rows without an agent hold every event once.
	Agent, Team string
}

// agentField starts a statistics field that counts an agent's events.
const agentField = "@"

// Stats reads the daily counters of the days from..to (China time,
// inclusive) in one round trip.
func (s *Store) Stats(ctx context.Context, from, to time.Time) ([]StatRow, error) {
	days := catalog.Days(from, to)
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
		byKey := map[[5]string]int{} // index in rows
		for field, v := range m {
			parts := strings.Split(field, "|")
			n, err := strconv.ParseInt(v, 10, 64)
			var agent, team string
			switch {
			case err != nil:
				continue
			case len(parts) == 7 && parts[0] == agentField:
				agent, team, parts = parts[1], parts[2], parts[3:]
			case len(parts) != 4:
				continue
			}
			k := [5]string{parts[0], parts[1], parts[2], agent, team}
			j, ok := byKey[k]
			if !ok {
				j = len(rows)
				rows = append(rows, StatRow{Day: days[i], ProductID: parts[0], Channel: parts[1], Strategy: parts[2], Agent: agent, Team: team})
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
