package fincalcauth_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gofincalc/fincalcauth"
)

// FuzzParseResponse checks the response parser on any status and body:
// it never panics, never returns both a token and an error, never a
// token without an access token or with a zero expiry, and never an
// error that shows the secret. Its seed corpus is in
// testdata/fuzz/FuzzParseResponse.
func FuzzParseResponse(f *testing.F) {
	f.Add(200, []byte(`{"success":true,"data":{"token_type":"Bearer","expires_in":86400,"access_token":"eyJ"}}`))
	f.Add(400, []byte(`{"success":false,"message":{"description":"The request is missing a required parameter."}}`))
	f.Add(401, []byte(`{"message":"Unauthenticated."}`))
	f.Add(502, []byte(`<html><body>Bad Gateway</body></html>`))
	f.Add(200, []byte(`{"success":true,"data":{"access_token":"t","expires_in":"3600"}}`))
	f.Add(200, []byte(`null`))
	f.Add(200, []byte(``))
	const secret = "fuzz-secret"
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 100 || status > 999 {
			status = 200 + (status%800+800)%800
		}
		resp := &http.Response{StatusCode: status, Status: http.StatusText(status), Header: http.Header{}}
		tok, err := fincalcauth.ParseResponse(resp, body, secret, now)
		switch {
		case tok != nil && err != nil:
			t.Fatalf("both a token and an error: %v, %v", tok, err)
		case tok == nil && err == nil:
			t.Fatal("neither a token nor an error")
		case tok != nil && tok.AccessToken == "":
			t.Fatal("token with an empty access token")
		case tok != nil && !tok.Expiry.After(now):
			t.Fatalf("token with expiry %v", tok.Expiry)
		case tok != nil && (status < 200 || status > 299):
			t.Fatalf("token from status %d", status)
		case err != nil && strings.Contains(err.Error(), secret):
			t.Fatalf("error shows the secret: %v", err)
		}
	})
}
