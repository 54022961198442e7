package fincalcauthtest_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/fincalcauthtest"
	"golang.org/x/oauth2"
)

func ExampleNewServer() {
	srv := fincalcauthtest.NewServer()
	defer srv.Close()

	// The code under test gets the fake's Config in place of the real one.
	client := srv.ClientConfig().Client(context.Background())
	resp, err := client.Get(srv.URL + fincalcauthtest.ClientsPath)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status, "token requests:", srv.TokenRequests())
	// Output: 200 OK token requests: 1
}

func ExampleServer_FailNext() {
	srv := fincalcauthtest.NewServer()
	defer srv.Close()

	// Two outages, then service as usual: the fetch retries through them.
	srv.FailNext(
		fincalcauthtest.Fault{Status: 503, Description: "Down for maintenance."},
		fincalcauthtest.Fault{Status: 502, Body: "<html>Bad Gateway</html>"},
	)
	tok, err := srv.ClientConfig().Token(context.Background())
	fmt.Println(tok != nil, err, srv.TokenRequests())
	// Output: true <nil> 3
}

func ExampleNewMemoryServer() {
	// A memory server listens nowhere; its Client reaches it in memory,
	// so that a test can run inside a testing/synctest bubble.
	srv := fincalcauthtest.NewMemoryServer()
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, srv.Client())

	client := srv.ClientConfig().Client(ctx)
	resp, err := client.Get(srv.URL + fincalcauthtest.ClientsPath)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(srv.URL, resp.Status)
	// Output: https://fincalc.test 200 OK
}

func ExampleServer_RequireToken() {
	srv := fincalcauthtest.NewServer()
	defer srv.Close()

	// Your own API handler, behind the fake's token check.
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "hello, holder of a FinCalc token")
	})
	api := httptest.NewServer(srv.RequireToken(hello))
	defer api.Close()

	for name, client := range map[string]*http.Client{
		"without a token": http.DefaultClient,
		"with a token":    srv.ClientConfig().Client(context.Background()),
	} {
		resp, err := client.Get(api.URL)
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Println(name+":", resp.Status)
	}
	// Unordered output:
	// without a token: 401 Unauthorized
	// with a token: 200 OK
}

func ExampleServer_FailAlways() {
	srv := fincalcauthtest.NewServer()
	defer srv.Close()
	cfg := srv.ClientConfig()

	// An outage: every token request fails until Recover.
	srv.FailAlways(fincalcauthtest.Fault{Status: 400, Description: "Client is suspended."})
	_, err := cfg.Token(context.Background())
	fmt.Println(err)

	srv.Recover()
	_, err = cfg.Token(context.Background())
	fmt.Println("after Recover:", err)
	// Output:
	// fincalcauth: token request failed: 400 Bad Request: Client is suspended.
	// after Recover: <nil>
}

func ExampleServer_ExpireTokens() {
	srv := fincalcauthtest.NewServer()
	defer srv.Close()
	client := srv.ClientConfig().Client(context.Background())
	get := func() string {
		resp, err := client.Get(srv.URL + fincalcauthtest.ClientsPath)
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		return resp.Status
	}
	fmt.Println(get(), "token requests:", srv.TokenRequests())

	// The API now refuses the client's token: the client fetches a new
	// one and replays the request.
	srv.ExpireTokens()
	fmt.Println(get(), "token requests:", srv.TokenRequests())
	// Output:
	// 200 OK token requests: 1
	// 200 OK token requests: 2
}

func ExampleServer_FailAPINext() {
	srv := fincalcauthtest.NewServer()
	defer srv.Close()
	client := srv.ClientConfig().Client(context.Background())

	// The API is down for one request, then answers as usual; the token
	// endpoint is not affected.
	srv.FailAPINext(fincalcauthtest.Fault{Status: 503, Description: "Down for maintenance."})
	for range 2 {
		resp, err := client.Get(srv.URL + fincalcauthtest.ClientsPath)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Print(resp.Status, " ", string(body))
	}
	fmt.Println("API requests:", srv.APIRequests(), "token requests:", srv.TokenRequests())
	// Output:
	// 503 Service Unavailable {"message":"Down for maintenance.","success":false}
	// 200 OK {"data":[],"meta":{"total":0},"success":true}
	// API requests: 2 token requests: 1
}

func ExampleServer_FailAPIAlways() {
	srv := fincalcauthtest.NewServer()
	defer srv.Close()
	client := srv.ClientConfig().Client(context.Background())
	get := func() string {
		resp, err := client.Get(srv.URL + fincalcauthtest.ClientsPath)
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		return resp.Status
	}

	// An outage of the API alone: tokens are still issued.
	srv.FailAPIAlways(fincalcauthtest.Fault{Status: 500, Description: "Internal server error."})
	fmt.Println(get(), get())
	srv.Recover()
	fmt.Println("after Recover:", get())
	// Output:
	// 500 Internal Server Error 500 Internal Server Error
	// after Recover: 200 OK
}

func ExampleServer_AddCredentials() {
	srv := fincalcauthtest.NewServer()
	defer srv.Close()

	// Two advisers of one firm: the same client, two logins.
	second := fincalcauthtest.DefaultCredentials()
	second.EmailAddress = "second.adviser@example.com"
	srv.AddCredentials(second)

	for _, cfg := range []*fincalcauth.Config{srv.ClientConfig(), srv.ConfigFor(second)} {
		tok, err := cfg.Token(context.Background())
		if err != nil {
			log.Fatal(err)
		}
		who, _ := srv.TokenCredentials(tok.AccessToken)
		fmt.Println("a token for", who.EmailAddress)
	}
	// Output:
	// a token for hello@example.com
	// a token for second.adviser@example.com
}

func ExampleServer_RemoveCredentials() {
	srv := fincalcauthtest.NewServer()
	defer srv.Close()
	oldCfg := srv.ClientConfig()
	oldTok, _ := oldCfg.Token(context.Background())

	// A secret rotation: both secrets work while services move to the
	// new one, then the old one is removed.
	rotated := fincalcauthtest.DefaultCredentials()
	rotated.ClientSecret = "fake-secret-rotated-4Jq9"
	srv.AddCredentials(rotated)
	_, err := srv.ConfigFor(rotated).Token(context.Background())
	fmt.Println("new secret:", err)

	srv.RemoveCredentials(fincalcauthtest.DefaultCredentials())
	_, err = oldCfg.Token(context.Background())
	fmt.Println("old secret:", err)
	fmt.Println("a token issued to the old secret is valid:", srv.ValidToken(oldTok.AccessToken))
	// Output:
	// new secret: <nil>
	// old secret: fincalcauth: token request failed: 401 Unauthorized: Client authentication failed.
	// a token issued to the old secret is valid: true
}
