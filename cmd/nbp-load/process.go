package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is a child started in a process group of its own, so that stop
// ends it and anything it started, and a Ctrl-C at the terminal reaches
// only nbp-load, which then stops it.
type process struct {
	name string
	cmd  *exec.Cmd
	out  *lineLog
	done chan struct{} // closed when the process has exited
	err  error         // Wait's error, valid after done
}

// startProcess starts path with args and env (nil: nbp-load's own) in dir
// (empty: nbp-load's working directory).
// Every line the child prints goes to onLine and a short log kept for
// error messages.
func startProcess(name, path string, args, env []string, dir string, onLine func(string)) (*process, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.Dir = dir
	cmd.SysProcAttr = childAttr()
	out := &lineLog{onLine: onLine}
	cmd.Stdout = out.writer()
	cmd.Stderr = out.writer()
	cmd.WaitDelay = 2 * time.Second // do not hang on a grandchild holding the pipes
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// pid returns the process id.
func (p *process) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM to the process group, then SIGKILL if it has not
// ended within grace, and waits for it.
func (p *process) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
	}
}

// failure describes a child that did not come up, with its last lines.
func (p *process) failure(what string) error {
	msg := fmt.Sprintf("%s %s", p.name, what)
	if p.exited() && p.err != nil {
		msg += fmt.Sprintf(" (%v)", p.err)
	}
	if tail := p.out.tail(); tail != "" {
		msg += "; its last output:\n" + tail
	}
	return errors.New(msg)
}

// startServer starts a server that announces "listening on HOST:PORT" on
// stdout and returns it with that address once it has.
// Every other line goes to onLine, when not nil.
// cpus, when not empty, pins it there.
func startServer(ctx context.Context, name, path string, args, env []string, cpus []int, limit time.Duration, onLine func(string)) (*process, string, error) {
	path, args, env = pinned(cpus, path, args, env)
	addrc := make(chan string, 1)
	var once sync.Once
	p, err := startProcess(name, path, args, env, "", func(line string) {
		if a, ok := strings.CutPrefix(line, "listening on "); ok {
			once.Do(func() { addrc <- strings.TrimSpace(a) })
			return
		}
		if onLine != nil {
			onLine(line)
		}
	})
	if err != nil {
		return nil, "", err
	}
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case addr := <-addrc:
		return p, loopback(addr), nil
	case <-p.done:
		return nil, "", p.failure("exited before listening")
	case <-timer.C:
		p.stop(3 * time.Second)
		return nil, "", p.failure(fmt.Sprintf("did not print \"listening on\" within %s", limit))
	case <-ctx.Done():
		p.stop(3 * time.Second)
		return nil, "", ctx.Err()
	}
}

// loopback turns a wildcard listen address (":8080", "[::]:8080") into one
// a client can dial.
func loopback(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// startRedis starts a private redis-server on a free loopback port,
// without persistence, and waits until it accepts connections. cpus, when
// not empty, pins it there.
func startRedis(ctx context.Context, bin string, env []string, cpus []int) (*process, string, error) {
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, "", fmt.Errorf("redis-server not found (install it, or set REDIS_ADDR): %w", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", fmt.Errorf("find a free port: %w", err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	addr := net.JoinHostPort("127.0.0.1", port)
	path, args, env := pinned(cpus, path,
		[]string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning"}, env)
	p, err := startProcess("redis-server", path, args, env, "", nil)
	if err != nil {
		return nil, "", err
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil && !p.exited() {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return p, addr, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.stop(time.Second)
	if ctx.Err() != nil {
		return nil, "", ctx.Err()
	}
	return nil, "", p.failure("did not accept connections on " + addr)
}

// lineLog splits a child's output into lines, hands each to onLine and
// keeps the last few for error messages.
type lineLog struct {
	onLine func(string)
	mu     sync.Mutex
	last   []string
}

const lineLogKeep = 30

func (l *lineLog) add(line string) {
	l.mu.Lock()
	if len(l.last) == lineLogKeep {
		l.last = append(l.last[:0], l.last[1:]...)
	}
	l.last = append(l.last, line)
	onLine := l.onLine
	l.mu.Unlock()
	if onLine != nil {
		onLine(line)
	}
}

func (l *lineLog) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.last, "\n")
}

// writer returns an io.Writer of one stream (stdout or stderr) of the child.
func (l *lineLog) writer() *lineWriter { return &lineWriter{log: l} }

// lineWriter buffers one stream up to each newline.
type lineWriter struct {
	log *lineLog
	buf []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.log.add(strings.TrimRight(string(w.buf[:i]), "\r"))
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > 64<<10 { // a runaway line: keep its start
		w.log.add(string(w.buf[:1024]) + "...")
		w.buf = w.buf[:0]
	}
	return len(p), nil
}
