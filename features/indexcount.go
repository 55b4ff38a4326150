package features

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// CountIDs returns how many customers shard i of n holds now: the sizes of
// its buckets in the customer index, read in one pipeline. A batch run
// takes it as its total; customers indexed later make the walk longer.
func (s *Store) CountIDs(ctx context.Context, shard, shards int) (int64, error) {
	if shards < 1 || shard < 0 || shard >= shards {
		return 0, fmt.Errorf("count ids: shard %d of %d", shard, shards)
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, 0, Buckets/shards+1)
	for b := shard; b < Buckets; b += shards {
		cmds = append(cmds, pipe.ZCard(ctx, s.indexKey(b)))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, fmt.Errorf("count ids: %w: %w", ErrUnavailable, err)
	}
	var n int64
	for _, c := range cmds {
		n += c.Val()
	}
	return n, nil
}
