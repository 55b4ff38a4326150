package features

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Buckets is how many id buckets the customer index has. A customer's
// bucket is a stable hash of its id; batch shards own whole buckets.
const Buckets = 1024

// The customer index lists every customer with a vector, by bucket, in id
// order, so that a batch run walks customers in the same order every time
// (SCAN would not: it repeats and reorders keys while the keyspace grows):
//
//	<prefix>{idx:<bucket>}   sorted set, every score 0, members the ids
//
// Each bucket is its own key, so on a cluster buckets spread over nodes.

// Bucket returns a customer's bucket.
func Bucket(id string) int {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	return int(h.Sum64() % Buckets)
}

func (s *Store) indexKey(bucket int) string {
	return s.keys.Index(bucket)
}

// index adds the ids to the customer index within a pipeline.
func (s *Store) index(ctx context.Context, pipe redis.Pipeliner, ids []string) {
	for _, id := range ids {
		pipe.ZAdd(ctx, s.indexKey(Bucket(id)), redis.Z{Member: id})
	}
}

// Reindex adds customers to the index (for vectors written before it
// existed, or by another writer).
func (s *Store) Reindex(ctx context.Context, ids []string) error {
	pipe := s.rdb.Pipeline()
	s.index(ctx, pipe, ids)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("reindex: %w: %w", ErrUnavailable, err)
	}
	return nil
}

// PageIDs lists the customers of shard i of n, a page at a time, in a
// fixed order: bucket by bucket (the shard's buckets: b % n == i), ids in
// byte order within a bucket. Start with cursor ""; it returns "" after
// the last page. A cursor from an earlier page resumes there, even after a
// restart.
func (s *Store) PageIDs(ctx context.Context, cursor string, count int64, shard, shards int) ([]string, string, error) {
	if shards < 1 || shard < 0 || shard >= shards {
		return nil, "", fmt.Errorf("page ids: shard %d of %d", shard, shards)
	}
	bucket, after := shard, ""
	if cursor != "" {
		b, a, ok := strings.Cut(cursor, "|")
		n, err := strconv.Atoi(b)
		if !ok || err != nil || n < 0 || n >= Buckets || n%shards != shard {
			return nil, "", fmt.Errorf("page ids: bad cursor %q for shard %d/%d", cursor, shard, shards)
		}
		bucket, after = n, a
	}
	// Fill the page across buckets: a sparse index must not make pages of
	// one or two ids.
	var page []string
	for ; bucket < Buckets; bucket += shards {
		min := "-"
		if after != "" {
			min = "(" + after
		}
		want := count - int64(len(page))
		ids, err := s.rdb.ZRangeByLex(ctx, s.indexKey(bucket), &redis.ZRangeBy{Min: min, Max: "+", Count: want}).Result()
		if err != nil {
			return nil, "", fmt.Errorf("page ids: %w: %w", ErrUnavailable, err)
		}
		page = append(page, ids...)
		if int64(len(ids)) == want {
			// Full: the next page goes on from here.
			return page, strconv.Itoa(bucket) + "|" + ids[len(ids)-1], nil
		}
		after = ""
	}
	return page, "", nil
}
