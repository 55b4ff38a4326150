package redistest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Fault is what a Proxy does to the traffic through it.
type Fault int32

// The faults a Proxy injects.
const (
	// Pass forwards everything both ways.
	Pass Fault = iota
	// Refuse closes the listening socket, so that a dial is refused
	// (ECONNREFUSED), and resets the connections already open: the server
	// is down.
	Refuse
	// Reset accepts connections and resets them at once, and resets the
	// connections already open: the server dies as it is reached.
	Reset
	// BlackHole keeps accepting connections but forwards nothing, either
	// way: what the client sends is swallowed and no reply ever comes.
	BlackHole
	// Slow forwards each chunk, both ways, after a latency with jitter.
	Slow
	// Cut forwards, but closes each connection mid-reply: after a number
	// of bytes towards the client, counted from when the fault was set (or
	// the connection opened, when later).
	Cut
)

var faultNames = [...]string{"pass", "refuse", "reset", "black-hole", "slow", "cut"}

// String returns the fault's name.
func (f Fault) String() string {
	if f >= 0 && int(f) < len(faultNames) {
		return faultNames[f]
	}
	return fmt.Sprintf("fault(%d)", int32(f))
}

// faultState is the fault in force with its parameters; it is replaced,
// never changed, so that a forwarding goroutine reads it without a lock.
type faultState struct {
	fault           Fault
	latency, jitter time.Duration
	cutAfter        int64
}

// Proxy is a loopback TCP proxy in front of a server that injects network
// faults on demand, to test what a client does when the network fails.
// Its address stays the same whatever the fault, so a client built once
// sees the failure and the recovery. It is safe for concurrent use.
type Proxy struct {
	// Addr is where clients connect: 127.0.0.1:<port>.
	Addr   string
	target string

	state    atomic.Pointer[faultState]
	toClient atomic.Int64

	mu     sync.Mutex
	ln     net.Listener // nil while refusing
	links  map[*link]struct{}
	closed bool
	wg     sync.WaitGroup // the accept loop and the forwarding goroutines
}

// link is one client connection and its connection to the server.
type link struct {
	client, server net.Conn
	done           chan struct{} // closed with the link
	once           sync.Once
	sent           atomic.Int64 // bytes towards the client since the fault was set
}

// close closes both connections; with reset, the client's with a TCP
// reset rather than an orderly close.
func (l *link) close(reset bool) {
	l.once.Do(func() {
		if reset {
			if tc, ok := l.client.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
		}
		_ = l.client.Close()
		_ = l.server.Close()
		close(l.done)
	})
}

// StartProxy starts a proxy to target (host:port) on a free loopback port,
// passing everything. Close it when done.
func StartProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln, links: make(map[*link]struct{})}
	p.state.Store(&faultState{fault: Pass})
	p.wg.Add(1)
	go p.accept(ln)
	return p, nil
}

// Pass forwards everything again.
func (p *Proxy) Pass() error { return p.set(faultState{fault: Pass}) }

// Refuse refuses new connections and resets the open ones.
func (p *Proxy) Refuse() error { return p.set(faultState{fault: Refuse}) }

// Reset resets new connections as soon as they are accepted, and the open
// ones.
func (p *Proxy) Reset() error { return p.set(faultState{fault: Reset}) }

// BlackHole swallows everything, both ways, on new and open connections.
func (p *Proxy) BlackHole() error { return p.set(faultState{fault: BlackHole}) }

// Slow delays each chunk, both ways, by latency plus a uniform jitter in
// [-jitter, +jitter].
func (p *Proxy) Slow(latency, jitter time.Duration) error {
	if jitter > latency {
		return fmt.Errorf("proxy: jitter %s over latency %s", jitter, latency)
	}
	return p.set(faultState{fault: Slow, latency: latency, jitter: jitter})
}

// Cut closes each connection once it has forwarded n more bytes towards
// the client.
func (p *Proxy) Cut(n int) error {
	if n < 0 {
		return fmt.Errorf("proxy: cut after %d bytes", n)
	}
	return p.set(faultState{fault: Cut, cutAfter: int64(n)})
}

// BytesToClient returns how many bytes the proxy has forwarded towards
// clients since it started.
func (p *Proxy) BytesToClient() int64 { return p.toClient.Load() }

// Open returns the number of client connections open through the proxy.
func (p *Proxy) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.links)
}

func (p *Proxy) set(st faultState) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("proxy: closed")
	}
	p.state.Store(&st)
	for l := range p.links {
		l.sent.Store(0)
		if st.fault == Refuse || st.fault == Reset {
			l.close(true)
		}
	}
	switch {
	case st.fault == Refuse && p.ln != nil:
		_ = p.ln.Close() // the accept loop ends
		p.ln = nil
	case st.fault != Refuse && p.ln == nil:
		// Listen again on the same port. SO_REUSEADDR (Go sets it) lets
		// the port be bound again at once, even with connections of the
		// last listener in TIME_WAIT.
		var err error
		for try := 0; try < 20; try++ {
			var ln net.Listener
			if ln, err = net.Listen("tcp", p.Addr); err == nil {
				p.ln = ln
				p.wg.Add(1)
				go p.accept(ln)
				return nil
			}
			time.Sleep(10 * time.Millisecond)
		}
		return fmt.Errorf("proxy: listen again on %s: %w", p.Addr, err)
	}
	return nil
}

// Close stops the proxy, resets every connection through it and waits for
// its goroutines to end.
func (p *Proxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for l := range p.links {
		l.close(true)
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *Proxy) accept(ln net.Listener) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return // closed: refusing, or the proxy is closed
		}
		if f := p.state.Load().fault; f == Reset || f == Refuse {
			resetConn(c)
			continue
		}
		s, err := net.DialTimeout("tcp", p.target, time.Second)
		if err != nil {
			resetConn(c)
			continue
		}
		l := &link{client: c, server: s, done: make(chan struct{})}
		p.mu.Lock()
		if f := p.state.Load().fault; p.closed || f == Reset || f == Refuse {
			p.mu.Unlock()
			l.close(true)
			continue
		}
		p.links[l] = struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		go p.forward(l, l.client, l.server, false)
		go p.forward(l, l.server, l.client, true)
	}
}

func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// forward copies src to dst chunk by chunk through the fault in force,
// until either side closes; then it closes the link.
func (p *Proxy) forward(l *link, src, dst net.Conn, toClient bool) {
	defer p.wg.Done()
	defer func() {
		l.close(false)
		p.mu.Lock()
		delete(p.links, l)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.pass(l, dst, buf[:n], toClient) {
			return
		}
		if err != nil {
			return
		}
	}
}

// pass sends one chunk on through the fault in force. It reports whether
// the link is still open.
func (p *Proxy) pass(l *link, dst net.Conn, b []byte, toClient bool) bool {
	st := p.state.Load()
	switch st.fault {
	case Refuse, Reset:
		l.close(true)
		return false
	case BlackHole:
		return true // swallowed
	case Slow:
		d := st.latency
		if st.jitter > 0 {
			d += rand.N(2*st.jitter+1) - st.jitter
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-l.done:
			t.Stop()
			return false
		}
	case Cut:
		if toClient {
			left := st.cutAfter - l.sent.Load()
			if int64(len(b)) > left {
				if left > 0 {
					p.toClient.Add(left)
					_, _ = dst.Write(b[:left])
				}
				l.close(false)
				return false
			}
		}
	}
	if toClient {
		// Counted before the write, so that a client that has read the
		// bytes sees them counted.
		p.toClient.Add(int64(len(b)))
		l.sent.Add(int64(len(b)))
	}
	_, err := dst.Write(b)
	return err == nil
}
