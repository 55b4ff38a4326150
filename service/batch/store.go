package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/directops/nbp/features"
)

// Store keeps a batch run's state in Redis. A run's own keys share the
// hash tag {batch:<run>}, so its scripts work on a cluster:
//
//	<prefix>{batch:<run>}:volume   hash: product -> offers taken in the run
//	<prefix>{batch:<run>}:chunks   hash: chunk id -> the offers its volume reservation chose
//	<prefix>{batch:<run>}:ckpt     hash: shard -> checkpoint (JSON)
//	<prefix>{batch:<run>}:done     set: shards that finished
//	<prefix>batch:current          string: the last run that completed (flipped atomically)
//	<prefix>{<id>}:r:<run>         string: a customer's offers in the run, product ids by rank
//
// All but the pointer expire with the run.
type Store struct {
	rdb  redis.UniversalClient
	keys features.Keys
}

// NewStore returns the batch state store.
func NewStore(rdb redis.UniversalClient, prefix string) *Store {
	return &Store{rdb: rdb, keys: features.NewKeys(prefix)}
}

func (b *Store) runKey(run, name string) string {
	return b.keys.BatchRun(run, name)
}

// PointerKey is the key naming the current (last completed) run.
func (b *Store) PointerKey() string { return b.keys.BatchPointer() }

// ResultKey is a customer's offers in a run (features.Store.ResultKey
// reads the same key).
func (b *Store) ResultKey(id, run string) string { return b.keys.BatchResult(id, run) }

// Checkpoint is where a shard of a run stands.
type Checkpoint struct {
	Cursor    string         `json:"cursor"`
	Segment   int            `json:"segment"`
	Customers int            `json:"customers"`
	Rows      int            `json:"rows"`
	Skipped   int            `json:"skipped"`
	Products  map[string]int `json:"products"`
	Strategy  map[string]int `json:"strategies"`
	Done      bool           `json:"done"`
}

// LoadCheckpoint returns a shard's checkpoint, or nil when the shard has
// none.
func (b *Store) LoadCheckpoint(ctx context.Context, run, shard string) (*Checkpoint, error) {
	s, err := b.rdb.HGet(ctx, b.runKey(run, "ckpt"), shard).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load checkpoint: %w", err)
	}
	var c Checkpoint
	if err := json.Unmarshal([]byte(s), &c); err != nil {
		return nil, fmt.Errorf("checkpoint of %s/%s: %w", run, shard, err)
	}
	return &c, nil
}

// SaveCheckpoint records a shard's progress.
func (b *Store) SaveCheckpoint(ctx context.Context, run, shard string, c *Checkpoint, ttl time.Duration) error {
	j, err := json.Marshal(c)
	if err != nil {
		return err
	}
	key := b.runKey(run, "ckpt")
	pipe := b.rdb.TxPipeline()
	pipe.HSet(ctx, key, shard, j)
	pipe.Expire(ctx, key, ttl)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	return nil
}

// reserveScript takes each customer's offers from the run's volume
// budget: candidates in rank order, the first `limit` whose product still
// has volume. A chunk is reserved once: run again, it returns what it
// chose the first time.
//
// ARGV[1] chunk id, ARGV[2] limit, ARGV[3] limits "P1=N,P2=N", ARGV[4]
// candidates, one customer a line: "id|P1,P2,...". It returns the chosen
// offers in the same form.
var reserveVolumeScript = redis.NewScript(`
local volume, chunks = KEYS[1], KEYS[2]
local done = redis.call('HGET', chunks, ARGV[1])
if done then return done end
local limit = tonumber(ARGV[2])
local caps = {}
for p, n in string.gmatch(ARGV[3], '([^,=]+)=(%d+)') do caps[p] = tonumber(n) end
local out = {}
for line in string.gmatch(ARGV[4], '[^\n]+') do
  local id, list = string.match(line, '^([^|]*)|(.*)$')
  local chosen = {}
  for p in string.gmatch(list, '[^,]+') do
    if #chosen >= limit then break end
    local cap = caps[p]
    if cap == nil then
      table.insert(chosen, p)
    elseif tonumber(redis.call('HGET', volume, p) or '0') < cap then
      redis.call('HINCRBY', volume, p, 1)
      table.insert(chosen, p)
    end
  end
  table.insert(out, id .. '|' .. table.concat(chosen, ','))
end
local res = table.concat(out, '\n')
redis.call('HSET', chunks, ARGV[1], res)
redis.call('EXPIRE', chunks, ARGV[5])
redis.call('EXPIRE', volume, ARGV[5])
return res
`)

// ReserveVolume applies the run's per-product volume limits to a chunk of
// ranked candidates (customer id -> product ids, best first), atomically
// and idempotently per chunk id. It returns each customer's offers.
func (b *Store) ReserveVolume(ctx context.Context, run, chunk string, limit int, limits map[string]int, cands [][2]any, ttl time.Duration) (map[string][]string, error) {
	var caps, lines strings.Builder
	for p, n := range limits {
		if caps.Len() > 0 {
			caps.WriteByte(',')
		}
		caps.WriteString(p + "=" + strconv.Itoa(n))
	}
	for _, c := range cands {
		lines.WriteString(c[0].(string))
		lines.WriteByte('|')
		lines.WriteString(strings.Join(c[1].([]string), ","))
		lines.WriteByte('\n')
	}
	res, err := reserveVolumeScript.Run(ctx, b.rdb, []string{b.runKey(run, "volume"), b.runKey(run, "chunks")},
		chunk, limit, caps.String(), lines.String(), int64(ttl.Seconds())).Text()
	if err != nil {
		return nil, fmt.Errorf("reserve volume: %w", err)
	}
	out := make(map[string][]string, len(cands))
	for _, line := range strings.Split(res, "\n") {
		id, list, ok := strings.Cut(line, "|")
		if !ok {
			continue
		}
		if list == "" {
			out[id] = nil
			continue
		}
		out[id] = strings.Split(list, ",")
	}
	return out, nil
}

// Volume returns the offers taken of each product in the run.
func (b *Store) Volume(ctx context.Context, run string) (map[string]int, error) {
	m, err := b.rdb.HGetAll(ctx, b.runKey(run, "volume")).Result()
	if err != nil {
		return nil, fmt.Errorf("volume: %w", err)
	}
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k], _ = strconv.Atoi(v)
	}
	return out, nil
}

// WriteResults stores customers' offers for the run, in one pipeline.
func (b *Store) WriteResults(ctx context.Context, run string, offers map[string][]string, ttl time.Duration) error {
	pipe := b.rdb.Pipeline()
	for id, ps := range offers {
		pipe.Set(ctx, b.ResultKey(id, run), strings.Join(ps, ","), ttl)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

// finishScript marks a shard done and, when every shard is, points
// readers at the run. It returns 1 when it flipped the pointer.
var finishScript = redis.NewScript(`
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[4])
if redis.call('SCARD', KEYS[1]) == tonumber(ARGV[2]) then
  return 1
end
return 0
`)

// FinishShard records that a shard completed; when all shards of the run
// have, it flips the pointer to the run and reports true. Readers never
// see a partial run: the pointer moves only after the last shard's
// results are written.
func (b *Store) FinishShard(ctx context.Context, run string, shard, shards int, ttl time.Duration) (bool, error) {
	n, err := finishScript.Run(ctx, b.rdb, []string{b.runKey(run, "done")}, shard, shards, run, int64(ttl.Seconds())).Int()
	if err != nil {
		return false, fmt.Errorf("finish shard: %w", err)
	}
	if n != 1 {
		return false, nil
	}
	if err := b.rdb.Set(ctx, b.PointerKey(), run, 0).Err(); err != nil {
		return false, fmt.Errorf("flip pointer: %w", err)
	}
	return true, nil
}

// Started records that a shard of a run started (or resumed): the run
// becomes the latest, whose progress Status reports.
func (b *Store) Started(ctx context.Context, run string, shards int, at time.Time, ttl time.Duration, modelVersion string) error {
	info := b.runKey(run, "info")
	// Two slots: a plain pipeline (a cluster client splits it by slot).
	pipe := b.rdb.Pipeline()
	pipe.HSetNX(ctx, info, "started_at", at.UTC().Format(time.RFC3339))
	pipe.HSetNX(ctx, info, "model_version", modelVersion)
	pipe.HSet(ctx, info, "shards", shards)
	pipe.Expire(ctx, info, ttl)
	pipe.Set(ctx, b.keys.BatchLatest(), run, ttl)
	pinned := pipe.HGet(ctx, info, "model_version")
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("record start: %w", err)
	}
	if pinned.Val() != modelVersion {
		return fmt.Errorf("%w: run %s scores with model %s, this shard opened %s", ErrModelChanged, run, pinned.Val(), modelVersion)
	}
	return nil
}

// ErrModelChanged is wrapped when a shard would score a run with another
// model version than the run started with.
var ErrModelChanged = errors.New("the model changed within a batch run")

// RunModel returns the model version a run started with, "" when it has
// not started: every shard of a run scores with it.
func (b *Store) RunModel(ctx context.Context, run string) (string, error) {
	v, err := b.rdb.HGet(ctx, b.runKey(run, "info"), "model_version").Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("batch run model: %w", err)
	}
	return v, nil
}

// RunStatus is where the latest batch run stands.
type RunStatus struct {
	Run        string    `json:"run"` // "" when no run is known
	StartedAt  time.Time `json:"started_at"`
	Shards     int       `json:"shards"`
	ShardsDone int       `json:"shards_done"`
	Customers  int       `json:"customers"` // decided so far, all shards
	Rows       int       `json:"rows"`
	// ModelVersion is the model version the run scores with, all shards.
	ModelVersion string `json:"model_version"`
	// Completed: every shard finished and the run's lists are in use.
	Completed bool `json:"completed"`
	// Current is the last completed run, whose lists back up the model.
	Current string `json:"current"`
}

// Status reports the latest run's progress, from its shards'
// checkpoints.
func (b *Store) Status(ctx context.Context) (RunStatus, error) {
	var st RunStatus
	cur, err := b.Current(ctx)
	if err != nil {
		return st, fmt.Errorf("batch status: %w", err)
	}
	st.Current = cur
	latest, err := b.rdb.Get(ctx, b.keys.BatchLatest()).Result()
	switch {
	case errors.Is(err, redis.Nil):
		latest = cur
	case err != nil:
		return st, fmt.Errorf("batch status: %w", err)
	}
	if latest == "" {
		return st, nil
	}
	st.Run = latest
	pipe := b.rdb.Pipeline()
	info := pipe.HGetAll(ctx, b.runKey(latest, "info"))
	ckpts := pipe.HGetAll(ctx, b.runKey(latest, "ckpt"))
	done := pipe.SCard(ctx, b.runKey(latest, "done"))
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return st, fmt.Errorf("batch status: %w", err)
	}
	if t, err := time.Parse(time.RFC3339, info.Val()["started_at"]); err == nil {
		st.StartedAt = t
	}
	st.Shards, _ = strconv.Atoi(info.Val()["shards"])
	st.ModelVersion = info.Val()["model_version"]
	st.ShardsDone = int(done.Val())
	for _, s := range ckpts.Val() {
		var c Checkpoint
		if json.Unmarshal([]byte(s), &c) == nil {
			st.Customers += c.Customers
			st.Rows += c.Rows
		}
	}
	st.Completed = latest == cur
	return st, nil
}

// Current returns the last completed run, "" when none.
func (b *Store) Current(ctx context.Context) (string, error) {
	s, err := b.rdb.Get(ctx, b.PointerKey()).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return s, err
}
