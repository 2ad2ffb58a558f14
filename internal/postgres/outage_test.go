package postgres_test

import (
	"context"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/thauth/thauth"
	"github.com/thauth/thauth/internal/postgres"
	"github.com/thauth/thauth/internal/postgres/pgtest"
)

// proxy is a TCP proxy in front of the test server, which a test can take down (connections
// cut, port refusing) or make unresponsive (connections accepted, nothing answered), to play
// a database outage without stopping the shared server.
type proxy struct {
	t      *testing.T
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	hang  bool
	conns []net.Conn
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	p := &proxy{t: t, target: target, addr: "127.0.0.1:0"}
	p.up(false)
	t.Cleanup(p.down)
	return p
}

// up listens (again, on the same port); hang makes it accept connections and never answer.
func (p *proxy) up(hang bool) {
	p.t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr, p.hang = ln, ln.Addr().String(), hang
	p.mu.Unlock()
	go p.serve(ln)
}

func (p *proxy) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns = append(p.conns, c)
		hang := p.hang
		p.mu.Unlock()
		if hang {
			continue // hold it open, say nothing
		}
		go func() {
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, s)
			p.mu.Unlock()
			go func() { io.Copy(s, c); s.Close() }()
			io.Copy(c, s)
			c.Close()
		}()
	}
}

// down stops listening and cuts every connection.
func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// via returns databaseURL with its host and port replaced by addr.
func via(t *testing.T, databaseURL, addr string) string {
	t.Helper()
	u, err := url.Parse(databaseURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = addr
	return u.String()
}

// wantFastUnavailable checks that err is EUnavailable and came while ctx was still live:
// the store gave up on its own (within its connect timeout), long before the generous
// deadline of ctx.
func wantFastUnavailable(t *testing.T, ctx context.Context, what string, err error) {
	t.Helper()
	if got := thauth.ErrorCodeOf(err); got != thauth.EUnavailable {
		t.Fatalf("%s: error %v (code %q), want %q", what, err, got, thauth.EUnavailable)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s: failed only when the caller's deadline passed (%v): it should fail fast", what, err)
	}
	if msg := thauth.ErrorMessage(err); msg != "database unavailable" {
		t.Errorf("%s: message %q, want \"database unavailable\"", what, msg)
	}
}

func TestOpenUnreachable(t *testing.T) {
	// A port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = postgres.Open(ctx, "postgres://thauth:secret@"+addr+"/thauth?sslmode=disable", postgres.Options{})
	wantFastUnavailable(t, ctx, "Open on a closed port", err)
}

func TestOpenUnresponsive(t *testing.T) {
	p := startProxy(t, "127.0.0.1:1")
	p.down()
	p.up(true) // accepts, never answers
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := postgres.Open(ctx, "postgres://thauth@"+p.addr+"/thauth?sslmode=disable", postgres.Options{ConnectTimeout: 500 * time.Millisecond})
	wantFastUnavailable(t, ctx, "Open on a server that never answers", err)
}

// TestOutage takes the database away from a running node and brings it back: reads and
// writes fail fast with EUnavailable meanwhile, and the node recovers on its own.
func TestOutage(t *testing.T) {
	s, dbURL := migrated(t)
	pid := project(t, s)
	server, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, server.Host)
	node := pgtest.Open(t, via(t, dbURL, p.addr), postgres.Options{ConnectTimeout: 300 * time.Millisecond})

	write := func(ctx context.Context, i int) error {
		return node.Tx(ctx, func(ctx context.Context, tx thauth.Data) error {
			sub := thauth.Subject{SubjectID: "user:" + string(rune('a'+i)), SubjectType: "user"}
			if _, err := tx.UpsertSubject(ctx, pid, &sub, time.Now()); err != nil {
				return err
			}
			_, err := tx.AppendChanges(ctx, pid, []thauth.Change{{Kind: thauth.ChangeSubject, Ref: sub.SubjectID}}, time.Now())
			return err
		})
	}
	// Warm the pool with a few connections.
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			if err := write(context.Background(), i); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()

	for _, mode := range []string{"refusing", "unresponsive"} {
		p.down()
		if mode == "unresponsive" {
			p.up(true)
		}
		for i := range 5 { // more attempts than pooled connections
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			wantFastUnavailable(t, ctx, mode+": write", write(ctx, 10+i))
			_, err := node.GetProject(ctx, pid)
			wantFastUnavailable(t, ctx, mode+": read", err)
			wantFastUnavailable(t, ctx, mode+": ping", node.Ping(ctx))
			cancel()
		}
		p.down()
		p.up(false)
		// The node recovers without help: a few calls may still meet a connection that
		// died in the outage (each is then discarded), never more than the pool held.
		var err error
		for attempt := 1; attempt <= 25; attempt++ {
			if err = write(context.Background(), 20); err == nil {
				t.Logf("%s: first write after the outage succeeded at attempt %d", mode, attempt)
				break
			}
			wantCode(t, err, thauth.EUnavailable)
		}
		if err != nil {
			t.Fatalf("%s: writes still fail after the database came back: %v", mode, err)
		}
	}
	got, err := s.GetProject(context.Background(), pid)
	if err != nil {
		t.Fatal(err)
	}
	if got.Revision != 6 {
		t.Errorf("revision = %d, want 6 (4 writes before, 1 after each outage, none during)", got.Revision)
	}
}
