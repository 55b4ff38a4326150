package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClusterSize is how many masters StartCluster starts.
const ClusterSize = 3

// clusterDeadline bounds the start of a cluster, from the first process to
// every node agreeing that all slots are served.
const clusterDeadline = 20 * time.Second

// Cluster is a running Redis Cluster of ClusterSize masters and no
// replicas.
type Cluster struct {
	Addrs []string
	nodes []*clusterNode
}

type clusterNode struct {
	addr      string
	port, bus int
	dir       string
	cmd       *exec.Cmd
	exited    chan struct{} // closed when the process has ended
}

// StartCluster starts a private Redis Cluster on loopback: ClusterSize
// redis-server processes, each in its own temporary directory, with the
// 16384 slots split evenly between them. It returns once every node reports
// cluster_state:ok and knows every other. When NBP_TEST_REDIS_CLUSTER_ADDRS
// names the nodes of a cluster (comma-separated), that one is used instead.
// Stop it when done.
func StartCluster() (*Cluster, error) {
	if env := os.Getenv("NBP_TEST_REDIS_CLUSTER_ADDRS"); env != "" {
		var addrs []string
		for a := range strings.SplitSeq(env, ",") {
			if a = strings.TrimSpace(a); a != "" {
				addrs = append(addrs, a)
			}
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("NBP_TEST_REDIS_CLUSTER_ADDRS names no address")
		}
		return &Cluster{Addrs: addrs}, nil
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found (make test installs it): %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterDeadline)
	defer cancel()
	c := &Cluster{}
	for range ClusterSize {
		n, err := startClusterNode(ctx, bin)
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.nodes = append(c.nodes, n)
		c.Addrs = append(c.Addrs, n.addr)
	}
	if err := c.form(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// startClusterNode starts one cluster-enabled redis-server. A port taken
// between choosing it and binding it makes the server exit at once: it is
// then tried again on other ports.
func startClusterNode(ctx context.Context, bin string) (*clusterNode, error) {
	var lastErr error
	for range 5 {
		dir, err := os.MkdirTemp("", "nbp-redis-cluster-")
		if err != nil {
			return nil, err
		}
		n := &clusterNode{dir: dir}
		if n.port, err = freePort(); err == nil {
			n.bus, err = freePort()
		}
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
		if n.port == n.bus {
			_ = os.RemoveAll(dir)
			continue
		}
		n.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port))
		lastErr = n.start(ctx, bin)
		if lastErr == nil {
			return n, nil
		}
		n.stop()
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("start a cluster node: %w", lastErr)
}

func (n *clusterNode) start(ctx context.Context, bin string) error {
	port := strconv.Itoa(n.port)
	n.cmd = exec.Command(bin,
		"--port", port, "--bind", "127.0.0.1",
		// The bus port is chosen too: port+10000, the default, may be
		// taken or past 65535.
		"--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(n.bus),
		"--cluster-config-file", filepath.Join(n.dir, "nodes-"+port+".conf"),
		"--dir", n.dir,
		"--save", "", "--appendonly", "no", "--loglevel", "warning")
	// Die with the test binary, even when it panics: no orphan servers.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	n.cmd.Stdout = nil
	n.cmd.Stderr = os.Stderr
	if err := n.cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	n.exited = make(chan struct{})
	go func() {
		_ = n.cmd.Wait()
		close(n.exited)
	}()
	for {
		if ping(n.addr) == nil {
			return nil
		}
		select {
		case <-n.exited:
			return fmt.Errorf("redis-server on %s exited at start", n.addr)
		case <-ctx.Done():
			return fmt.Errorf("redis-server on %s did not answer: %w", n.addr, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop kills the node's server and removes its directory.
func (n *clusterNode) stop() {
	if n.cmd != nil && n.cmd.Process != nil && n.exited != nil {
		_ = n.cmd.Process.Kill()
		<-n.exited
	}
	_ = os.RemoveAll(n.dir)
}

// form gives each node a third of the slots and a config epoch of its own,
// introduces the nodes to each other, and waits until every node sees the
// whole cluster serving every slot.
func (c *Cluster) form(ctx context.Context) error {
	clients := make([]*redis.Client, len(c.nodes))
	for i, n := range c.nodes {
		clients[i] = redis.NewClient(&redis.Options{Addr: n.addr, DisableIdentity: true})
		defer clients[i].Close()
	}
	const slots = 16384
	for i, rdb := range clients {
		lo, hi := i*slots/len(clients), (i+1)*slots/len(clients)-1
		if err := rdb.Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err(); err != nil {
			return fmt.Errorf("cluster node %s: set config epoch: %w", c.nodes[i].addr, err)
		}
		if err := rdb.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			return fmt.Errorf("cluster node %s: add slots %d-%d: %w", c.nodes[i].addr, lo, hi, err)
		}
	}
	// Every node meets every other: gossip alone would get there too, but
	// seconds later.
	for i, rdb := range clients {
		for _, n := range c.nodes[i+1:] {
			if err := rdb.Do(ctx, "CLUSTER", "MEET", "127.0.0.1", n.port, n.bus).Err(); err != nil {
				return fmt.Errorf("cluster node %s: meet %s: %w", c.nodes[i].addr, n.addr, err)
			}
		}
	}
	var lastErr error
	for {
		lastErr = c.converged(ctx, clients)
		if lastErr == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster did not converge within %v: %w", clusterDeadline, lastErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// converged reports, as an error, the first node that does not yet see a
// healthy cluster: every node known, every slot served by one of them.
func (c *Cluster) converged(ctx context.Context, clients []*redis.Client) error {
	for i, rdb := range clients {
		info, err := rdb.ClusterInfo(ctx).Result()
		if err != nil {
			return fmt.Errorf("%s: cluster info: %w", c.nodes[i].addr, err)
		}
		want := []string{"cluster_state:ok", "cluster_slots_ok:16384", "cluster_known_nodes:" + strconv.Itoa(len(c.nodes))}
		for _, w := range want {
			if !strings.Contains(info, w+"\r\n") {
				return fmt.Errorf("%s: cluster info has no %s", c.nodes[i].addr, w)
			}
		}
		shards, err := rdb.ClusterShards(ctx).Result()
		if err != nil {
			return fmt.Errorf("%s: cluster shards: %w", c.nodes[i].addr, err)
		}
		var served int64
		for _, sh := range shards {
			if len(sh.Slots) == 0 {
				continue
			}
			master := ""
			for _, n := range sh.Nodes {
				if n.Role == "master" && n.Health == "online" {
					master = net.JoinHostPort(n.IP, strconv.FormatInt(n.Port, 10))
				}
			}
			if !c.owns(master) {
				return fmt.Errorf("%s: slots %v served by %q", c.nodes[i].addr, sh.Slots, master)
			}
			for _, r := range sh.Slots {
				served += r.End - r.Start + 1
			}
		}
		if served != 16384 {
			return fmt.Errorf("%s: %d slots served", c.nodes[i].addr, served)
		}
	}
	return nil
}

func (c *Cluster) owns(addr string) bool {
	for _, a := range c.Addrs {
		if a == addr {
			return true
		}
	}
	return false
}

// Owned reports whether the cluster was started here.
func (c *Cluster) Owned() bool { return len(c.nodes) > 0 }

// Stop kills the servers started here and removes their directories.
func (c *Cluster) Stop() {
	for _, n := range c.nodes {
		n.stop()
	}
	c.nodes = nil
}

// Client returns a cluster client, closed when the test ends.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	t.Helper()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs, DisableIdentity: true})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}
