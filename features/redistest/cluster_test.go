package redistest_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/directops/nbp/features/redistest"
)

func TestStartCluster(t *testing.T) {
	start := time.Now()
	c, err := redistest.StartCluster()
	if err != nil {
		t.Fatalf("StartCluster: %v", err)
	}
	defer c.Stop()
	t.Logf("cluster %v ready in %v", c.Addrs, time.Since(start))
	if len(c.Addrs) == 0 {
		t.Fatal("no addresses")
	}
	ctx := context.Background()
	rdb := c.Client(t)
	prefix := redistest.Prefix(t)

	// Keys hash all over the slots, so a few hundred reach every master.
	for i := range 300 {
		if err := rdb.Set(ctx, fmt.Sprintf("%s%d", prefix, i), i, 0).Err(); err != nil {
			t.Fatalf("SET on the cluster: %v", err)
		}
	}
	var mu sync.Mutex
	perMaster := map[string]int{}
	err = rdb.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		keys, err := m.Keys(ctx, prefix+"*").Result()
		mu.Lock()
		perMaster[m.Options().Addr] = len(keys)
		mu.Unlock()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, n := range perMaster {
		total += n
	}
	if total != 300 {
		t.Errorf("%d keys on the masters, want 300: %v", total, perMaster)
	}
	if c.Owned() {
		if len(perMaster) != redistest.ClusterSize {
			t.Errorf("keys on %d masters, want %d: %v", len(perMaster), redistest.ClusterSize, perMaster)
		}
		for addr, n := range perMaster {
			if n == 0 {
				t.Errorf("master %s holds no key", addr)
			}
		}
	}

	if !c.Owned() {
		return
	}
	// Stop ends every server: nothing answers any more.
	c.Stop()
	for _, addr := range c.Addrs {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after Stop", addr)
		}
	}
}

func TestStartClusterFromEnv(t *testing.T) {
	t.Setenv("NBP_TEST_REDIS_CLUSTER_ADDRS", " 127.0.0.1:7000, 127.0.0.1:7001,,")
	c, err := redistest.StartCluster()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if want := []string{"127.0.0.1:7000", "127.0.0.1:7001"}; fmt.Sprint(c.Addrs) != fmt.Sprint(want) || c.Owned() {
		t.Errorf("Addrs %v, owned %v; want %v, not owned", c.Addrs, c.Owned(), want)
	}
}
