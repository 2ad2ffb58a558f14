//go:build !linux

package postgres

import (
	"syscall"
	"time"
)

// socketControl does nothing where TCP_USER_TIMEOUT does not exist; keepalives still
// detect dead peers, more slowly.
func socketControl(time.Duration) func(network, address string, c syscall.RawConn) error {
	return nil
}
