package fincalcauthtest_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

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
