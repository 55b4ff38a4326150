// Package audit keeps the record of every decision, so that it can be
// explained afterwards (which model or rule produced it, on which data, what
// it offered), without personal data: the customer id is a keyed hash, the
// features only a hash of the vector used. Records are written to Redis in
// the background, in batches; while Redis cannot take them they wait in a
// spill directory.
package audit

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/service"
	"github.com/directops/nbp/service/internal/appendjson"
	"github.com/directops/nbp/service/telemetry"
)

// ErrNotFound is returned for a decision id with no audit record
// (never made, or past its retention).
var ErrNotFound = errors.New("decision not found")

// ErrBehind is returned for a decision id with no audit record in
// Redis while records kept in the spill during an outage are still to be
// written there: it may be one of them.
var ErrBehind = errors.New("audit records kept during a Redis outage are still being written")

// Record is what is kept of a decision, so that it can be explained
// afterwards: what produced it, on which data, and what it offered. It holds
// no personal data: the customer id is a keyed hash and the features only a
// hash of the vector used. The one exception is a feature log's record
// (Options.WithFeatures), which also holds the feature values the decision
// was made on, as training data.
type Record struct {
	DecisionID      string    `json:"decision_id"`
	At              time.Time `json:"at"`
	Channel         string    `json:"channel"`
	CustomerHash    string    `json:"customer_hash"`
	ModelVersion    string    `json:"model_version"`
	CatalogVersion  string    `json:"catalog_version"`
	ConfigVersion   string    `json:"config_version"`
	Strategy        string    `json:"strategy"`
	Degraded        bool      `json:"degraded"`
	DegradedReasons []string  `json:"degraded_reasons"`
	FeatureStatus   string    `json:"feature_status"`
	FeaturesHash    string    `json:"features_hash,omitempty"`
	Items           []Item    `json:"items"`
	// Features are the values of the feature schema the decision was made
	// on: in a feature log's records only.
	Features *Features `json:"features,omitempty"`
}

// Features are a decision's feature values, in the order of the feature
// schema of that version (features.Names).
type Features struct {
	Schema int           `json:"schema"`
	Values FeatureValues `json:"values"`
}

// FeatureValues are feature values with NaN, a missing value, as JSON's
// null.
type FeatureValues []float32

// MarshalJSON writes NaN as null.
func (v FeatureValues) MarshalJSON() ([]byte, error) { return v.appendJSON(nil), nil }

func (v FeatureValues) appendJSON(b []byte) []byte {
	if v == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, f := range v {
		if i > 0 {
			b = append(b, ',')
		}
		if f != f || math.IsInf(float64(f), 0) {
			b = append(b, "null"...)
		} else {
			b = appendjson.Float32(b, f)
		}
	}
	return append(b, ']')
}

// UnmarshalJSON reads null as NaN.
func (v *FeatureValues) UnmarshalJSON(b []byte) error {
	var ps []*float32
	if err := json.Unmarshal(b, &ps); err != nil {
		return err
	}
	if ps == nil {
		*v = nil
		return nil
	}
	out := make(FeatureValues, len(ps))
	for i, p := range ps {
		out[i] = float32(math.NaN())
		if p != nil {
			out[i] = *p
		}
	}
	*v = out
	return nil
}

// Item is one offered product of a decision.
type Item struct {
	Rank       int      `json:"rank"`
	ProductID  string   `json:"product_id"`
	Propensity float64  `json:"propensity"`
	Priority   float64  `json:"priority"`
	Reasons    []string `json:"reasons"`
	ScoredBy   string   `json:"scored_by,omitempty"`
}

// Hasher turns customer ids into keyed hashes (HMAC-SHA256): stable
// for one key, so a customer's decisions can be found, and not reversible
// by enumerating ids without the key.
type Hasher struct {
	key []byte
}

// NewHasher returns a hasher with the given secret key.
func NewHasher(key []byte) *Hasher { return &Hasher{key: key} }

// Hash returns the customer id's hash, 32 hex characters.
func (h *Hasher) Hash(id string) string {
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte(id))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// NewRecord makes the audit record of a decision.
func NewRecord(d *service.Decision, h *Hasher) Record {
	r := Record{
		DecisionID:      d.ID,
		At:              d.At.UTC(),
		Channel:         d.Channel.String(),
		CustomerHash:    h.Hash(d.CustomerID),
		ModelVersion:    d.ModelVersion,
		CatalogVersion:  d.CatalogVersion,
		ConfigVersion:   d.ConfigVersion,
		Strategy:        string(d.Strategy),
		Degraded:        d.Degraded,
		DegradedReasons: d.DegradedReasons,
		FeatureStatus:   d.FeatureStatus,
		FeaturesHash:    d.FeaturesHash,
		Items:           make([]Item, len(d.Items)),
	}
	if r.DegradedReasons == nil {
		r.DegradedReasons = []string{}
	}
	for i, it := range d.Items {
		codes := make([]string, len(it.Reasons))
		for j, rs := range it.Reasons {
			codes[j] = rs.Code
		}
		r.Items[i] = Item{Rank: it.Rank, ProductID: it.Product.ID, Propensity: it.Propensity, Priority: it.Priority, Reasons: codes, ScoredBy: string(it.ScoredBy)}
	}
	return r
}

// Options configures an Log.
type Options struct {
	Prefix    string        // key prefix, default features.DefaultPrefix
	Retention time.Duration // how long records are kept; default 400 days
	Queue     int           // records waiting to be written; default 10,000
	Batch     int           // records per pipeline; default 256
	Linger    time.Duration // longest wait to fill a batch; default 5ms
	// SpillDir, when set, is the directory where records wait while Redis
	// cannot take them (see Log); one process a directory. Empty:
	// such records are lost, and counted.
	SpillDir string
	// SpillMax bounds the bytes waiting in SpillDir; default 1 GiB. Past
	// it, records are lost, and counted.
	SpillMax int64
	// WriteTimeout bounds one batch's write to Redis; default 500ms.
	WriteTimeout time.Duration
	// RetryEvery is how often the writer tries Redis again while it
	// fails; default 1s.
	RetryEvery time.Duration
	// Hasher hashes the customer ids of the records Record makes; default
	// one with an empty key.
	Hasher *Hasher
	Logger *slog.Logger
	// WithFeatures makes a feature log: each record also holds the feature
	// values the decision was made on (service.Decision.Features), and a
	// decision without them is not kept.
	WithFeatures bool
	// NoCounts keeps the records alone, without the day's decision counts
	// (Counts): for records of decisions never served, such as a shadow's.
	NoCounts bool
}

// Log keeps audit records in Redis, in hashes by minute:
//
//	<prefix>decisions:<YYYYMMDDHHMM>:<0..15>  hash: decision id -> the record as JSON
//
// (the minute the decision id was made in, UTC; the shard a hash of the
// id), each hash expiring Retention after its last write.
//
// Writes leave the request path: Write queues the record and a background
// writer pipelines batches, so a decision still costs one Redis round trip.
// When the queue is full, Write waits a moment for room.
//
// When a batch cannot be written (Redis refused, cut or past
// WriteTimeout), the writer stops trying Redis for RetryEvery, so that
// the queue keeps draining and decisions never wait on a failing store.
// Meanwhile, with a SpillDir, records go to files there, synced to disk
// every 100ms, and once Redis takes a write again they are written to it, a few
// batches at every wake-up, oldest first; what a previous process left
// there is written at start. Every decision thus stays explainable
// through a Redis outage, a moment later than usual. Without a SpillDir,
// or past SpillMax, records are lost, and counted (Stats).
type Log struct {
	rdb   redis.UniversalClient
	keys  features.Keys
	o     Options
	queue chan Record
	done  chan struct{}
	// notQueued samples the log lines of records Record could not queue.
	notQueued telemetry.LogSampler
	mu        sync.RWMutex // held for reading while sending, for writing while closing
	closed    bool
	closeBy   atomic.Int64 // Close's deadline, unix nanoseconds; 0: none

	// The writer goroutine's own.
	spill      *spill    // nil without SpillDir
	down       bool      // Redis failed the last write
	retryAt    time.Time // when to try Redis again, while down
	lostAt     int64     // lost when Redis last went down, for the log
	lossLogged bool      // a loss to the spill was logged in this outage
	ids        []string
	vals       [][]byte
	buf        []byte

	lost, spilled, replayed, spillBytes atomic.Int64
}

// Stats counts what became of the records that could not be written
// to Redis at once.
type Stats struct {
	Lost       int64 // never written: no spill, spill full, queue full, torn
	Spilled    int64 // written to the spill
	Replayed   int64 // written from the spill to Redis
	SpillBytes int64 // bytes waiting in the spill now
}

// Stats returns the counts so far.
func (a *Log) Stats() Stats {
	return Stats{Lost: a.lost.Load(), Spilled: a.spilled.Load(), Replayed: a.replayed.Load(), SpillBytes: a.spillBytes.Load()}
}

// New starts the background writer; Close stops it. It fails only
// when the spill directory cannot be opened or is another process's.
func New(rdb redis.UniversalClient, o Options) (*Log, error) {
	if o.Prefix == "" {
		o.Prefix = features.DefaultPrefix
	}
	if o.Retention <= 0 {
		o.Retention = 400 * 24 * time.Hour
	}
	if o.Queue <= 0 {
		o.Queue = 10_000
	}
	if o.Batch <= 0 {
		o.Batch = 256
	}
	if o.Linger <= 0 {
		o.Linger = 5 * time.Millisecond
	}
	if o.SpillMax <= 0 {
		o.SpillMax = 1 << 30
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 500 * time.Millisecond
	}
	if o.RetryEvery <= 0 {
		o.RetryEvery = time.Second
	}
	if o.Hasher == nil {
		o.Hasher = NewHasher(nil)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Log{rdb: rdb, keys: features.NewKeys(o.Prefix), o: o, queue: make(chan Record, o.Queue), done: make(chan struct{})}
	a.notQueued.PerSecond = 10
	if o.SpillDir != "" {
		sp, err := openSpill(o.SpillDir, o.SpillMax)
		if err != nil {
			return nil, err
		}
		a.spill = sp
		a.spillBytes.Store(sp.size)
		if !sp.empty() {
			o.Logger.Info("audit records left in the spill by an earlier process: writing them to Redis",
				slog.Int("files", len(sp.pending)), slog.Int64("bytes", sp.size))
		}
	}
	go a.run()
	return a, nil
}

// key returns the hash holding a decision's record: records are grouped
// by the minute their id was made in (ids are time-ordered) and spread
// over 16 hashes a minute, so that a flush of hundreds of records is a few
// HSETs rather than one command each.
func (a *Log) key(id string) string {
	minute := service.DecisionTime(id).UTC().Format("200601021504")
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return a.keys.AuditRecords(minute, int(h.Sum32()%16))
}

// recordWait is how long Record waits for room in a full queue (Redis
// failing): a moment, then the record is counted lost.
const recordWait = 5 * time.Millisecond

// Record queues the record of a decision, to be written in the background:
// no round trip on the decision's path. When the queue is full it waits a
// moment at most, then counts the record lost and logs it (at most ten
// lines a second).
func (a *Log) Record(ctx context.Context, d service.Decision) {
	if a.o.WithFeatures && d.Features == nil {
		return // a feature log keeps the sampled decisions alone
	}
	r := NewRecord(&d, a.o.Hasher)
	if a.o.WithFeatures {
		r.Features = &Features{Schema: features.SchemaVersion, Values: d.Features}
	}
	wctx, cancel := context.WithTimeout(ctx, recordWait)
	err := a.Write(wctx, r)
	cancel()
	if err == nil {
		return
	}
	if ok, suppressed := a.notQueued.Allow(time.Now()); ok {
		a.o.Logger.ErrorContext(ctx, "audit record not queued", slog.String("decision_id", d.ID), slog.String("error", err.Error()),
			slog.Int64("similar_lines_suppressed", suppressed))
	}
}

// Write queues a record. It waits while the queue is full, until ctx ends.
func (a *Log) Write(ctx context.Context, r Record) error {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.closed {
		return errors.New("audit log closed")
	}
	select {
	case a.queue <- r:
		return nil
	default:
	}
	select {
	case a.queue <- r:
		return nil
	case <-ctx.Done():
		a.lost.Add(1)
		return fmt.Errorf("audit queue full: %w", ctx.Err())
	}
}

// replayChunks is how many batches of the spill the writer replays at a
// wake-up: enough to empty a spill of minutes within a few more, few
// enough that the queue keeps draining meanwhile.
const replayChunks = 4

// run wakes every Linger and writes what the queue holds, in batches: a
// busy server pays no wake-up per record. Then it replays some of the
// spill.
func (a *Log) run() {
	defer close(a.done)
	batch := make([]Record, 0, a.o.Batch)
	tick := time.NewTicker(a.o.Linger)
	defer tick.Stop()
	for {
		<-tick.C
		closed := false
	drain:
		for {
			select {
			case r, ok := <-a.queue:
				if !ok {
					closed = true
					break drain
				}
				batch = append(batch, r)
				if len(batch) == a.o.Batch {
					a.write(batch)
					batch = batch[:0]
				}
			default:
				break drain
			}
		}
		if len(batch) > 0 {
			a.write(batch)
			batch = batch[:0]
		}
		if closed {
			a.finish()
			return
		}
		a.replay(replayChunks)
	}
}

// counts are the ids of decisions by day and kind
// (channel|strategy|degraded).
type counts map[time.Time]map[string][]any

// add counts one decision.
func add(c counts, id string, at time.Time, channel, strategy string, degraded bool) {
	day := catalog.Midnight(at)
	if c[day] == nil {
		c[day] = map[string][]any{}
	}
	d := "0"
	if degraded {
		d = "1"
	}
	k := channel + "|" + strategy + "|" + d
	c[day][k] = append(c[day][k], id)
}

// write writes a batch to Redis, or, while Redis fails, to the spill.
func (a *Log) write(batch []Record) {
	a.buf, a.ids, a.vals = a.buf[:0], a.ids[:0], a.vals[:0]
	cn := counts{}
	for i := range batch {
		if !a.o.NoCounts {
			add(cn, batch[i].DecisionID, batch[i].At, batch[i].Channel, batch[i].Strategy, batch[i].Degraded)
		}
		start := len(a.buf)
		a.buf = batch[i].AppendJSON(a.buf)
		a.ids = append(a.ids, batch[i].DecisionID)
		a.vals = append(a.vals, a.buf[start:len(a.buf):len(a.buf)])
	}
	now := time.Now()
	// Without a spill, a batch is how Redis is tried again; with one,
	// replaying the spill is.
	if !a.down || (a.spill == nil && !now.Before(a.retryAt)) {
		err := a.put(a.ids, a.vals, cn)
		if err == nil {
			a.up(len(batch))
			return
		}
		a.goDown(time.Now(), err) // not now: the write took its time
	}
	if a.spill == nil {
		a.lost.Add(int64(len(batch)))
		return
	}
	lines := make([]byte, 0, len(a.buf)+len(batch)*32) // an id, a space, a newline
	for i := range a.ids {
		lines = appendSpillLine(lines, a.ids[i], a.vals[i])
	}
	if err := a.spill.appendLines(lines); err != nil {
		a.lost.Add(int64(len(batch)))
		if !a.lossLogged { // once an outage
			a.lossLogged = true
			a.o.Logger.Error("audit records lost: the spill cannot take them", slog.Int("records", len(batch)), slog.String("error", err.Error()))
		}
		return
	}
	a.spilled.Add(int64(len(batch)))
	a.spillBytes.Store(a.spill.size)
}

// put writes records to Redis, and adds them to the day's decision
// counts, in one pipeline.
func (a *Log) put(ids []string, vals [][]byte, cn counts) error {
	ctx, cancel := context.WithTimeout(context.Background(), a.o.WriteTimeout)
	defer cancel()
	fields := map[string][]any{}
	for i := range ids {
		k := a.key(ids[i])
		fields[k] = append(fields[k], ids[i], vals[i])
	}
	pipe := a.rdb.Pipeline()
	for k, fv := range fields {
		pipe.HSet(ctx, k, fv...)
		pipe.Expire(ctx, k, a.o.Retention)
	}
	for day, kinds := range cn {
		set := a.keys.DecisionCounts(day)
		for kind, ids := range kinds {
			hll := a.keys.DecisionCount(day, kind)
			pipe.PFAdd(ctx, hll, ids...)
			pipe.Expire(ctx, hll, a.o.Retention)
			pipe.SAdd(ctx, set, kind)
		}
		pipe.Expire(ctx, set, a.o.Retention)
	}
	_, err := pipe.Exec(ctx)
	return err
}

// countsOf counts spilled records, from their JSON.
func (a *Log) countsOf(vals [][]byte) counts {
	cn := counts{}
	if a.o.NoCounts {
		return cn
	}
	for _, v := range vals {
		var r struct {
			ID       string    `json:"decision_id"`
			At       time.Time `json:"at"`
			Channel  string    `json:"channel"`
			Strategy string    `json:"strategy"`
			Degraded bool      `json:"degraded"`
		}
		if json.Unmarshal(v, &r) == nil {
			add(cn, r.ID, r.At, r.Channel, r.Strategy, r.Degraded)
		}
	}
	return cn
}

// DecisionCount is how many decisions a channel got under a strategy, and
// how many of them were degraded.
type DecisionCount struct {
	Channel   string `json:"channel"`
	Strategy  string `json:"strategy"`
	Decisions int64  `json:"decisions"`
	Degraded  int64  `json:"degraded"`
}

// Counts returns the decisions recorded from one day to another (China
// time), by channel and strategy. Each decision counts once, however often
// its record was written (a retry, a replay of the spill): the counts are
// HyperLogLog estimates, exact for small counts and within about 1% (the
// standard error is 0.81%) for large ones.
func (a *Log) Counts(ctx context.Context, from, to time.Time) ([]DecisionCount, error) {
	days := catalog.Days(from, to)
	pipe := a.rdb.Pipeline()
	sets := make([]*redis.StringSliceCmd, len(days))
	for i, d := range days {
		sets[i] = pipe.SMembers(ctx, a.keys.DecisionCounts(d))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("decision counts: %w", err)
	}
	type kindCount struct {
		kind string
		n    *redis.IntCmd
	}
	var cmds []kindCount
	pipe = a.rdb.Pipeline()
	for i, d := range days {
		for _, kind := range sets[i].Val() {
			cmds = append(cmds, kindCount{kind, pipe.PFCount(ctx, a.keys.DecisionCount(d, kind))})
		}
	}
	if len(cmds) > 0 {
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("decision counts: %w", err)
		}
	}
	sum := map[[2]string]*DecisionCount{}
	for _, c := range cmds {
		parts := strings.Split(c.kind, "|")
		if len(parts) != 3 {
			continue
		}
		k := [2]string{parts[0], parts[1]}
		dc := sum[k]
		if dc == nil {
			dc = &DecisionCount{Channel: parts[0], Strategy: parts[1]}
			sum[k] = dc
		}
		n := c.n.Val()
		dc.Decisions += n
		if parts[2] == "1" {
			dc.Degraded += n
		}
	}
	out := make([]DecisionCount, 0, len(sum))
	for _, dc := range sum {
		out = append(out, *dc)
	}
	slices.SortFunc(out, func(x, y DecisionCount) int {
		return cmp.Or(strings.Compare(x.Channel, y.Channel), strings.Compare(x.Strategy, y.Strategy))
	})
	return out, nil
}

// goDown stops trying Redis until RetryEvery from now.
func (a *Log) goDown(now time.Time, err error) {
	a.retryAt = now.Add(a.o.RetryEvery)
	if a.down {
		return
	}
	a.down, a.lossLogged = true, false
	a.lostAt = a.lost.Load()
	if a.spill != nil {
		a.o.Logger.Warn("audit records not written to Redis: spilling them until it answers",
			slog.String("dir", a.spill.dir), slog.String("error", err.Error()))
	} else {
		a.o.Logger.Error("audit records not written to Redis: losing them until it answers (no spill directory)",
			slog.String("error", err.Error()))
	}
}

// up notes a write Redis took.
func (a *Log) up(records int) {
	if !a.down {
		return
	}
	a.down = false
	a.o.Logger.Info("audit records written to Redis again", slog.Int("records", records),
		slog.Int64("lost_meanwhile", a.lost.Load()-a.lostAt))
}

// replay writes up to chunks batches of the spill to Redis, oldest first,
// unless Redis failed less than RetryEvery ago.
func (a *Log) replay(chunks int) {
	if a.spill == nil || a.spill.empty() || (a.down && time.Now().Before(a.retryAt)) {
		return
	}
	defer func() { a.spillBytes.Store(a.spill.size) }()
	for range chunks {
		c, err := a.spill.readChunk(a.o.Batch)
		if err != nil {
			// Unreadable (another format, or the disk): set aside, not
			// retried at every wake-up.
			a.o.Logger.Error("audit spill file set aside", slog.String("error", err.Error()))
			a.spill.setAside()
			continue
		}
		if c.bad > 0 {
			a.lost.Add(int64(c.bad))
			a.o.Logger.Error("audit spill: damaged lines skipped (a write torn by a crash)", slog.Int("lines", c.bad))
		}
		if len(c.ids) > 0 {
			ids := make([]string, len(c.ids))
			for i, id := range c.ids {
				ids[i] = string(id)
			}
			if err := a.put(ids, c.values, a.countsOf(c.values)); err != nil {
				a.goDown(time.Now(), err)
				return
			}
			a.replayed.Add(int64(len(ids)))
			a.up(len(ids))
		}
		if err := a.spill.done(c); err != nil {
			a.o.Logger.Error("audit spill", slog.String("error", err.Error()))
		}
		if a.spill.empty() {
			a.o.Logger.Info("audit spill written to Redis", slog.Int64("replayed", a.replayed.Load()))
			return
		}
	}
}

// finish runs once the queue is closed and written: it replays what the
// spill holds while Redis takes it and Close's deadline allows, and
// leaves the rest there for the next process.
func (a *Log) finish() {
	if a.spill == nil {
		return
	}
	by := a.closeBy.Load()
	for !a.spill.empty() && !a.down && (by == 0 || time.Now().UnixNano() < by) {
		a.replay(1)
	}
	if err := a.spill.close(); err != nil {
		a.o.Logger.Error("audit spill", slog.String("error", err.Error()))
	}
	if !a.spill.empty() {
		a.o.Logger.Warn("audit records left in the spill for the next process", slog.Int64("bytes", a.spill.size))
	}
}

// Close writes what is queued and stops the writer, waiting until ctx
// ends. With a spill, it first writes what waits there to Redis, until
// ctx's deadline.
func (a *Log) Close(ctx context.Context) error {
	a.mu.Lock()
	if !a.closed {
		a.closed = true
		if d, ok := ctx.Deadline(); ok {
			// A margin to close the spill in.
			a.closeBy.Store(d.Add(-50 * time.Millisecond).UnixNano())
		}
		close(a.queue)
	}
	a.mu.Unlock()
	select {
	case <-a.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("audit log close: %w", ctx.Err())
	}
}

// Get returns a decision's record, or an error wrapping
// ErrNotFound, or ErrBehind while the spill holds records.
func (a *Log) Get(ctx context.Context, id string) (Record, error) {
	var r Record
	b, err := a.rdb.HGet(ctx, a.key(id), id).Bytes()
	if errors.Is(err, redis.Nil) {
		if a.spillBytes.Load() > 0 {
			return r, fmt.Errorf("%w: %s", ErrBehind, id)
		}
		return r, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return r, fmt.Errorf("audit get: %w", err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("audit record %s: %w", id, err)
	}
	return r, nil
}

// Strategies returns the strategy of each decision found, in one round
// trip (for attributing outcomes).
func (a *Log) Strategies(ctx context.Context, ids []string) (map[string]string, error) {
	out := make(map[string]string, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	pipe := a.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = pipe.HGet(ctx, a.key(id), id)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("audit strategies: %w", err)
	}
	for i, c := range cmds {
		b, err := c.Bytes()
		if err != nil {
			continue
		}
		var r struct {
			Strategy string `json:"strategy"`
		}
		if json.Unmarshal(b, &r) == nil && r.Strategy != "" {
			out[ids[i]] = r.Strategy
		}
	}
	return out, nil
}
