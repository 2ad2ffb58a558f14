package postgres

import (
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Dead-peer detection on established connections. A server host that dies or drops off
// the network sends nothing, not even a reset: without these, a statement sent to it would
// wait for the kernel's retransmissions to give up (about 15 minutes on Linux) and an idle
// connection would look alive forever.
const (
	keepAliveIdle     = 10 * time.Second // first probe after this much silence
	keepAliveInterval = 5 * time.Second
	keepAliveCount    = 3
	minUserTimeout    = 10 * time.Second
)

// userTimeout is how long sent data (a statement, a keepalive probe) may stay
// unacknowledged before the connection is declared dead (TCP_USER_TIMEOUT, Linux): twice
// the connect timeout, at least 10s, so that one lost packet on a busy network does not
// kill a healthy connection.
func userTimeout(connectTimeout time.Duration) time.Duration {
	return max(2*connectTimeout, minUserTimeout)
}

// dialFunc dials with the connect timeout, TCP keepalives and, where the platform has it, a
// TCP user timeout.
func dialFunc(connectTimeout time.Duration) pgconn.DialFunc {
	d := &net.Dialer{
		Timeout: connectTimeout,
		KeepAliveConfig: net.KeepAliveConfig{
			Enable: true, Idle: keepAliveIdle, Interval: keepAliveInterval, Count: keepAliveCount,
		},
		Control: socketControl(userTimeout(connectTimeout)),
	}
	return d.DialContext
}
