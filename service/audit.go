package service

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrDecisionNotFound is returned for a decision id with no audit record
// (never made, or past its retention).
var ErrDecisionNotFound = errors.New("decision not found")

// AuditRecord is what is kept of a decision, so that it can be explained
// afterwards: what produced it, on which data, and what it offered. It holds
// no personal data: the customer id is a keyed hash and the features only a
// hash of the vector used.
type AuditRecord struct {
	DecisionID      string      `json:"decision_id"`
	At              time.Time   `json:"at"`
	Channel         string      `json:"channel"`
	CustomerHash    string      `json:"customer_hash"`
	ModelVersion    string      `json:"model_version"`
	CatalogVersion  string      `json:"catalog_version"`
	ConfigVersion   string      `json:"config_version"`
	Strategy        string      `json:"strategy"`
	Degraded        bool        `json:"degraded"`
	DegradedReasons []string    `json:"degraded_reasons"`
	FeatureStatus   string      `json:"feature_status"`
	FeaturesHash    string      `json:"features_hash,omitempty"`
	Items           []AuditItem `json:"items"`
}

// AuditItem is one offered product of a decision.
type AuditItem struct {
	Rank       int      `json:"rank"`
	ProductID  string   `json:"product_id"`
	Propensity float64  `json:"propensity"`
	Priority   float64  `json:"priority"`
	Reasons    []string `json:"reasons"`
}

// CustomerHasher turns customer ids into keyed hashes (HMAC-SHA256): stable
// for one key, so a customer's decisions can be found, and not reversible
// by enumerating ids without the key.
type CustomerHasher struct {
	key []byte
}

// NewCustomerHasher returns a hasher with the given secret key.
func NewCustomerHasher(key []byte) *CustomerHasher { return &CustomerHasher{key: key} }

// Hash returns the customer id's hash, 32 hex characters.
func (h *CustomerHasher) Hash(id string) string {
	m := hmac.New(sha256.New, h.key)
	m.Write([]byte(id))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// NewAuditRecord makes the audit record of a decision.
func NewAuditRecord(d *Decision, h *CustomerHasher) AuditRecord {
	r := AuditRecord{
		DecisionID:      d.ID,
		At:              d.At.UTC(),
		Channel:         d.Channel.String(),
		CustomerHash:    h.Hash(d.CustomerID),
		ModelVersion:    d.ModelVersion,
		CatalogVersion:  d.CatalogVersion,
		ConfigVersion:   d.ConfigVersion,
		Strategy:        d.Strategy,
		Degraded:        d.Degraded,
		DegradedReasons: d.DegradedReasons,
		FeatureStatus:   d.FeatureStatus,
		FeaturesHash:    d.FeaturesHash,
		Items:           make([]AuditItem, len(d.Items)),
	}
	if r.DegradedReasons == nil {
		r.DegradedReasons = []string{}
	}
	for i, it := range d.Items {
		codes := make([]string, len(it.Reasons))
		for j, rs := range it.Reasons {
			codes[j] = rs.Code
		}
		r.Items[i] = AuditItem{Rank: it.Rank, ProductID: it.Product.ID, Propensity: it.Propensity, Priority: it.Priority, Reasons: codes}
	}
	return r
}

// AuditOptions configures an AuditLog.
type AuditOptions struct {
	Prefix    string        // key prefix, default "nbp:"
	Retention time.Duration // how long records are kept; default 400 days
	Queue     int           // records waiting to be written; default 10,000
	Batch     int           // records per pipeline; default 256
	Linger    time.Duration // longest wait to fill a batch; default 5ms
	Logger    *slog.Logger
}

// AuditLog keeps audit records in Redis, in hashes by minute:
//
//	<prefix>decisions:<YYYYMMDDHHMM>:<0..15>  hash: decision id -> the record as JSON
//
// (the minute the decision id was made in, UTC; the shard a hash of the
// id), each hash expiring Retention after its last write.
//
// Writes leave the request path: Write queues the record and a background
// writer pipelines batches, so a decision still costs one Redis round trip.
// When the queue is full, Write waits for room rather than lose a record.
type AuditLog struct {
	rdb     redis.UniversalClient
	o       AuditOptions
	queue   chan AuditRecord
	done    chan struct{}
	mu      sync.RWMutex // held for reading while sending, for writing while closing
	closed  bool
	Dropped atomic.Int64 // records that could not be written (Redis failing)
}

// NewAuditLog starts the background writer; Close stops it.
func NewAuditLog(rdb redis.UniversalClient, o AuditOptions) *AuditLog {
	if o.Prefix == "" {
		o.Prefix = "nbp:"
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
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	a := &AuditLog{rdb: rdb, o: o, queue: make(chan AuditRecord, o.Queue), done: make(chan struct{})}
	go a.run()
	return a
}

// key returns the hash holding a decision's record: records are grouped
// by the minute their id was made in (ids are time-ordered) and spread
// over 16 hashes a minute, so that a flush of hundreds of records is a few
// HSETs rather than one command each.
func (a *AuditLog) key(id string) string {
	minute := time.UnixMilli(decisionMillis(id)).UTC().Format("200601021504")
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return a.o.Prefix + "decisions:" + minute + ":" + strconv.Itoa(int(h.Sum32()%16))
}

// decisionMillis reads the Unix milliseconds at the head of a decision id.
func decisionMillis(id string) int64 {
	var ms int64
	for i := 0; i < 10 && i < len(id); i++ {
		ms = ms<<5 | int64(strings.IndexByte(crockford, id[i])&31)
	}
	return ms // the first character holds 3 bits, the next nine 45: the 48-bit time
}

// Write queues a record. It waits while the queue is full, until ctx ends.
func (a *AuditLog) Write(ctx context.Context, r AuditRecord) error {
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
		a.Dropped.Add(1)
		return fmt.Errorf("audit queue full: %w", ctx.Err())
	}
}

// run wakes every Linger and writes what the queue holds, in batches: a
// busy server pays no wake-up per record.
func (a *AuditLog) run() {
	defer close(a.done)
	batch := make([]AuditRecord, 0, a.o.Batch)
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
					a.flush(batch)
					batch = batch[:0]
				}
			default:
				break drain
			}
		}
		if len(batch) > 0 {
			a.flush(batch)
			batch = batch[:0]
		}
		if closed {
			return
		}
	}
}

func (a *AuditLog) flush(batch []AuditRecord) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	buf := make([]byte, 0, 512*len(batch))
	vals := make([][]byte, len(batch))
	for i := range batch {
		start := len(buf)
		buf = batch[i].AppendJSON(buf)
		vals[i] = buf[start:len(buf):len(buf)]
	}
	fields := map[string][]any{}
	for i := range batch {
		k := a.key(batch[i].DecisionID)
		fields[k] = append(fields[k], batch[i].DecisionID, vals[i])
	}
	for attempt := 0; attempt < 3; attempt++ {
		pipe := a.rdb.Pipeline()
		for k, fv := range fields {
			pipe.HSet(ctx, k, fv...)
			pipe.Expire(ctx, k, a.o.Retention)
		}
		if _, err := pipe.Exec(ctx); err == nil {
			return
		} else if attempt == 2 || ctx.Err() != nil {
			a.Dropped.Add(int64(len(batch)))
			a.o.Logger.Error("audit records not written", slog.Int("records", len(batch)), slog.String("error", err.Error()))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Close writes what is queued and stops the writer, waiting until ctx ends.
func (a *AuditLog) Close(ctx context.Context) error {
	a.mu.Lock()
	if !a.closed {
		a.closed = true
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
// ErrDecisionNotFound.
func (a *AuditLog) Get(ctx context.Context, id string) (AuditRecord, error) {
	var r AuditRecord
	b, err := a.rdb.HGet(ctx, a.key(id), id).Bytes()
	if errors.Is(err, redis.Nil) {
		return r, fmt.Errorf("%w: %s", ErrDecisionNotFound, id)
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
func (a *AuditLog) Strategies(ctx context.Context, ids []string) (map[string]string, error) {
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
