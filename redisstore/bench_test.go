package redisstore_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/fincalcauthtest"
	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"
)

// The benchmarks measure what a store is for, against a real Redis and
// the fake FinCalc on loopback; BENCHMARKS.md has the figures.

// BenchmarkColdStart measures a new process's time to its first token:
// from a warm store, in Redis or in files, or by a fetch from an endpoint
// that takes 50 ms to answer.
func BenchmarkColdStart(b *testing.B) {
	fake := fincalcauthtest.NewServer()
	defer fake.Close()
	fake.FailAlways(fincalcauthtest.Fault{Delay: 50 * time.Millisecond}) // then answers as usual
	stores := map[string]fincalcauth.Store{
		"fetch":      nil,
		"redis-warm": fleetConfig(fake, client(b, shared)).Store,
		"file-warm":  fincalcauth.NewFileStore(b.TempDir()),
	}
	for _, name := range []string{"fetch", "redis-warm", "file-warm"} {
		store := stores[name]
		cfg := func() *fincalcauth.Config {
			c := fake.ClientConfig()
			c.Store = store
			return c
		}
		if _, err := cfg().TokenSource(context.Background()).Token(); err != nil { // warms the store
			b.Fatal(err)
		}
		b.Run("from="+name, func(b *testing.B) {
			for b.Loop() {
				if _, err := cfg().TokenSource(context.Background()).Token(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFleet runs 100 sources, each called every 10 ms, over refresh
// cycles of 30-second tokens with RefreshAhead 25 s (so refreshed between
// 4 and 5 s after issue with a store), with a shared Redis and its
// leases (10 cycles), with the same Redis used without leases (10
// cycles), and without a store (3 cycles, which is enough to see 100 a
// cycle), and reports the token requests per cycle. Each takes about a
// minute.
func BenchmarkFleet(b *testing.B) {
	for _, name := range []string{"redis", "redis-no-lease", "none"} {
		b.Run("store="+name, func(b *testing.B) {
			for b.Loop() {
				cycles := 3
				if name != "none" {
					cycles = 10
				}
				b.ReportMetric(runFleet(b, name, cycles), "token-requests/cycle")
			}
		})
	}
}

// noLease is a real Store with its leases hidden: a Store that grants
// none, as a custom one may.
type noLease struct{ fincalcauth.Store }

func runFleet(b *testing.B, store string, cycles int) float64 {
	fake := fincalcauthtest.NewServer()
	defer fake.Close()
	fake.SetTokenLifetime(30 * time.Second)
	rdb := client(b, shared)
	rdb.FlushAll(context.Background())

	// Count the token requests and the tokens the fleet uses.
	var requests atomic.Int64
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.URL.Path == fincalcauthtest.TokenPath {
			requests.Add(1)
		}
		return http.DefaultTransport.RoundTrip(r)
	})
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: rt})
	// One process first, so that the fleet starts from a warm store, as
	// a running fleet is (BenchmarkFleetColdStart starts from an empty
	// one).
	newSource := func() oauth2.TokenSource {
		cfg := fake.ClientConfig()
		switch store {
		case "redis":
			cfg = fleetConfig(fake, rdb)
		case "redis-no-lease":
			cfg = fleetConfig(fake, rdb)
			cfg.Store = noLease{cfg.Store}
		}
		cfg.RefreshAhead = 25 * time.Second
		return cfg.TokenSource(ctx)
	}
	warm, err := newSource().Token()
	if err != nil {
		b.Fatal(err)
	}
	requests.Store(0)
	var tokens sync.Map // access token -> first use, but the warm one, fetched before
	tokens.Store(warm.AccessToken, time.Time{})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 100 {
		ts := newSource()
		wg.Go(func() {
			for {
				tok, err := ts.Token()
				if err == nil {
					tokens.LoadOrStore(tok.AccessToken, time.Now())
				}
				select {
				case <-stop:
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
		})
	}
	// A cycle is 4 to 5 s; it starts when a token is first used that
	// was not in use 2 s earlier.
	time.Sleep(time.Duration(cycles)*4500*time.Millisecond + time.Second)
	close(stop)
	wg.Wait()
	var firsts []time.Time
	tokens.Range(func(_, v any) bool {
		if t := v.(time.Time); !t.IsZero() {
			firsts = append(firsts, t)
		}
		return true
	})
	return float64(requests.Load()) / float64(countCycles(firsts, 2*time.Second))
}

// BenchmarkFleetColdStart starts 100 sources, each with a Redis client
// of its own, at the same moment against an empty store, with an
// endpoint that takes 300 ms to answer, and reports the token requests
// and the time until every source has its token (ns/op), with the
// store's leases and without them.
func BenchmarkFleetColdStart(b *testing.B) {
	for _, name := range []string{"redis", "redis-no-lease"} {
		b.Run("store="+name, func(b *testing.B) {
			fake := fincalcauthtest.NewServer()
			defer fake.Close()
			fake.FailAlways(fincalcauthtest.Fault{Delay: 300 * time.Millisecond})
			clients := make([]*redis.Client, 100)
			for i := range clients {
				clients[i] = client(b, shared)
				clients[i].Ping(context.Background()) // a connection in its pool
			}
			requests := 0
			for b.Loop() {
				b.StopTimer()
				clients[0].FlushAll(context.Background())
				before := fake.TokenRequests()
				sources := make([]oauth2.TokenSource, len(clients))
				for i, rdb := range clients {
					cfg := fleetConfig(fake, rdb)
					if name == "redis-no-lease" {
						cfg.Store = noLease{cfg.Store}
					}
					sources[i] = cfg.TokenSource(context.Background())
				}
				b.StartTimer()
				var wg sync.WaitGroup
				for _, ts := range sources {
					wg.Go(func() {
						if _, err := ts.Token(); err != nil {
							b.Error(err)
						}
					})
				}
				wg.Wait()
				requests += fake.TokenRequests() - before
			}
			b.ReportMetric(float64(requests)/float64(b.N), "token-requests")
		})
	}
}

// BenchmarkHolderKilled measures, with the store's real 30 s leases,
// how long after a process took the lease and was killed (SIGKILL)
// while its token request was under way five other processes, started
// meanwhile, all have a token: the lease's lifetime and one fetch. It
// reports that time as ns/op and the token requests, the killed one's
// included. Each iteration takes about 30 s.
func BenchmarkHolderKilled(b *testing.B) {
	srv := shared
	fake := fincalcauthtest.NewServer()
	defer fake.Close()
	rdb := client(b, srv)
	requests := 0
	for b.Loop() {
		b.StopTimer()
		rdb.FlushAll(context.Background())
		before := fake.TokenRequests()
		fake.FailNext(fincalcauthtest.Fault{Delay: time.Hour}) // the holder's request: no answer
		b.StartTimer()
		var out bytes.Buffer
		holder := startChild(b, fake, srv, &out)
		for deadline := time.Now().Add(30 * time.Second); fake.TokenRequests() == before; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				holder.Process.Kill()
				b.Fatal("the holder sent no token request within 30s")
			}
		}
		taken := time.Now() // the holder took its lease just before
		var cmds []*exec.Cmd
		for range 5 {
			cmds = append(cmds, startChild(b, fake, srv, io.Discard))
		}
		holder.Process.Signal(syscall.SIGKILL)
		holder.Wait()
		for _, cmd := range cmds {
			if err := cmd.Wait(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(time.Since(taken).Seconds(), "s-after-lease-taken")
		requests += fake.TokenRequests() - before
	}
	b.ReportMetric(float64(requests)/float64(b.N), "token-requests")
}

// BenchmarkRedisDown measures a new source's first token with Redis
// killed (connections refused) or hung (SIGSTOP: it accepts connections
// and answers nothing), with a client of go-redis's default options, and
// then, as first-ms and next-ms, the first Token() and the fetch that
// replaces a revoked token right afterwards, during the store's
// cool-down, each with one API request to loopback.
func BenchmarkRedisDown(b *testing.B) {
	for _, mode := range []string{"killed", "hung"} {
		b.Run("redis="+mode, func(b *testing.B) {
			srv, err := startServer()
			if err != nil {
				b.Fatal(err)
			}
			defer srv.stop()
			fake := fincalcauthtest.NewServer()
			defer fake.Close()
			rdb := redis.NewClient(&redis.Options{Addr: srv.addr})
			defer rdb.Close()
			rdb.Ping(context.Background())
			if mode == "killed" {
				srv.cmd.Process.Kill()
				srv.cmd.Wait()
			} else {
				syscall.Kill(srv.cmd.Process.Pid, syscall.SIGSTOP)
			}
			var first, next time.Duration
			for b.Loop() {
				client := fleetConfig(fake, rdb).Client(context.Background())
				start := time.Now()
				get(b, client, fake)
				first += time.Since(start)
				fake.RevokeTokens()
				start = time.Now()
				get(b, client, fake)
				next += time.Since(start)
			}
			b.ReportMetric(float64(first.Milliseconds())/float64(b.N), "first-ms")
			b.ReportMetric(float64(next.Milliseconds())/float64(b.N), "next-ms")
		})
	}
}

func get(b *testing.B, client *http.Client, fake *fincalcauthtest.Server) {
	resp, err := client.Get(fake.URL + fincalcauthtest.ClientsPath)
	if err != nil || resp.StatusCode != 200 {
		b.Fatalf("GET: %v", err)
	}
	resp.Body.Close()
}

// countCycles counts the runs of times with no gap longer than gap.
func countCycles(times []time.Time, gap time.Duration) int {
	if len(times) == 0 {
		return 1
	}
	sortTimes(times)
	n := 1
	for i := 1; i < len(times); i++ {
		if times[i].Sub(times[i-1]) > gap {
			n++
		}
	}
	return n
}

func sortTimes(ts []time.Time) {
	for i := 1; i < len(ts); i++ {
		for j := i; j > 0 && ts[j].Before(ts[j-1]); j-- {
			ts[j], ts[j-1] = ts[j-1], ts[j]
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
