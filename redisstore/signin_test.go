package redisstore_test

import (
	"context"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/fincalcauthtest"
	"github.com/gofincalc/fincalcauth/redisstore"
	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"
)

const redirectURL = "https://app.example/callback"

// signInApps returns n SignIns of the fake, each on a Redis client of
// its own, as n processes of an application, with person signed in
// through the first. If leases is set, it skips t unless the store
// grants leases.
func signInApps(t *testing.T, fake *fincalcauthtest.Server, n int, person string, leases bool) []*fincalcauth.SignIn {
	t.Helper()
	if _, ok := fincalcauth.Store(redisstore.New(client(t, shared))).(fincalcauth.Leaser); leases && !ok {
		t.Skip("redisstore does not grant leases")
	}
	apps := make([]*fincalcauth.SignIn, n)
	for i := range apps {
		rdb := redis.NewClient(&redis.Options{Addr: shared.addr})
		t.Cleanup(func() { rdb.Close() })
		apps[i] = &fincalcauth.SignIn{Config: fake.SignInConfig(redirectURL), Store: redisstore.New(rdb)}
	}
	verifier := oauth2.GenerateVerifier()
	to, err := fake.Authorize(apps[0].Config.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("login_hint", person)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := apps[0].Exchange(context.Background(), person, to.Query().Get("code"), oauth2.VerifierOption(verifier)); err != nil {
		t.Fatal(err)
	}
	return apps
}

// TestSignInClientsRefreshOnce: ten Redis clients' SignIns, each with
// the person's expired token, ask at once: one refresh, no
// invalid_grant, one token for all.
func TestSignInClientsRefreshOnce(t *testing.T) {
	fake := fincalcauthtest.NewServer()
	defer fake.Close()
	fake.SetTokenLifetime(11 * time.Second) // used for 1 s, then due
	fake.SetSignInThrottle(0)
	apps := signInApps(t, fake, 10, "ada-"+t.Name(), true)
	ctx := context.Background()
	for _, app := range apps {
		if _, err := app.TokenSource(ctx, "ada-"+t.Name()).Token(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(1100 * time.Millisecond)
	start := make(chan struct{})
	got := make([]string, len(apps))
	var wg sync.WaitGroup
	for i, app := range apps {
		ts := app.TokenSource(ctx, "ada-"+t.Name())
		wg.Go(func() {
			<-start
			tok, err := ts.Token()
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = tok.AccessToken
		})
	}
	close(start)
	wg.Wait()
	if s := fake.SignInStats(); s.Refreshes != 1 || s.InvalidGrants != 0 {
		t.Errorf("stats %+v; want 1 refresh, 0 invalid_grant", s)
	}
	for i := range got {
		if got[i] != got[0] {
			t.Errorf("client %d got another token than client 0", i)
		}
	}
}

// TestSignInStaleClientRecovers: after one process rotated the token,
// another that still holds the old one gets the API's 401, finds the
// new token in Redis and replays, spending no refresh token.
func TestSignInStaleClientRecovers(t *testing.T) {
	fake := fincalcauthtest.NewServer()
	defer fake.Close()
	person := "ada-" + t.Name()
	apps := signInApps(t, fake, 2, person, false)
	ctx := context.Background()
	get := func(app *fincalcauth.SignIn) int {
		resp, err := app.Client(ctx, person).Get(fake.URL + fincalcauthtest.ClientsPath)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	get(apps[1])
	fake.ExpireTokens()
	if status := get(apps[0]); status != http.StatusOK {
		t.Fatalf("rotating process: %d", status)
	}
	if status := get(apps[1]); status != http.StatusOK {
		t.Fatalf("stale process: %d", status)
	}
	if s := fake.SignInStats(); s.Refreshes != 1 || s.InvalidGrants != 0 {
		t.Errorf("stats %+v; want 1 refresh, 0 invalid_grant", s)
	}
}
