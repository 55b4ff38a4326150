//go:build linux && (amd64 || arm64)

package overload

import (
	"encoding/binary"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// stampListener accepts TCP connections that learn from the kernel when
// the bytes they read arrived (SO_TIMESTAMPNS): how long a request waited
// before the server read it. That wait is where an overload shows first,
// and nothing else measures it: the server cannot see a request it has
// not read, and the Go scheduler's delay covers only goroutines already
// woken.
type stampListener struct{ net.Listener }

// StampArrivals wraps ln so that its connections report arrivals (see
// ArrivalOf). Connections it cannot stamp are served as they are.
func StampArrivals(ln net.Listener) net.Listener { return stampListener{ln} }

func (l stampListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c, nil
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		return c, nil
	}
	sc := &stampedConn{TCPConn: tc, raw: raw}
	sc.recv = sc.recvmsg // bound once: Read allocates nothing
	return sc, nil
}

// stampedConn is a TCP connection whose reads keep the kernel's receive
// time of the data they return. Reads come from one goroutine at a time
// (the server's, per connection), as net.Conn users do.
type stampedConn struct {
	*net.TCPConn
	raw  syscall.RawConn
	recv func(fd uintptr) bool

	// The read under way, for recv.
	buf []byte
	n   int
	err error
	oob [64]byte

	// arrived is when the kernel received the bytes of the last read that
	// returned any (unix nanoseconds; 0: unknown).
	arrived int64
}

// recvmsg is one non-blocking receive; false asks the poller to wait.
func (c *stampedConn) recvmsg(fd uintptr) bool {
	n, oobn, _, _, err := syscall.Recvmsg(int(fd), c.buf, c.oob[:], 0)
	if err == syscall.EAGAIN {
		return false
	}
	c.n, c.err = n, err
	if err == nil && n > 0 {
		if at, ok := parseStamp(c.oob[:oobn]); ok {
			c.arrived = at
		}
	}
	return true
}

func (c *stampedConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.buf, c.n, c.err = b, 0, nil
	err := c.raw.Read(c.recv)
	c.buf = nil
	switch {
	case err != nil: // closed, or past the read deadline (a *net.OpError)
		return 0, err
	case c.err != nil:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("recvmsg", c.err)}
	case c.n == 0:
		return 0, io.EOF
	}
	return c.n, nil
}

// parseStamp finds SCM_TIMESTAMPNS in control messages: a cmsghdr (len
// uint64, level int32, type int32) followed by a timespec (two int64) on
// the 64-bit Linux targets this file builds for.
func parseStamp(oob []byte) (int64, bool) {
	const hdr, ts = 16, 16
	for len(oob) >= hdr {
		n := binary.NativeEndian.Uint64(oob[0:8])
		if n < hdr || n > uint64(len(oob)) {
			return 0, false
		}
		level := int32(binary.NativeEndian.Uint32(oob[8:12]))
		typ := int32(binary.NativeEndian.Uint32(oob[12:16]))
		if level == syscall.SOL_SOCKET && typ == syscall.SCM_TIMESTAMPNS && n >= hdr+ts {
			sec := int64(binary.NativeEndian.Uint64(oob[16:24]))
			nsec := int64(binary.NativeEndian.Uint64(oob[24:32]))
			return sec*int64(time.Second) + nsec, true
		}
		n = (n + 7) &^ 7 // cmsg alignment
		if n > uint64(len(oob)) {
			return 0, false
		}
		oob = oob[n:]
	}
	return 0, false
}

// ArrivalOf returns how long ago the kernel received the last bytes c
// read, when c reports it. The receive time is the wall clock's: a clock
// step can make it look negative or huge, and such a wait is unknown.
func ArrivalOf(c net.Conn, now time.Time) (time.Duration, bool) {
	sc, ok := c.(*stampedConn)
	if !ok || sc.arrived == 0 {
		return 0, false
	}
	wait := time.Duration(now.UnixNano() - sc.arrived)
	if wait < 0 || wait > time.Minute {
		return 0, false
	}
	return wait, true
}
