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
		{"20 processes, one store with leases", 20, func() fincalcauth.Store { return newMemLeaser() }, nil, time.Minute, 1.9, 3},
		{"20 processes, store down", 20, func() fincalcauth.Store { s := newMemStore(); s.failing.Store(true); return s }, nil, time.Minute, 38, 50}, // refreshes spread earlier for the store
		// A whole day of outage: one fetch (4 requests, 3 retries) per
		// cool-down, which is capped at a minute, less up to a fifth.
		{"one process, token endpoint down (503)", 1, nil, &fincalcauthtest.Fault{Status: 503}, time.Second, 4 * 1440, 4 * 1800},
		// With leases, the fleet shares each failure's cool-down: it costs
		// what one process costs.
		// (Over 4 hours: the others poll the store while one fetches.)
		{"5 processes, one store with leases, token endpoint down (503)", 5, func() fincalcauth.Store { return newMemLeaser() }, &fincalcauthtest.Fault{Status: 503}, 10 * time.Second, 4 * 1440, 4 * 1800},
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
					if tt.sources > 1 {
						d = 4 * time.Hour
					}
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
	// A store that hangs costs the first token a second, the bound of a
	// fetch's store calls, and nothing once the token is in hand.
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
		if first != time.Second || time.Since(start) != 0 {
			t.Errorf("first token after %v, want 1s; cached calls took %v", first, time.Since(start))
		}
	})
}

func TestProductionSecretRotation(t *testing.T) {
	// A rolling restart onto a new secret, with a shared store: the new
	// secret files its token under a new key name, the old processes keep
	// theirs, and the fleet pays one token request.
	synctest.Test(t, func(t *testing.T) {
		m := newBubbleFake()
		store := newMemStore()
		oldCreds := fincalcauthtest.DefaultCredentials()
		newCreds := oldCreds
		newCreds.ClientSecret = "rotated-secret-5YzKq8Lr2Wc7"
		client := func(c fincalcauthtest.Credentials) func() (string, error) {
			cfg := m.ConfigFor(c)
			cfg.Store = store
			return viaClient(m, cfg.Client(m.ctx()))
		}
		health := new(fincalcauth.Health)
		oldCfg := m.ConfigFor(oldCreds)
		oldCfg.Store, oldCfg.Observer = store, health
		oldClient := oldCfg.Client(m.ctx())
		oldProc := viaClient(m, oldClient)
		oldTok, err := oldProc()
		if err != nil {
			t.Fatal(err)
		}
		m.AddCredentials(newCreds)
		before := m.requests()
		var newToks []string
		for range 3 { // three processes restart onto the new secret
			tok, err := client(newCreds)()
			if err != nil {
				t.Fatal(err)
			}
			newToks = append(newToks, tok)
		}
		if tok, _ := oldProc(); tok != oldTok {
			t.Errorf("a process on the old secret changed its token")
		}
		if n := m.requests() - before; n != 1 || newToks[0] != newToks[1] || newToks[1] != newToks[2] {
			t.Errorf("the restarted processes sent %d token requests, and share one token: %v; want 1, true", n, newToks[0] == newToks[2])
		}
		if c, _ := m.TokenCredentials(newToks[0]); c != newCreds {
			t.Errorf("the new token was issued to %v", c)
		}
		if n := len(store.keys()); n != 2 {
			t.Errorf("%d keys in the store, want 2: the old secret's and the new one's", n)
		}

		// FinCalc drops the old secret and revokes its tokens: a process
		// still on it gets the API's 401s, since its fetches are refused.
		m.RemoveCredentials(oldCreds)
		m.RevokeTokens()
		time.Sleep(time.Minute)
		for range 3 {
			resp, err := oldClient.Get(m.URL + fincalcauthtest.ClientsPath)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 401 {
				t.Errorf("a process on the revoked secret: %s, want the API's 401", resp.Status)
			}
		}
		if s := health.Status(); s.Failures != 1 || !s.Valid {
			t.Errorf("health of a process on the revoked secret: %+v; want 1 failure, and its token still held", s)
		}
	})
}

func TestProductionSeveralAdvisers(t *testing.T) {
	// Two advisers of one client share a store and an observer: a token
	// each, under key names of their own.
	synctest.Test(t, func(t *testing.T) {
		m := newBubbleFake()
		store := newMemStore()
		first := fincalcauthtest.DefaultCredentials()
		second := first
		second.EmailAddress = "second.adviser@example.com"
		m.AddCredentials(second)
		rec := &recorder{}
		for _, c := range []fincalcauthtest.Credentials{first, second, first, second} {
			cfg := m.ConfigFor(c)
			cfg.Store, cfg.Observer = store, rec
			tok, err := viaClient(m, cfg.Client(m.ctx()))()
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := m.TokenCredentials(tok); got != c {
				t.Errorf("%s was served a token of %s", c.EmailAddress, got.EmailAddress)
			}
		}
		if n, keys := m.requests(), len(store.keys()); n != 2 || keys != 2 {
			t.Errorf("%d token requests and %d keys, want 2 of each", n, keys)
		}
		rec.take()
	})
}
