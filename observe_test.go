package fincalcauth_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/fincalcauthtest"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"
)

// recorder is an Observer that writes each event down in a line, with
// the value of ctxKey in the context it is given.
type recorder struct {
	mu     sync.Mutex
	lines  []string
	source string // the Source of the events; all must have the same
}

type ctxKey struct{}

func label(ctx context.Context) string {
	s, _ := ctx.Value(ctxKey{}).(string)
	return s
}

func (r *recorder) StartFetch(ctx context.Context, e fincalcauth.FetchStart) context.Context {
	r.add(ctx, e.Source, fmt.Sprintf("start background=%v", e.Background))
	return context.WithValue(ctx, ctxKey{}, "fetch of "+label(ctx))
}

func (r *recorder) Observe(ctx context.Context, e fincalcauth.Event) {
	switch e := e.(type) {
	case fincalcauth.FetchAttempt:
		r.add(ctx, e.Source, fmt.Sprintf("attempt %d: %d, failed %v", e.Attempt, e.StatusCode, e.Err != nil))
	case fincalcauth.FetchEnd:
		var te *fincalcauth.TokenError
		r.add(ctx, e.Source, fmt.Sprintf("end %s after %d: %d, TokenError %v, expiry set %v", e.Outcome, e.Attempts, e.StatusCode, errors.As(e.Err, &te), !e.Expiry.IsZero()))
	case fincalcauth.StoreOp:
		r.add(ctx, e.Source, fmt.Sprintf("store %s %s", e.Operation, e.Outcome))
	case fincalcauth.TokenInUse:
		r.add(ctx, e.Source, fmt.Sprintf("in use, from store %v, for %v", e.FromStore, time.Until(e.Expiry)))
	case fincalcauth.Unauthorized:
		r.add(ctx, e.Source, fmt.Sprintf("401, replayed %v", e.Replayed))
	default:
		r.add(ctx, "", fmt.Sprintf("unknown %T", e))
	}
}

func (r *recorder) add(ctx context.Context, source, line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.source == "" {
		r.source = source
	}
	if source != r.source {
		line += " (source " + source + ")"
	}
	if l := label(ctx); l != "" {
		line += " [" + l + "]"
	}
	r.lines = append(r.lines, line)
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.lines
	r.lines = nil
	return l
}

func TestObserverEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newBubbleFake()
		rec := &recorder{}
		cfg := m.config()
		cfg.Observer = rec
		cfg.Store = newMemStore()
		srcCtx := context.WithValue(m.ctx(), ctxKey{}, "the source")
		client := cfg.Client(srcCtx)
		get := func(ctx context.Context) (*http.Response, error) {
			req, _ := http.NewRequestWithContext(ctx, "GET", m.URL+fincalcauthtest.ClientsPath, nil)
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			return resp, err
		}
		caller := context.WithValue(m.ctx(), ctxKey{}, "a caller")

		// A first request waits for a fetch, through two failures.
		m.FailNext(fail(503), fail(502))
		if _, err := get(caller); err != nil {
			t.Fatal(err)
		}
		check := func(step string, want []string) {
			t.Helper()
			if diff := cmp.Diff(want, rec.take()); diff != "" {
				t.Errorf("%s: events (-want +got):\n%s", step, diff)
			}
		}
		check("first request", []string{
			"store load miss [a caller]",
			"start background=false [a caller]",
			"attempt 1: 503, failed true [fetch of a caller]",
			"attempt 2: 502, failed true [fetch of a caller]",
			"attempt 3: 200, failed false [fetch of a caller]",
			"end ok after 3: 200, TokenError false, expiry set true [fetch of a caller]",
			"store save ok [a caller]",
			"in use, from store false, for 24h0m0s [a caller]",
		})

		// The cached path reports nothing.
		for range 10 {
			get(caller)
		}
		check("cached", nil)

		// The refresh window: a background fetch, under the source's
		// context; the store holds only the current token.
		time.Sleep(13 * time.Hour)
		get(caller)
		synctest.Wait()
		check("background refresh", []string{
			"store load hit [the source]",
			"start background=true [the source]",
			"attempt 1: 200, failed false [fetch of the source]",
			"end ok after 1: 200, TokenError false, expiry set true [fetch of the source]",
			"store save ok [the source]",
			"in use, from store false, for 24h0m0s [the source]",
		})

		// The API refuses the token: a 401, a fetch, a replay.
		m.RevokeTokens()
		time.Sleep(time.Minute)
		if resp, err := get(caller); err != nil || resp.StatusCode != 200 {
			t.Fatalf("after a revocation: %v, %v", resp, err)
		}
		check("revoked", []string{
			"store delete ok [a caller]",
			"store load miss [a caller]",
			"start background=false [a caller]",
			"attempt 1: 200, failed false [fetch of a caller]",
			"end ok after 1: 200, TokenError false, expiry set true [fetch of a caller]",
			"store save ok [a caller]",
			"in use, from store false, for 24h0m0s [a caller]",
			"401, replayed true [a caller]",
		})

		// A second source of the same credentials finds the token in the
		// store.
		cfg2 := m.config()
		cfg2.Observer = rec
		cfg2.Store = cfg.Store
		if _, err := cfg2.TokenSource(srcCtx).Token(); err != nil {
			t.Fatal(err)
		}
		check("second source", []string{
			"store load hit [the source]",
			"in use, from store true, for 24h0m0s [the source]",
		})

		// Config.Token reports its fetch under its own context: refused.
		m.FailNext(fincalcauthtest.Fault{Status: 401})
		if _, err := cfg.Token(caller); err == nil {
			t.Fatal("no error")
		}
		check("refused", []string{
			"start background=false [a caller]",
			"attempt 1: 401, failed true [fetch of a caller]",
			"end refused after 1: 401, TokenError true, expiry set false [fetch of a caller]",
		})
		// A failure: no answer.
		m.FailNext(fincalcauthtest.Fault{Drop: true}, fincalcauthtest.Fault{Drop: true}, fincalcauthtest.Fault{Drop: true}, fincalcauthtest.Fault{Drop: true})
		if _, err := cfg.Token(caller); err == nil {
			t.Fatal("no error")
		}
		check("failed", []string{
			"start background=false [a caller]",
			"attempt 1: 0, failed true [fetch of a caller]",
			"attempt 2: 0, failed true [fetch of a caller]",
			"attempt 3: 0, failed true [fetch of a caller]",
			"attempt 4: 0, failed true [fetch of a caller]",
			"end failed after 4: 0, TokenError true, expiry set false [fetch of a caller]",
		})
		// Transient statuses until the fetch gives up: failed, not refused.
		m.FailAlways(fail(503))
		cfg.Token(caller)
		if got := rec.take(); len(got) == 0 || got[len(got)-1] != "end failed after 4: 503, TokenError true, expiry set false [fetch of a caller]" {
			t.Errorf("a fetch that met only 503s: %q", got)
		}
	})
}

func TestObserverSourceIdentifiesCredentials(t *testing.T) {
	var sources []string
	for _, mod := range []func(*fincalcauth.Config){
		func(*fincalcauth.Config) {},
		func(*fincalcauth.Config) {},
		func(c *fincalcauth.Config) { c.EmailAddress = "other@example.com" },
	} {
		cfg := testConfig("")
		mod(cfg)
		rec := &recorder{}
		cfg.Observer = rec
		ctx := memContext(answer(503, "down"))
		ctx, cancel := context.WithCancel(ctx)
		cancel()
		cfg.Token(ctx)
		rec.take()
		sources = append(sources, rec.source)
		for _, secretish := range []string{cfg.ClientID, cfg.EmailAddress, cfg.ClientSecret} {
			if rec.source == "" || len(rec.source) != 8 || secretish == rec.source {
				t.Errorf("source %q", rec.source)
			}
		}
		if want := fincalcauth.StoreKey(cfg)[:8]; rec.source != want {
			t.Errorf("source %q, want the start of the store key, %q", rec.source, want)
		}
	}
	if sources[0] != sources[1] || sources[0] == sources[2] {
		t.Errorf("sources %q: want the same for the same credentials, else another", sources)
	}
}

func TestTokenError(t *testing.T) {
	// Every way of failing to get a token has a TokenError in its chain,
	// whatever the cause, and the same text as without it.
	causes := []struct {
		name  string
		fault fincalcauthtest.Fault
		want  func(error) bool
	}{
		{"refused", fincalcauthtest.Fault{Status: 401, Description: "Client authentication failed"}, func(err error) bool {
			var re *oauth2.RetrieveError
			return errors.As(err, &re)
		}},
		{"no answer", fincalcauthtest.Fault{Drop: true}, func(err error) bool {
			var re *oauth2.RetrieveError
			return !errors.As(err, &re)
		}},
		{"timeout", hang, func(err error) bool { return errors.Is(err, context.DeadlineExceeded) }},
	}
	for _, c := range causes {
		for _, g := range []struct {
			name string
			get  func(m *bubbleFake) error
		}{
			{"Token", func(m *bubbleFake) error {
				ctx, cancel := context.WithTimeout(m.ctx(), time.Minute)
				defer cancel()
				_, err := m.config().Token(ctx)
				return err
			}},
			{"TokenSource", func(m *bubbleFake) error { _, err := m.config().TokenSource(m.ctx()).Token(); return err }},
			{"Client", func(m *bubbleFake) error {
				resp, err := m.config().Client(m.ctx()).Get(m.URL + fincalcauthtest.ClientsPath)
				if err == nil {
					resp.Body.Close()
					return nil
				}
				var ue *url.Error
				if !errors.As(err, &ue) {
					t.Errorf("%v is no *url.Error", err)
				}
				return err
			}},
		} {
			t.Run(c.name+"/"+g.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					m := newBubbleFake()
					m.FailAlways(c.fault)
					err := g.get(m)
					var te *fincalcauth.TokenError
					if !errors.As(err, &te) {
						t.Fatalf("%v: no TokenError in the chain", err)
					}
					if !c.want(te.Unwrap()) {
						t.Errorf("TokenError wraps %v, not the cause", te.Unwrap())
					}
					if te.Error() != te.Unwrap().Error() || te.Error()[:13] != "fincalcauth: " {
						t.Errorf("TokenError's text %q, its cause's %q", te.Error(), te.Unwrap().Error())
					}
				})
			})
		}
	}

	// A request whose own context ends while it waits for a token.
	synctest.Test(t, func(t *testing.T) {
		m := newBubbleFake()
		m.FailAlways(fincalcauthtest.Fault{Delay: time.Second})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", m.URL+fincalcauthtest.ClientsPath, nil)
		_, err := m.config().Client(m.ctx()).Do(req)
		var te *fincalcauth.TokenError
		if !errors.As(err, &te) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("waiting request: %v; want a TokenError wrapping its context's error", err)
		}
		time.Sleep(time.Minute) // the fetch ends
	})

	// An invalid Config is a ConfigError, not a TokenError.
	cfg := testConfig("")
	cfg.EmailAddress = ""
	_, err := cfg.Token(context.Background())
	var te *fincalcauth.TokenError
	if errors.As(err, &te) {
		t.Errorf("invalid Config: %v is a TokenError", err)
	}

	// The API's own failure is not a TokenError.
	synctest.Test(t, func(t *testing.T) {
		m := newBubbleFake()
		ctx := apiFake(m.Server, func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) })
		_, err := m.config().Client(ctx).Get(m.URL + "/api/v2/clients")
		var te *fincalcauth.TokenError
		if err == nil || errors.As(err, &te) {
			t.Errorf("failed API call: %v; want an error that is no TokenError", err)
		}
	})
}

func TestObserverCachedPathAllocatesNothing(t *testing.T) {
	fake := fincalcauthtest.NewServer()
	defer fake.Close()
	cfg := fake.ClientConfig()
	cfg.Observer = fincalcauth.MultiObserver(&recorder{}, new(fincalcauth.Health))
	ts := cfg.TokenSource(context.Background())
	lookup := fincalcauth.ClientTokenLookup(cfg.Client(context.Background()))
	for name, f := range map[string]func() (*oauth2.Token, error){"TokenSource": ts.Token, "Client": lookup} {
		if _, err := f(); err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(1000, func() { f() }); n != 0 {
			t.Errorf("%s: %v allocations per cached call with an Observer", name, n)
		}
	}
}

func TestHealth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newBubbleFake()
		health := new(fincalcauth.Health)
		cfg := m.config()
		cfg.Observer = fincalcauth.MultiObserver(nil, health)
		cfg.RefreshAhead = time.Hour
		ts := cfg.TokenSource(m.ctx())
		if diff := cmp.Diff(fincalcauth.HealthStatus{}, health.Status(), cmp.Comparer(sameError)); diff != "" {
			t.Errorf("before the first token (-want +got):\n%s", diff)
		}
		start := time.Now()
		ts.Token()
		want := fincalcauth.HealthStatus{Valid: true, ValidUntil: start.Add(24*time.Hour - 10*time.Second), Expiry: start.Add(24 * time.Hour)}
		if diff := cmp.Diff(want, health.Status(), cmp.Comparer(sameError)); diff != "" {
			t.Errorf("with a token (-want +got):\n%s", diff)
		}

		// The refresh fails: the token stays valid, the failure is told.
		m.FailAlways(fincalcauthtest.Fault{Status: 400, Description: "Client is suspended."})
		time.Sleep(23 * time.Hour)
		ts.Token()
		synctest.Wait()
		failedAt := time.Now()
		_, err := cfg.TokenSource(m.ctx()).Token()
		want.LastFailure, want.LastFailureAt, want.Failures = err, failedAt, 2
		if diff := cmp.Diff(want, health.Status(), cmp.Comparer(sameError)); diff != "" {
			t.Errorf("after failures (-want +got):\n%s", diff)
		}
		// Past the expiry: no valid token.
		time.Sleep(time.Hour)
		want.Valid = false
		if diff := cmp.Diff(want, health.Status(), cmp.Comparer(sameError)); diff != "" {
			t.Errorf("past the expiry (-want +got):\n%s", diff)
		}
		// Recovery: valid again; the last failure stays, the count ends.
		m.Recover()
		ts.Token()
		now := time.Now()
		want = fincalcauth.HealthStatus{Valid: true, ValidUntil: now.Add(24*time.Hour - 10*time.Second), Expiry: now.Add(24 * time.Hour),
			LastFailure: err, LastFailureAt: failedAt}
		if diff := cmp.Diff(want, health.Status(), cmp.Comparer(sameError)); diff != "" {
			t.Errorf("after recovery (-want +got):\n%s", diff)
		}
	})
}

func sameError(a, b error) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Error() == b.Error()
}

func TestObserverSeesLeases(t *testing.T) {
	// A store that grants leases: the lease taken before the fetch is
	// reported as a store operation.
	fake := fincalcauthtest.NewServer()
	defer fake.Close()
	rec := &recorder{}
	cfg := fake.ClientConfig()
	cfg.Store = fincalcauth.NewFileStore(t.TempDir())
	cfg.Observer = rec
	if _, err := cfg.TokenSource(context.Background()).Token(); err != nil {
		t.Fatal(err)
	}
	got := rec.take()
	var ops []string
	for _, line := range got {
		if strings.HasPrefix(line, "store ") {
			ops = append(ops, strings.Fields(line)[1]+" "+strings.Fields(line)[2])
		}
	}
	if !slices.Contains(ops, "lease ok") || !slices.Contains(ops, "save ok") {
		t.Errorf("store operations %q, want a lease granted and a save among them", ops)
	}
}
