package fincalcauth_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofincalc/fincalcauth"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// The benchmarks run this package and golang.org/x/oauth2/clientcredentials
// side by side in one process, each against an equivalent loopback
// endpoint: FinCalc's JSON envelope for ours, a standard form-encoded
// OAuth2 endpoint for theirs. BENCHMARKS.md has the figures and the
// command that reproduces them. Each sub-benchmark's name starts with
// lib=fincalcauth or lib=clientcredentials, so that one library can be
// run at a time (-bench '/^lib=fincalcauth$'), and benchstat -col /lib
// puts the two side by side.

// benchEndpoints serves tokens both ways, after an optional delay, and
// counts what it issues.
type benchEndpoints struct {
	fincalc, standard *httptest.Server
	delay             time.Duration
	expiresIn         int
	issued            atomic.Int64
}

func newBenchEndpoints(b *testing.B, delay time.Duration, expiresIn int) *benchEndpoints {
	e := &benchEndpoints{delay: delay, expiresIn: expiresIn}
	// Both endpoints read the whole request and check the secret where
	// their protocol puts it, with no more work than that, so that the
	// figures are the clients'.
	wantInBody := []byte(`"client_secret":` + string(mustJSON(testSecret)))
	e.fincalc = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !bytes.Contains(body, wantInBody) {
			http.Error(w, `{"success":false,"message":"Unauthenticated."}`, http.StatusUnauthorized)
			return
		}
		e.answer(w, `{"success":true,"data":{"token_type":"Bearer","expires_in":%d,"access_token":"tok-%d"}}`)
	}))
	wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte("12345:"+url.QueryEscape(testSecret)))
	e.standard = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		if r.Header.Get("Authorization") != wantAuth {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		e.answer(w, `{"token_type":"Bearer","expires_in":%d,"access_token":"tok-%d"}`)
	}))
	b.Cleanup(e.fincalc.Close)
	b.Cleanup(e.standard.Close)
	return e
}

func (e *benchEndpoints) answer(w http.ResponseWriter, format string) {
	if e.delay > 0 {
		time.Sleep(e.delay)
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, format, e.expiresIn, e.issued.Add(1))
}

func (e *benchEndpoints) ours(refreshAhead time.Duration) *fincalcauth.Config {
	cfg := testConfig(e.fincalc.URL)
	cfg.RefreshAhead = refreshAhead
	return cfg
}

func (e *benchEndpoints) theirs() *clientcredentials.Config {
	return &clientcredentials.Config{
		ClientID:     "12345",
		ClientSecret: testSecret,
		TokenURL:     e.standard.URL,
		Scopes:       []string{fincalcauth.ScopeFactFind, fincalcauth.ScopeClientInformation},
		AuthStyle:    oauth2.AuthStyleInHeader,
	}
}

// sources returns a warmed-up token source of each library.
func (e *benchEndpoints) sources(b *testing.B, ctx context.Context) map[string]oauth2.TokenSource {
	srcs := map[string]oauth2.TokenSource{
		"fincalcauth":       e.ours(0).TokenSource(ctx),
		"clientcredentials": e.theirs().TokenSource(ctx),
	}
	for name, ts := range srcs {
		if _, err := ts.Token(); err != nil {
			b.Fatalf("%s: %v", name, err)
		}
	}
	return srcs
}

var libs = []string{"fincalcauth", "clientcredentials"}

// BenchmarkCachedToken measures Token() on a source whose token is fresh.
func BenchmarkCachedToken(b *testing.B) {
	e := newBenchEndpoints(b, 0, 86400)
	srcs := e.sources(b, context.Background())
	// The hot path with a store configured: lib=fincalcauth-store.
	withStore := e.ours(0)
	withStore.Store = fincalcauth.NewFileStore(b.TempDir())
	srcs["fincalcauth-store"] = withStore.TokenSource(context.Background())
	if _, err := srcs["fincalcauth-store"].Token(); err != nil {
		b.Fatal(err)
	}
	// The hot path with an Observer set: lib=fincalcauth-observer.
	observed := e.ours(0)
	observed.Observer = new(fincalcauth.Health)
	srcs["fincalcauth-observer"] = observed.TokenSource(context.Background())
	if _, err := srcs["fincalcauth-observer"].Token(); err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"serial", "parallel"} {
		for _, lib := range append(libs, "fincalcauth-store", "fincalcauth-observer") {
			ts := srcs[lib]
			b.Run("lib="+lib+"/mode="+mode, func(b *testing.B) {
				b.ReportAllocs()
				if mode == "serial" {
					for b.Loop() {
						if _, err := ts.Token(); err != nil {
							b.Fatal(err)
						}
					}
					return
				}
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := ts.Token(); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// BenchmarkFetch measures one token fetch (Config.Token) over loopback
// HTTP, request, server and parse included.
func BenchmarkFetch(b *testing.B) {
	e := newBenchEndpoints(b, 0, 86400)
	ctx := context.Background()
	fetch := map[string]func() error{
		"fincalcauth": func() error { _, err := e.ours(0).Token(ctx); return err },
		"clientcredentials": func() error {
			_, err := e.theirs().Token(ctx)
			return err
		},
	}
	for _, lib := range libs {
		f := fetch[lib]
		b.Run("lib="+lib, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := f(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkClientRequest measures a GET to a loopback API through
// oauth2.NewClient, with each library's source and with a static token.
func BenchmarkClientRequest(b *testing.B) {
	e := newBenchEndpoints(b, 0, 86400)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"success":true,"data":[]}`)
	}))
	b.Cleanup(api.Close)
	ctx := context.Background()
	srcs := e.sources(b, ctx)
	srcs["static"] = oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "static", TokenType: "Bearer"})
	clients := map[string]*http.Client{}
	for name, ts := range srcs {
		clients[name] = oauth2.NewClient(ctx, ts)
	}
	clients["fincalcauth-Client"] = e.ours(0).Client(ctx)
	for _, name := range []string{"static", "fincalcauth", "fincalcauth-Client", "clientcredentials"} {
		c := clients[name]
		b.Run("lib="+name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				resp, err := c.Get(api.URL)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
}

// BenchmarkRefreshLatency measures the slowest Token() call among 16
// goroutines calling in a loop while the token is replaced, against a
// token endpoint that takes 50ms to answer. Tokens live 12s, and
// clientcredentials stops using a token 10s before its expiry, so it
// refreshes 2s after a fetch; ours starts its background refresh after
// 1s (RefreshAhead 11s). Each iteration covers one refresh of each.
// The figure is max-ns (ns/op is the length of the scenario).
func BenchmarkRefreshLatency(b *testing.B) {
	e := newBenchEndpoints(b, 50*time.Millisecond, 12)
	ctx := context.Background()
	for _, lib := range libs {
		b.Run("lib="+lib, func(b *testing.B) {
			var worst time.Duration
			for b.Loop() {
				var ts oauth2.TokenSource
				if lib == "fincalcauth" {
					ts = e.ours(11 * time.Second).TokenSource(ctx)
				} else {
					ts = e.theirs().TokenSource(ctx)
				}
				first, err := ts.Token()
				if err != nil {
					b.Fatal(err)
				}
				slowest := hammer(b, ts, 16, first.AccessToken)
				worst = max(worst, slowest)
			}
			b.ReportMetric(float64(worst.Nanoseconds()), "max-ns")
		})
	}
}

// hammer calls ts.Token() from n goroutines until the token differs from
// first, plus 100ms, and returns the slowest call.
func hammer(b *testing.B, ts oauth2.TokenSource, n int, first string) time.Duration {
	var mu sync.Mutex
	var slowest time.Duration
	var replacedAt atomic.Int64
	deadline := time.Now().Add(5 * time.Second)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			var mine time.Duration
			for time.Now().Before(deadline) {
				if at := replacedAt.Load(); at != 0 && time.Since(time.Unix(0, at)) > 100*time.Millisecond {
					break
				}
				start := time.Now()
				tok, err := ts.Token()
				d := time.Since(start)
				if err != nil {
					b.Error(err)
					return
				}
				mine = max(mine, d)
				if tok.AccessToken != first {
					replacedAt.CompareAndSwap(0, time.Now().UnixNano())
				}
				time.Sleep(100 * time.Microsecond)
			}
			mu.Lock()
			slowest = max(slowest, mine)
			mu.Unlock()
		})
	}
	wg.Wait()
	if replacedAt.Load() == 0 {
		b.Fatal("the token was not replaced within 5s")
	}
	return slowest
}

// BenchmarkScale measures cached Token() calls from 1, 8 and 64
// goroutines at once; ns/op is per call, across all goroutines.
func BenchmarkScale(b *testing.B) {
	e := newBenchEndpoints(b, 0, 86400)
	srcs := e.sources(b, context.Background())
	for _, g := range []int{1, 8, 64} {
		for _, lib := range libs {
			ts := srcs[lib]
			b.Run(fmt.Sprintf("lib=%s/goroutines=%d", lib, g), func(b *testing.B) {
				b.ReportAllocs()
				var wg sync.WaitGroup
				per := b.N / g
				b.ResetTimer()
				for i := range g {
					calls := per
					if i == 0 {
						calls += b.N % g
					}
					wg.Go(func() {
						for range calls {
							ts.Token()
						}
					})
				}
				wg.Wait()
			})
		}
	}
}

// BenchmarkClientTokenLookup measures the per-request lookup of a fresh
// token under RunParallel with 64 goroutines: Config.Client's lock-free
// path against the mutex of the reuse source that clientcredentials'
// client calls on every request.
func BenchmarkClientTokenLookup(b *testing.B) {
	e := newBenchEndpoints(b, 0, 86400)
	ctx := context.Background()
	observed := e.ours(0)
	observed.Observer = new(fincalcauth.Health)
	lookups := map[string]func() (*oauth2.Token, error){
		"fincalcauth":          fincalcauth.ClientTokenLookup(e.ours(0).Client(ctx)),
		"clientcredentials":    e.theirs().TokenSource(ctx).Token,
		"fincalcauth-observer": fincalcauth.ClientTokenLookup(observed.Client(ctx)),
	}
	for _, lib := range append(libs, "fincalcauth-observer") {
		lookup := lookups[lib]
		if _, err := lookup(); err != nil {
			b.Fatal(err)
		}
		b.Run("lib="+lib, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					lookup()
				}
			})
		})
	}
}

// BenchmarkClientRoundTrip measures a whole request through each
// library's client down to a base transport that answers at once, so
// that only the clients' own work is measured.
func BenchmarkClientRoundTrip(b *testing.B) {
	e := newBenchEndpoints(b, 0, 86400)
	// Both clients are built on the context's HTTP client: its transport
	// sends token requests to the endpoints and answers the rest at once.
	endpoints := map[string]bool{}
	for _, srv := range []*httptest.Server{e.fincalc, e.standard} {
		u, _ := url.Parse(srv.URL)
		endpoints[u.Host] = true
	}
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if endpoints[r.URL.Host] {
			return http.DefaultTransport.RoundTrip(r)
		}
		return &http.Response{StatusCode: 200, Body: http.NoBody, Request: r}, nil
	})
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: base})
	clients := map[string]*http.Client{
		"fincalcauth":       e.ours(0).Client(ctx),
		"clientcredentials": e.theirs().Client(ctx),
	}
	for _, lib := range libs {
		c := clients[lib]
		req, _ := http.NewRequest("GET", "http://127.0.0.1/api/v2/clients", nil)
		if _, err := c.Transport.RoundTrip(req); err != nil { // warm the token
			b.Fatal(err)
		}
		b.Run("lib="+lib, func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := c.Transport.RoundTrip(req)
					if err != nil {
						b.Error(err)
						return
					}
					resp.Body.Close()
				}
			})
		})
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
