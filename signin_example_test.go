package fincalcauth_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"sync"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/fincalcauthtest"
	"golang.org/x/oauth2"
)

// This example runs the whole sign-in flow of a web application against
// fincalcauthtest on loopback: a login handler sends the browser to
// FinCalc with PKCE, the callback trades the code for tokens, which go
// to a store shared by the application's processes, and later another
// process calls the API for the person. With real credentials, use
// fincalcauth.Endpoint and your registered redirect URI.
func ExampleSignIn() {
	fake := fincalcauthtest.NewServer()
	defer fake.Close()
	dir, err := os.MkdirTemp("", "signin-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	store := fincalcauth.NewFileStore(dir) // or redisstore.New(rdb) for a fleet

	// The application's pending sign-ins: state → who and their PKCE
	// verifier. A real one keeps them in the person's session.
	type pending struct{ user, verifier string }
	var mu sync.Mutex
	sessions := map[string]pending{}

	var signIn *fincalcauth.SignIn
	mux := http.NewServeMux()
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		state, verifier := rand.Text(), oauth2.GenerateVerifier()
		mu.Lock()
		sessions[state] = pending{r.URL.Query().Get("user"), verifier}
		mu.Unlock()
		http.Redirect(w, r, signIn.Config.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)), http.StatusFound)
	})
	mux.HandleFunc("/callback", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		p, ok := sessions[r.FormValue("state")]
		delete(sessions, r.FormValue("state"))
		mu.Unlock()
		if !ok || r.FormValue("error") != "" {
			http.Error(w, "sign-in failed", http.StatusBadRequest)
			return
		}
		if _, err := signIn.Exchange(r.Context(), p.user, r.FormValue("code"), oauth2.VerifierOption(p.verifier)); err != nil {
			http.Error(w, "sign-in failed", http.StatusBadGateway)
			return
		}
		fmt.Fprintf(w, "signed in: %s", p.user)
	})
	app := httptest.NewServer(mux)
	defer app.Close()
	signIn = &fincalcauth.SignIn{Config: fake.SignInConfig(app.URL + "/callback"), Store: store}

	// The person's browser: it follows the redirects to FinCalc and back.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	resp, err := browser.Get(app.URL + "/login?user=ada")
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(string(body))

	// Later, another process of the application, with its own SignIn on
	// the same store, calls the API for ada.
	other := &fincalcauth.SignIn{Config: fake.SignInConfig(app.URL + "/callback"), Store: fincalcauth.NewFileStore(dir)}
	resp, err = other.Client(context.Background(), "ada").Get(fake.URL + fincalcauthtest.ClientsPath)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println("another process:", resp.Status)

	// Someone who never signed in must do so first.
	_, err = other.Client(context.Background(), "bob").Get(fake.URL + fincalcauthtest.ClientsPath)
	fmt.Println("bob:", errors.Is(err, fincalcauth.ErrSignInRequired))
	fmt.Printf("%+v\n", fake.SignInStats())
	// Output:
	// signed in: ada
	// another process: 200 OK
	// bob: true
	// {Requests:1 Exchanges:1 Refreshes:0 InvalidGrants:0 Throttled:0}
}
