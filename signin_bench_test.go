package fincalcauth_test

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/fincalcauthtest"
	"golang.org/x/oauth2"
)

// BenchmarkSignInClientPerRequest measures a request through
// SignIn.Client called for each request, with a fresh token, against a
// request through one Config.Client with its token cached, both down to
// a base transport that answers at once. It reports the store calls and
// token requests per request, which must be 0.
//
//	go test -run '^$' -bench 'SignInClientPerRequest' -count 6 . | benchstat -col /path -
func BenchmarkSignInClientPerRequest(b *testing.B) {
	f := newSignInFake()
	cc := fincalcauthtest.NewMemoryServer()
	fakes := f.Client().Transport
	ccFake := cc.Client().Transport
	instant := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		switch r.URL.Path {
		case fincalcauthtest.SignInTokenPath:
			return fakes.RoundTrip(r)
		case fincalcauthtest.TokenPath:
			return ccFake.RoundTrip(r)
		}
		return &http.Response{StatusCode: 200, Body: http.NoBody, Request: r}, nil
	})
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: instant})
	store := newMemLeaser()
	app := &fincalcauth.SignIn{Config: f.SignInConfig(redirectURL), Store: store}
	f.signIn(b, app, "ada")
	req, _ := http.NewRequest("GET", "http://127.0.0.1/api/v2/clients", nil)
	cfgClient := cc.ClientConfig().Client(ctx)
	for _, c := range []*http.Client{app.Client(ctx, "ada"), cfgClient} {
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
	paths := []struct {
		name   string
		client func() *http.Client
	}{
		{"SignIn.Client-per-request", func() *http.Client { return app.Client(ctx, "ada") }},
		{"Config.Client-cached", func() *http.Client { return cfgClient }},
	}
	for _, p := range paths {
		b.Run("path="+p.name, func(b *testing.B) {
			calls, reqs := store.calls.Load(), f.SignInStats().Requests
			b.ReportAllocs()
			for b.Loop() {
				resp, err := p.client().Do(req)
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
			b.ReportMetric(float64(store.calls.Load()-calls)/float64(b.N), "store-calls/op")
			b.ReportMetric(float64(f.SignInStats().Requests-reqs)/float64(b.N), "token-requests/op")
		})
	}
}

// BenchmarkSignInExpiredAtOnce runs 50 SignIns of one person, as 50
// processes' caches on one store, all with an expired access token,
// asking at once, over a token endpoint 50 ms away. It reports refresh
// requests, invalid_grant answers and distinct tokens handed out per
// round: 1, 0, 1.
func BenchmarkSignInExpiredAtOnce(b *testing.B) {
	for _, st := range []struct {
		name string
		make func() fincalcauth.Store
	}{
		{"in-memory-Leaser", func() fincalcauth.Store { return newMemLeaser() }},
		{"FileStore", func() fincalcauth.Store { return fincalcauth.NewFileStore(b.TempDir()) }},
	} {
		b.Run("store="+st.name, func(b *testing.B) { expiredAtOnce(b, st.make) })
	}
}

func expiredAtOnce(b *testing.B, newStore func() fincalcauth.Store) {
	const sources = 50
	var refreshes, invalid, distinct atomic.Int64
	rounds := 0
	for b.Loop() {
		rounds++
		b.StopTimer()
		f := newSignInFake()
		f.SetTokenLifetime(11 * time.Second) // valid for 1 s, then within expiryDelta
		f.SetSignInThrottle(0)
		store := newStore()
		apps := make([]*fincalcauth.SignIn, sources)
		for i := range apps {
			apps[i] = &fincalcauth.SignIn{Config: f.SignInConfig(redirectURL), Store: store}
		}
		f.signIn(b, apps[0], "ada")
		for _, app := range apps {
			app.TokenSource(f.ctx, "ada").Token()
		}
		time.Sleep(1100 * time.Millisecond)
		slow := f.slowed(50 * time.Millisecond)
		b.StartTimer()
		got := make([]string, sources)
		var wg sync.WaitGroup
		for i, app := range apps {
			wg.Go(func() {
				tok, err := app.TokenSource(slow, "ada").Token()
				if err == nil {
					got[i] = tok.AccessToken
				}
			})
		}
		wg.Wait()
		s := f.SignInStats()
		refreshes.Add(int64(s.Refreshes))
		invalid.Add(int64(s.InvalidGrants))
		seen := map[string]bool{}
		for _, g := range got {
			seen[g] = true
		}
		distinct.Add(int64(len(seen)))
	}
	b.ReportMetric(float64(refreshes.Load())/float64(rounds), "refreshes/round")
	b.ReportMetric(float64(invalid.Load())/float64(rounds), "invalid_grants/round")
	b.ReportMetric(float64(distinct.Load())/float64(rounds), "distinct-tokens/round")
}

// fullFleet makes TestSignInFleetOverADay run its FileStore fleet at
// full size, as BENCHMARKS.md reports it: about two minutes.
var fullFleet = flag.Bool("signin.fullfleet", false, "run the FileStore fleet of TestSignInFleetOverADay at full size")

// TestSignInFleetOverADay runs a fleet of 100 processes' SignIns on one
// store for 1,000 people through a simulated day of hourly tokens, each
// person asking every 30 minutes through a process picked in turn: one
// refresh per token lifetime that ends, per person; no invalid_grant;
// nobody signed out. Under the race detector, or with -short, it runs
// 10 processes for 100 people, and on a FileStore 5 for 50 unless
// -signin.fullfleet is given.
func TestSignInFleetOverADay(t *testing.T) {
	small := raceEnabled || testing.Short()
	stores := []struct {
		name                 string
		make                 func() fincalcauth.Store
		small                bool
		smallProcs, smallPpl int
	}{
		{"in-memory Leaser", func() fincalcauth.Store { return newMemLeaser() }, small, 10, 100},
		{"FileStore", func() fincalcauth.Store { return fincalcauth.NewFileStore(t.TempDir()) }, small || !*fullFleet, 5, 50},
	}
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			processes, people := 100, 1000
			if st.small {
				processes, people = st.smallProcs, st.smallPpl
			}
			fleetOverADay(t, st.make(), processes, people)
		})
	}
}

func fleetOverADay(t *testing.T, store fincalcauth.Store, processes, people int) {
	const (
		lifetime = time.Hour
		step     = 30 * time.Minute
		day      = 24 * time.Hour
	)
	synctest.Test(t, func(t *testing.T) {
		f := newSignInFake()
		f.SetTokenLifetime(lifetime)
		f.SetSignInThrottle(0)
		apps := make([]*fincalcauth.SignIn, processes)
		for i := range apps {
			apps[i] = &fincalcauth.SignIn{Config: f.SignInConfig(redirectURL), Store: store}
		}
		for p := range people {
			f.signIn(t, apps[p%processes], fmt.Sprint("person-", p))
		}
		var signedOut atomic.Int64
		for k := 1; k <= int(day/step); k++ {
			time.Sleep(step)
			var wg sync.WaitGroup
			for w := range 10 {
				wg.Go(func() {
					for p := w; p < people; p += 10 {
						app := apps[(p+k)%processes]
						if _, err := app.TokenSource(f.ctx, fmt.Sprint("person-", p)).Token(); err != nil {
							signedOut.Add(1)
						}
					}
				})
			}
			wg.Wait()
		}
		s := f.SignInStats()
		want := people * int(day/lifetime)
		t.Logf("%d processes, %d people, %v: %d refreshes (lifetimes ended: %d), %d invalid_grant, %d failed", processes, people, day, s.Refreshes, want, s.InvalidGrants, signedOut.Load())
		if s.Refreshes != want || s.InvalidGrants != 0 || signedOut.Load() != 0 {
			t.Errorf("stats %+v, %d failures; want %d refreshes and none refused or failed", s, signedOut.Load(), want)
		}
	})
}
