package fincalcauthtest_test

import (
	"context"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gofincalc/fincalcauth/fincalcauthtest"
	"golang.org/x/oauth2"
)

// TestInBubble is an example to copy: a test of code that keeps a
// FinCalc client for days, run in a testing/synctest bubble, whose
// clock moves only when every goroutine in it waits. Days of token
// lifetimes pass in milliseconds. (An Example function cannot show it:
// synctest.Test needs the test's *testing.T.)
func TestInBubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A memory server starts no goroutine and listens nowhere: it
		// belongs in the bubble. Its Client reaches it in memory.
		srv := fincalcauthtest.NewMemoryServer()
		ctx := context.WithValue(context.Background(), oauth2.HTTPClient, srv.Client())
		client := srv.ClientConfig().Client(ctx) // the code under test gets this

		get := func() int {
			resp, err := client.Get(srv.URL + fincalcauthtest.ClientsPath)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		// A request an hour for three days: 24-hour tokens, each replaced
		// about 12 hours before its expiry, in the background.
		for range 72 {
			if status := get(); status != http.StatusOK {
				t.Fatalf("status %d", status)
			}
			time.Sleep(time.Hour)
		}
		synctest.Wait() // let a background refresh, if any, finish
		if n := srv.TokenRequests(); n < 6 || n > 7 {
			t.Errorf("%d token requests in three days, want 6 or 7", n)
		}
	})
}
