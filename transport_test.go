package fincalcauth_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
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

// apiRecorder is an API handler that records what it was sent.
type apiRecorder struct {
	mu     sync.Mutex
	bodies []string
	status int // answered to every request when not 0
}

func (a *apiRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	a.bodies = append(a.bodies, string(body))
	status := a.status
	a.mu.Unlock()
	if status != 0 {
		w.WriteHeader(status)
	}
	io.WriteString(w, `{"success":true,"data":[]}`)
}

func (a *apiRecorder) seen() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.bodies...)
}

func TestRevokedTokenRecovery(t *testing.T) {
	tests := []struct {
		name string
		// request makes the request under test.
		request func(url string) *http.Request
		// apiStatus, when set, is answered by the API even to a valid
		// token: a 401 that a new token does not cure.
		apiStatus      int
		wantStatus     int
		wantAPIBodies  []string // bodies that reached the API's handler
		wantTokenCalls int
	}{
		{
			name:           "GET is replayed with a new token",
			request:        func(u string) *http.Request { r, _ := http.NewRequest("GET", u, nil); return r },
			wantStatus:     200,
			wantAPIBodies:  []string{""},
			wantTokenCalls: 2,
		},
		{
			name: "POST with GetBody is replayed with its body",
			request: func(u string) *http.Request {
				r, _ := http.NewRequest("POST", u, strings.NewReader(`{"name":"x"}`))
				return r
			},
			wantStatus:     200,
			wantAPIBodies:  []string{`{"name":"x"}`},
			wantTokenCalls: 2,
		},
		{
			// The token is still replaced, in the background, for the
			// requests that follow.
			name: "a body that cannot be replayed returns the 401",
			request: func(u string) *http.Request {
				r, _ := http.NewRequest("POST", u, io.NopCloser(strings.NewReader(`{"name":"x"}`)))
				return r
			},
			wantStatus:     401,
			wantAPIBodies:  nil,
			wantTokenCalls: 2,
		},
		{
			name:           "a second 401 is returned as is",
			request:        func(u string) *http.Request { r, _ := http.NewRequest("GET", u, nil); return r },
			apiStatus:      401,
			wantStatus:     401,
			wantAPIBodies:  []string{""},
			wantTokenCalls: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := fincalcauthtest.NewServer()
			defer fake.Close()
			rec := &apiRecorder{}
			api := httptest.NewServer(fake.RequireToken(rec))
			defer api.Close()
			client := fake.ClientConfig().Client(context.Background())

			// A first request caches a token; then FinCalc revokes it.
			resp, err := client.Get(api.URL)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			fake.RevokeTokens()
			rec.mu.Lock()
			rec.bodies, rec.status = nil, tt.apiStatus
			rec.mu.Unlock()

			resp, err = client.Do(tt.request(api.URL))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			for deadline := time.Now().Add(5 * time.Second); fake.TokenRequests() < tt.wantTokenCalls && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond) // a replacement fetched in the background
			}
			got := struct {
				Status     int
				APIBodies  []string
				TokenCalls int
			}{resp.StatusCode, rec.seen(), fake.TokenRequests()}
			want := struct {
				Status     int
				APIBodies  []string
				TokenCalls int
			}{tt.wantStatus, tt.wantAPIBodies, tt.wantTokenCalls}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestRevokedTokenDroppedOnce(t *testing.T) {
	// Many requests that meet the same revoked token fetch one new token.
	fake := fincalcauthtest.NewServer()
	defer fake.Close()
	client := fake.ClientConfig().Client(context.Background())
	get := func() int {
		resp, err := client.Get(fake.URL + fincalcauthtest.ClientsPath)
		if err != nil {
			t.Error(err)
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	get()
	fake.RevokeTokens()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if s := get(); s != 200 {
				t.Errorf("status %d after recovery", s)
			}
		})
	}
	wg.Wait()
	if n := fake.TokenRequests(); n != 2 {
		t.Errorf("%d token requests; want 2: the revoked token is replaced once", n)
	}
}

func TestClientFastPathTakesNoLock(t *testing.T) {
	fake := fincalcauthtest.NewServer()
	defer fake.Close()
	client := fake.ClientConfig().Client(context.Background())
	resp, err := client.Get(fake.URL + fincalcauthtest.ClientsPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	// With the refresher's lock held elsewhere, a request with a fresh
	// token still goes through.
	unlock := fincalcauth.LockClient(client)
	defer unlock()
	done := make(chan error, 1)
	go func() {
		resp, err := client.Get(fake.URL + fincalcauthtest.ClientsPath)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a request with a fresh token waited for the refresher's lock")
	}
}

// apiFake serves the memory fake's token endpoint, and hands every other
// request to api, in memory.
func apiFake(fake *fincalcauthtest.Server, api http.HandlerFunc) context.Context {
	token := fake.Client().Transport
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.URL.Path == fincalcauthtest.TokenPath {
			return token.RoundTrip(r)
		}
		return memhttp.Transport{Handler: api}.RoundTrip(r)
	})
	return context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: rt})
}

func TestUnauthorizedStormIsRationed(t *testing.T) {
	// An API that refuses every token (wrong scope, clock skew): 1000
	// requests over 10 seconds cost a handful of token requests, and each
	// caller gets its 401.
	synctest.Test(t, func(t *testing.T) {
		fake := fincalcauthtest.NewMemoryServer()
		ctx := apiFake(fake, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusUnauthorized)
		})
		client := fake.ClientConfig().Client(ctx)
		for range 1000 {
			resp, err := client.Get(fake.URL + "/api/v2/clients")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 401 {
				t.Fatalf("status %d, want the API's 401", resp.StatusCode)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if n := fake.TokenRequests(); n > 8 {
			t.Errorf("1000 refused requests cost %d token requests, want a handful", n)
		}
	})
}

func TestUnauthorizedWhileTokenEndpointDown(t *testing.T) {
	// A 401 while the token endpoint is down does not cost the token
	// that is still valid: the next request uses it.
	synctest.Test(t, func(t *testing.T) {
		fake := fincalcauthtest.NewMemoryServer()
		var refuseNext atomic.Bool
		var seen []string
		ctx := apiFake(fake, func(w http.ResponseWriter, r *http.Request) {
			seen = append(seen, r.Header.Get("Authorization"))
			if refuseNext.Swap(false) {
				w.WriteHeader(http.StatusUnauthorized)
			}
		})
		client := fake.ClientConfig().Client(ctx)
		get := func() (int, error) {
			resp, err := client.Get(fake.URL + "/api/v2/clients")
			if err != nil {
				return 0, err
			}
			resp.Body.Close()
			return resp.StatusCode, nil
		}
		if s, err := get(); s != 200 {
			t.Fatalf("first request: %d, %v", s, err)
		}
		fake.FailAlways(fincalcauthtest.Fault{Status: 503})
		refuseNext.Store(true)
		if s, err := get(); s != 401 || err != nil {
			t.Errorf("refused request: %d, %v; want the 401", s, err)
		}
		time.Sleep(time.Minute)
		for i := range 3 {
			if s, err := get(); s != 200 || err != nil {
				t.Errorf("request %d after the 401: %d, %v; want 200 with the token still in hand", i, s, err)
			}
		}
		for _, auth := range seen {
			if auth != seen[0] {
				t.Errorf("requests carried %q and %q; want the one token throughout", seen[0], auth)
			}
		}
	})
}

func TestBearerTokenOnRedirects(t *testing.T) {
	// The token goes where net/http would forward the caller's own
	// Authorization header: the first request's host and its subdomains,
	// and nowhere once a hop has left them.
	tests := []struct {
		name  string
		hops  []string // hosts the request visits, the first its own
		carry []bool   // whether each hop carried a token
	}{
		{"no redirect", []string{"api.fincalc.test"}, []bool{true}},
		{"same host", []string{"api.fincalc.test", "api.fincalc.test"}, []bool{true, true}},
		{"to a subdomain", []string{"api.fincalc.test", "v2.api.fincalc.test"}, []bool{true, true}},
		{"to another host", []string{"api.fincalc.test", "evil.example"}, []bool{true, false}},
		{"to a parent domain", []string{"api.fincalc.test", "fincalc.test"}, []bool{true, false}},
		{"to a look-alike", []string{"api.fincalc.test", "xapi.fincalc.test"}, []bool{true, false}},
		{"away and back", []string{"api.fincalc.test", "evil.example", "api.fincalc.test"}, []bool{true, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				fake := fincalcauthtest.NewMemoryServer()
				var carried []bool
				ctx := apiFake(fake, func(w http.ResponseWriter, r *http.Request) {
					carried = append(carried, r.Header.Get("Authorization") != "")
					if n := len(carried); n < len(tt.hops) {
						http.Redirect(w, r, "https://"+tt.hops[n]+"/api/v2/clients", http.StatusFound)
					}
				})
				resp, err := fake.ClientConfig().Client(ctx).Get("https://" + tt.hops[0] + "/api/v2/clients")
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if diff := cmp.Diff(tt.carry, carried); diff != "" {
					t.Errorf("token carried at each hop (-want +got):\n%s", diff)
				}
			})
		})
	}
}

func TestCertificateFailureNotRetried(t *testing.T) {
	// A certificate that does not verify will not verify on a retry.
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(answer(200, okBody("t", 60)))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.StartTLS()
	defer srv.Close()
	_, err := testConfig(srv.URL).Token(context.Background()) // the default client does not trust the test CA
	if err == nil || !strings.Contains(err.Error(), "certificate") || !strings.Contains(err.Error(), "no retry") {
		t.Errorf("Token() error = %v; want one that says the certificate failed and no retry helps", err)
	}
	var cv *tls.CertificateVerificationError
	if !errors.As(err, &cv) {
		t.Errorf("error %v has no *tls.CertificateVerificationError in its chain", err)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections; want 1: no retry", n)
	}
}
