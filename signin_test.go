package fincalcauth_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/fincalcauthtest"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"
)

// redirectURL is the registered redirect URI of the tests' application.
const redirectURL = "https://app.example/callback"

// signInFake is a memory fake and the context that reaches it.
type signInFake struct {
	*fincalcauthtest.Server
	ctx context.Context
}

func newSignInFake() *signInFake {
	srv := fincalcauthtest.NewMemoryServer()
	return &signInFake{srv, context.WithValue(context.Background(), oauth2.HTTPClient, srv.Client())}
}

// slowed returns a context whose HTTP client takes d to reach the fake's
// token endpoint, as a network does, so that requests overlap.
func (f *signInFake) slowed(d time.Duration) context.Context {
	base := f.Client().Transport
	return context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.URL.Path == fincalcauthtest.SignInTokenPath {
			time.Sleep(d)
		}
		return base.RoundTrip(r)
	})})
}

// app returns a SignIn of the fake, as one process of an application.
func (f *signInFake) app(store fincalcauth.Store) *fincalcauth.SignIn {
	return &fincalcauth.SignIn{Config: f.SignInConfig(redirectURL), Store: store}
}

// signIn sends person through the sign-in flow of s with PKCE, and
// returns the token from Exchange.
func (f *signInFake) signIn(t testing.TB, s *fincalcauth.SignIn, person string) *oauth2.Token {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	to, err := f.Authorize(s.Config.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("login_hint", person)))
	if err != nil {
		t.Fatal(err)
	}
	if got := to.Query().Get("state"); got != "st" {
		t.Fatalf("state %q came back, want st", got)
	}
	tok, err := s.Exchange(f.ctx, person, to.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// get makes an API request for person through s.Client and returns the
// status and the token it carried last.
func (f *signInFake) get(s *fincalcauth.SignIn, person string) (int, string, error) {
	resp, err := s.Client(f.ctx, person).Get(f.URL + fincalcauthtest.ClientsPath)
	if err != nil {
		return 0, "", err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, strings.TrimPrefix(resp.Request.Header.Get("Authorization"), "Bearer "), nil
}

func TestSignInWebFlow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newSignInFake()
		store := newMemLeaser()
		app := f.app(store)
		tok := f.signIn(t, app, "ada@example.com")
		if tok.RefreshToken != "" || tok.AccessToken == "" {
			t.Errorf("Exchange's token: refresh token %q, access token %q; want none, and one", tok.RefreshToken, tok.AccessToken)
		}
		if got := f.Person(tok.AccessToken); got != "ada@example.com" {
			t.Errorf("token issued to %q", got)
		}
		// Another process that shares the store serves the person.
		other := f.app(store)
		status, sent, err := f.get(other, "ada@example.com")
		if err != nil || status != http.StatusOK || sent != tok.AccessToken {
			t.Fatalf("other process: %d, same token %v, %v", status, sent == tok.AccessToken, err)
		}
		ts, err := other.TokenSource(f.ctx, "ada@example.com").Token()
		if err != nil || ts.AccessToken != tok.AccessToken || ts.RefreshToken != "" || !ts.Valid() {
			t.Fatalf("TokenSource: %+v, %v", ts == nil, err)
		}
		want := fincalcauthtest.SignInStats{Requests: 1, Exchanges: 1}
		if d := cmp.Diff(want, f.SignInStats()); d != "" {
			t.Errorf("stats (-want +got):\n%s", d)
		}
		if n := len(store.keys()); n != 1 {
			t.Errorf("%d store entries, want 1", n)
		}
	})
}

func TestSignInExchangeFailure(t *testing.T) {
	tests := []struct {
		name   string
		break_ func(f *signInFake, app *fincalcauth.SignIn, code, verifier *string)
		code   string
	}{
		{"wrong verifier", func(f *signInFake, app *fincalcauth.SignIn, code, verifier *string) {
			*verifier = oauth2.GenerateVerifier()
		}, "invalid_grant"},
		{"code used twice", func(f *signInFake, app *fincalcauth.SignIn, code, verifier *string) {
			if _, err := app.Exchange(f.ctx, "someone-else", *code, oauth2.VerifierOption(*verifier)); err != nil {
				panic(err)
			}
		}, "invalid_grant"},
		{"code expired", func(f *signInFake, app *fincalcauth.SignIn, code, verifier *string) {
			time.Sleep(fincalcauthtest.AuthCodeLifetime)
		}, "invalid_grant"},
		{"unknown code", func(f *signInFake, app *fincalcauth.SignIn, code, verifier *string) {
			*code = "code-nonsense"
		}, "invalid_request"},
		{"other redirect URI", func(f *signInFake, app *fincalcauth.SignIn, code, verifier *string) {
			app.Config.RedirectURL = "https://app.example/other"
		}, "invalid_request"},
		{"wrong client secret", func(f *signInFake, app *fincalcauth.SignIn, code, verifier *string) {
			app.Config.ClientSecret = "wrong-secret-wrong-secret"
		}, "invalid_client"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newSignInFake()
				store := newMemLeaser()
				app := f.app(store)
				verifier := oauth2.GenerateVerifier()
				to, err := f.Authorize(app.Config.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)))
				if err != nil {
					t.Fatal(err)
				}
				code := to.Query().Get("code")
				secrets := []string{code, verifier}
				tt.break_(f, app, &code, &verifier)
				keys := len(store.keys())
				_, err = app.Exchange(f.ctx, "ada", code, oauth2.VerifierOption(verifier))
				var re *oauth2.RetrieveError
				if !errors.As(err, &re) || re.ErrorCode != tt.code {
					t.Fatalf("Exchange: %v; want a RetrieveError with code %s", err, tt.code)
				}
				if !strings.HasPrefix(err.Error(), "fincalcauth: ") {
					t.Errorf("error %q lacks the prefix", err)
				}
				for _, s := range append(secrets, fincalcauthtest.ClientSecret) {
					if strings.Contains(err.Error(), s) || strings.Contains(string(re.Body), s) {
						t.Errorf("error or body holds a secret: %v", err)
					}
				}
				if re.Response.Request != nil && re.Response.Request.Header.Get("Authorization") != "" {
					t.Errorf("the error keeps the request's Authorization header")
				}
				if n := len(store.keys()); n != keys {
					t.Errorf("store entries went from %d to %d: a failed Exchange saved something", keys, n)
				}
				if _, err := app.TokenSource(f.ctx, "ada").Token(); !errors.Is(err, fincalcauth.ErrSignInRequired) {
					t.Errorf("after a failed Exchange, Token: %v; want ErrSignInRequired", err)
				}
			})
		})
	}
}

func TestSignInNoTokens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newSignInFake()
		app := f.app(newMemLeaser())
		_, err := app.TokenSource(f.ctx, "nobody").Token()
		if !errors.Is(err, fincalcauth.ErrSignInRequired) {
			t.Errorf("Token: %v; want ErrSignInRequired", err)
		}
		_, err = app.Client(f.ctx, "nobody").Get(f.URL + fincalcauthtest.ClientsPath)
		var ue *url.Error
		if !errors.As(err, &ue) || !errors.Is(err, fincalcauth.ErrSignInRequired) {
			t.Errorf("Client: %v; want a *url.Error with ErrSignInRequired", err)
		}
		if n := f.SignInStats().Requests; n != 0 {
			t.Errorf("%d token requests", n)
		}
	})
}

func TestSignInRefreshRotates(t *testing.T) {
	for _, envelope := range []bool{false, true} {
		t.Run(fmt.Sprint("envelope=", envelope), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newSignInFake()
				f.SetSignInEnvelope(envelope)
				f.SetTokenLifetime(time.Hour)
				store := newMemLeaser()
				app := f.app(store)
				first := f.signIn(t, app, "ada")
				time.Sleep(time.Hour)
				status, sent, err := f.get(app, "ada")
				if err != nil || status != http.StatusOK || sent == first.AccessToken {
					t.Fatalf("after expiry: %d, new token %v, %v", status, sent != first.AccessToken, err)
				}
				if got := f.SignInStats().Refreshes; got != 1 {
					t.Errorf("%d refreshes, want 1", got)
				}
				// The rotated pair is in the store: a new process uses it.
				other := f.app(store)
				tok, err := other.TokenSource(f.ctx, "ada").Token()
				if err != nil || tok.AccessToken != sent {
					t.Fatalf("other process: same token %v, %v", err == nil && tok.AccessToken == sent, err)
				}
				// And refreshes with the rotated refresh token.
				time.Sleep(time.Hour)
				if _, err := other.TokenSource(f.ctx, "ada").Token(); err != nil {
					t.Fatal(err)
				}
				if s := f.SignInStats(); s.Refreshes != 2 || s.InvalidGrants != 0 {
					t.Errorf("stats %+v; want 2 refreshes and no invalid_grant", s)
				}
			})
		})
	}
}

// TestSignInOneRefreshFleetWide runs 50 processes' sources of one person,
// all expired, at once: one refresh, and every caller gets its token.
func TestSignInOneRefreshFleetWide(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newSignInFake()
		f.SetTokenLifetime(time.Hour)
		store := newMemLeaser()
		apps := make([]*fincalcauth.SignIn, 50)
		for i := range apps {
			apps[i] = f.app(store)
		}
		f.signIn(t, apps[0], "ada")
		for _, app := range apps {
			if _, err := app.TokenSource(f.ctx, "ada").Token(); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Hour)
		got := make([]string, len(apps))
		var wg sync.WaitGroup
		slow := f.slowed(100 * time.Millisecond)
		for i, app := range apps {
			wg.Go(func() {
				tok, err := app.TokenSource(slow, "ada").Token()
				if err != nil {
					t.Error(err)
					return
				}
				got[i] = tok.AccessToken
			})
		}
		wg.Wait()
		if s := f.SignInStats(); s.Refreshes != 1 || s.InvalidGrants != 0 {
			t.Errorf("stats %+v; want 1 refresh, 0 invalid_grant", s)
		}
		for i := range got {
			if got[i] != got[0] {
				t.Fatalf("caller %d got another token than caller 0", i)
			}
		}
	})
}

func TestSignInSlowRefreshKeepsLease(t *testing.T) {
	// A refresh that takes longer than the lease's lifetime keeps its
	// lease: another process waits for its token rather than taking the
	// lease and spending the same refresh token.
	synctest.Test(t, func(t *testing.T) {
		f := newSignInFake()
		f.SetTokenLifetime(time.Hour)
		store := newMemLeaser()
		first, second := f.app(store), f.app(store)
		f.signIn(t, first, "ada")
		if _, err := second.TokenSource(f.ctx, "ada").Token(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Hour)
		got := make([]string, 2)
		var wg sync.WaitGroup
		wg.Go(func() {
			tok, err := first.TokenSource(f.slowed(30*time.Second), "ada").Token()
			if err != nil {
				t.Error(err)
				return
			}
			got[0] = tok.AccessToken
		})
		time.Sleep(time.Second)
		wg.Go(func() {
			tok, err := second.TokenSource(f.slowed(time.Second), "ada").Token()
			if err != nil {
				t.Error(err)
				return
			}
			got[1] = tok.AccessToken
		})
		wg.Wait()
		if s := f.SignInStats(); s.Refreshes != 1 || s.InvalidGrants != 0 {
			t.Errorf("stats %+v; want 1 refresh, 0 invalid_grant", s)
		}
		if got[0] != got[1] {
			t.Errorf("the two processes got different tokens")
		}
	})
}

func TestSignOutDuringRefreshElsewhere(t *testing.T) {
	// A refresh under way in another process when the person signs out
	// saves its new pair before it releases the lease; the sign-out,
	// which deletes under the lease, must not be undone by that save.
	synctest.Test(t, func(t *testing.T) {
		f := newSignInFake()
		f.SetTokenLifetime(time.Hour)
		store := newMemLeaser()
		first, second := f.app(store), f.app(store)
		f.signIn(t, first, "ada")
		time.Sleep(time.Hour)
		var wg sync.WaitGroup
		wg.Go(func() {
			if _, err := first.TokenSource(f.slowed(30*time.Second), "ada").Token(); err != nil {
				t.Error(err)
			}
		})
		time.Sleep(time.Second)
		if err := second.SignOut(f.ctx, "ada"); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		third := f.app(store)
		if _, err := third.TokenSource(f.ctx, "ada").Token(); !errors.Is(err, fincalcauth.ErrSignInRequired) {
			t.Errorf("after signing out, a new process got %v; want ErrSignInRequired", err)
		}
	})
}

func TestSignInRefused(t *testing.T) {
	tests := []struct {
		name   string
		league int
		refuse func(f *signInFake)
	}{
		{"revoked, league 9", 9, func(f *signInFake) { f.RevokeSignIns() }},
		{"revoked, league 8", 8, func(f *signInFake) { f.RevokeSignIns() }},
		{"grant removed", 9, func(f *signInFake) { f.RevokeGrant("ada") }},
		{"refresh token expired", 9, func(f *signInFake) { time.Sleep(2 * time.Hour) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newSignInFake()
				f.SetLeagueVersion(tt.league)
				f.SetTokenLifetime(time.Hour)
				f.SetRefreshTokenLifetime(2 * time.Hour)
				store := newMemLeaser()
				app := f.app(store)
				f.signIn(t, app, "ada")
				tt.refuse(f)
				time.Sleep(time.Hour)
				_, err := app.TokenSource(f.ctx, "ada").Token()
				var re *oauth2.RetrieveError
				if !errors.Is(err, fincalcauth.ErrSignInRequired) || !errors.As(err, &re) {
					t.Fatalf("Token: %v; want ErrSignInRequired and a RetrieveError", err)
				}
				if n := len(store.keys()); n != 0 {
					t.Errorf("%d store entries left", n)
				}
				// Through a client, in the *url.Error, and with no more
				// token requests: the entry is gone.
				before := f.SignInStats().Requests
				_, err = app.Client(f.ctx, "ada").Get(f.URL + fincalcauthtest.ClientsPath)
				var ue *url.Error
				if !errors.As(err, &ue) || !errors.Is(err, fincalcauth.ErrSignInRequired) {
					t.Errorf("Client: %v", err)
				}
				if n := f.SignInStats().Requests - before; n != 0 {
					t.Errorf("%d more token requests", n)
				}
				// Signing in again mends it.
				f.signIn(t, app, "ada")
				if status, _, err := f.get(app, "ada"); err != nil || status != http.StatusOK {
					t.Errorf("after signing in again: %d, %v", status, err)
				}
			})
		})
	}
}

// TestSignInRevokedWhileFresh: the API refuses a fresh token of a person
// who removed the application; the refresh is refused too, and the
// request fails with ErrSignInRequired rather than the API's 401.
func TestSignInRevokedWhileFresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newSignInFake()
		app := f.app(newMemLeaser())
		f.signIn(t, app, "ada")
		f.RevokeGrant("ada")
		_, _, err := f.get(app, "ada")
		var ue *url.Error
		if !errors.As(err, &ue) || !errors.Is(err, fincalcauth.ErrSignInRequired) {
			t.Fatalf("Client: %v; want ErrSignInRequired in a *url.Error", err)
		}
	})
}

// TestSignInStaleProcessRecovers: process B holds the token that A
// rotated; on the API's 401 it finds A's in the store and replays,
// spending no refresh token.
func TestSignInStaleProcessRecovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newSignInFake()
		store := newMemLeaser()
		a, b := f.app(store), f.app(store)
		first := f.signIn(t, a, "ada")
		if _, sent, _ := f.get(b, "ada"); sent != first.AccessToken {
			t.Fatal("B did not start with the signed-in token")
		}
		// The API refuses the token (as after a server-side expiry): A
		// refreshes under the lease and replays.
		f.ExpireTokens()
		status, rotated, err := f.get(a, "ada")
		if err != nil || status != http.StatusOK || rotated == first.AccessToken {
			t.Fatalf("A: %d, %v", status, err)
		}
		// B still holds the first token, which the rotation revoked.
		status, sent, err := f.get(b, "ada")
		if err != nil || status != http.StatusOK || sent != rotated {
			t.Fatalf("B: %d, A's token %v, %v", status, sent == rotated, err)
		}
		if s := f.SignInStats(); s.Refreshes != 1 || s.InvalidGrants != 0 {
			t.Errorf("stats %+v; want 1 refresh, 0 invalid_grant", s)
		}
	})
}

// TestSignInSleeperRecovers: a process that slept through several
// lifetimes finds in the store a token that the API refuses too; it
// refreshes under the lease and replays once.
func TestSignInSleeperRecovers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newSignInFake()
		f.SetTokenLifetime(time.Hour)
		store := newMemLeaser()
		a, sleeper := f.app(store), f.app(store)
		f.signIn(t, a, "ada")
		f.get(sleeper, "ada")
		time.Sleep(5 * time.Hour)
		if _, _, err := f.get(a, "ada"); err != nil {
			t.Fatal(err)
		}
		f.ExpireTokens() // the store's token is refused as well
		status, _, err := f.get(sleeper, "ada")
		if err != nil || status != http.StatusOK {
			t.Fatalf("sleeper: %d, %v; want 200", status, err)
		}
		if s := f.SignInStats(); s.Refreshes != 2 || s.InvalidGrants != 0 {
			t.Errorf("stats %+v; want 2 refreshes, 0 invalid_grant", s)
		}
	})
}

func TestSignInLockedAccount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newSignInFake()
		var logs lockedBuffer
		app := f.app(newMemLeaser())
		app.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		f.signIn(t, app, "ada")
		f.LockAccount("ada", true)
		resp, err := app.Client(f.ctx, "ada").Get(f.URL + fincalcauthtest.ClientsPath)
		if err != nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("locked: %v, %v; want the 401", resp, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(body), "User account is locked.") {
			t.Errorf("body %q lost the message", body)
		}
		if s := f.SignInStats(); s.Refreshes != 0 {
			t.Errorf("%d refreshes for a locked account", s.Refreshes)
		}
		if !strings.Contains(logs.String(), "locked") {
			t.Errorf("no record of the lock: %s", logs.String())
		}
		f.LockAccount("ada", false)
		if status, _, _ := f.get(app, "ada"); status != http.StatusOK {
			t.Errorf("unlocked: %d", status)
		}
	})
}

func TestSignInFreshTokenCostsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newSignInFake()
		store := newMemLeaser()
		app := f.app(store)
		f.signIn(t, app, "ada")
		f.get(app, "ada")
		calls, reqs := store.calls.Load(), f.SignInStats().Requests
		for range 100 {
			if status, _, err := f.get(app, "ada"); err != nil || status != http.StatusOK {
				t.Fatal(status, err)
			}
		}
		if n := store.calls.Load() - calls; n != 0 {
			t.Errorf("%d store calls for 100 requests with a fresh token", n)
		}
		if n := f.SignInStats().Requests - reqs; n != 0 {
			t.Errorf("%d token requests", n)
		}
	})
}

// TestSignInContextHTTPClient: token requests go through the HTTP client
// of the context given to TokenSource, not another.
func TestSignInContextHTTPClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newSignInFake()
		f.SetTokenLifetime(time.Hour)
		app := f.app(newMemLeaser())
		f.signIn(t, app, "ada")
		var n atomic.Int64
		base := f.Client().Transport
		counted := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			n.Add(1)
			return base.RoundTrip(r)
		})}
		ts := app.TokenSource(context.WithValue(context.Background(), oauth2.HTTPClient, counted), "ada")
		time.Sleep(time.Hour)
		if _, err := ts.Token(); err != nil {
			t.Fatal(err)
		}
		if n.Load() != 1 {
			t.Errorf("%d requests through the context's client, want 1", n.Load())
		}
	})
}

// TestSignInSaveFailureKept: a refreshed pair that the store refuses is
// used from memory and saved once the store is back; no second refresh.
func TestSignInSaveFailureKept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newSignInFake()
		f.SetTokenLifetime(time.Hour)
		store := newMemLeaser()
		var logs lockedBuffer
		app := f.app(store)
		app.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		f.signIn(t, app, "ada")
		f.get(app, "ada")
		time.Sleep(time.Hour)
		// The store fails from the save on: the load and lease succeed.
		saving := &failingSaves{memLeaser: store}
		saving.fail.Store(true)
		app2 := &fincalcauth.SignIn{Config: app.Config, Store: saving, Logger: app.Logger}
		f.signIn(t, app2, "bob") // bob's save fails; his pair stays in memory
		if status, _, err := f.get(app2, "bob"); err != nil || status != http.StatusOK {
			t.Fatalf("bob from memory: %d, %v", status, err)
		}
		if !strings.Contains(logs.String(), "level=ERROR") {
			t.Errorf("no Error record: %s", logs.String())
		}
		time.Sleep(time.Second)
		saving.fail.Store(false)
		time.Sleep(10 * time.Second)
		other := f.app(store)
		if _, err := other.TokenSource(f.ctx, "bob").Token(); err != nil {
			t.Fatalf("after the store came back, another process: %v", err)
		}
		checkNoSignInSecrets(t, logs.String())
	})
}

// failingSaves fails Save while fail is set.
type failingSaves struct {
	*memLeaser
	fail atomic.Bool
}

func (s *failingSaves) Save(ctx context.Context, key string, value []byte, expiry time.Time) error {
	if s.fail.Load() {
		return errors.New("store refuses writes")
	}
	return s.memLeaser.Save(ctx, key, value, expiry)
}

// checkNoSignInSecrets fails t if text shows the fake's client secret,
// an access or refresh token or a code.
func checkNoSignInSecrets(t *testing.T, text string) {
	t.Helper()
	for _, s := range []string{"fake-", "refresh-", "code-", fincalcauthtest.ClientSecret} {
		if strings.Contains(text, s) {
			t.Errorf("text holds a secret (%s…): %s", s, text)
		}
	}
}

// TestSignInLostAnswer: a refresh whose answer is lost is not sent
// again at once; the next attempt, after the cool-down, is refused,
// and the person must sign in again. That is the documented cost.
func TestSignInLostAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newSignInFake()
		f.SetTokenLifetime(time.Hour)
		app := f.app(newMemLeaser())
		f.signIn(t, app, "ada")
		time.Sleep(time.Hour)
		f.LoseSignInAnswers(1)
		ts := app.TokenSource(f.ctx, "ada")
		_, err := ts.Token()
		if err == nil || errors.Is(err, fincalcauth.ErrSignInRequired) {
			t.Fatalf("lost answer: %v; want a plain failure", err)
		}
		if s := f.SignInStats(); s.Refreshes != 1 || s.Requests != 2 {
			t.Errorf("stats %+v; want the refresh sent once", s)
		}
		if _, err := ts.Token(); err == nil || f.SignInStats().Requests != 2 {
			t.Errorf("during the cool-down: %v, %d requests; want the error and no request", err, f.SignInStats().Requests)
		}
		time.Sleep(2 * time.Second)
		if _, err := ts.Token(); !errors.Is(err, fincalcauth.ErrSignInRequired) {
			t.Errorf("after the cool-down: %v; want ErrSignInRequired", err)
		}
	})
}

func TestSignInThrottle(t *testing.T) {
	t.Run("Retry-After within budget", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newSignInFake()
			f.SetTokenLifetime(time.Hour)
			app := f.app(newMemLeaser())
			f.signIn(t, app, "ada")
			time.Sleep(time.Hour)
			f.FailNextSignIn(fincalcauthtest.Fault{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"1"}}})
			start := time.Now()
			if _, err := app.TokenSource(f.ctx, "ada").Token(); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d < time.Second {
				t.Errorf("waited %v, want the second asked for", d)
			}
			if s := f.SignInStats(); s.Refreshes != 1 {
				t.Errorf("%+v", s)
			}
		})
	})
	t.Run("throttled for a minute", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newSignInFake()
			f.SetTokenLifetime(time.Hour)
			f.SetSignInThrottle(1)
			app := f.app(newMemLeaser())
			f.signIn(t, app, "ada")
			time.Sleep(time.Hour)
			f.SetSignInThrottle(1)
			// Spend the minute's one request elsewhere.
			app.Exchange(f.ctx, "bob", "code-nonsense")
			ts := app.TokenSource(f.ctx, "ada")
			_, err := ts.Token()
			if err == nil || !strings.Contains(err.Error(), "wait") {
				t.Fatalf("throttled: %v; want the wait in the error", err)
			}
			before := f.SignInStats().Requests
			time.Sleep(10 * time.Second)
			if _, err := ts.Token(); err == nil || f.SignInStats().Requests != before {
				t.Errorf("within Retry-After: %v, %d requests; want no request", err, f.SignInStats().Requests-before)
			}
			time.Sleep(time.Minute)
			if _, err := ts.Token(); err != nil {
				t.Errorf("after Retry-After: %v", err)
			}
		})
	})
}

// TestSignInInvalidGrantLooksInStore: without a Leaser two processes
// may refresh at once; the loser finds the winner's token in the store.
func TestSignInInvalidGrantLooksInStore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newSignInFake()
		f.SetTokenLifetime(time.Hour)
		store := newMemStore() // no leases
		a := &fincalcauth.SignIn{Config: f.SignInConfig(redirectURL), Store: store}
		b := &fincalcauth.SignIn{Config: f.SignInConfig(redirectURL), Store: store}
		f.signIn(t, a, "ada")
		b.TokenSource(f.ctx, "ada").Token()
		time.Sleep(time.Hour)
		// Hold B's refresh back until A has rotated.
		slow := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.URL.Path == fincalcauthtest.SignInTokenPath {
				for f.SignInStats().Refreshes == 0 {
					time.Sleep(10 * time.Millisecond)
				}
			}
			return f.Client().Transport.RoundTrip(r)
		})}
		bctx := context.WithValue(context.Background(), oauth2.HTTPClient, slow)
		var wg sync.WaitGroup
		var btok *oauth2.Token
		var berr error
		wg.Go(func() { btok, berr = b.TokenSource(bctx, "ada").Token() })
		time.Sleep(time.Second)
		atok, err := a.TokenSource(f.ctx, "ada").Token()
		wg.Wait()
		if err != nil || berr != nil {
			t.Fatal(err, berr)
		}
		if btok.AccessToken != atok.AccessToken {
			t.Errorf("B did not take A's token")
		}
		if s := f.SignInStats(); s.InvalidGrants != 1 || s.Refreshes != 1 {
			t.Errorf("stats %+v; want B's one invalid_grant, and A's refresh", s)
		}
	})
}

func TestSignOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newSignInFake()
		f.SetTokenLifetime(time.Hour)
		store := newMemLeaser()
		a, b := f.app(store), f.app(store)
		f.signIn(t, a, "ada")
		f.get(b, "ada")
		if err := a.SignOut(f.ctx, "ada"); err != nil {
			t.Fatal(err)
		}
		if n := len(store.keys()); n != 0 {
			t.Errorf("%d entries after SignOut", n)
		}
		if _, err := a.TokenSource(f.ctx, "ada").Token(); !errors.Is(err, fincalcauth.ErrSignInRequired) {
			t.Errorf("this process: %v", err)
		}
		time.Sleep(time.Hour)
		if _, _, err := f.get(b, "ada"); !errors.Is(err, fincalcauth.ErrSignInRequired) {
			t.Errorf("another process, at its next refresh: %v", err)
		}
		if s := f.SignInStats(); s.Refreshes != 0 {
			t.Errorf("%d refreshes after SignOut", s.Refreshes)
		}
	})
}

func TestSignInInvalid(t *testing.T) {
	f := newSignInFake()
	good := f.SignInConfig(redirectURL)
	tests := []struct {
		name string
		s    *fincalcauth.SignIn
	}{
		{"nil Config", &fincalcauth.SignIn{Store: newMemStore()}},
		{"nil Store", &fincalcauth.SignIn{Config: good}},
		{"no secret", &fincalcauth.SignIn{Config: &oauth2.Config{ClientID: "1", Endpoint: good.Endpoint}, Store: newMemStore()}},
		{"http token URL", &fincalcauth.SignIn{Config: &oauth2.Config{ClientID: "1", ClientSecret: "s", Endpoint: oauth2.Endpoint{TokenURL: "http://example.com/oauth/token"}}, Store: newMemStore()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.s.Exchange(f.ctx, "u", "c"); err == nil || !strings.HasPrefix(err.Error(), "fincalcauth: ") {
				t.Errorf("Exchange: %v", err)
			}
			if _, err := tt.s.TokenSource(f.ctx, "u").Token(); err == nil {
				t.Error("TokenSource: no error")
			}
			if _, err := tt.s.Client(f.ctx, "u").Get(f.URL); err == nil {
				t.Error("Client: no error")
			}
			if err := tt.s.SignOut(f.ctx, "u"); err == nil {
				t.Error("SignOut: no error")
			}
		})
	}
}

// TestSignInErrorWithholdsEchoedSecrets: a server that echoes the
// request in its error gets its text withheld.
func TestSignInErrorWithholdsEchoedSecrets(t *testing.T) {
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Echo", r.PostForm.Encode())
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":"invalid_grant","error_description":"bad %s","hint":%q}`, r.PostForm.Get("code"), r.PostForm.Get("code_verifier"))
	})
	ctx := memContext(echo)
	app := &fincalcauth.SignIn{Config: &oauth2.Config{ClientID: "1", ClientSecret: "client-secret-xyz", Endpoint: oauth2.Endpoint{TokenURL: "https://fincalc.test/oauth/token"}}, Store: newMemStore()}
	_, err := app.Exchange(ctx, "u", "code-abcdefgh", oauth2.VerifierOption("verifier-abcdefghijklmnopqrstuvwxyz0123456789"))
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Fatalf("%v", err)
	}
	all := err.Error() + string(re.Body) + re.ErrorDescription + fmt.Sprint(re.Response.Header)
	for _, s := range []string{"code-abcdefgh", "verifier-abcdef", "client-secret-xyz"} {
		if strings.Contains(all, s) {
			t.Errorf("%q reported: %s", s, all)
		}
	}
}

// TestSignInSourceCacheBounded: the cache keeps the most recently used
// sources, up to its bound; an evicted person's next call reads the
// store again.
func TestSignInSourceCacheBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newSignInFake()
		store := newMemLeaser()
		app := f.app(store)
		f.signIn(t, app, "ada")
		f.get(app, "ada")
		for i := range fincalcauth.SourceCacheSize - 1 {
			app.TokenSource(f.ctx, fmt.Sprint("user-", i))
		}
		if n := fincalcauth.CachedSources(app); n != fincalcauth.SourceCacheSize {
			t.Fatalf("%d sources cached, want %d", n, fincalcauth.SourceCacheSize)
		}
		calls := store.calls.Load()
		f.get(app, "ada") // the least recent no more
		app.TokenSource(f.ctx, "one-more")
		if n := fincalcauth.CachedSources(app); n != fincalcauth.SourceCacheSize {
			t.Errorf("%d sources cached after one more, want %d", n, fincalcauth.SourceCacheSize)
		}
		f.get(app, "ada")
		if n := store.calls.Load() - calls; n != 0 {
			t.Errorf("ada, recently used, cost %d store calls", n)
		}
		f.get(app, "user-0") // evicted: it reads the store again
		if n := store.calls.Load() - calls; n == 0 {
			t.Errorf("user-0 was not evicted")
		}
	})
}

// TestSignInUnsavedPairRefreshes: while the store refuses writes, a
// process refreshes with the pair it holds in memory, not with the older
// one in the store, which the rotation revoked.
func TestSignInUnsavedPairRefreshes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newSignInFake()
		f.SetTokenLifetime(time.Hour)
		store := &failingSaves{memLeaser: newMemLeaser()}
		app := &fincalcauth.SignIn{Config: f.SignInConfig(redirectURL), Store: store}
		f.signIn(t, app, "ada")
		store.fail.Store(true)
		for range 2 {
			time.Sleep(time.Hour)
			if status, _, err := f.get(app, "ada"); err != nil || status != http.StatusOK {
				t.Fatalf("%d, %v", status, err)
			}
		}
		if s := f.SignInStats(); s.Refreshes != 2 || s.InvalidGrants != 0 {
			t.Errorf("stats %+v; want 2 refreshes, 0 invalid_grant", s)
		}
		store.fail.Store(false)
		time.Sleep(2 * time.Minute)
		_, sent, _ := f.get(app, "ada")
		tok, err := f.app(store).TokenSource(f.ctx, "ada").Token()
		if err != nil || tok.AccessToken != sent {
			t.Errorf("another process, once the store is back: %v; want the latest token", err)
		}
	})
}

// TestSignInBasicAuth: with AuthStyleInHeader the credentials go in an
// HTTP Basic header, and not in the body.
func TestSignInBasicAuth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newSignInFake()
		f.SetTokenLifetime(time.Hour)
		app := f.app(newMemLeaser())
		app.Config.Endpoint.AuthStyle = oauth2.AuthStyleInHeader
		var basic, inBody atomic.Int64
		base := f.Client().Transport
		ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.URL.Path == fincalcauthtest.SignInTokenPath {
				if _, _, ok := r.BasicAuth(); ok {
					basic.Add(1)
				}
				body, _ := io.ReadAll(r.Body)
				if strings.Contains(string(body), "client_secret") {
					inBody.Add(1)
				}
				r.Body = io.NopCloser(bytes.NewReader(body))
			}
			return base.RoundTrip(r)
		})})
		f.ctx = ctx
		f.signIn(t, app, "ada")
		time.Sleep(time.Hour)
		if _, err := app.TokenSource(ctx, "ada").Token(); err != nil {
			t.Fatal(err)
		}
		if basic.Load() != 2 || inBody.Load() != 0 {
			t.Errorf("%d requests with Basic, %d with the secret in the body; want 2 and 0", basic.Load(), inBody.Load())
		}
	})
}

// TestSignInStoreDown: a process with no token in memory and a store
// that fails reports the store's failure, not a sign-in to do again; one
// with a token in memory goes on with it.
func TestSignInStoreDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newSignInFake()
		f.SetTokenLifetime(time.Hour)
		store := newMemLeaser()
		app := f.app(store)
		f.signIn(t, app, "ada")
		store.failing.Store(true)
		_, err := f.app(store).TokenSource(f.ctx, "ada").Token()
		if err == nil || errors.Is(err, fincalcauth.ErrSignInRequired) {
			t.Errorf("new process, store down: %v; want the store's failure", err)
		}
		if status, _, err := f.get(app, "ada"); err != nil || status != http.StatusOK {
			t.Errorf("process with the token: %d, %v", status, err)
		}
		store.failing.Store(false)
	})
}

func TestSignInLeaseUnsupported(t *testing.T) {
	// A Leaser that cannot grant leases where it runs (a FileStore
	// without flock) is used as a plain Store: refreshes go on, with no
	// Warn record, and its Lease is not asked again.
	synctest.Test(t, func(t *testing.T) {
		f := newSignInFake()
		f.SetTokenLifetime(time.Hour)
		store := newMemLeaser()
		store.cannot = true
		var leases atomic.Int64
		store.onLease = func() { leases.Add(1) }
		var logs lockedBuffer
		app := f.app(store)
		app.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		for _, person := range []string{"ada", "bob"} {
			f.signIn(t, app, person)
		}
		for range 3 {
			time.Sleep(time.Hour)
			for _, person := range []string{"ada", "bob"} {
				if status, _, err := f.get(app, person); err != nil || status != http.StatusOK {
					t.Fatalf("%s after expiry: %d, %v", person, status, err)
				}
			}
		}
		if s := f.SignInStats(); s.Refreshes != 6 || s.InvalidGrants != 0 {
			t.Errorf("stats %+v; want 6 refreshes and no invalid_grant", s)
		}
		if got := leases.Load(); got != 1 {
			t.Errorf("Lease asked %d times; want once", got)
		}
		if strings.Contains(logs.String(), "level=WARN") {
			t.Errorf("a store without leases was logged as failing: %s", logs.String())
		}
	})
}
