package fincalcauth_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/fincalcauthtest"
	"golang.org/x/oauth2"
)

func ExampleConfig_TokenSource() {
	// This example, like the others, runs against fincalcauthtest, a
	// fake FinCalc on loopback. With real credentials, leave TokenURL
	// empty and use FinCalc's URLs.
	fake := fincalcauthtest.NewServer()
	defer fake.Close()

	ctx := context.Background()
	cfg := &fincalcauth.Config{
		ClientID:     fincalcauthtest.ClientID,
		ClientSecret: fincalcauthtest.ClientSecret,
		EmailAddress: fincalcauthtest.EmailAddress,
		Scopes:       []string{fincalcauth.ScopeFactFind},
		TokenURL:     fake.TokenURL, // empty for FinCalc's own
	}
	client := oauth2.NewClient(ctx, cfg.TokenSource(ctx))

	resp, err := client.Get(fake.URL + "/api/v2/clients")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	fmt.Println(resp.Status)
	// Output: 200 OK
}

func ExampleConfig_Client() {
	fake := fincalcauthtest.NewServer()
	defer fake.Close()

	cfg := fake.ClientConfig(fincalcauth.ScopeClientInformation)
	client := cfg.Client(context.Background())

	// The client fetches one token and reuses it.
	for range 3 {
		resp, err := client.Get(fake.URL + "/api/v2/clients")
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Println(resp.Status)
	}
	fmt.Println("token requests:", fake.TokenRequests())

	// When FinCalc revokes the token, the client fetches a new one and
	// replays the request.
	fake.RevokeTokens()
	resp, err := client.Get(fake.URL + "/api/v2/clients")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status, "after revocation; token requests:", fake.TokenRequests())
	// Output:
	// 200 OK
	// 200 OK
	// 200 OK
	// token requests: 1
	// 200 OK after revocation; token requests: 2
}

func ExampleConfig_Token() {
	fake := fincalcauthtest.NewServer()
	defer fake.Close()

	// Token fetches a new token each time: no cache, no refresh.
	tok, err := fake.ClientConfig().Token(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("a %s token, valid for %v\n", tok.Type(), time.Duration(tok.ExpiresIn)*time.Second)

	// Every field of FinCalc's "data" object is there too.
	fmt.Println(`"data" fields:`, tok.Extra("token_type"), tok.Extra("expires_in"))
	// Output:
	// a Bearer token, valid for 24h0m0s
	// "data" fields: Bearer 86400
}

func ExampleConfig_Token_errors() {
	fake := fincalcauthtest.NewServer()
	defer fake.Close()
	cfg := fake.ClientConfig()
	cfg.ClientSecret = "not the secret"

	_, err := cfg.Token(context.Background())
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		fmt.Println("status:", re.Response.StatusCode)
		fmt.Println("description:", re.ErrorDescription)
	}
	fmt.Println(err)

	// A Config that cannot work fails before any request.
	cfg.EmailAddress = "not an address"
	_, err = cfg.Token(context.Background())
	var ce *fincalcauth.ConfigError
	if errors.As(err, &ce) {
		fmt.Println("bad field:", ce.Field)
	}
	// Output:
	// status: 401
	// description: Client authentication failed.
	// fincalcauth: token request failed: 401 Unauthorized: Client authentication failed.
	// bad field: EmailAddress
}

func ExampleConfig_TokenSource_httpClient() {
	fake := fincalcauthtest.NewServer()
	defer fake.Close()

	// Token requests use the *http.Client the context carries, as
	// everywhere in x/oauth2; the source keeps using it after the
	// context is cancelled.
	hc := &http.Client{Transport: http.DefaultTransport}
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), oauth2.HTTPClient, hc))
	ts := fake.ClientConfig().TokenSource(ctx)
	cancel()

	tok, err := ts.Token()
	fmt.Println(tok.Valid(), err)
	// Output: true <nil>
}

func ExampleConfig_Validate() {
	// At start-up, before serving anything: each problem names its field.
	cfg := &fincalcauth.Config{
		ClientID:     "12345",
		ClientSecret: "", // say, an unset environment variable
		EmailAddress: "Hello <hello@example.com>",
		Scopes:       []string{fincalcauth.ScopeFactFind},
	}
	if err := cfg.Validate(); err != nil {
		fmt.Println(err)
	}
	// Output:
	// fincalcauth: invalid Config.ClientSecret: empty
	// fincalcauth: invalid Config.EmailAddress: "Hello <hello@example.com>" is not an email address
}

func ExampleConfig_logger() {
	fake := fincalcauthtest.NewServer()
	defer fake.Close()

	// Logger gets a Warn record for each failed fetch of a source or
	// client, and Debug records of each attempt and wait. This handler
	// leaves out the time, the wait and the token's expiry, which change
	// from run to run.
	cfg := fake.ClientConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "expiry" || a.Key == "wait" {
				return slog.Attr{}
			}
			return a
		},
	}))
	fake.FailNext(fincalcauthtest.Fault{Status: 503})
	if _, err := cfg.TokenSource(context.Background()).Token(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// level=DEBUG msg="fincalcauth: token request answered" attempt=1 status="503 Service Unavailable"
	// level=DEBUG msg="fincalcauth: waiting before the next attempt" reason=backoff
	// level=DEBUG msg="fincalcauth: token request answered" attempt=2 status="200 OK"
	// level=DEBUG msg="fincalcauth: token fetched after retries" attempts=2
}

func ExampleNewFileStore() {
	fake := fincalcauthtest.NewServer()
	defer fake.Close()
	dir, err := os.MkdirTemp("", "fincalcauth-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// Two processes, say a service and its next deploy, with a store in
	// the same dir: "" would mean os.UserCacheDir()/fincalcauth.
	for range 2 {
		cfg := fake.ClientConfig()
		cfg.Store = fincalcauth.NewFileStore(dir)
		if _, err := cfg.TokenSource(context.Background()).Token(); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("token requests:", fake.TokenRequests())
	// Output: token requests: 1
}

func ExampleTokenError() {
	fake := fincalcauthtest.NewServer()
	defer fake.Close()
	client := fake.ClientConfig().Client(context.Background()) // once, at start-up

	// The token endpoint refuses the credentials: the request fails
	// before it reaches the API.
	fake.FailAlways(fincalcauthtest.Fault{Status: 401, Description: "Client authentication failed"})
	_, err := client.Get(fake.URL + fincalcauthtest.ClientsPath)

	var tokenErr *fincalcauth.TokenError
	var refusal *oauth2.RetrieveError
	switch {
	case errors.As(err, &tokenErr) && errors.As(err, &refusal):
		fmt.Println("no token: FinCalc answered", refusal.Response.StatusCode)
	case errors.As(err, &tokenErr):
		fmt.Println("no token: FinCalc did not answer:", tokenErr)
	case err != nil:
		fmt.Println("the API call failed:", err)
	}
	// Output: no token: FinCalc answered 401
}

func ExampleHealth() {
	fake := fincalcauthtest.NewServer()
	defer fake.Close()

	// One Health per Config. With other observers, such as
	// otelfincalc.New(), combine them:
	// cfg.Observer = fincalcauth.MultiObserver(otelfincalc.New(), health)
	health := new(fincalcauth.Health)
	cfg := fake.ClientConfig()
	cfg.Observer = health
	client := cfg.Client(context.Background())

	// The service's health check: it sends no token request.
	healthz := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := health.Status()
		if !s.Valid {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "no valid FinCalc token; last failure:", s.LastFailure)
			return
		}
		fmt.Fprintf(w, "FinCalc token valid for %v; failures since the last success: %d, the last: %v\n",
			time.Until(s.ValidUntil).Round(time.Hour), s.Failures, s.LastFailure)
	})
	check := func() {
		rec := httptest.NewRecorder()
		healthz.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
		fmt.Print(rec.Code, " ", rec.Body)
	}

	check()
	if _, err := client.Get(fake.URL + fincalcauthtest.ClientsPath); err != nil {
		log.Fatal(err)
	}
	check()
	// The API refuses the token and the token endpoint refuses a new one:
	// the current token stays in use, and the failure is told.
	fake.RevokeTokens()
	fake.FailAlways(fincalcauthtest.Fault{Status: 400, Description: "Client is suspended."})
	if resp, err := client.Get(fake.URL + fincalcauthtest.ClientsPath); err == nil {
		resp.Body.Close()
	}
	check()
	// Output:
	// 503 no valid FinCalc token; last failure: <nil>
	// 200 FinCalc token valid for 24h0m0s; failures since the last success: 0, the last: <nil>
	// 200 FinCalc token valid for 24h0m0s; failures since the last success: 1, the last: fincalcauth: token request failed: 400 Bad Request: Client is suspended.
}
