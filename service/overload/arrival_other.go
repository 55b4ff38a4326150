//go:build !linux || !(amd64 || arm64)

package overload

import (
	"net"
	"time"
)

// StampArrivals returns ln as it is: only Linux reports when the bytes a
// connection reads arrived. The limiter then goes by the scheduler's
// delay alone.
func StampArrivals(ln net.Listener) net.Listener { return ln }

// ArrivalOf never knows.
func ArrivalOf(net.Conn, time.Time) (time.Duration, bool) { return 0, false }
