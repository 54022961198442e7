package fincalcauthtest_test

import (
	"context"
	"fmt"
	"log"

	"github.com/gofincalc/fincalcauth/fincalcauthtest"
)

func ExampleNewServer() {
	srv := fincalcauthtest.NewServer()
	defer srv.Close()

	// The code under test gets the fake's Config in place of the real one.
	client := srv.Config().Client(context.Background())
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
	tok, err := srv.Config().Token(context.Background())
	fmt.Println(tok != nil, err, srv.TokenRequests())
	// Output: true <nil> 3
}
