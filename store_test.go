package fincalcauth_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/fincalcauthtest"
)

// memStore is a Store in a map, which counts its calls: the contract's
// plainest implementation, against which sources are tested. FileStore
// and redisstore are tested against real files and a real Redis.
type memStore struct {
	mu      sync.Mutex
	m       map[string][]byte
	expiry  map[string]time.Time
	calls   atomic.Int64
	failing atomic.Bool   // every call fails
	hang    chan struct{} // if set, every call blocks until it is closed, ignoring its context
	delay   time.Duration // every call takes this long, ignoring its context
}

func newMemStore() *memStore {
	return &memStore{m: map[string][]byte{}, expiry: map[string]time.Time{}}
}

func (s *memStore) enter() error {
	s.calls.Add(1)
	time.Sleep(s.delay)
	if s.hang != nil {
		<-s.hang
	}
	if s.failing.Load() {
		return errors.New("store is down")
	}
	return nil
}

func (s *memStore) Load(ctx context.Context, key string) ([]byte, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Now().After(s.expiry[key]) {
		return nil, nil
	}
	return bytes.Clone(s.m[key]), nil
}

func (s *memStore) Save(ctx context.Context, key string, value []byte, expiry time.Time) error {
	if err := s.enter(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key], s.expiry[key] = bytes.Clone(value), expiry
	return nil
}

func (s *memStore) Delete(ctx context.Context, key string, value []byte) error {
	if err := s.enter(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if bytes.Equal(s.m[key], value) {
		delete(s.m, key)
	}
	return nil
}

func (s *memStore) put(key string, value []byte, expiry time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key], s.expiry[key] = value, expiry
}

func (s *memStore) keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []string
	for k := range s.m {
		keys = append(keys, k)
	}
	return keys
}

// storeConfig returns a Config of the fake with store set.
func storeConfig(m *bubbleFake, store fincalcauth.Store) *fincalcauth.Config {
	cfg := m.config()
	cfg.Store = store
	return cfg
}

func TestStoreSharesTokenAcrossSources(t *testing.T) {
	for _, g := range getters {
		t.Run(g.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := newBubbleFake()
				store := newMemStore()
				first, err := g.make(m, storeConfig(m, store))()
				if err != nil {
					t.Fatal(err)
				}
				// A second process starts: it finds the token, fetches none.
				second := g.make(m, storeConfig(m, store))
				tok, err := second()
				if err != nil || tok != first || m.requests() != 1 {
					t.Fatalf("second source: same token %v, %v, after %d token requests; want the first, and 1", tok == first, err, m.requests())
				}
				// Memory first: no store I/O while the token is fresh.
				calls := store.calls.Load()
				for range 100 {
					second()
				}
				if n := store.calls.Load() - calls; n != 0 {
					t.Errorf("%d store calls for 100 calls with a fresh token", n)
				}
			})
		})
	}
}

func TestStoreKeyDiffersByCredentials(t *testing.T) {
	base := testConfig("")
	key := fincalcauth.StoreKey(base)
	for name, change := range map[string]func(*fincalcauth.Config){
		"token URL":   func(c *fincalcauth.Config) { c.TokenURL = "https://other.example/token" },
		"client ID":   func(c *fincalcauth.Config) { c.ClientID = "54321" },
		"email":       func(c *fincalcauth.Config) { c.EmailAddress = "other@example.com" },
		"scopes":      func(c *fincalcauth.Config) { c.Scopes = []string{fincalcauth.ScopeFactFind} },
		"secret":      func(c *fincalcauth.Config) { c.ClientSecret = "another secret" },
		"no TokenURL": func(c *fincalcauth.Config) { c.TokenURL = fincalcauth.TokenURL },
	} {
		c := testConfig("")
		change(c)
		other := fincalcauth.StoreKey(c)
		if (other == key) != (name == "no TokenURL") {
			t.Errorf("changing the %s: key %s, base key %s", name, other, key)
		}
		for _, part := range []string{c.ClientID, c.EmailAddress, c.ClientSecret, "example"} {
			if strings.Contains(other, part) {
				t.Errorf("key %s shows %q", other, part)
			}
		}
	}
	c := testConfig("")
	c.Scopes = []string{c.Scopes[1], c.Scopes[0], c.Scopes[1]}
	if fincalcauth.StoreKey(c) != key {
		t.Errorf("the order or repeats of scopes change the key")
	}
}

func TestStoreSpreadsRefreshes(t *testing.T) {
	// 30 s tokens, RefreshAhead 25 s: with a store, a refresh starts 4 to
	// 5 s after issue; without, at 5 s exactly.
	cfg := testConfig("")
	cfg.RefreshAhead = 25 * time.Second
	if got := fincalcauth.RefreshOffset(cfg, 30*time.Second); got != 5*time.Second {
		t.Errorf("without a store: refresh %v after issue, want 5s", got)
	}
	cfg.Store = newMemStore()
	seen := map[time.Duration]bool{}
	for range 100 {
		got := fincalcauth.RefreshOffset(cfg, 30*time.Second)
		if got <= 4*time.Second || got > 5*time.Second {
			t.Fatalf("with a store: refresh %v after issue, want in (4s, 5s]", got)
		}
		seen[got] = true
	}
	if len(seen) < 50 {
		t.Errorf("100 sources share %d refresh moments; want them spread", len(seen))
	}
	// Spread below validity's end too: 12 s tokens are used until 2 s.
	for range 100 {
		if got := fincalcauth.RefreshOffset(cfg, 12*time.Second); got <= 1600*time.Millisecond || got > 2*time.Second {
			t.Fatalf("12s tokens with a store: refresh %v after issue, want in (1.6s, 2s]", got)
		}
	}
	cfg.RefreshAhead = 0 // the default window, half the lifetime
	if got := fincalcauth.RefreshOffset(cfg, 24*time.Hour); got < 24*time.Hour*4/10 || got > 24*time.Hour*525/1000 {
		t.Errorf("default window with a store: refresh %v after issue of a 24h token", got)
	}
}

func TestStoreSpreadDrawnPerToken(t *testing.T) {
	// One source draws its moment anew for each token, so that two
	// sources that collide in one cycle do not collide in every cycle.
	cfg := testConfig("")
	cfg.Store = newMemStore()
	seen := map[time.Duration]bool{}
	for _, d := range fincalcauth.RefreshOffsets(cfg, time.Hour, 20) {
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Errorf("one source's 20 tokens share %d refresh moments; want them drawn anew", len(seen))
	}
}

func TestStoreFleetRefreshesOncePerCycle(t *testing.T) {
	// 100 sources share a store and 1-hour tokens from an endpoint that
	// takes 200ms, with RefreshAhead set (so no jitter of the default
	// window helps), each called every 10 s at a phase of its own. With
	// leases, each cycle costs exactly one token request. Without, the
	// spread of refresh moments keeps it near one: chance collisions cost
	// up to a few requests in all (at most 1.23 a cycle over 60 runs;
	// without the spread, 2.4 to 2.8), and 1.5 tells them apart.
	for _, tt := range []struct {
		name  string
		store func() fincalcauth.Store
		most  float64 // token requests per cycle
	}{
		{"with leases", func() fincalcauth.Store { return newMemLeaser() }, 1},
		{"without leases", func() fincalcauth.Store { return newMemStore() }, 1.5},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := newBubbleFake()
				m.SetTokenLifetime(time.Hour)
				m.FailAlways(fincalcauthtest.Fault{Delay: 200 * time.Millisecond})
				store := tt.store()
				config := func() *fincalcauth.Config {
					cfg := storeConfig(m, store)
					cfg.RefreshAhead = 30 * time.Minute
					return cfg
				}
				if _, err := config().TokenSource(m.ctx()).Token(); err != nil {
					t.Fatal(err)
				}
				var wg sync.WaitGroup
				for i := range 100 {
					ts := config().TokenSource(m.ctx())
					wg.Go(func() {
						time.Sleep(time.Duration(i) * 100 * time.Millisecond)
						for range 1800 { // 5 hours
							if _, err := ts.Token(); err != nil {
								t.Error(err)
								return
							}
							time.Sleep(10 * time.Second)
						}
					})
				}
				wg.Wait()
				// A cycle is a run of token requests with no gap of 5 minutes.
				times := m.tokenTimes()
				cycles := 1
				for _, gap := range gapsOf(times) {
					if gap > 5*time.Minute {
						cycles++
					}
				}
				n := len(times)
				t.Logf("%d token requests in %d cycles", n, cycles)
				if cycles < 9 {
					t.Errorf("only %d cycles over 5 hours of 1-hour tokens refreshed at half-life", cycles)
				}
				if float64(n) > tt.most*float64(cycles) {
					var offsets []time.Duration
					for _, tm := range times {
						offsets = append(offsets, tm.Sub(times[0]))
					}
					t.Errorf("%d token requests for %d cycles; want at most %v a cycle; at %v", n, cycles, tt.most, offsets)
				}
			})
		})
	}
}

func TestStoreRevokedTokenDeleted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newBubbleFake()
		store := newMemStore()
		client := storeConfig(m, store).Client(m.ctx())
		get := func() int {
			resp, err := client.Get(m.URL + fincalcauthtest.ClientsPath)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		get()
		m.RevokeTokens()
		if s := get(); s != 200 {
			t.Fatalf("after revocation: status %d", s)
		}
		// The store holds the new token, which a new process uses as is.
		tok, err := storeConfig(m, store).TokenSource(m.ctx()).Token()
		if err != nil || !m.ValidToken(tok.AccessToken) || m.requests() != 2 {
			t.Errorf("a new source after revocation: valid %v, %v, after %d token requests; want the replacement and 2",
				err == nil && m.ValidToken(tok.AccessToken), err, m.requests())
		}
	})
}

func TestStoreRevocationKeepsNewerToken(t *testing.T) {
	// Another process replaced the token in the store before this one met
	// the 401: the delete leaves the newer token, and this source adopts it.
	synctest.Test(t, func(t *testing.T) {
		m := newBubbleFake()
		store := newMemStore()
		a := storeConfig(m, store).Client(m.ctx())
		resp, _ := a.Get(m.URL + fincalcauthtest.ClientsPath)
		resp.Body.Close()
		m.RevokeTokens()
		// Process B refreshes: its source finds the revoked token in the
		// store, meets a 401 and saves a replacement.
		b := storeConfig(m, store).Client(m.ctx())
		resp, _ = b.Get(m.URL + fincalcauthtest.ClientsPath)
		resp.Body.Close()
		if m.requests() != 2 {
			t.Fatalf("%d token requests, want 2", m.requests())
		}
		// A meets the 401 now, and takes B's token from the store.
		resp, err := a.Get(m.URL + fincalcauthtest.ClientsPath)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("A after revocation: %v, %v", resp.StatusCode, err)
		}
		resp.Body.Close()
		if m.requests() != 2 || len(store.keys()) != 1 {
			t.Errorf("%d token requests and %d stored keys; want 2 and 1: A adopts B's token", m.requests(), len(store.keys()))
		}
	})
}

func TestStoreFailureCostsAtMostABound(t *testing.T) {
	tests := []struct {
		name    string
		store   func() *memStore
		maxWait time.Duration // the first token, with a load and a save bounded
	}{
		{"fails", func() *memStore { s := newMemStore(); s.failing.Store(true); return s }, 0},
		{"hangs, ignoring its context", func() *memStore { s := newMemStore(); s.hang = make(chan struct{}); return s }, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := newBubbleFake()
				store := tt.store()
				if store.hang != nil {
					defer close(store.hang)
				}
				var logs lockedBuffer
				cfg := storeConfig(m, store)
				cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
				ts := cfg.TokenSource(m.ctx())
				start := time.Now()
				tok, err := ts.Token()
				if err != nil || !m.ValidToken(tok.AccessToken) {
					t.Fatalf("Token() with a store that %s: %v", tt.name, err)
				}
				if d := time.Since(start); d > tt.maxWait {
					t.Errorf("the first token took %v, want at most %v", d, tt.maxWait)
				}
				// Later calls are served from memory, at once.
				start = time.Now()
				for range 10 {
					ts.Token()
				}
				if d := time.Since(start); d != 0 {
					t.Errorf("cached calls took %v", d)
				}
				// A call given up at the bound is logged when its own
				// answer comes, or a grace period later.
				time.Sleep(2 * time.Second)
				synctest.Wait()
				want := "store is down"
				if store.hang != nil {
					want = "no answer within 1s"
				}
				if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "token store") || !strings.Contains(logs.String(), want) {
					t.Errorf("no Warn record of the store's failure naming %q: %s", want, logs.String())
				}
				checkNoSecrets(t, logs.String())
			})
		})
	}
}

func TestStoreBadDataIsAMiss(t *testing.T) {
	other := testConfig("")
	other.ClientSecret = "another secret"
	tests := map[string]func(cfg *fincalcauth.Config) []byte{
		"garbage": func(*fincalcauth.Config) []byte { return []byte("not a sealed token") },
		"empty":   func(*fincalcauth.Config) []byte { return []byte{} },
		"huge":    func(*fincalcauth.Config) []byte { return bytes.Repeat([]byte{1}, 10<<20) },
		"expired": func(cfg *fincalcauth.Config) []byte {
			return fincalcauth.SealFor(cfg, "fake-expired", time.Now().Add(-time.Hour))
		},
		"another secret": func(*fincalcauth.Config) []byte {
			return fincalcauth.SealFor(other, "fake-forged", time.Now().Add(time.Hour))
		},
		"tampered": func(cfg *fincalcauth.Config) []byte {
			v := fincalcauth.SealFor(cfg, "fake-t", time.Now().Add(time.Hour))
			v[len(v)-1] ^= 1
			return v
		},
		"another version": func(cfg *fincalcauth.Config) []byte {
			v := fincalcauth.SealFor(cfg, "fake-t", time.Now().Add(time.Hour))
			v[0] = 9
			return v
		},
	}
	for name, value := range tests {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := newBubbleFake()
				store := newMemStore()
				cfg := storeConfig(m, store)
				store.put(fincalcauth.StoreKey(cfg), value(cfg), time.Now().Add(time.Hour))
				tok, err := cfg.TokenSource(m.ctx()).Token()
				if err != nil || !m.ValidToken(tok.AccessToken) || m.requests() != 1 {
					t.Errorf("Token() = %v; want a fetched token, not the stored one", err)
				}
			})
		})
	}
	t.Run("copied from another key", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			m := newBubbleFake()
			store := newMemStore()
			a := storeConfig(m, store)
			if _, err := a.TokenSource(m.ctx()).Token(); err != nil {
				t.Fatal(err)
			}
			b := storeConfig(m, store)
			b.Scopes = []string{fincalcauth.ScopeClientFinancials}
			store.put(fincalcauth.StoreKey(b), store.m[fincalcauth.StoreKey(a)], time.Now().Add(time.Hour))
			if _, err := b.TokenSource(m.ctx()).Token(); err != nil || m.requests() != 2 {
				t.Errorf("a value copied from another key was used: %d token requests, %v", m.requests(), err)
			}
		})
	})
}

func TestStoreHotPathUnchanged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newBubbleFake()
		store := newMemStore()
		ts := storeConfig(m, store).TokenSource(m.ctx())
		ts.Token()
		calls := store.calls.Load()
		if n := testing.AllocsPerRun(100, func() { ts.Token() }); n != 0 {
			t.Errorf("cached Token() with a store allocates %v times", n)
		}
		if store.calls.Load() != calls {
			t.Errorf("cached Token() calls the store")
		}
	})
}
