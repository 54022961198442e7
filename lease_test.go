package fincalcauth_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/fincalcauthtest"
	"golang.org/x/oauth2"
)

// memLeaser is a memStore that also grants leases, in memory: the
// plainest Leaser, against which the refresher's use of leases is tested
// in synctest bubbles. redisstore and FileStore are tested against a
// real Redis and real files, by several processes.
type memLeaser struct {
	*memStore
	lmu     sync.Mutex
	leases  map[string]memLease
	granted atomic.Int64  // leases taken, extensions not counted
	onLease func()        // if set, called at the start of each Lease
	cannot  bool          // Lease fails with errors.ErrUnsupported
	slow    time.Duration // each Lease takes this long, ignoring its context
}

type memLease struct {
	owner  string
	expiry time.Time
}

func newMemLeaser() *memLeaser {
	return &memLeaser{memStore: newMemStore(), leases: map[string]memLease{}}
}

func (s *memLeaser) Lease(ctx context.Context, key string, owner []byte, expiry time.Time) (bool, error) {
	if err := s.enter(); err != nil {
		return false, err
	}
	time.Sleep(s.slow)
	if s.onLease != nil {
		s.onLease()
	}
	if s.cannot {
		return false, fmt.Errorf("no leases here: %w", errors.ErrUnsupported)
	}
	s.lmu.Lock()
	defer s.lmu.Unlock()
	l, held := s.leases[key]
	if held && time.Now().Before(l.expiry) && l.owner != string(owner) {
		return false, nil
	}
	if !held || l.owner != string(owner) {
		s.granted.Add(1)
	}
	s.leases[key] = memLease{owner: string(owner), expiry: expiry}
	return true, nil
}

func (s *memLeaser) Release(ctx context.Context, key string, owner []byte) error {
	if err := s.enter(); err != nil {
		return err
	}
	s.lmu.Lock()
	defer s.lmu.Unlock()
	if l := s.leases[key]; l.owner == string(owner) {
		delete(s.leases, key)
	}
	return nil
}

// hold gives key's lease to a process that never releases it, as one
// that died while fetching, until expiry.
func (s *memLeaser) hold(key string, expiry time.Time) {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	s.leases[key] = memLease{owner: "dead process", expiry: expiry}
}

// held reports whether anyone holds a lease on key that has not expired.
func (s *memLeaser) held(key string) bool {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	l, ok := s.leases[key]
	return ok && time.Now().Before(l.expiry)
}

// startFleet starts n sources of cfg() at once, each asking for a token
// once through get, and returns their tokens and errors when all have
// answered.
func startFleet(m *bubbleFake, n int, cfg func() *fincalcauth.Config, get tokenGetter) ([]string, []error) {
	tokens, errs := make([]string, n), make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		source := get.make(m, cfg())
		wg.Go(func() { tokens[i], errs[i] = source() })
	}
	wg.Wait()
	return tokens, errs
}

func TestLeaseColdStartOneRequest(t *testing.T) {
	// 100 processes start at once against an empty store, and the
	// endpoint takes 300 ms: with leases, one fetches and the others take
	// its token from the store.
	for _, g := range getters {
		t.Run(g.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := newBubbleFake()
				m.FailAlways(fincalcauthtest.Fault{Delay: 300 * time.Millisecond})
				store := newMemLeaser()
				start := time.Now()
				tokens, errs := startFleet(m, 100, func() *fincalcauth.Config { return storeConfig(m, store) }, g)
				for i := range tokens {
					if errs[i] != nil || tokens[i] != tokens[0] {
						t.Fatalf("source %d: %v, same token as the first: %v", i, errs[i], tokens[i] == tokens[0])
					}
				}
				if n := m.requests(); n != 1 {
					t.Errorf("100 sources starting at once made %d token requests; want 1", n)
				}
				// The waiters see the token within a poll of its save.
				if d := time.Since(start); d > 300*time.Millisecond+50*time.Millisecond {
					t.Errorf("the last source had its token after %v; want within a few polls of the 300ms fetch", d)
				}
				synctest.Wait() // the holder releases in the background
				if store.held(fincalcauth.StoreKey(storeConfig(m, store))) {
					t.Errorf("the lease is still held after the fetch")
				}
			})
		})
	}
}

func TestLeaseHolderDied(t *testing.T) {
	// A process died while it held the lease, before it saved a token:
	// the others wait out its lease, then one of them fetches.
	synctest.Test(t, func(t *testing.T) {
		m := newBubbleFake()
		m.FailAlways(fincalcauthtest.Fault{Delay: 300 * time.Millisecond})
		store := newMemLeaser()
		cfg := func() *fincalcauth.Config { return storeConfig(m, store) }
		start := time.Now()
		store.hold(fincalcauth.StoreKey(cfg()), start.Add(fincalcauth.LeaseTTL))
		tokens, errs := startFleet(m, 20, cfg, getters[0])
		for i := range tokens {
			if errs[i] != nil || tokens[i] != tokens[0] {
				t.Fatalf("source %d: %v, same token as the first: %v", i, errs[i], tokens[i] == tokens[0])
			}
		}
		if n := m.requests(); n != 1 {
			t.Errorf("%d token requests after the holder died; want 1", n)
		}
		// Within the lease's lifetime and one fetch, and a few polls.
		if d, most := time.Since(start), fincalcauth.LeaseTTL+300*time.Millisecond+50*time.Millisecond; d < fincalcauth.LeaseTTL || d > most {
			t.Errorf("the sources had their token after %v; want after the lease's %v, within %v", d, fincalcauth.LeaseTTL, most)
		}
	})
}

func TestLeaseHolderStopsAtItsLease(t *testing.T) {
	// A holder never fetches past its lease: a hung endpoint ends its
	// fetch when the lease ends, which a lease that took half a second to
	// take puts half a second before the fetch's own bound.
	synctest.Test(t, func(t *testing.T) {
		m := newBubbleFake()
		m.FailNext(hang)
		store := newMemLeaser()
		store.slow = 500 * time.Millisecond
		cfg := storeConfig(m, store)
		key := fincalcauth.StoreKey(cfg)
		start := time.Now()
		_, err := cfg.TokenSource(m.ctx()).Token()
		if d := time.Since(start); d != fincalcauth.LeaseTTL {
			t.Errorf("the holder's fetch ended after %v; want at its lease's end, %v", d, fincalcauth.LeaseTTL)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
		}
		synctest.Wait() // the holder releases in the background
		if store.held(key) {
			t.Errorf("the holder did not release its lease")
		}
	})
}

func TestLeaseFetchAfterStoreFailure(t *testing.T) {
	// Only a store that fails lets a source fetch without a lease.
	tests := []struct {
		name  string
		store func() *memLeaser
		want  time.Duration // the first token
	}{
		{"fails", func() *memLeaser { s := newMemLeaser(); s.failing.Store(true); return s }, 0},
		{"hangs, ignoring its context", func() *memLeaser { s := newMemLeaser(); s.hang = make(chan struct{}); return s }, time.Second},
		// Each call answers, in 700ms: a load, then a lease given up at
		// the bound.
		{"answers slowly", func() *memLeaser { s := newMemLeaser(); s.delay = 700 * time.Millisecond; return s }, time.Second},
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
				client := cfg.Client(m.ctx())
				get := viaClient(m, client)
				start := time.Now()
				if _, err := get(); err != nil {
					t.Fatal(err)
				}
				// The store's work of a fetch, all its calls, costs one
				// bound at most.
				if d := time.Since(start); d != tt.want {
					t.Errorf("the first token took %v; want %v", d, tt.want)
				}
				// Then the source leaves the store alone for a cool-down:
				// a fetch right away makes no store call and no wait.
				calls := store.calls.Load()
				m.RevokeTokens()
				start = time.Now()
				if _, err := get(); err != nil {
					t.Fatal(err)
				}
				if d, n := time.Since(start), store.calls.Load()-calls; d != 0 || n != 0 {
					t.Errorf("a fetch during the store's cool-down took %v and made %d store calls; want none", d, n)
				}
				if m.requests() != 2 {
					t.Errorf("%d token requests, want 2", m.requests())
				}
				// After the cool-down, the store is tried again.
				time.Sleep(fincalcauth.MaxCooldown)
				m.RevokeTokens()
				calls = store.calls.Load()
				if _, err := get(); err != nil {
					t.Fatal(err)
				}
				if store.calls.Load() == calls {
					t.Errorf("no store call after the store's cool-down")
				}
				time.Sleep(2 * time.Second)
				synctest.Wait()
				if !strings.Contains(logs.String(), "level=WARN") {
					t.Errorf("no Warn record of the store's failure: %s", logs.String())
				}
			})
		})
	}
}

func TestLeaseThrottled(t *testing.T) {
	// FinCalc answers 429 asking for a minute: the holder fails, leaves
	// its failure in the store, and the fleet shares its cool-down.
	synctest.Test(t, func(t *testing.T) {
		m := newBubbleFake()
		m.FailAlways(withHeader(fail(http.StatusTooManyRequests), "Retry-After", "60"))
		store := newMemLeaser()
		cfg := func() *fincalcauth.Config { return storeConfig(m, store) }
		var sources []func() (string, error)
		for range 20 {
			sources = append(sources, getters[0].make(m, cfg()))
		}
		callAll := func() []error {
			errs := make([]error, len(sources))
			var wg sync.WaitGroup
			for i, get := range sources {
				wg.Go(func() { _, errs[i] = get() })
			}
			wg.Wait()
			return errs
		}
		start := time.Now()
		errs := callAll()
		if n := m.requests(); n != 1 {
			t.Fatalf("20 sources made %d token requests to a throttled endpoint; want 1", n)
		}
		shared := 0
		for i, err := range errs {
			if err == nil {
				t.Fatalf("source %d has a token from a throttled endpoint", i)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "fincalcauth: ") || !strings.Contains(msg, "429") || !strings.Contains(msg, "asked to wait 1m0s") {
				t.Errorf("source %d: error %q does not say 429 and how long FinCalc asked to wait", i, msg)
			}
			var re *oauth2.RetrieveError
			if !errors.As(err, &re) || re.Response.StatusCode != http.StatusTooManyRequests {
				t.Errorf("source %d: error %q has no RetrieveError of 429", i, msg)
			}
			if strings.Contains(msg, "another process") {
				shared++
			}
		}
		if shared != len(errs)-1 {
			t.Errorf("%d errors name another process's failure; want all but the holder's, %d", shared, len(errs)-1)
		}
		// Nobody asks again before the minute is up...
		for time.Since(start) < 59*time.Second {
			time.Sleep(time.Second)
			callAll()
		}
		if n := m.requests(); n != 1 {
			t.Errorf("%d token requests within the minute FinCalc asked for; want 1", n)
		}
		// ...and after it, one source asks, for all.
		m.Recover()
		time.Sleep(2 * time.Second)
		for i, err := range callAll() {
			if err != nil {
				t.Errorf("source %d after the cool-down: %v", i, err)
			}
		}
		if n := m.requests(); n != 2 {
			t.Errorf("%d token requests after the cool-down; want 2", n)
		}
	})
}

func TestRetryAfterLengthensCooldown(t *testing.T) {
	// Without a store, too: a Retry-After beyond the retry budget ends
	// the fetch, and no fetch starts before the moment it names.
	synctest.Test(t, func(t *testing.T) {
		m := newBubbleFake()
		m.FailAlways(withHeader(fail(http.StatusTooManyRequests), "Retry-After", "60"))
		ts := m.config().TokenSource(m.ctx())
		start := time.Now()
		for time.Since(start) < 59*time.Second {
			if _, err := ts.Token(); err == nil || !strings.Contains(err.Error(), "asked to wait 1m0s") {
				t.Fatalf("Token() = %v; want the 429, saying how long FinCalc asked to wait", err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if n := m.requests(); n != 1 {
			t.Errorf("%d token requests within the minute FinCalc asked for; want 1", n)
		}
		time.Sleep(2 * time.Second)
		ts.Token()
		if n := m.requests(); n != 2 {
			t.Errorf("%d token requests after the minute; want 2", n)
		}
	})
}

func TestLeaseWaitEndsWithCallersContext(t *testing.T) {
	// Waiting for another process's token is cancellable.
	synctest.Test(t, func(t *testing.T) {
		m := newBubbleFake()
		store := newMemLeaser()
		cfg := storeConfig(m, store)
		store.hold(fincalcauth.StoreKey(cfg), time.Now().Add(fincalcauth.LeaseTTL))
		client := cfg.Client(m.ctx())
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", m.URL+fincalcauthtest.ClientsPath, nil)
		start := time.Now()
		if _, err := client.Do(req); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("request while another process holds the lease: %v; want the caller's deadline", err)
		}
		if d := time.Since(start); d != 100*time.Millisecond {
			t.Errorf("the caller waited %v; want its 100ms", d)
		}
		if m.requests() != 0 {
			t.Errorf("%d token requests while another process holds the lease", m.requests())
		}
		// The source's own wait goes on, and ends when the lease does.
		time.Sleep(fincalcauth.LeaseTTL)
		synctest.Wait()
		if m.requests() != 1 {
			t.Errorf("%d token requests after the lease ended; want 1", m.requests())
		}
	})
}

func TestLeaseAdoptsSavedTokenAfterTakingIt(t *testing.T) {
	// A source that takes the lease looks in the store again before it
	// fetches: the previous holder may have saved a token meanwhile.
	synctest.Test(t, func(t *testing.T) {
		m := newBubbleFake()
		store := newMemLeaser()
		cfg := storeConfig(m, store)
		key := fincalcauth.StoreKey(cfg)
		// The holder saves and releases after this source's first look,
		// before it asks for the lease.
		store.onLease = func() {
			store.put(key, fincalcauth.SealFor(cfg, "fake-saved", time.Now().Add(24*time.Hour)), time.Now().Add(24*time.Hour))
		}
		tok, err := cfg.TokenSource(m.ctx()).Token()
		if err != nil || tok.AccessToken != "fake-saved" || m.requests() != 0 {
			t.Errorf("Token() = %v, %v after %d token requests; want the saved token and none", tok, err, m.requests())
		}
	})
}

func TestLeaseLogsNoSecrets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newBubbleFake()
		m.FailAlways(withHeader(fail(http.StatusTooManyRequests), "Retry-After", "60"))
		store := newMemLeaser()
		var logs lockedBuffer
		for range 3 {
			cfg := storeConfig(m, store)
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			cfg.TokenSource(m.ctx()).Token()
		}
		checkNoSecrets(t, logs.String())
		// What the store holds names nothing either.
		store.mu.Lock()
		defer store.mu.Unlock()
		for k, v := range store.m {
			for _, s := range []string{fincalcauthtest.ClientSecret, fincalcauthtest.ClientID, fincalcauthtest.EmailAddress, "429"} {
				if strings.Contains(k, s) || bytes.Contains(v, []byte(s)) {
					t.Errorf("store entry %s shows %q", k, s)
				}
			}
		}
	})
}

func TestLeaseUnsupportedStoreStillShares(t *testing.T) {
	// A Leaser that cannot grant leases where it runs (a FileStore
	// without flock) is used as a Store without leases: tokens are still
	// saved and shared, and the store is not taken for a failed one.
	synctest.Test(t, func(t *testing.T) {
		m := newBubbleFake()
		store := newMemLeaser()
		store.cannot = true
		var logs lockedBuffer
		cfg := storeConfig(m, store)
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		if _, err := cfg.TokenSource(m.ctx()).Token(); err != nil {
			t.Fatal(err)
		}
		if _, err := storeConfig(m, store).TokenSource(m.ctx()).Token(); err != nil || m.requests() != 1 {
			t.Errorf("a second source: %v after %d token requests; want the saved token and 1", err, m.requests())
		}
		if strings.Contains(logs.String(), "level=WARN") {
			t.Errorf("a store without leases was logged as failing: %s", logs.String())
		}
	})
}

func TestLeaseReleasedAfterSlowStore(t *testing.T) {
	// A store slow enough that the save runs out of the fetch's bound:
	// the holder still releases its lease, so that the next source need
	// not wait out the lease, and no caller waits for the release.
	synctest.Test(t, func(t *testing.T) {
		m := newBubbleFake()
		store := newMemLeaser()
		store.delay = 300 * time.Millisecond // a load, a load, a failure's load, then the save: over the second
		cfg := storeConfig(m, store)
		start := time.Now()
		if _, err := cfg.TokenSource(m.ctx()).Token(); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("the first token took %v; want the store's bound at most", d)
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if store.held(fincalcauth.StoreKey(cfg)) {
			t.Errorf("the lease is still held after its holder's fetch")
		}
	})
}
