package postgres

import (
	"context"
	"errors"
	"net"
	"syscall"
)

func userTimeoutOf(c net.Conn) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, errors.New("not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) { v, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpUserTimeout) }); err != nil {
		return 0, err
	}
	return v, gerr
}

// SocketUserTimeout returns TCP_USER_TIMEOUT (ms) of a pooled connection of s, for tests.
func SocketUserTimeout(ctx context.Context, s *Store) (int, error) {
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer c.Release()
	return userTimeoutOf(c.Conn().PgConn().Conn())
}
