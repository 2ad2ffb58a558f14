package main

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// loadOptions describe one run of load against one target.
type loadOptions struct {
	url         string // base URL; requests go to url + "/v1/check"
	key         string
	bodies      [][]byte
	connections int
	duration    time.Duration
	warmup      time.Duration
	maxRequests int64 // the run stops after this many measured requests
}

// result is what one run measured (warm-up excluded).
type result struct {
	name      string
	requests  int64 // completed requests, errors included
	errors    int64 // transport errors and non-200 answers
	allowed   int64 // 200 answers with "allowed": true
	elapsed   time.Duration
	latencies []time.Duration // sorted; successful requests only
	firstErr  string
}

func (r *result) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.requests-r.errors) / r.elapsed.Seconds()
}

// percentile returns the p-th percentile (0 < p ≤ 100) of the latencies.
func (r *result) percentile(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(float64(len(r.latencies))*p/100+0.5) - 1
	return r.latencies[min(max(i, 0), len(r.latencies)-1)]
}

// newTransport returns a keep-alive transport with exactly enough idle connections for
// the workers, so every worker reuses its own connection.
func newTransport(connections int) *http.Transport {
	return &http.Transport{
		Proxy:               nil, // loopback only: never through a proxy
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        connections,
		MaxIdleConnsPerHost: connections,
		MaxConnsPerHost:     connections,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
}

var allowedTrue = []byte(`"allowed":true`)

// runLoad sends checks from o.connections workers, each on its own keep-alive connection,
// for o.warmup (not measured) and then o.duration or o.maxRequests, whichever ends first.
func runLoad(ctx context.Context, name string, o loadOptions) *result {
	tr := newTransport(o.connections)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	target := o.url + "/v1/check"
	auth := "Bearer " + o.key

	const (
		warmingUp = iota
		measuring
		stopped
	)
	var (
		phase  atomic.Int32
		issued atomic.Int64 // measured requests started, for maxRequests
		wg     sync.WaitGroup
		mu     sync.Mutex
		res    = &result{name: name}
	)
	worker := func(id int) {
		defer wg.Done()
		rng := rand.New(rand.NewPCG(uint64(id), 42))
		var lat []time.Duration
		var n, errs, allowed int64
		var firstErr string
		buf := bytes.NewBuffer(make([]byte, 0, 512))
		for ctx.Err() == nil {
			p := phase.Load()
			if p == stopped || p == measuring && issued.Add(1) > o.maxRequests {
				break
			}
			body := o.bodies[rng.IntN(len(o.bodies))]
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
			if err != nil {
				panic(err) // the URL was validated
			}
			req.Header.Set("Authorization", auth)
			req.Header.Set("Content-Type", "application/json")
			start := time.Now()
			resp, err := client.Do(req)
			ok := false
			if err == nil {
				buf.Reset()
				_, err = io.Copy(buf, resp.Body)
				resp.Body.Close()
				ok = err == nil && resp.StatusCode == http.StatusOK
				if !ok && firstErr == "" {
					firstErr = resp.Status + ": " + truncate(buf.String(), 200)
				}
			} else if firstErr == "" && ctx.Err() == nil {
				firstErr = err.Error()
			}
			d := time.Since(start)
			if p != measuring || ctx.Err() != nil {
				continue // warm-up, or interrupted
			}
			n++
			if ok {
				lat = append(lat, d)
				if bytes.Contains(buf.Bytes(), allowedTrue) {
					allowed++
				}
			} else {
				errs++
			}
		}
		mu.Lock()
		res.requests += n
		res.errors += errs
		res.allowed += allowed
		res.latencies = append(res.latencies, lat...)
		if res.firstErr == "" {
			res.firstErr = firstErr
		}
		mu.Unlock()
	}
	wg.Add(o.connections)
	for i := range o.connections {
		go worker(i)
	}
	if o.warmup > 0 {
		sleep(ctx, o.warmup)
	}
	start := time.Now()
	phase.Store(measuring)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	timer := time.NewTimer(o.duration)
	select {
	case <-done: // maxRequests reached
	case <-ctx.Done():
	case <-timer.C:
	}
	timer.Stop()
	phase.Store(stopped)
	<-done
	// Requests counted are those started while measuring; they all completed by now.
	res.elapsed = time.Since(start)
	slices.Sort(res.latencies)
	return res
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
