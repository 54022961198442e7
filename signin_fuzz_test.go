package fincalcauth_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gofincalc/fincalcauth"
	"golang.org/x/oauth2"
)

// FuzzParseSignInAnswer feeds the sign-in flow's answer parser any
// status and body: it returns a token or an error, never both; a token
// fit for a header; and an error that repeats no secret of the request
// and has a RetrieveError in its chain.
func FuzzParseSignInAnswer(f *testing.F) {
	f.Add(200, []byte(`{"token_type":"Bearer","expires_in":3600,"access_token":"eyJ","refresh_token":"def50200"}`))
	f.Add(200, []byte(`{"success":true,"data":{"token_type":"Bearer","expires_in":3600,"access_token":"eyJ","refresh_token":"def50200"}}`))
	f.Add(400, []byte(`{"error":"invalid_grant","error_description":"The refresh token is invalid.","hint":"Token has been revoked"}`))
	f.Add(401, []byte(`{"error":"invalid_request","error_description":"The refresh token is invalid.","hint":"Token has been revoked","message":"The refresh token is invalid."}`))
	f.Add(400, []byte(`{"success":false,"message":{"description":"bad fuzz-refresh-token-1234"}}`))
	f.Add(429, []byte(`{"message":"Too Many Attempts."}`))
	f.Add(200, []byte(`{"success":false,"message":"no"}`))
	f.Add(200, []byte(`{"success":true,"data":null}`))
	secrets := []string{"fuzz-refresh-token-1234", "fuzz-code-5678", "fuzz-client-secret"}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 100 || status > 999 {
			status = 200 + (status%800+800)%800
		}
		resp := &http.Response{StatusCode: status, Status: http.StatusText(status), Header: http.Header{}}
		tok, err := fincalcauth.ParseSignInAnswer(resp, body, secrets, now)
		switch {
		case (tok == nil) == (err == nil):
			t.Fatalf("token %v and error %v", tok, err)
		case tok != nil && (tok.AccessToken == "" || !tok.Expiry.After(now) || status/100 != 2):
			t.Fatalf("token %+v from status %d", tok, status)
		case tok != nil && strings.ContainsFunc(tok.AccessToken+tok.TokenType, func(r rune) bool { return r <= ' ' || r >= 0x7f }):
			t.Fatalf("token that cannot go in a header: %q %q", tok.TokenType, tok.AccessToken)
		}
		if err == nil {
			return
		}
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) {
			t.Fatalf("no RetrieveError in %v", err)
		}
		reported := err.Error() + re.ErrorCode + re.ErrorDescription + string(re.Body)
		for _, s := range secrets {
			if strings.Contains(reported, s) {
				t.Fatalf("secret %q reported: %s", s, reported)
			}
		}
		if strings.ContainsFunc(err.Error(), func(r rune) bool { return r < ' ' || r == 0x7f }) {
			t.Fatalf("error text with a control character: %q", err)
		}
	})
}
