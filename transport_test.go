package fincalcauth_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/fincalcauthtest"
	"github.com/google/go-cmp/cmp"
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
			name: "a body that cannot be replayed returns the 401",
			request: func(u string) *http.Request {
				r, _ := http.NewRequest("POST", u, io.NopCloser(strings.NewReader(`{"name":"x"}`)))
				return r
			},
			wantStatus:     401,
			wantAPIBodies:  nil,
			wantTokenCalls: 1,
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
