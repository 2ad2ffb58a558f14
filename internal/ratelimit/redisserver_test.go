package ratelimit

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// redisServer is a throwaway redis-server on a free loopback port, with no persistence, in a
// temporary directory. It is stopped when the test ends.
type redisServer struct {
	tb       testing.TB
	bin, dir string
	port     int
	password string
	cmd      *exec.Cmd
	exited   chan error
}

// redisBinary finds redis-server on PATH or at /usr/bin/redis-server. When it is missing the
// test is skipped, unless THAUTH_REQUIRE_REDIS is set, in which case it fails.
func redisBinary(tb testing.TB) string {
	tb.Helper()
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/bin/redis-server"); err == nil {
		return "/usr/bin/redis-server"
	}
	if _, required := os.LookupEnv("THAUTH_REQUIRE_REDIS"); required {
		tb.Fatal("redis-server not found and THAUTH_REQUIRE_REDIS is set; install it with scripts/redis.sh ensure")
	}
	tb.Skip("redis-server not found (scripts/redis.sh ensure installs it; THAUTH_REQUIRE_REDIS=1 makes this a failure)")
	return ""
}

// startRedis starts a redis-server, requiring password when it is not empty.
func startRedis(tb testing.TB, password string) *redisServer {
	tb.Helper()
	s := &redisServer{tb: tb, bin: redisBinary(tb), dir: tb.TempDir(), password: password}
	var err error
	for range 5 { // another process may take the free port before redis-server binds it
		if s.port, err = freePort(); err != nil {
			tb.Fatal(err)
		}
		if err = s.start(); err == nil {
			tb.Cleanup(s.kill)
			return s
		}
	}
	tb.Fatalf("starting redis-server: %v", err)
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// URL returns the server's redis:// URL, with the password if there is one.
func (s *redisServer) URL() string {
	if s.password != "" {
		return fmt.Sprintf("redis://:%s@127.0.0.1:%d/0", s.password, s.port)
	}
	return fmt.Sprintf("redis://127.0.0.1:%d/0", s.port)
}

// start runs redis-server on s.port and waits until it answers.
func (s *redisServer) start() error {
	args := []string{
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no",
		"--dir", s.dir, "--logfile", filepath.Join(s.dir, "redis.log"), "--daemonize", "no",
	}
	if s.password != "" {
		args = append(args, "--requirepass", s.password)
	}
	cmd := exec.Command(s.bin, args...)
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	deadline := time.Now().Add(15 * time.Second) // a bound on start-up, not an assertion
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("redis-server exited (%v): %s", err, s.logTail())
		default:
		}
		if err := s.ping(); err == nil {
			s.cmd, s.exited = cmd, exited
			return nil
		} else if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("redis-server did not answer on port %d: %v: %s", s.port, err, s.logTail())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ping sends PING in RESP over a fresh connection (with AUTH first when there is a password).
func (s *redisServer) ping() error {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)), time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	rd := bufio.NewReader(c)
	if s.password != "" {
		fmt.Fprintf(c, "*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n", len(s.password), s.password)
		if line, err := rd.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
			return fmt.Errorf("AUTH: %q %v", line, err)
		}
	}
	fmt.Fprint(c, "*1\r\n$4\r\nPING\r\n")
	line, err := rd.ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return errors.New("PING answered " + strings.TrimSpace(line))
	}
	return nil
}

// kill stops the server abruptly (SIGKILL), as a crash would.
func (s *redisServer) kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// restart starts the server again on the same port, empty.
func (s *redisServer) restart() {
	s.tb.Helper()
	if err := s.start(); err != nil {
		s.tb.Fatalf("restarting redis-server on port %d: %v", s.port, err)
	}
}

func (s *redisServer) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(len(lines)-5, 0):], "\n")
}
