// Package redistest starts a private redis-server, or a private Redis
// Cluster, for tests, so that a test run never depends on what another run
// left behind.
//
// Start runs redis-server on a free loopback port with persistence off.
// StartCluster runs three cluster-enabled ones the same way and splits the
// slots between them. When the environment names a server in
// NBP_TEST_REDIS_ADDR (or cluster nodes in NBP_TEST_REDIS_CLUSTER_ADDRS),
// that one is used instead; tests then keep apart by their key prefixes
// (Prefix).
package redistest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a running redis-server.
type Server struct {
	Addr string
	cmd  *exec.Cmd
	port int
}

// Start starts a private redis-server, or returns the one named by
// NBP_TEST_REDIS_ADDR. Stop it when done.
func Start() (*Server, error) {
	if addr := os.Getenv("NBP_TEST_REDIS_ADDR"); addr != "" {
		return &Server{Addr: addr}, nil
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found (make test installs it): %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), port: port}
	if err := s.start(bin); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) start(bin string) error {
	s.cmd = exec.Command(bin,
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--loglevel", "warning")
	// Die with the test binary, even when it panics: no orphan servers.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// Redis logs to stdout; its start-up warnings are noise in test output.
	s.cmd.Stdout = nil
	s.cmd.Stderr = os.Stderr
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if ping(s.Addr) == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	return fmt.Errorf("redis-server on %s did not answer", s.Addr)
}

// Owned reports whether the server was started here (and can be stopped
// and restarted).
func (s *Server) Owned() bool { return s.cmd != nil }

// Stop kills a server started here.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd.Process = nil
}

// Restart starts a stopped server again on the same port.
func (s *Server) Restart() error {
	if s.cmd == nil {
		return fmt.Errorf("server not started here")
	}
	s.Stop()
	return s.start(s.cmd.Path)
}

// Client returns a client for the server, closed when the test ends.
func (s *Server) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr, DisableIdentity: true})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Prefix returns a key prefix unique to this test, so that tests sharing a
// server never see each other's keys.
func Prefix(t testing.TB) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "t" + hex.EncodeToString(b[:]) + ":"
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func ping(addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("unexpected reply %q", line)
	}
	return nil
}

// FreePort returns a loopback port nobody listens on (for a refused
// connection in a test).
func FreePort() (int, error) { return freePort() }
