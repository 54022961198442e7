package fincalcauthtest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gofincalc/fincalcauth/fincalcauthtest"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"
)

// post sends body to the fake's token endpoint and returns the status
// and the decoded answer.
func post(t *testing.T, srv *fincalcauthtest.Server, contentType, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(srv.TokenURL, contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

const good = `{"grant_type":"client_credentials","client_id":"12345","client_secret":"fake-secret-bVc8ztJq3N92uUM4mRSoDkE6","scope":"fact-find client-financials","email_address":"hello@example.com"}`

func TestTokenEndpoint(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		body        string
		status      int
		description string // contained in message.description
	}{
		{"good request", "application/json", good, 200, ""},
		{"charset in content type", "application/json; charset=utf-8", good, 200, ""},
		{"form encoded", "application/x-www-form-urlencoded", "grant_type=client_credentials", 400, "Content-Type"},
		{"not JSON", "application/json", "grant_type=client_credentials", 400, "not a JSON object"},
		{"an array", "application/json", "[]", 400, "not a JSON object"},
		{"trailing data", "application/json", good + "{}", 400, "after the JSON object"},
		{"client_id as a number", "application/json", strings.Replace(good, `"12345"`, `12345`, 1), 400, "client_id is not a string"},
		{"missing email_address", "application/json", strings.Replace(good, `,"email_address":"hello@example.com"`, ``, 1), 400, "email_address is missing"},
		{"empty scope", "application/json", strings.Replace(good, `"fact-find client-financials"`, `""`, 1), 400, "scope is missing"},
		{"unknown scope", "application/json", strings.Replace(good, `fact-find client-financials`, `api_scope`, 1), 400, "unknown scope"},
		{"wrong grant type", "application/json", strings.Replace(good, `client_credentials`, `password`, 1), 400, "grant_type"},
		{"parameter given twice", "application/json", strings.Replace(good, `{`, `{"scope":"fact-find",`, 1), 400, "more than once"},
		{"unknown parameter", "application/json", strings.Replace(good, `{`, `{"refresh_token":"x",`, 1), 400, "unknown parameter"},
		{"bad email", "application/json", strings.Replace(good, `hello@example.com`, `hello`, 1), 400, "email_address"},
		{"wrong secret", "application/json", strings.Replace(good, `fake-secret`, `wrong`, 1), 401, "Client authentication failed."},
		{"wrong email", "application/json", strings.Replace(good, `hello@example.com`, `other@example.com`, 1), 401, "Client authentication failed."},
	}
	srv := fincalcauthtest.NewServer()
	defer srv.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, out := post(t, srv, tt.contentType, tt.body)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %v", status, tt.status, out)
			}
			if status == 200 {
				data, _ := out["data"].(map[string]any)
				got := map[string]any{"success": out["success"], "token_type": data["token_type"], "expires_in": data["expires_in"]}
				want := map[string]any{"success": true, "token_type": "Bearer", "expires_in": 86400.0}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("answer (-want +got):\n%s", diff)
				}
				if tok, _ := data["access_token"].(string); !srv.ValidToken(tok) {
					t.Errorf("issued token %q is not valid", tok)
				}
				return
			}
			msg, _ := out["message"].(map[string]any)
			desc, _ := msg["description"].(string)
			if out["success"] != false || !strings.Contains(desc, tt.description) {
				t.Errorf("answer %v; want the failure envelope with a description containing %q", out, tt.description)
			}
		})
	}
	if got, want := srv.TokenRequests(), len(tests); got != want {
		t.Errorf("TokenRequests() = %d, want %d", got, want)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	srv := fincalcauthtest.NewServer()
	defer srv.Close()
	resp, err := http.Get(srv.TokenURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: status %d", resp.StatusCode)
	}
}

func TestDistinctTokensAndLifetime(t *testing.T) {
	srv := fincalcauthtest.NewServer()
	defer srv.Close()
	srv.SetTokenLifetime(90 * time.Minute)
	seen := map[string]bool{}
	for range 20 {
		tok, err := srv.ClientConfig().Token(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if seen[tok.AccessToken] {
			t.Fatalf("token %q issued twice", tok.AccessToken)
		}
		seen[tok.AccessToken] = true
		if tok.ExpiresIn != 5400 {
			t.Errorf("expires_in %d, want 5400", tok.ExpiresIn)
		}
	}
}

func TestFaults(t *testing.T) {
	tests := []struct {
		name       string
		fault      fincalcauthtest.Fault
		wantStatus int
		wantBody   string // contained in the body
		wantHeader string // Retry-After
		wantErr    bool
		minTime    time.Duration
	}{
		{"status with envelope", fincalcauthtest.Fault{Status: 503, Description: "Down for maintenance."}, 503, `"description":"Down for maintenance."`, "", false, 0},
		{"status with default description", fincalcauthtest.Fault{Status: 500}, 500, `"Internal Server Error"`, "", false, 0},
		{"HTML body", fincalcauthtest.Fault{Status: 502, Body: "<html>502</html>"}, 502, "<html>502</html>", "", false, 0},
		{"Retry-After", fincalcauthtest.Fault{Status: 429, Header: http.Header{"Retry-After": {"3"}}}, 429, `"success":false`, "3", false, 0},
		{"delay, then a normal answer", fincalcauthtest.Fault{Delay: 50 * time.Millisecond}, 200, `"access_token"`, "", false, 50 * time.Millisecond},
		{"dropped connection", fincalcauthtest.Fault{Drop: true}, 0, "", "", true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fincalcauthtest.NewServer()
			defer srv.Close()
			srv.FailNext(tt.fault)
			start := time.Now()
			resp, err := http.Post(srv.TokenURL, "application/json", strings.NewReader(good))
			if tt.wantErr {
				if err == nil {
					resp.Body.Close()
					t.Fatal("no error from a dropped connection")
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tt.wantStatus || !strings.Contains(string(body), tt.wantBody) || resp.Header.Get("Retry-After") != tt.wantHeader {
					t.Errorf("got %d %q Retry-After %q; want %d, body containing %q, Retry-After %q",
						resp.StatusCode, body, resp.Header.Get("Retry-After"), tt.wantStatus, tt.wantBody, tt.wantHeader)
				}
			}
			if d := time.Since(start); d < tt.minTime {
				t.Errorf("answered after %v, want at least %v", d, tt.minTime)
			}
			// The fault is used up: the next request succeeds.
			if _, err := srv.ClientConfig().Token(context.Background()); err != nil {
				t.Errorf("after the fault: %v", err)
			}
			if n := srv.TokenRequests(); n != 2 {
				t.Errorf("TokenRequests() = %d, want 2", n)
			}
		})
	}
}

func TestFailAlwaysAndRecover(t *testing.T) {
	srv := fincalcauthtest.NewServer()
	defer srv.Close()
	srv.FailAlways(fincalcauthtest.Fault{Status: 400, Description: "no"})
	for range 3 {
		if _, err := srv.ClientConfig().Token(context.Background()); err == nil {
			t.Fatal("no error while failing")
		}
	}
	srv.Recover()
	if _, err := srv.ClientConfig().Token(context.Background()); err != nil {
		t.Fatalf("after Recover: %v", err)
	}
}

func TestRequireToken(t *testing.T) {
	srv := fincalcauthtest.NewServer()
	defer srv.Close()
	tok, err := srv.ClientConfig().Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	get := func(auth string) int {
		req, _ := http.NewRequest("GET", srv.URL+fincalcauthtest.ClientsPath, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 401 && resp.Header.Get("WWW-Authenticate") == "" {
			t.Error("401 without WWW-Authenticate")
		}
		return resp.StatusCode
	}
	got := map[string]int{
		"valid":        get("Bearer " + tok.AccessToken),
		"lower-case":   get("bearer " + tok.AccessToken),
		"none":         get(""),
		"unknown":      get("Bearer fake-unknown"),
		"wrong scheme": get("Basic " + tok.AccessToken),
	}
	srv.RevokeTokens()
	got["revoked"] = get("Bearer " + tok.AccessToken)
	tok2, _ := srv.ClientConfig().Token(context.Background())
	got["new after revocation"] = get("Bearer " + tok2.AccessToken)
	srv.ExpireTokens()
	got["expired"] = get("Bearer " + tok2.AccessToken)
	want := map[string]int{"valid": 200, "lower-case": 200, "none": 401, "unknown": 401, "wrong scheme": 401,
		"revoked": 401, "new after revocation": 200, "expired": 401}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
}

func TestLastTokenRequest(t *testing.T) {
	srv := fincalcauthtest.NewServer()
	defer srv.Close()
	if _, ok := srv.LastTokenRequest(); ok {
		t.Error("a request before any was sent")
	}
	post(t, srv, "application/json", good)
	req, ok := srv.LastTokenRequest()
	if !ok || req.ContentType != "application/json" || req.Fields["client_id"] != "12345" {
		t.Errorf("LastTokenRequest() = %+v, %v", req, ok)
	}
}

func TestCloseWithDelayedRequest(t *testing.T) {
	srv := fincalcauthtest.NewServer()
	srv.FailAlways(fincalcauthtest.Fault{Delay: time.Hour})
	errc := make(chan error, 1)
	go func() {
		_, err := srv.ClientConfig().Token(context.Background())
		errc <- err
	}()
	for srv.TokenRequests() == 0 {
		time.Sleep(time.Millisecond)
	}
	done := make(chan struct{})
	go func() { srv.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close blocked on a delayed request")
	}
	if err := <-errc; err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("Token() against a closed server: %v", err)
	}
}

func TestMemoryServerInBubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := fincalcauthtest.NewMemoryServer()
		defer srv.Close()
		ctx := context.WithValue(t.Context(), oauth2.HTTPClient, srv.Client())
		tok, err := srv.ClientConfig().Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		get := func() int {
			req, _ := http.NewRequest("GET", srv.URL+fincalcauthtest.ClientsPath, nil)
			tok.SetAuthHeader(req)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if s := get(); s != 200 {
			t.Errorf("fresh token: status %d", s)
		}
		// A day passes at once in the bubble.
		time.Sleep(fincalcauthtest.DefaultTokenLifetime)
		if s := get(); s != 401 {
			t.Errorf("token after its lifetime: status %d, want 401", s)
		}

		srv.FailNext(fincalcauthtest.Fault{Drop: true}, fincalcauthtest.Fault{Delay: time.Hour})
		resp, err := srv.Client().Post(srv.TokenURL, "application/json", strings.NewReader(good))
		if err == nil {
			resp.Body.Close()
			t.Errorf("dropped connection: status %d, want an error", resp.StatusCode)
		}
		start := time.Now()
		resp, err = srv.Client().Post(srv.TokenURL, "application/json", strings.NewReader(good))
		if err != nil || resp.StatusCode != 200 || time.Since(start) != time.Hour {
			t.Errorf("delayed answer: %v after %v", err, time.Since(start))
		}
		if err == nil {
			resp.Body.Close()
		}
		if srv.URL != fincalcauthtest.MemoryURL {
			t.Errorf("URL = %q", srv.URL)
		}
	})
}

// apiAnswer is what a client saw of an API answer.
type apiAnswer struct {
	Status     int
	Body       string
	RetryAfter string
}

// getAPI sends GET ClientsPath to srv with client, with token as a bearer
// token if not empty.
func getAPI(client *http.Client, srv *fincalcauthtest.Server, token string) (apiAnswer, error) {
	req, _ := http.NewRequest("GET", srv.URL+fincalcauthtest.ClientsPath, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return apiAnswer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return apiAnswer{resp.StatusCode, string(body), resp.Header.Get("Retry-After")}, err
}

const (
	clientsBody         = `{"data":[],"meta":{"total":0},"success":true}` + "\n"
	unauthenticatedBody = `{"message":"Unauthenticated.","success":false}` + "\n"
)

func TestAPIFaults(t *testing.T) {
	tests := []struct {
		name      string
		fault     fincalcauthtest.Fault
		noToken   bool
		want      apiAnswer
		wantErr   bool
		wantDelay time.Duration
	}{
		{"status with envelope", fincalcauthtest.Fault{Status: 503, Description: "Down for maintenance."}, false,
			apiAnswer{503, `{"message":"Down for maintenance.","success":false}` + "\n", ""}, false, 0},
		{"status with default description", fincalcauthtest.Fault{Status: 500}, false,
			apiAnswer{500, `{"message":"Internal Server Error","success":false}` + "\n", ""}, false, 0},
		{"whole body", fincalcauthtest.Fault{Status: 502, Body: "<html>502</html>"}, false,
			apiAnswer{502, "<html>502</html>", ""}, false, 0},
		{"Retry-After", fincalcauthtest.Fault{Status: 429, Header: http.Header{"Retry-After": {"7"}}}, false,
			apiAnswer{429, `{"message":"Too Many Requests","success":false}` + "\n", "7"}, false, 0},
		{"status before the token check", fincalcauthtest.Fault{Status: 503}, true,
			apiAnswer{503, `{"message":"Service Unavailable","success":false}` + "\n", ""}, false, 0},
		{"delay, then the usual answer", fincalcauthtest.Fault{Delay: time.Minute}, false,
			apiAnswer{200, clientsBody, ""}, false, time.Minute},
		{"delay, then the token check", fincalcauthtest.Fault{Delay: time.Minute}, true,
			apiAnswer{401, unauthenticatedBody, ""}, false, time.Minute},
		{"delay, then a status", fincalcauthtest.Fault{Delay: 3 * time.Second, Status: 504}, false,
			apiAnswer{504, `{"message":"Gateway Timeout","success":false}` + "\n", ""}, false, 3 * time.Second},
		{"dropped connection", fincalcauthtest.Fault{Drop: true}, false, apiAnswer{}, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := fincalcauthtest.NewMemoryServer()
				ctx := context.WithValue(t.Context(), oauth2.HTTPClient, srv.Client())
				tok, err := srv.ClientConfig().Token(ctx)
				if err != nil {
					t.Fatal(err)
				}
				token := tok.AccessToken
				if tt.noToken {
					token = ""
				}
				srv.FailAPINext(tt.fault)
				start := time.Now()
				got, err := getAPI(srv.Client(), srv, token)
				if (err != nil) != tt.wantErr {
					t.Fatalf("error %v, want one: %v", err, tt.wantErr)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("answer (-want +got):\n%s", diff)
				}
				if d := time.Since(start); d != tt.wantDelay {
					t.Errorf("answered after %v, want %v", d, tt.wantDelay)
				}
				// The fault is used up: the next request is answered as usual.
				if got, err := getAPI(srv.Client(), srv, tok.AccessToken); err != nil || got.Status != 200 {
					t.Errorf("after the fault: %+v, %v", got, err)
				}
				if got, want := []int{srv.APIRequests(), srv.TokenRequests()}, []int{2, 1}; !cmp.Equal(got, want) {
					t.Errorf("API and token requests %v, want %v", got, want)
				}
			})
		})
	}
}

func TestAPIFaultsOverTheNetwork(t *testing.T) {
	srv := fincalcauthtest.NewServer()
	defer srv.Close()
	tok, err := srv.ClientConfig().Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	srv.FailAPINext(fincalcauthtest.Fault{Drop: true}, fincalcauthtest.Fault{Status: 503})
	client := &http.Client{Transport: &http.Transport{}} // no connection reused from another test
	var got []string
	for range 3 {
		a, err := getAPI(client, srv, tok.AccessToken)
		if err != nil {
			got = append(got, "error")
			continue
		}
		got = append(got, http.StatusText(a.Status))
	}
	if diff := cmp.Diff([]string{"error", "Service Unavailable", "OK"}, got); diff != "" {
		t.Errorf("answers (-want +got):\n%s", diff)
	}
}

func TestAPIFaultsAreSeparate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := fincalcauthtest.NewMemoryServer()
		ctx := context.WithValue(t.Context(), oauth2.HTTPClient, srv.Client())
		tok, err := srv.ClientConfig().Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		api := func() int {
			a, err := getAPI(srv.Client(), srv, tok.AccessToken)
			if err != nil {
				t.Fatal(err)
			}
			return a.Status
		}
		token := func() int {
			status, _ := postMemory(t, srv)
			return status
		}
		var got []int
		srv.FailAlways(fincalcauthtest.Fault{Status: 500})
		got = append(got, api(), token())
		srv.Recover()
		srv.FailAPIAlways(fincalcauthtest.Fault{Status: 503})
		got = append(got, api(), api(), token())
		srv.FailAPINext(fincalcauthtest.Fault{Status: 429})
		got = append(got, api(), api())
		srv.Recover()
		got = append(got, api(), token())
		want := []int{200, 500, 503, 503, 200, 429, 503, 200, 200}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("statuses (-want +got):\n%s", diff)
		}
	})
}

// postMemory sends a good token request to a memory server.
func postMemory(t *testing.T, srv *fincalcauthtest.Server) (int, string) {
	t.Helper()
	resp, err := srv.Client().Post(srv.TokenURL, "application/json", strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestAPIFaultsBehindRequireToken(t *testing.T) {
	srv := fincalcauthtest.NewMemoryServer()
	tok, err := srv.ClientConfig().Token(context.WithValue(context.Background(), oauth2.HTTPClient, srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	own := srv.RequireToken(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "own")
	}))
	srv.FailAPINext(fincalcauthtest.Fault{Status: 503, Body: "down"})
	var got []string
	for range 2 {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/own", nil)
		req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
		own.ServeHTTP(rec, req)
		got = append(got, fmt.Sprint(rec.Code, " ", rec.Body.String()))
	}
	if diff := cmp.Diff([]string{"503 down", "200 own"}, got); diff != "" {
		t.Errorf("answers (-want +got):\n%s", diff)
	}
	if n := srv.APIRequests(); n != 2 {
		t.Errorf("APIRequests() = %d, want 2", n)
	}
}

func TestCredentials(t *testing.T) {
	def := fincalcauthtest.DefaultCredentials()
	second := fincalcauthtest.Credentials{ClientID: def.ClientID, ClientSecret: def.ClientSecret, EmailAddress: "second@example.com"}
	rotated := fincalcauthtest.Credentials{ClientID: def.ClientID, ClientSecret: "fake-secret-rotated", EmailAddress: def.EmailAddress}
	other := fincalcauthtest.Credentials{ClientID: "67890", ClientSecret: "fake-secret-other", EmailAddress: "other@example.com"}
	mixed := fincalcauthtest.Credentials{ClientID: other.ClientID, ClientSecret: def.ClientSecret, EmailAddress: def.EmailAddress}
	tests := []struct {
		name        string
		add, remove []fincalcauthtest.Credentials
		accepted    []fincalcauthtest.Credentials
		refused     []fincalcauthtest.Credentials
	}{
		{"a new server", nil, nil, []fincalcauthtest.Credentials{def}, []fincalcauthtest.Credentials{second, rotated, other}},
		{"a second adviser", []fincalcauthtest.Credentials{second}, nil, []fincalcauthtest.Credentials{def, second}, []fincalcauthtest.Credentials{rotated}},
		{"during a rotation", []fincalcauthtest.Credentials{rotated}, nil, []fincalcauthtest.Credentials{def, rotated}, []fincalcauthtest.Credentials{second}},
		{"after a rotation", []fincalcauthtest.Credentials{rotated}, []fincalcauthtest.Credentials{def}, []fincalcauthtest.Credentials{rotated}, []fincalcauthtest.Credentials{def}},
		{"another client", []fincalcauthtest.Credentials{other}, nil, []fincalcauthtest.Credentials{def, other}, []fincalcauthtest.Credentials{mixed}},
		{"added twice, removed once", []fincalcauthtest.Credentials{other, other}, []fincalcauthtest.Credentials{other}, []fincalcauthtest.Credentials{def}, []fincalcauthtest.Credentials{other}},
		{"removing unknown ones", nil, []fincalcauthtest.Credentials{other}, []fincalcauthtest.Credentials{def}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fincalcauthtest.NewMemoryServer()
			ctx := context.WithValue(context.Background(), oauth2.HTTPClient, srv.Client())
			for _, c := range tt.add {
				srv.AddCredentials(c)
			}
			for _, c := range tt.remove {
				srv.RemoveCredentials(c)
			}
			for _, c := range tt.accepted {
				tok, err := srv.ConfigFor(c).Token(ctx)
				if err != nil {
					t.Errorf("%+v: %v", c, err)
					continue
				}
				got, ok := srv.TokenCredentials(tok.AccessToken)
				if !ok || !srv.ValidToken(tok.AccessToken) {
					t.Errorf("%+v: the token is unknown or invalid", c)
				}
				if diff := cmp.Diff(c, got); diff != "" {
					t.Errorf("TokenCredentials (-want +got):\n%s", diff)
				}
			}
			for _, c := range tt.refused {
				_, err := srv.ConfigFor(c).Token(ctx)
				var re *oauth2.RetrieveError
				if !errors.As(err, &re) || re.Response.StatusCode != http.StatusUnauthorized {
					t.Errorf("%+v: error %v, want a 401", c, err)
				}
			}
		})
	}
}

func TestRemovedCredentialsKeepTheirTokens(t *testing.T) {
	srv := fincalcauthtest.NewMemoryServer()
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, srv.Client())
	second := fincalcauthtest.DefaultCredentials()
	second.EmailAddress = "second@example.com"
	srv.AddCredentials(second)
	first, err := srv.ClientConfig().Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	other, err := srv.ConfigFor(second).Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	srv.RemoveCredentials(fincalcauthtest.DefaultCredentials())
	got := map[string]bool{"first": srv.ValidToken(first.AccessToken), "second": srv.ValidToken(other.AccessToken)}
	srv.RevokeTokens()
	got["first revoked"] = srv.ValidToken(first.AccessToken)
	_, known := srv.TokenCredentials(first.AccessToken)
	got["first known"] = known
	_, known = srv.TokenCredentials("fake-unknown")
	got["unknown known"] = known
	want := map[string]bool{"first": true, "second": true, "first revoked": false, "first known": true, "unknown known": false}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestConfigFor(t *testing.T) {
	srv := fincalcauthtest.NewMemoryServer()
	c := fincalcauthtest.Credentials{ClientID: "1", ClientSecret: "s", EmailAddress: "a@example.com"}
	cfg := srv.ConfigFor(c, "client-information")
	got := []any{cfg.ClientID, cfg.ClientSecret, cfg.EmailAddress, cfg.Scopes, cfg.TokenURL}
	want := []any{"1", "s", "a@example.com", []string{"client-information"}, fincalcauthtest.MemoryURL + fincalcauthtest.TokenPath}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ConfigFor (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"fact-find"}, srv.ClientConfig().Scopes); diff != "" {
		t.Errorf("default scopes (-want +got):\n%s", diff)
	}
}

func TestServeHTTPOnOwnListener(t *testing.T) {
	fake := fincalcauthtest.NewMemoryServer()
	hs := httptest.NewServer(fake)
	defer hs.Close()
	fake.URL, fake.TokenURL = hs.URL, hs.URL+fincalcauthtest.TokenPath
	resp, err := fake.ClientConfig().Client(context.Background()).Get(fake.URL + fincalcauthtest.ClientsPath)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if diff := cmp.Diff(apiAnswer{200, clientsBody, ""}, apiAnswer{resp.StatusCode, string(body), ""}); diff != "" {
		t.Errorf("answer (-want +got):\n%s", diff)
	}
	if got := []int{fake.TokenRequests(), fake.APIRequests()}; !cmp.Equal(got, []int{1, 1}) {
		t.Errorf("token and API requests %v, want [1 1]", got)
	}
}

func TestDelayEndsWhenTheClientGivesUp(t *testing.T) {
	tests := []struct {
		name string
		path string
		fail func(*fincalcauthtest.Server, ...fincalcauthtest.Fault)
	}{
		{"token endpoint", fincalcauthtest.TokenPath, (*fincalcauthtest.Server).FailNext},
		{"API", fincalcauthtest.ClientsPath, (*fincalcauthtest.Server).FailAPINext},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := fincalcauthtest.NewMemoryServer()
				tt.fail(srv, fincalcauthtest.Fault{Delay: time.Hour})
				ctx, cancel := context.WithTimeout(t.Context(), time.Second)
				defer cancel()
				req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+tt.path, strings.NewReader(good))
				req.Header.Set("Content-Type", "application/json")
				start := time.Now()
				resp, err := srv.Client().Do(req)
				if err == nil {
					resp.Body.Close()
				}
				if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != time.Second {
					t.Errorf("after %v: %v; want the context's error after 1s", time.Since(start), err)
				}
			})
		})
	}
}
