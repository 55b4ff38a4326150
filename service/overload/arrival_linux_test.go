//go:build linux && (amd64 || arm64)

package overload

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// A stamped connection reads like any TCP connection, and knows how long
// ago the bytes it read arrived: a request the server reads late says so.
func TestStampedConnReportsTheWait(t *testing.T) {
	if os.Getenv("NBP_CLOCK_SHIFT") != "" {
		t.Skip("the kernel stamps arrivals on the real wall clock, which .ci/shifted-clock moves the process's away from")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sl := StampArrivals(ln)
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	conn, err := sl.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, ok := conn.(*stampedConn); !ok {
		t.Fatalf("accepted a %T, want a stamped connection", conn)
	}
	if _, ok := ArrivalOf(conn, time.Now()); ok {
		t.Fatal("a wait known before anything was read")
	}
	buf := make([]byte, 64)
	// The kernel turns receive timestamps on asynchronously when the
	// first socket asks (and off when the last one goes): the first bytes
	// may come unstamped.
	for deadline := time.Now().Add(5 * time.Second); ; {
		if _, err := client.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(conn, buf[:4]); err != nil {
			t.Fatal(err)
		}
		if _, ok := ArrivalOf(conn, time.Now()); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no receive time after 5s of reads")
		}
		time.Sleep(time.Millisecond)
	}

	// Sent, then left unread for 30ms.
	if _, err := client.Write([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(30 * time.Millisecond)
	n, err := conn.Read(buf)
	if err != nil || string(buf[:n]) != "GET / HTTP/1.1\r\n\r\n" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	wait, ok := ArrivalOf(conn, time.Now())
	if !ok || wait < 30*time.Millisecond || wait > 5*time.Second {
		t.Fatalf("wait %v (known %v) after 30ms unread, want at least 30ms", wait, ok)
	}

	// Read at once: the wait is the new bytes', not the old ones'.
	done := make(chan struct{})
	go func() {
		defer close(done)
		n, err = conn.Read(buf) // blocks in the poller until they come
	}()
	time.Sleep(10 * time.Millisecond)
	if _, err := client.Write([]byte("again")); err != nil {
		t.Fatal(err)
	}
	<-done
	if err != nil || string(buf[:n]) != "again" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	if wait, ok := ArrivalOf(conn, time.Now()); !ok || wait >= 30*time.Millisecond {
		t.Fatalf("wait %v (known %v) of bytes read as they came, want well under 30ms", wait, ok)
	}

	// Deadlines hold, and say so as net.Conn's do.
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	var ne net.Error
	if _, err := conn.Read(buf); !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v, want a timeout", err)
	}
	if err := conn.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}

	// The peer's close is io.EOF; a read after our own close fails.
	client.Close()
	if _, err := conn.Read(buf); err != io.EOF {
		t.Fatalf("read after the peer closed: %v, want io.EOF", err)
	}
	conn.Close()
	if _, err := conn.Read(buf); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after close: %v, want net.ErrClosed", err)
	}
}

// Connections the kernel cannot stamp have no known wait.
func TestArrivalOfOtherConns(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if _, ok := ArrivalOf(a, time.Now()); ok {
		t.Fatal("a pipe reported a wait")
	}
	// A clock stepped back: unknown, not negative.
	sc := &stampedConn{arrived: time.Now().Add(time.Hour).UnixNano()}
	if w, ok := ArrivalOf(sc, time.Now()); ok {
		t.Fatalf("a receive time in the future gave wait %v", w)
	}
}

// cmsg builds one control message as the kernel lays it out.
func cmsg(level, typ int32, data []byte) []byte {
	b := make([]byte, 16, 16+len(data)+8)
	binary.NativeEndian.PutUint64(b[0:8], uint64(16+len(data)))
	binary.NativeEndian.PutUint32(b[8:12], uint32(level))
	binary.NativeEndian.PutUint32(b[12:16], uint32(typ))
	b = append(b, data...)
	for len(b)%8 != 0 {
		b = append(b, 0)
	}
	return b
}

func timespec(sec, nsec int64) []byte {
	b := make([]byte, 16)
	binary.NativeEndian.PutUint64(b[0:8], uint64(sec))
	binary.NativeEndian.PutUint64(b[8:16], uint64(nsec))
	return b
}

// withLen is b with its first header's length set to n.
func withLen(b []byte, n uint64) []byte {
	b = append([]byte{}, b...)
	binary.NativeEndian.PutUint64(b[0:8], n)
	return b
}

func TestParseStamp(t *testing.T) {
	stamp := cmsg(syscall.SOL_SOCKET, syscall.SCM_TIMESTAMPNS, timespec(1_700_000_000, 250))
	other := cmsg(syscall.SOL_IP, 8, []byte{1, 2, 3, 4})
	for name, c := range map[string]struct {
		oob  []byte
		want int64
		ok   bool
	}{
		"alone":                 {stamp, 1_700_000_000*int64(time.Second) + 250, true},
		"after another message": {append(append([]byte{}, other...), stamp...), 1_700_000_000*int64(time.Second) + 250, true},
		"none":                  {nil, 0, false},
		"another message only":  {other, 0, false},
		"truncated":             {stamp[:20], 0, false},
		"length past the end":   {withLen(stamp, 100), 0, false},
		"length under a header": {withLen(stamp, 8), 0, false},
	} {
		got, ok := parseStamp(c.oob)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: %d, %v; want %d, %v", name, got, ok, c.want, c.ok)
		}
	}
}

func FuzzParseStamp(f *testing.F) {
	f.Add(cmsg(syscall.SOL_SOCKET, syscall.SCM_TIMESTAMPNS, timespec(1, 2)))
	f.Add(cmsg(syscall.SOL_IP, 8, []byte{1}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, oob []byte) {
		if _, ok := parseStamp(oob); ok && len(oob) < 32 {
			t.Fatalf("a stamp found in %d bytes", len(oob))
		}
	})
}
