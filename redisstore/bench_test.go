package redisstore_test

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/fincalcauthtest"
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
// 4 and 5 s after issue with a store), with a shared Redis (10 cycles)
// and without (3 cycles, which is enough to see 100 a cycle), and
// reports the token requests per cycle. It takes about a minute.
func BenchmarkFleet(b *testing.B) {
	for _, name := range []string{"redis", "none"} {
		b.Run("store="+name, func(b *testing.B) {
			for b.Loop() {
				cycles := 3
				if name == "redis" {
					cycles = 10
				}
				b.ReportMetric(runFleet(b, name == "redis", cycles), "token-requests/cycle")
			}
		})
	}
}

func runFleet(b *testing.B, shareRedis bool, cycles int) float64 {
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
	// a running fleet is: a fleet that starts all at once against an
	// empty store may fetch once per process.
	newSource := func() oauth2.TokenSource {
		cfg := fake.ClientConfig()
		if shareRedis {
			cfg = fleetConfig(fake, rdb)
		}
		cfg.RefreshAhead = 25 * time.Second
		return cfg.TokenSource(ctx)
	}
	if _, err := newSource().Token(); err != nil {
		b.Fatal(err)
	}
	requests.Store(0)
	var tokens sync.Map // access token -> first use
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
	tokens.Range(func(_, v any) bool { firsts = append(firsts, v.(time.Time)); return true })
	return float64(requests.Load()) / float64(countCycles(firsts, 2*time.Second))
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
