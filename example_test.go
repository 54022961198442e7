package fincalcauth_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/fincalcauthtest"
	"golang.org/x/oauth2"
)

// The examples run against fincalcauthtest, a fake FinCalc on loopback.
// With real credentials, leave TokenURL empty and use FinCalc's URLs.

func ExampleConfig_TokenSource() {
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

	tok, err := fake.ClientConfig().Token(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tok.Type(), tok.ExpiresIn, tok.Extra("token_type"))
	// Output: Bearer 86400 Bearer
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
