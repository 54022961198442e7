package fincalcauthtest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gofincalc/fincalcauth/fincalcauthtest"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"
)

const callback = "https://app.example/callback"

// postForm sends form to the fake's sign-in token endpoint, with basic
// auth if user is not empty, and returns the status, the Retry-After
// header and the decoded answer.
func postForm(t *testing.T, srv *fincalcauthtest.Server, form url.Values, user, pass string) (int, string, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+fincalcauthtest.SignInTokenPath, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	json.Unmarshal(raw, &out)
	return resp.StatusCode, resp.Header.Get("Retry-After"), out
}

func authorize(t *testing.T, srv *fincalcauthtest.Server, cfg *oauth2.Config, opts ...oauth2.AuthCodeOption) url.Values {
	t.Helper()
	to, err := srv.Authorize(cfg.AuthCodeURL("st-1", opts...))
	if err != nil {
		t.Fatal(err)
	}
	return to.Query()
}

func creds(form url.Values) url.Values {
	form.Set("client_id", fincalcauthtest.ClientID)
	form.Set("client_secret", fincalcauthtest.ClientSecret)
	return form
}

func TestAuthorizeErrors(t *testing.T) {
	srv := fincalcauthtest.NewMemoryServer()
	srv.SignInConfig(callback)
	base := srv.URL + fincalcauthtest.AuthorizePath + "?"
	tests := []struct {
		name      string
		query     string
		page      bool   // a 400 page, no redirect
		wantError string // error= on the redirect
	}{
		{"unknown client", "response_type=code&client_id=999&redirect_uri=" + url.QueryEscape(callback), true, ""},
		{"unregistered redirect", "response_type=code&client_id=12345&redirect_uri=" + url.QueryEscape("https://evil.example/"), true, ""},
		{"unknown scope", "response_type=code&client_id=12345&scope=everything&state=s&redirect_uri=" + url.QueryEscape(callback), false, "invalid_scope"},
		{"bad challenge method", "response_type=code&client_id=12345&code_challenge=" + strings.Repeat("a", 43) + "&code_challenge_method=S512&redirect_uri=" + url.QueryEscape(callback), false, "invalid_request"},
		{"short challenge", "response_type=code&client_id=12345&code_challenge=abc&redirect_uri=" + url.QueryEscape(callback), false, "invalid_request"},
		{"response type", "response_type=token&client_id=12345&redirect_uri=" + url.QueryEscape(callback), false, "unsupported_response_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			to, err := srv.Authorize(base + tt.query)
			if tt.page {
				if err == nil || !strings.Contains(err.Error(), "400") {
					t.Errorf("got %v, %v; want the 400 page", to, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := to.Query().Get("error"); got != tt.wantError {
				t.Errorf("error=%q, want %q (%v)", got, tt.wantError, to)
			}
			if strings.Contains(tt.query, "state=s") && to.Query().Get("state") != "s" {
				t.Errorf("state not echoed: %v", to)
			}
		})
	}
}

func TestSignInGrants(t *testing.T) {
	srv := fincalcauthtest.NewMemoryServer()
	cfg := srv.SignInConfig(callback)

	// PKCE plain when no method is given.
	verifier := oauth2.GenerateVerifier()
	q := authorize(t, srv, cfg, oauth2.SetAuthURLParam("code_challenge", verifier))
	if q.Get("state") != "st-1" || q.Get("code") == "" {
		t.Fatalf("redirect query %v", q)
	}
	status, _, out := postForm(t, srv, creds(url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {callback}, "code_verifier": {verifier}}), "", "")
	if status != http.StatusOK || out["refresh_token"] == nil || out["access_token"] == nil {
		t.Fatalf("plain PKCE exchange: %d %v", status, out)
	}
	access, refresh := out["access_token"].(string), out["refresh_token"].(string)
	if !srv.ValidToken(access) {
		t.Error("the API refuses the sign-in access token")
	}

	// Refresh with HTTP Basic: rotation, with no grace for the old pair.
	status, _, out = postForm(t, srv, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}, fincalcauthtest.ClientID, fincalcauthtest.ClientSecret)
	if status != http.StatusOK {
		t.Fatalf("refresh: %d %v", status, out)
	}
	if srv.ValidToken(access) {
		t.Error("the old access token survived the rotation")
	}
	if !srv.ValidToken(out["access_token"].(string)) {
		t.Error("the new access token is refused")
	}
	status, _, out = postForm(t, srv, creds(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}), "", "")
	want := map[string]any{"error": "invalid_grant", "error_description": "The refresh token is invalid.", "hint": "Token has been revoked"}
	if d := cmp.Diff(want, out); status != http.StatusBadRequest || d != "" {
		t.Errorf("reused refresh token: %d (-want +got):\n%s", status, d)
	}

	// league 8: 401 invalid_request, with "message".
	srv.SetLeagueVersion(8)
	status, _, out = postForm(t, srv, creds(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}), "", "")
	want = map[string]any{"error": "invalid_request", "error_description": "The refresh token is invalid.", "hint": "Token has been revoked", "message": "The refresh token is invalid."}
	if d := cmp.Diff(want, out); status != http.StatusUnauthorized || d != "" {
		t.Errorf("league 8: %d (-want +got):\n%s", status, d)
	}
	srv.SetLeagueVersion(9)

	// Bad client credentials.
	status, _, out = postForm(t, srv, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_id": {"12345"}, "client_secret": {"nope"}}, "", "")
	if status != http.StatusUnauthorized || out["error"] != "invalid_client" || out["error_description"] != "Client authentication failed" {
		t.Errorf("bad secret: %d %v", status, out)
	}
	status, _, out = postForm(t, srv, url.Values{"grant_type": {"password"}}, "", "")
	if status != http.StatusBadRequest || out["error"] != "unsupported_grant_type" {
		t.Errorf("password grant: %d %v", status, out)
	}
	if s := srv.SignInStats(); s.Exchanges != 1 || s.Refreshes != 1 || s.InvalidGrants != 2 {
		t.Errorf("stats %+v", s)
	}
}

func TestSignInEnvelopeAndRevocation(t *testing.T) {
	srv := fincalcauthtest.NewMemoryServer()
	cfg := srv.SignInConfig(callback)
	srv.SetSignInEnvelope(true)
	q := authorize(t, srv, cfg, oauth2.SetAuthURLParam("login_hint", "ada"))
	status, _, out := postForm(t, srv, creds(url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {callback}}), "", "")
	data, _ := out["data"].(map[string]any)
	if status != http.StatusOK || out["success"] != true || data["refresh_token"] == nil {
		t.Fatalf("enveloped exchange: %d %v", status, out)
	}
	access := data["access_token"].(string)
	if srv.Person(access) != "ada" {
		t.Errorf("person %q", srv.Person(access))
	}
	srv.LockAccount("ada", true)
	resp, _ := (&http.Client{Transport: &bearer{access, srv.Client().Transport}}).Get(srv.URL + fincalcauthtest.ClientsPath)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "User account is locked.") {
		t.Errorf("locked account: %d %s", resp.StatusCode, body)
	}
	srv.RevokeGrant("ada")
	if srv.ValidToken(access) {
		t.Error("RevokeGrant left the access token valid")
	}
	status, _, out = postForm(t, srv, creds(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {data["refresh_token"].(string)}}), "", "")
	if status != http.StatusBadRequest || out["success"] != false {
		t.Errorf("revoked, enveloped: %d %v", status, out)
	}
}

type bearer struct {
	tok  string
	base http.RoundTripper
}

func (b *bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.tok)
	return b.base.RoundTrip(r)
}

func TestSignInThrottle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := fincalcauthtest.NewMemoryServer()
		for range fincalcauthtest.DefaultSignInThrottle {
			if status, _, _ := postForm(t, srv, url.Values{}, "", ""); status == http.StatusTooManyRequests {
				t.Fatal("throttled too early")
			}
		}
		time.Sleep(20 * time.Second)
		status, retry, out := postForm(t, srv, url.Values{}, "", "")
		if status != http.StatusTooManyRequests || retry != "40" || out["message"] != "Too Many Attempts." {
			t.Errorf("61st request: %d, Retry-After %q, %v", status, retry, out)
		}
		time.Sleep(40 * time.Second)
		if status, _, _ := postForm(t, srv, url.Values{}, "", ""); status == http.StatusTooManyRequests {
			t.Error("still throttled after Retry-After")
		}
		if s := srv.SignInStats(); s.Throttled != 1 {
			t.Errorf("stats %+v", s)
		}
	})
}
