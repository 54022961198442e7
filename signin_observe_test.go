package fincalcauth_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/fincalcauthtest"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"
)

func TestSignInObserverEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newSignInFake()
		store := newMemLeaser()
		rec := &recorder{}
		app := f.app(store)
		app.Observer = rec
		check := func(step string, want []string) {
			t.Helper()
			if diff := cmp.Diff(want, rec.take()); diff != "" {
				t.Errorf("%s: events (-want +got):\n%s", step, diff)
			}
		}
		caller := context.WithValue(f.ctx, ctxKey{}, "a caller")
		get := func(s *fincalcauth.SignIn) (int, error) {
			req, _ := http.NewRequestWithContext(caller, "GET", f.URL+fincalcauthtest.ClientsPath, nil)
			resp, err := s.Client(f.ctx, "ada@example.com").Do(req)
			if err != nil {
				return 0, err
			}
			resp.Body.Close()
			return resp.StatusCode, nil
		}

		// The code exchange is a fetch under Exchange's context.
		verifier := oauth2.GenerateVerifier()
		to, err := f.Authorize(app.Config.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("login_hint", "ada@example.com")))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := app.Exchange(caller, "ada@example.com", to.Query().Get("code"), oauth2.VerifierOption(verifier)); err != nil {
			t.Fatal(err)
		}
		check("exchange", []string{
			"start background=false [a caller]",
			"attempt 1: 200, failed false [fetch of a caller]",
			"end ok after 1: 200, TokenError false, expiry set true [fetch of a caller]",
			"in use, from store false, for 24h0m0s [a caller]",
			"store save ok [a caller]",
		})

		// Another process finds the person's token in the store; then
		// its cached path reports nothing.
		other := f.app(store)
		other.Observer = rec
		if code, err := get(other); err != nil || code != 200 {
			t.Fatalf("other process: %d, %v", code, err)
		}
		check("other process", []string{
			"store load hit [a caller]",
			"in use, from store true, for 24h0m0s [a caller]",
		})
		for range 5 {
			get(other)
		}
		check("cached", nil)

		// The API refuses the token: the other process refreshes under
		// the lease, which rotates the first process's tokens, and
		// replays.
		f.ExpireTokens()
		if code, err := get(other); err != nil || code != 200 {
			t.Fatalf("refresh: %d, %v", code, err)
		}
		check("refresh on a 401", []string{
			"store load hit [a caller]",
			"store lease ok [a caller]",
			"store load hit [a caller]",
			"start background=false [a caller]",
			"attempt 1: 200, failed false [fetch of a caller]",
			"end ok after 1: 200, TokenError false, expiry set true [fetch of a caller]",
			"store save ok [a caller]",
			"in use, from store false, for 24h0m0s [a caller]",
			"401, replayed true [a caller]",
		})

		// The first process, whose token the rotation revoked, takes the
		// rotated one from the store and replays.
		if code, err := get(app); err != nil || code != 200 {
			t.Fatalf("stale process: %d, %v", code, err)
		}
		check("stale process", []string{
			"store load hit [a caller]",
			"in use, from store true, for 24h0m0s [a caller]",
			"401, replayed true [a caller]",
		})

		// A refused refresh; the TokenSource's wait is under the
		// source's context.
		f.RevokeSignIns()
		time.Sleep(24 * time.Hour)
		third := f.app(store)
		third.Observer = rec
		srcCtx := context.WithValue(f.ctx, ctxKey{}, "the source")
		if _, err := third.TokenSource(srcCtx, "ada@example.com").Token(); !errors.Is(err, fincalcauth.ErrSignInRequired) {
			t.Fatalf("after a revocation: %v", err)
		}
		check("refused", []string{
			"store load hit [the source]",
			"store lease ok [the source]",
			"store load hit [the source]",
			"start background=false [the source]",
			"attempt 1: 400, failed true [fetch of the source]",
			"end refused after 1: 400, TokenError false, expiry set false [fetch of the source]",
			"store load hit [the source]",
			"store delete ok [the source]",
		})

		// SignOut's store calls: it deletes under the lease.
		if err := app.SignOut(caller, "ada@example.com"); err != nil {
			t.Fatal(err)
		}
		check("sign-out", []string{"store lease ok [a caller]", "store load miss [a caller]"})
	})
}

func TestSignInObserverThrottledAndFailed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newSignInFake()
		rec := &recorder{}
		app := f.app(newMemStore())
		app.Observer = rec
		f.signIn(t, app, "ada@example.com")
		rec.take()
		// A 429 is waited out and sent again: two attempts of one fetch.
		f.FailNextSignIn(fincalcauthtest.Fault{Status: 429, Header: http.Header{"Retry-After": {"1"}}})
		time.Sleep(24 * time.Hour)
		if _, err := app.TokenSource(f.ctx, "ada@example.com").Token(); err != nil {
			t.Fatal(err)
		}
		want := []string{
			"store load hit",
			"start background=false",
			"attempt 1: 429, failed true [fetch of ]",
			"attempt 2: 200, failed false [fetch of ]",
			"end ok after 2: 200, TokenError false, expiry set true [fetch of ]",
			"store save ok",
			"in use, from store false, for 24h0m0s",
		}
		if diff := cmp.Diff(want, rec.take()); diff != "" {
			t.Errorf("throttled (-want +got):\n%s", diff)
		}
		// No answer: failed, with no status.
		f.FailNextSignIn(fincalcauthtest.Fault{Drop: true})
		time.Sleep(24 * time.Hour)
		if _, err := app.TokenSource(f.ctx, "ada@example.com").Token(); err == nil {
			t.Fatal("no error")
		}
		want = []string{
			"store load hit",
			"start background=false",
			"attempt 1: 0, failed true [fetch of ]",
			"end failed after 1: 0, TokenError false, expiry set false [fetch of ]",
		}
		if diff := cmp.Diff(want, rec.take()); diff != "" {
			t.Errorf("no answer (-want +got):\n%s", diff)
		}
	})
}

func TestSignInObserverSource(t *testing.T) {
	// Each user's events name a short prefix of the user's key name in
	// the store, never the user key.
	synctest.Test(t, func(t *testing.T) {
		f := newSignInFake()
		store := newMemStore()
		var sources []string
		for _, person := range []string{"ada@example.com", "bob@example.com"} {
			rec := &recorder{}
			app := f.app(store)
			app.Observer = rec
			f.signIn(t, app, person)
			if len(rec.take()) == 0 || len(rec.source) != 8 || strings.Contains(person, rec.source) {
				t.Errorf("%s: source %q", person, rec.source)
			}
			sources = append(sources, rec.source)
		}
		keys := store.keys()
		if len(keys) != 2 || sources[0] == sources[1] {
			t.Fatalf("keys %q, sources %q", keys, sources)
		}
		for _, s := range sources {
			if !strings.HasPrefix(keys[0], s) && !strings.HasPrefix(keys[1], s) {
				t.Errorf("source %q starts no key of %q", s, keys)
			}
		}
	})
}

func TestSignInHealth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newSignInFake()
		health := new(fincalcauth.Health)
		app := f.app(newMemLeaser())
		app.Observer = fincalcauth.MultiObserver(&recorder{}, health)
		start := time.Now()
		f.signIn(t, app, "ada@example.com")
		want := fincalcauth.HealthStatus{Valid: true, ValidUntil: start.Add(24*time.Hour - 10*time.Second), Expiry: start.Add(24 * time.Hour)}
		if diff := cmp.Diff(want, health.Status(), cmp.Comparer(sameError)); diff != "" {
			t.Errorf("signed in (-want +got):\n%s", diff)
		}
		// The grant is revoked: the refresh is refused.
		f.RevokeSignIns()
		time.Sleep(24 * time.Hour)
		_, err := app.TokenSource(f.ctx, "ada@example.com").Token()
		if !errors.Is(err, fincalcauth.ErrSignInRequired) {
			t.Fatalf("after a revocation: %v", err)
		}
		got := health.Status()
		if got.Valid || got.Failures != 1 || got.LastFailure == nil || !got.LastFailureAt.Equal(time.Now()) {
			t.Errorf("after a refused refresh: %+v", got)
		}
		checkNoSignInSecrets(t, got.LastFailure.Error())
	})
}

func TestSignInObserverCachedPathAllocatesNothing(t *testing.T) {
	fake := fincalcauthtest.NewServer()
	defer fake.Close()
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, fake.Client())
	app := &fincalcauth.SignIn{Config: fake.SignInConfig(redirectURL), Store: newMemLeaser(),
		Observer: fincalcauth.MultiObserver(&recorder{}, new(fincalcauth.Health))}
	verifier := oauth2.GenerateVerifier()
	to, err := fake.Authorize(app.Config.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.Exchange(ctx, "ada", to.Query().Get("code"), oauth2.VerifierOption(verifier)); err != nil {
		t.Fatal(err)
	}
	lookup := fincalcauth.SignInTokenLookup(app.Client(ctx, "ada"))
	if _, err := lookup(); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(1000, func() { lookup() }); n != 0 {
		t.Errorf("%v allocations per cached token lookup with an Observer", n)
	}
}
