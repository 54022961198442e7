package fincalcauth_test

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/fincalcauthtest"
)

// The figures of README.md's "Running in production" come from these
// tests (go test -run TestProduction -v): token requests over days of
// virtual time against the fake, with FinCalc's 24-hour tokens.

// runFleet makes n sources of the fake, with store if not nil, calls each
// every interval at a phase of its own for d, and returns the token
// requests per day.
func runFleet(t *testing.T, m *bubbleFake, n int, store fincalcauth.Store, interval, d time.Duration) float64 {
	t.Helper()
	before := m.requests()
	var wg sync.WaitGroup
	for i := range n {
		cfg := m.config()
		if store != nil {
			cfg.Store = store
		}
		ts := cfg.TokenSource(m.ctx())
		wg.Go(func() {
			time.Sleep(time.Duration(i) * interval / time.Duration(n))
			for start := time.Now(); time.Since(start) < d; time.Sleep(interval) {
				ts.Token()
			}
		})
	}
	wg.Wait()
	return float64(m.requests()-before) / (float64(d) / float64(24*time.Hour))
}

func TestProductionTokenVolumes(t *testing.T) {
	const days = 7 * 24 * time.Hour
	tests := []struct {
		name     string
		sources  int
		store    func() fincalcauth.Store
		fault    *fincalcauthtest.Fault // for the whole run
		interval time.Duration
		min, max float64 // token requests per day
	}{
		// 24-hour tokens, replaced about 12 hours before expiry.
		{"one process", 1, nil, nil, time.Minute, 1.9, 2.2},
		{"20 processes, no store", 20, nil, nil, time.Minute, 38, 50}, // refreshes spread earlier for the store
		{"20 processes, one store", 20, func() fincalcauth.Store { return newMemStore() }, nil, time.Minute, 1.9, 3},
		{"20 processes, store down", 20, func() fincalcauth.Store { s := newMemStore(); s.failing.Store(true); return s }, nil, time.Minute, 38, 50}, // refreshes spread earlier for the store
		// A whole day of outage: one fetch (4 requests, 3 retries) per
		// cool-down, which is capped at a minute, less up to a fifth.
		{"one process, token endpoint down (503)", 1, nil, &fincalcauthtest.Fault{Status: 503}, time.Second, 4 * 1440, 4 * 1800},
		{"one process, credentials refused (401)", 1, nil, &fincalcauthtest.Fault{Status: 401}, time.Second, 1440, 1800},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := newBubbleFake()
				d := days
				if tt.fault != nil {
					m.FailAlways(*tt.fault)
					d = 24 * time.Hour
				}
				var store fincalcauth.Store
				if tt.store != nil {
					store = tt.store()
				}
				perDay := runFleet(t, m, tt.sources, store, tt.interval, d)
				t.Logf("%s: %.1f token requests a day", tt.name, perDay)
				if perDay < tt.min || perDay > tt.max {
					t.Errorf("%.1f token requests a day, want %v to %v", perDay, tt.min, tt.max)
				}
			})
		})
	}
}

func TestProductionClientPerRequest(t *testing.T) {
	// The trap: a Client made per request holds its own token, so each
	// request costs a token request. One client reused costs one.
	synctest.Test(t, func(t *testing.T) {
		m := newBubbleFake()
		cfg := m.config()
		for range 100 {
			viaClient(m, cfg.Client(m.ctx()))()
		}
		perRequest := m.requests()
		client := cfg.Client(m.ctx())
		for range 100 {
			viaClient(m, client)()
		}
		reused := m.requests() - perRequest
		t.Logf("100 requests: %d token requests with a client per request, %d with one client", perRequest, reused)
		if perRequest != 100 || reused != 1 {
			t.Errorf("100 requests cost %d token requests with a client each and %d with one; want 100 and 1", perRequest, reused)
		}
	})
}

func TestProductionStoreOutageCost(t *testing.T) {
	// A store that hangs costs the first token a second per call (a load
	// and a save), and nothing once the token is in hand.
	synctest.Test(t, func(t *testing.T) {
		m := newBubbleFake()
		store := newMemStore()
		store.hang = make(chan struct{})
		defer close(store.hang)
		ts := storeConfig(m, store).TokenSource(m.ctx())
		start := time.Now()
		if _, err := ts.Token(); err != nil {
			t.Fatal(err)
		}
		first := time.Since(start)
		start = time.Now()
		for range 1000 {
			ts.Token()
		}
		t.Logf("store hanging: first token after %v, 1000 cached calls in %v", first, time.Since(start))
		if first != 2*time.Second || time.Since(start) != 0 {
			t.Errorf("first token after %v, want 2s; cached calls took %v", first, time.Since(start))
		}
	})
}
