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
// token without an access token, with a zero expiry or with an access
// token that cannot go in a header, and never an error that shows the
// secret anywhere it reports or holds a control character in its text.
// Its seed corpus is in testdata/fuzz/FuzzParseResponse.
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
		case tok != nil && strings.ContainsFunc(tok.AccessToken+tok.TokenType, func(r rune) bool { return r <= ' ' || r >= 0x7f }):
			t.Fatalf("token that cannot go in a header: %q %q", tok.TokenType, tok.AccessToken)
		case err != nil && strings.ContainsFunc(err.Error(), func(r rune) bool { return r < ' ' || r == 0x7f }):
			t.Fatalf("error text with a control character: %q", err)
		}
		if err != nil {
			for what, s := range reported(err) {
				if how := leak(s, secret); how != "" {
					t.Fatalf("%s shows the secret (%s): %q", what, how, s)
				}
			}
		}
	})
}
