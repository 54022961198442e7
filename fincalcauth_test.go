package fincalcauth_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/fincalcauthtest"
	"github.com/gofincalc/fincalcauth/internal/memhttp"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"
)

const testSecret = "s3cr3t/<value>&more"

// testConfig returns a valid Config for a token endpoint at tokenURL.
func testConfig(tokenURL string) *fincalcauth.Config {
	return &fincalcauth.Config{
		ClientID:     "12345",
		ClientSecret: testSecret,
		EmailAddress: "hello@example.com",
		Scopes:       []string{fincalcauth.ScopeFactFind, fincalcauth.ScopeClientInformation},
		TokenURL:     tokenURL,
	}
}

// answer returns a handler that answers every request with status and body.
func answer(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// memURL is a token URL for memContext: nothing listens there.
const memURL = "https://fincalc.test/api/oauth/token"

// memContext carries an HTTP client that hands every request to h in
// memory, for tests in synctest bubbles.
func memContext(h http.Handler) context.Context {
	return context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: memhttp.Transport{Handler: h}})
}

// counting wraps h and counts its requests.
type counting struct {
	h http.Handler
	n atomic.Int64
}

func (c *counting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.n.Add(1)
	c.h.ServeHTTP(w, r)
}

func okBody(token string, expiresIn any) string {
	b, _ := json.Marshal(map[string]any{
		"success": true,
		"data":    map[string]any{"token_type": "Bearer", "expires_in": expiresIn, "access_token": token},
	})
	return string(b)
}

func TestRequestFormat(t *testing.T) {
	type seen struct {
		Method, Path, RawQuery, ContentType string
		Fields                              map[string]any
		HeaderHasSecret                     bool
	}
	var got seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got = seen{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, ContentType: r.Header.Get("Content-Type")}
		if err := json.Unmarshal(body, &got.Fields); err != nil {
			t.Errorf("body is not a JSON object: %v: %s", err, body)
		}
		for _, vs := range r.Header {
			for _, v := range vs {
				if strings.Contains(v, testSecret) {
					got.HeaderHasSecret = true
				}
			}
		}
		answer(200, okBody("tok", 86400))(w, r)
	}))
	defer srv.Close()

	if _, err := testConfig(srv.URL + "/api/oauth/token").Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := seen{
		Method:      "POST",
		Path:        "/api/oauth/token",
		ContentType: "application/json",
		Fields: map[string]any{
			"grant_type":    "client_credentials",
			"client_id":     "12345", // a string, as the schema says
			"client_secret": testSecret,
			"scope":         "fact-find client-information",
			"email_address": "hello@example.com",
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}
}

// tokenView is what a test compares of a token.
type tokenView struct {
	AccessToken, TokenType string
	ExpiresIn              int64
	Lifetime               time.Duration // Expiry - time of the request, rounded
	Extra                  map[string]any
}

func view(tok *oauth2.Token, start time.Time, extraKeys ...string) tokenView {
	v := tokenView{
		AccessToken: tok.AccessToken,
		TokenType:   tok.TokenType,
		ExpiresIn:   tok.ExpiresIn,
		Lifetime:    tok.Expiry.Sub(start).Round(time.Minute),
	}
	for _, k := range extraKeys {
		if v.Extra == nil {
			v.Extra = map[string]any{}
		}
		v.Extra[k] = tok.Extra(k)
	}
	return v
}

func TestTokenSuccess(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		extra []string
		want  tokenView
	}{
		{
			name: "documented example",
			body: okBody("eyJ.abc.def", 86400),
			want: tokenView{AccessToken: "eyJ.abc.def", TokenType: "Bearer", ExpiresIn: 86400, Lifetime: 24 * time.Hour},
		},
		{
			name: "expires_in as a numeric string",
			body: okBody("t", "3600"),
			want: tokenView{AccessToken: "t", TokenType: "Bearer", ExpiresIn: 3600, Lifetime: time.Hour},
		},
		{
			name: "expires_in absent means 24 hours",
			body: `{"success":true,"data":{"access_token":"t","token_type":"Bearer"}}`,
			want: tokenView{AccessToken: "t", TokenType: "Bearer", ExpiresIn: 86400, Lifetime: 24 * time.Hour},
		},
		{
			name: "token_type absent means Bearer",
			body: `{"success":true,"data":{"access_token":"t","expires_in":60}}`,
			want: tokenView{AccessToken: "t", TokenType: "Bearer", ExpiresIn: 60, Lifetime: time.Minute},
		},
		{
			name:  "every data field through Extra",
			body:  `{"success":true,"data":{"access_token":"t","expires_in":7200,"token_type":"bearer","scope":"fact-find","user":{"id":7}},"meta":{}}`,
			extra: []string{"scope", "user", "expires_in", "access_token"},
			want: tokenView{AccessToken: "t", TokenType: "bearer", ExpiresIn: 7200, Lifetime: 2 * time.Hour,
				Extra: map[string]any{"scope": "fact-find", "user": map[string]any{"id": 7.0}, "expires_in": 7200.0, "access_token": "t"}},
		},
		{
			name: "expires_in as a float literal",
			body: okBody("t", 100.0),
			want: tokenView{AccessToken: "t", TokenType: "Bearer", ExpiresIn: 100, Lifetime: 2 * time.Minute},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(answer(200, tt.body))
			defer srv.Close()
			start := time.Now()
			tok, err := testConfig(srv.URL).Token(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if tok.Expiry.IsZero() {
				t.Fatal("zero Expiry")
			}
			if diff := cmp.Diff(tt.want, view(tok, start, tt.extra...)); diff != "" {
				t.Errorf("token (-want +got):\n%s", diff)
			}
		})
	}
}

// failure is what a test expects of a failed token request.
type failure struct {
	Status      int    // RetrieveError.Response.StatusCode
	Description string // RetrieveError.ErrorDescription contains it
	Text        string // err.Error() contains it
}

func TestTokenFailure(t *testing.T) {
	html502 := "<html><body><h1>502 Bad Gateway</h1></body></html>"
	tests := []struct {
		name   string
		status int
		body   string
		desc   string // RetrieveError.ErrorDescription contains it
		text   string // err.Error() contains it
	}{
		{name: "documented 400", status: 400, body: `{"success":false,"message":{"description":"The request is missing a required parameter."}}`, desc: "The request is missing a required parameter.", text: "400 Bad Request: The request is missing a required parameter."},
		{name: "message as a plain string", status: 401, body: `{"message":"Unauthenticated."}`, desc: "Unauthenticated.", text: "401 Unauthorized: Unauthenticated."},
		{name: "success false on a 200", status: 200, body: `{"success":false,"message":{"description":"Invalid email address."}}`, desc: "Invalid email address.", text: `"success": false`},
		{name: "HTML 502 from a proxy", status: 502, body: html502, desc: "", text: "502 Bad Gateway"},
		{name: "403 with no body", status: 403, body: "", desc: "", text: "403 Forbidden"},
		{name: "empty access_token", status: 200, body: okBody("", 86400), desc: "access_token", text: "access_token"},
		{name: "missing access_token", status: 200, body: `{"success":true,"data":{"expires_in":86400}}`, desc: "access_token", text: "access_token"},
		{name: "access_token not a string", status: 200, body: `{"success":true,"data":{"access_token":7}}`, desc: "access_token", text: "access_token"},
		{name: "expires_in zero", status: 200, body: okBody("t", 0), desc: "expires_in", text: "not positive"},
		{name: "expires_in negative", status: 200, body: okBody("t", -5), desc: "expires_in", text: "not positive"},
		{name: "expires_in fractional", status: 200, body: okBody("t", 1.5), desc: "expires_in", text: "whole number"},
		{name: "expires_in not numeric", status: 200, body: okBody("t", "soon"), desc: "expires_in", text: "not a number"},
		{name: "expires_in a boolean", status: 200, body: okBody("t", true), desc: "expires_in", text: "not a number"},
		{name: "expires_in null", status: 200, body: okBody("t", nil), desc: "expires_in", text: "not a number"},
		{name: "expires_in huge", status: 200, body: okBody("t", 1e300), desc: "expires_in", text: "ten years"},
		{name: "access_token with a space", status: 200, body: okBody("eyJ abc", 60), desc: "HTTP header", text: "HTTP header"},
		{name: "access_token with CR LF", status: 200, body: okBody("eyJ\r\nX-Evil: 1", 60), desc: "HTTP header", text: "HTTP header"},
		{name: "access_token with a NUL", status: 200, body: okBody("eyJ\x00", 60), desc: "HTTP header", text: "HTTP header"},
		{name: "access_token not ASCII", status: 200, body: okBody("eyJé", 60), desc: "HTTP header", text: "HTTP header"},
		{name: "token_type with a newline", status: 200, body: `{"success":true,"data":{"access_token":"t","token_type":"Bearer\n"}}`, desc: "token_type", text: "HTTP header"},
		{name: "not JSON", status: 200, body: "<html>ok</html>", desc: "malformed", text: "not JSON"},
		{name: "not the envelope", status: 200, body: `{"access_token":"t","expires_in":3600}`, desc: "malformed", text: "envelope"},
		{name: "null", status: 200, body: "null", desc: "malformed", text: "envelope"},
		{name: "an array", status: 200, body: `[1,2]`, desc: "malformed", text: "envelope"},
		{name: "data not an object", status: 200, body: `{"success":true,"data":"t"}`, desc: "malformed", text: `"data" is not an object`},
		{name: "data null", status: 200, body: `{"success":true,"data":null}`, desc: "malformed", text: `"data" is not an object`},
		{name: "no success field", status: 200, body: `{"data":{"access_token":"t"}}`, desc: "malformed", text: `no "success"`},
		{name: "empty body", status: 200, body: "", desc: "malformed", text: "empty body"},
		{name: "too large", status: 200, body: `{"success":true,"data":{"access_token":"` + strings.Repeat("x", 1<<20) + `"}}`, desc: "malformed", text: "1 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// In a bubble: the transient statuses are retried with sleeps.
			synctest.Test(t, func(t *testing.T) {
				tok, err := testConfig(memURL).Token(memContext(answer(tt.status, tt.body)))
				if tok != nil || err == nil {
					t.Fatalf("Token() = %v, %v; want no token and an error", tok, err)
				}
				checkFailure(t, err, failure{Status: tt.status, Description: tt.desc, Text: tt.text})
			})
		})
	}
}

func checkFailure(t *testing.T, err error, want failure) {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Fatalf("error %q has no *oauth2.RetrieveError in its chain", err)
	}
	if re.Response == nil {
		t.Fatalf("RetrieveError.Response is nil")
	}
	_ = re.Error() // must not panic
	if re.Response.StatusCode != want.Status {
		t.Errorf("RetrieveError.Response.StatusCode = %d, want %d", re.Response.StatusCode, want.Status)
	}
	if !strings.Contains(re.ErrorDescription, want.Description) {
		t.Errorf("ErrorDescription = %q, want it to contain %q", re.ErrorDescription, want.Description)
	}
	if !strings.Contains(err.Error(), want.Text) {
		t.Errorf("error = %q, want it to contain %q", err, want.Text)
	}
	if !strings.HasPrefix(err.Error(), "fincalcauth: ") {
		t.Errorf("error %q does not start with \"fincalcauth: \"", err)
	}
}

// fetchFailure asks a token endpoint served by h for a token and returns
// the error, with the *oauth2.RetrieveError in its chain. The test fails
// if the request succeeds or the error has no RetrieveError.
func fetchFailure(t *testing.T, h http.Handler) (*oauth2.RetrieveError, error) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	tok, err := testConfig(srv.URL).Token(context.Background())
	var re *oauth2.RetrieveError
	if tok != nil || !errors.As(err, &re) {
		t.Fatalf("Token() = %v, %v; want an error with an *oauth2.RetrieveError", tok, err)
	}
	return re, err
}

func TestRetrieveErrorBody(t *testing.T) {
	body := `{"success":false,"message":{"description":"Bad."}}`
	re, _ := fetchFailure(t, answer(400, body))
	if diff := cmp.Diff(body, string(re.Body)); diff != "" {
		t.Errorf("Body (-want +got):\n%s", diff)
	}
}

func TestTokenContextDeadline(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)

	for _, name := range []string{"deadline", "cancel"} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			want := context.DeadlineExceeded
			if name == "cancel" {
				ctx, cancel = context.WithCancel(context.Background())
				time.AfterFunc(50*time.Millisecond, cancel)
				want = context.Canceled
			}
			tok, err := testConfig(srv.URL).Token(ctx)
			if tok != nil || !errors.Is(err, want) {
				t.Fatalf("Token() = %v, %v; want an error wrapping %v", tok, err, want)
			}
			if !strings.HasPrefix(err.Error(), "fincalcauth: ") {
				t.Errorf("error %q does not start with \"fincalcauth: \"", err)
			}
		})
	}
	t.Run("already done", func(t *testing.T) {
		h := &counting{h: answer(200, okBody("t", 60))}
		srv := httptest.NewServer(h)
		defer srv.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := testConfig(srv.URL).Token(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("Token() error = %v; want context.Canceled", err)
		}
		if n := h.n.Load(); n != 0 {
			t.Errorf("%d requests sent with a done context", n)
		}
	})
}

func TestTokenSourceOutlivesContext(t *testing.T) {
	srv := fincalcauthtest.NewServer()
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ts := srv.ClientConfig().TokenSource(ctx)
	client := srv.ClientConfig().Client(ctx)
	cancel() // as when the handler that made them returns

	if _, err := ts.Token(); err != nil {
		t.Fatalf("TokenSource after its context was cancelled: %v", err)
	}
	resp, err := client.Get(srv.URL + fincalcauthtest.ClientsPath)
	if err != nil {
		t.Fatalf("Client after its context was cancelled: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("status %d, want 200", resp.StatusCode)
	}
}

// roundTripCounter is an http.RoundTripper that counts requests.
type roundTripCounter struct{ n atomic.Int64 }

func (c *roundTripCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

func TestContextHTTPClient(t *testing.T) {
	srv := fincalcauthtest.NewServer()
	defer srv.Close()
	rt := &roundTripCounter{}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: rt})

	if _, err := srv.ClientConfig().Token(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.ClientConfig().TokenSource(ctx).Token(); err != nil {
		t.Fatal(err)
	}
	resp, err := srv.ClientConfig().Client(ctx).Get(srv.URL + fincalcauthtest.ClientsPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// Token, TokenSource, and Client's token request and API request.
	if got := rt.n.Load(); got != 4 {
		t.Errorf("context's client made %d requests, want 4", got)
	}
}

func TestNoRedirect(t *testing.T) {
	elsewhere := &counting{h: answer(200, okBody("t", 60))}
	other := httptest.NewServer(elsewhere)
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL, http.StatusTemporaryRedirect)
	}))
	defer srv.Close()

	_, err := testConfig(srv.URL).Token(context.Background())
	otherHost := strings.TrimPrefix(other.URL, "http://")
	checkFailure(t, err, failure{Status: 307, Text: "307 Temporary Redirect: redirects are not followed, so that the secret goes to the token URL alone (this one is to " + otherHost + ")"})
	if n := elsewhere.n.Load(); n != 0 {
		t.Errorf("redirect followed: the other server got %d requests", n)
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*fincalcauth.Config)
		fields []string
	}{
		{"empty ClientID", func(c *fincalcauth.Config) { c.ClientID = "" }, []string{"ClientID"}},
		{"empty ClientSecret", func(c *fincalcauth.Config) { c.ClientSecret = "" }, []string{"ClientSecret"}},
		{"empty EmailAddress", func(c *fincalcauth.Config) { c.EmailAddress = "" }, []string{"EmailAddress"}},
		{"EmailAddress not an address", func(c *fincalcauth.Config) { c.EmailAddress = "hello" }, []string{"EmailAddress"}},
		{"EmailAddress with a name", func(c *fincalcauth.Config) { c.EmailAddress = "Hello <hello@example.com>" }, []string{"EmailAddress"}},
		{"no Scopes", func(c *fincalcauth.Config) { c.Scopes = nil }, []string{"Scopes"}},
		{"empty scope", func(c *fincalcauth.Config) { c.Scopes = []string{""} }, []string{"Scopes"}},
		{"scope with a space", func(c *fincalcauth.Config) { c.Scopes = []string{"fact-find client-financials"} }, []string{"Scopes"}},
		{"relative TokenURL", func(c *fincalcauth.Config) { c.TokenURL = "/api/oauth/token" }, []string{"TokenURL"}},
		{"TokenURL not a URL", func(c *fincalcauth.Config) { c.TokenURL = "http://[::1" }, []string{"TokenURL"}},
		{"plain http to a remote host", func(c *fincalcauth.Config) { c.TokenURL = "http://api.fincalc.co.uk/api/oauth/token" }, []string{"TokenURL"}},
		{"plain http to a private address", func(c *fincalcauth.Config) { c.TokenURL = "http://10.0.0.1/token" }, []string{"TokenURL"}},
		{"other scheme", func(c *fincalcauth.Config) { c.TokenURL = "ftp://example.com/token" }, []string{"TokenURL"}},
		{"user information in TokenURL", func(c *fincalcauth.Config) { c.TokenURL = "https://u:p@example.com/token" }, []string{"TokenURL"}},
		{"negative RefreshAhead", func(c *fincalcauth.Config) { c.RefreshAhead = -time.Second }, []string{"RefreshAhead"}},
		{"TokenURL with no host name", func(c *fincalcauth.Config) { c.TokenURL = "https://:443/api/oauth/token" }, []string{"TokenURL"}},
		{"scope with a vertical tab", func(c *fincalcauth.Config) { c.Scopes = []string{"fact\vfind"} }, []string{"Scopes"}},
		{"scope with a form feed", func(c *fincalcauth.Config) { c.Scopes = []string{"fact-find\f"} }, []string{"Scopes"}},
		{"scope with a no-break space", func(c *fincalcauth.Config) { c.Scopes = []string{"fact-find\u00a0client-financials"} }, []string{"Scopes"}},
		{"scope with an ideographic space", func(c *fincalcauth.Config) { c.Scopes = []string{"fact-find\u3000"} }, []string{"Scopes"}},
		{"ClientSecret not UTF-8", func(c *fincalcauth.Config) { c.ClientSecret = "s3cr3t\xff" }, []string{"ClientSecret"}},
		{"ClientSecret is the placeholder", func(c *fincalcauth.Config) { c.ClientSecret = "REDACTED" }, []string{"ClientSecret"}},
		{"ClientID not UTF-8", func(c *fincalcauth.Config) { c.ClientID = "123\xc3" }, []string{"ClientID"}},
		{"everything", func(c *fincalcauth.Config) { *c = fincalcauth.Config{} }, []string{"ClientID", "ClientSecret", "EmailAddress", "Scopes"}},
	}
	h := &counting{h: answer(200, okBody("t", 60))}
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(srv.URL)
			tt.modify(cfg)
			_, tokenErr := cfg.Token(context.Background())
			_, sourceErr := cfg.TokenSource(context.Background()).Token()
			_, clientErr := cfg.Client(context.Background()).Get(srv.URL)
			for _, err := range []error{cfg.Validate(), tokenErr, sourceErr, clientErr} {
				if got := configFields(err); !cmp.Equal(tt.fields, got) {
					t.Errorf("error %q names fields %v, want %v", err, got, tt.fields)
				}
				if err != nil && strings.Contains(err.Error(), testSecret) {
					t.Errorf("error %q contains the secret", err)
				}
			}
			if n := h.n.Load(); n != 0 {
				t.Errorf("%d requests sent with an invalid Config", n)
			}
		})
	}
}

// configFields returns the fields of every *ConfigError in err's tree.
func configFields(err error) []string {
	var fields []string
	var walk func(error)
	walk = func(err error) {
		var ce *fincalcauth.ConfigError
		if errors.As(err, &ce) && err == error(ce) {
			fields = append(fields, ce.Field)
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	if err != nil {
		walk(err)
	}
	return fields
}

func TestConfigErrorHidesURLPassword(t *testing.T) {
	for _, u := range []string{"https://user:hunter2@[::1", "https://user:hunter2@exa mple.com/%zz", "http://user:hunter2@example.com/token"} {
		cfg := testConfig(u)
		err := cfg.Validate()
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("TokenURL %q: Validate() = %v; want an error without the password", u, err)
		}
	}
}

func TestConfigValid(t *testing.T) {
	for _, u := range []string{"", "https://api.fincalc.co.uk/api/oauth/token", "http://localhost:8080/t", "http://127.0.0.1/t", "http://127.9.9.9/t", "http://[::1]:80/t", "https://example.com/t"} {
		if err := testConfig(u).Validate(); err != nil {
			t.Errorf("TokenURL %q: %v", u, err)
		}
	}
	var nilCfg *fincalcauth.Config
	if fields := configFields(nilCfg.Validate()); len(fields) != 1 {
		t.Errorf("nil *Config: Validate() = %v", nilCfg.Validate())
	}
}

func TestShortSecretStillParses(t *testing.T) {
	// Redaction touches only what is reported: a secret that happens to
	// be a word of the response does not break a success.
	for _, secret := range []string{"success", "true", "data", "Bearer", "t"} {
		srv := httptest.NewServer(answer(200, okBody("t", 86400)))
		cfg := testConfig(srv.URL)
		cfg.ClientSecret = secret
		tok, err := cfg.Token(context.Background())
		srv.Close()
		if err != nil || tok.AccessToken != "t" {
			t.Errorf("secret %q: Token() = %v, %v", secret, tok, err)
		}
	}
}

func TestConfigFormatRedactsSecret(t *testing.T) {
	cfg := testConfig("https://example.com/token")
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %v"} {
		for name, arg := range map[string]any{"Config": *cfg, "*Config": cfg, "[]*Config": []*fincalcauth.Config{cfg}} {
			got := fmt.Sprintf(verb, arg)
			if strings.Contains(got, testSecret) || strings.Contains(got, fmt.Sprintf("%x", testSecret)) {
				t.Errorf("Sprintf(%q, %s) shows the secret: %s", verb, name, got)
			}
		}
	}
	got := fmt.Sprintf("%+v", cfg)
	for _, want := range []string{"ClientID:12345", "ClientSecret:REDACTED", "EmailAddress:hello@example.com"} {
		if !strings.Contains(got, want) {
			t.Errorf("%%+v = %s; want it to contain %s", got, want)
		}
	}
	if got := fmt.Sprintf("%#v", *cfg); !strings.HasPrefix(got, "fincalcauth.Config{") {
		t.Errorf("%%#v = %s", got)
	}
	var nilCfg *fincalcauth.Config
	if got := fmt.Sprintf("%v", nilCfg); got != "<nil>" {
		t.Errorf("nil *Config formats as %q", got)
	}
}

func TestTokenSourceConcurrentOneRequest(t *testing.T) {
	srv := fincalcauthtest.NewServer()
	defer srv.Close()
	ts := srv.ClientConfig().TokenSource(context.Background())
	var wg sync.WaitGroup
	tokens := make([]string, 200)
	for i := range tokens {
		wg.Go(func() {
			tok, err := ts.Token()
			if err != nil {
				t.Error(err)
				return
			}
			tokens[i] = tok.AccessToken
		})
	}
	wg.Wait()
	if n := srv.TokenRequests(); n != 1 {
		t.Errorf("200 concurrent Token() calls made %d requests, want 1", n)
	}
	for _, tok := range tokens {
		if tok != tokens[0] {
			t.Fatalf("callers got different tokens: %q and %q", tok, tokens[0])
		}
	}
}

func TestTokenSourceIsReuseTokenSource(t *testing.T) {
	ts := testConfig("").TokenSource(context.Background())
	// oauth2.ReuseTokenSource returns a reuse source as is; anything else
	// it wraps in a new one.
	if got := oauth2.ReuseTokenSource(nil, ts); got != ts {
		t.Errorf("TokenSource() returned %T, which is not an oauth2 reuse source", ts)
	}
}

func TestTokenSourceTokenIsValid(t *testing.T) {
	srv := fincalcauthtest.NewServer()
	defer srv.Close()
	ts := srv.ClientConfig().TokenSource(context.Background())
	a, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	if !a.Valid() {
		t.Errorf("a fresh token is not Valid()")
	}
}

func TestClientEndToEnd(t *testing.T) {
	srv := fincalcauthtest.NewServer()
	defer srv.Close()
	for name, client := range map[string]*http.Client{
		"Config.Client":    srv.ClientConfig().Client(context.Background()),
		"oauth2.NewClient": oauth2.NewClient(context.Background(), srv.ClientConfig().TokenSource(context.Background())),
	} {
		t.Run(name, func(t *testing.T) {
			for range 3 {
				resp, err := client.Get(srv.URL + fincalcauthtest.ClientsPath)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
	if n := srv.TokenRequests(); n != 2 {
		t.Errorf("%d token requests for two clients, want 2", n)
	}
}

func TestClientFetchFailure(t *testing.T) {
	srv := fincalcauthtest.NewServer()
	defer srv.Close()
	cfg := srv.ClientConfig()
	cfg.ClientSecret = "wrong"
	_, err := cfg.Client(context.Background()).Get(srv.URL + fincalcauthtest.ClientsPath)
	var ue *url.Error
	if !errors.As(err, &ue) {
		t.Fatalf("error %v is not a *url.Error", err)
	}
	checkFailure(t, ue.Err, failure{Status: 401, Description: "Client authentication failed.", Text: "401 Unauthorized"})

}

func TestRetryAfterInMessage(t *testing.T) {
	// A refusal that asks the client to wait says how long, in the error.
	synctest.Test(t, func(t *testing.T) {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"success":false,"message":{"description":"Slow down."}}`)
		})
		_, err := testConfig(memURL).Token(memContext(h))
		checkFailure(t, err, failure{Status: 429, Description: "Slow down.", Text: "429 Too Many Requests: Slow down. (the server asked to wait 30s before trying again)"})
	})
}

// countingContext counts the lookups of the HTTP client it carries.
type countingContext struct {
	context.Context
	n *atomic.Int64
}

func (c countingContext) Value(key any) any {
	if key == oauth2.HTTPClient {
		c.n.Add(1)
	}
	return c.Context.Value(key)
}

func TestContextClientLookedUpOnce(t *testing.T) {
	for name, use := range map[string]func(cfg *fincalcauth.Config, ctx context.Context) error{
		"Token": func(cfg *fincalcauth.Config, ctx context.Context) error { _, err := cfg.Token(ctx); return err },
		"TokenSource": func(cfg *fincalcauth.Config, ctx context.Context) error {
			_, err := cfg.TokenSource(ctx).Token()
			return err
		},
		"Client": func(cfg *fincalcauth.Config, ctx context.Context) error {
			c := cfg.Client(ctx)
			_, err := fincalcauth.ClientTokenLookup(c)()
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			var n atomic.Int64
			ctx := countingContext{memContext(answer(200, okBody("tok", 3600))), &n}
			if err := use(testConfig(memURL), ctx); err != nil {
				t.Fatal(err)
			}
			if got := n.Load(); got != 1 {
				t.Errorf("the context's HTTP client was looked up %d times, want 1", got)
			}
		})
	}
}

func TestDebugOffCostsNothing(t *testing.T) {
	allocs := func(logger *slog.Logger) float64 {
		cfg := testConfig(memURL)
		cfg.Logger = logger
		ctx := memContext(answer(200, okBody("tok", 3600)))
		return testing.AllocsPerRun(200, func() {
			if _, err := cfg.Token(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
	none := allocs(nil)
	info := allocs(slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo})))
	// A margin for the allocations that the race detector and the
	// scheduler add at random; building the Debug records costs hundreds.
	if info > none+5 {
		t.Errorf("a fetch allocates %v times with a logger off for Debug, %v without a logger", info, none)
	}
}
