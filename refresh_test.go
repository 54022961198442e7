package fincalcauth_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/fincalcauthtest"
	"golang.org/x/oauth2"
)

// The tests in this file run in synctest bubbles, whose clock advances
// only when every goroutine of the bubble is blocked, against a fake
// FinCalc that answers in memory: no real time passes.

// bubbleFake is a fincalcauthtest memory server that also records when
// it received each token request.
type bubbleFake struct {
	*fincalcauthtest.Server
	mu    sync.Mutex
	times []time.Time
}

func newBubbleFake() *bubbleFake {
	return &bubbleFake{Server: fincalcauthtest.NewMemoryServer()}
}

// ctx carries the HTTP client that reaches the fake.
func (f *bubbleFake) ctx() context.Context {
	base := f.Client().Transport
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.URL.Path == fincalcauthtest.TokenPath {
			f.mu.Lock()
			f.times = append(f.times, time.Now())
			f.mu.Unlock()
		}
		return base.RoundTrip(r)
	})
	return context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: rt})
}

func (f *bubbleFake) config() *fincalcauth.Config { return f.ClientConfig() }

func (f *bubbleFake) requests() int { return f.TokenRequests() }

// tokenTimes returns when each token request was received.
func (f *bubbleFake) tokenTimes() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.times)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// hang is a Fault whose answer never comes: the request ends when its
// context does.
var hang = fincalcauthtest.Fault{Delay: 1000 * time.Hour}

func fail(status int) fincalcauthtest.Fault {
	return fincalcauthtest.Fault{Status: status, Description: fmt.Sprintf("failure %d", status)}
}

func withHeader(f fincalcauthtest.Fault, k, v string) fincalcauthtest.Fault {
	f.Header = http.Header{k: {v}}
	return f
}

func TestRetries(t *testing.T) {
	tests := []struct {
		name     string
		faults   []fincalcauthtest.Fault
		wantErr  string // "" for success
		requests int
		minTime  time.Duration
		maxTime  time.Duration
	}{
		{"500 then success", []fincalcauthtest.Fault{fail(500)}, "", 2, 0, 250 * time.Millisecond},
		{"each transient status", []fincalcauthtest.Fault{fail(502), fail(503), fail(504)}, "", 4, 0, fincalcauth.SleepBudget},
		{"408 and 429", []fincalcauthtest.Fault{fail(408), fail(429)}, "", 3, 0, time.Second},
		{"dropped connection", []fincalcauthtest.Fault{{Drop: true}}, "", 2, 0, 250 * time.Millisecond},
		{"a slow answer is not a failure", []fincalcauthtest.Fault{{Delay: 5 * time.Second}}, "", 1, 5 * time.Second, 5 * time.Second},
		{"gives up after the last attempt", []fincalcauthtest.Fault{fail(500), fail(500), fail(500), fail(500), fail(500)}, "failure 500", fincalcauth.MaxAttempts, 0, fincalcauth.SleepBudget},
		{"Retry-After in seconds", []fincalcauthtest.Fault{withHeader(fail(429), "Retry-After", "1")}, "", 2, time.Second, time.Second},
		{"Retry-After as an HTTP date", []fincalcauthtest.Fault{withHeader(fail(503), "Retry-After", "Sat, 01 Jan 2000 00:00:02 GMT")}, "", 2, 2 * time.Second, 2 * time.Second},
		{"Retry-After beyond the budget fails at once", []fincalcauthtest.Fault{withHeader(fail(503), "Retry-After", "30")}, "failure 503", 1, 0, 0},
		{"Retry-After beyond an int64 fails at once", []fincalcauthtest.Fault{withHeader(fail(503), "Retry-After", "99999999999999999999")}, "failure 503", 1, 0, 0},
		{"400 is not retried", []fincalcauthtest.Fault{fail(400)}, "failure 400", 1, 0, 0},
		{"401 is not retried", []fincalcauthtest.Fault{fail(401)}, "failure 401", 1, 0, 0},
		{"403 is not retried", []fincalcauthtest.Fault{fail(403)}, "failure 403", 1, 0, 0},
		{"422 is not retried", []fincalcauthtest.Fault{fail(422)}, "failure 422", 1, 0, 0},
		{"success false on 200 is not retried", []fincalcauthtest.Fault{{Status: 200, Body: `{"success":false,"message":"nope"}`}}, "nope", 1, 0, 0},
		{"a malformed 200 is not retried", []fincalcauthtest.Fault{{Status: 200, Body: `{"success":true}`}}, "malformed", 1, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := newBubbleFake()
				m.FailNext(tt.faults...)
				start := time.Now()
				tok, err := m.config().Token(m.ctx())
				elapsed := time.Since(start)
				switch {
				case tt.wantErr == "" && err != nil:
					t.Errorf("Token() error = %v", err)
				case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
					t.Errorf("Token() = %v, %v; want an error containing %q", tok, err, tt.wantErr)
				}
				if got := m.requests(); got != tt.requests {
					t.Errorf("%d requests, want %d", got, tt.requests)
				}
				if elapsed < tt.minTime || elapsed > tt.maxTime {
					t.Errorf("took %v, want between %v and %v", elapsed, tt.minTime, tt.maxTime)
				}
			})
		})
	}
}

func TestRetryAfterParsing(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"0", 0}, {"-3", 0}, {"2", 2 * time.Second}, {" 5 ", 5 * time.Second},
		{"99999999", time.Hour}, {"99999999999999999999", time.Hour}, {"-99999999999999999999", 0}, {"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := fincalcauth.ParseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("Retry-After %q = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestRetryStopsWhenContextDone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newBubbleFake()
		m.FailAlways(fail(503))
		ctx, cancel := context.WithTimeout(m.ctx(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := m.config().Token(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error %v does not wrap context.DeadlineExceeded", err)
		}
		if time.Since(start) != 300*time.Millisecond {
			t.Errorf("returned after %v, want at the deadline", time.Since(start))
		}
		for _, want := range []string{"fincalcauth: ", "last failure", "503", "failure 503"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name the last failure (%q)", err, want)
			}
		}
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.Response.StatusCode != 503 {
			t.Errorf("error %v has no RetrieveError of the last failure", err)
		}
	})
}

func TestFetchTimeBound(t *testing.T) {
	// A hung endpoint behind an HTTP client with no timeout cannot block
	// a TokenSource's callers for ever.
	for name, first := range map[string][]fincalcauthtest.Fault{
		"hangs":             nil,
		"fails, then hangs": {fail(503)},
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := newBubbleFake()
				m.FailNext(first...)
				m.FailAlways(hang)
				ts := m.config().TokenSource(m.ctx())
				start := time.Now()
				_, err := ts.Token()
				if d := time.Since(start); d != fincalcauth.FetchTimeout {
					t.Errorf("Token() returned after %v, want %v", d, fincalcauth.FetchTimeout)
				}
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
				}
				// Each part once: the prefix, the bound, and the last
				// failure that the bound did not cause.
				msg := err.Error()
				if strings.Count(msg, "fincalcauth: ") != 1 || !strings.HasPrefix(msg, "fincalcauth: ") || strings.Count(msg, "30s") != 1 {
					t.Errorf("error %q: want one prefix and the 30s bound once", msg)
				}
				if got := strings.Contains(msg, "last failure: token request failed: 503"); got != (len(first) > 0) {
					t.Errorf("error %q: names a last failure = %v, want %v", msg, got, len(first) > 0)
				}
			})
		})
	}
}

func TestFailFastDuringOutage(t *testing.T) {
	// Config.Client's callers wait on the fetch itself, so that 50 of them
	// can run in a bubble. A TokenSource's callers queue on the mutex of
	// oauth2's reuse source, where a bubble's clock would not advance:
	// one caller stands for them here, and TestTokenSourceConcurrentOneRequest
	// has many in real time.
	for _, g := range getters {
		t.Run(g.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := newBubbleFake()
				m.FailAlways(fail(500))
				get := g.make(m, m.config())
				callers := 1
				if g.name == "Config.Client" {
					callers = 50
				}
				var mu sync.Mutex
				var longest time.Duration
				calls := 0
				var wg sync.WaitGroup
				start := time.Now()
				for range callers {
					wg.Go(func() {
						for time.Since(start) < 3*time.Second {
							t0 := time.Now()
							if _, err := get(); err == nil {
								t.Errorf("a call succeeded during an outage")
							}
							d := time.Since(t0)
							mu.Lock()
							longest = max(longest, d)
							calls++
							mu.Unlock()
							time.Sleep(10 * time.Millisecond)
						}
					})
				}
				wg.Wait()
				n := m.requests()
				if n > 12 {
					t.Errorf("%d calls made %d token requests; want at most about a dozen", calls, n)
				}
				// No call waits longer than one fetch: its sleeps.
				if longest > fincalcauth.SleepBudget {
					t.Errorf("a call waited %v, longer than one fetch", longest)
				}
			})
		})
	}
}

func TestCooldownSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// 400 is not retried, so each fetch is one request, and the
		// gaps between requests are the cool-downs.
		m := newBubbleFake()
		m.FailAlways(fail(400))
		ts := m.config().TokenSource(m.ctx())
		var first error
		for range 6000 { // 10 minutes, a call each 100ms
			_, err := ts.Token()
			if first == nil {
				first = err
			} else if m.requests() == 1 && err != first {
				t.Fatalf("during the cool-down Token() returned %v, not the same error %v", err, first)
			}
			time.Sleep(100 * time.Millisecond)
		}
		gaps := gapsOf(m.tokenTimes())
		if len(gaps) < 8 {
			t.Fatalf("only %d fetches in 10 minutes: %v", len(gaps)+1, gaps)
		}
		if gaps[0] < 800*time.Millisecond || gaps[0] > 1100*time.Millisecond {
			t.Errorf("first cool-down %v, want about a second", gaps[0])
		}
		for i, g := range gaps {
			if g > fincalcauth.MaxCooldown+100*time.Millisecond {
				t.Errorf("cool-down %d is %v, over the cap", i, g)
			}
			if i > 0 && gaps[i-1] < 30*time.Second && g < gaps[i-1]*3/2 {
				t.Errorf("cool-downs do not grow: %v", gaps)
			}
		}
		if last := gaps[len(gaps)-1]; last < 45*time.Second {
			t.Errorf("cool-down after 10 minutes is %v, want near the cap", last)
		}

		// A success resets the schedule.
		m.Recover()
		time.Sleep(fincalcauth.MaxCooldown)
		if _, err := ts.Token(); err != nil {
			t.Fatalf("after recovery: %v", err)
		}
	})
}

func gapsOf(times []time.Time) []time.Duration {
	var gaps []time.Duration
	for i := 1; i < len(times); i++ {
		gaps = append(gaps, times[i].Sub(times[i-1]))
	}
	return gaps
}

// tokenGetter is each way a caller can get tokens: straight from the
// TokenSource, or through an HTTP client of either kind.
type tokenGetter struct {
	name string
	make func(m *bubbleFake, cfg *fincalcauth.Config) func() (string, error)
}

var getters = []tokenGetter{
	{"TokenSource", func(m *bubbleFake, cfg *fincalcauth.Config) func() (string, error) {
		ts := cfg.TokenSource(m.ctx())
		return func() (string, error) {
			tok, err := ts.Token()
			if err != nil {
				return "", err
			}
			return tok.AccessToken, nil
		}
	}},
	{"oauth2.NewClient", func(m *bubbleFake, cfg *fincalcauth.Config) func() (string, error) {
		return viaClient(m, oauth2.NewClient(m.ctx(), cfg.TokenSource(m.ctx())))
	}},
	{"Config.Client", func(m *bubbleFake, cfg *fincalcauth.Config) func() (string, error) {
		return viaClient(m, cfg.Client(m.ctx()))
	}},
}

// viaClient returns a function that makes an API request with client and
// returns the token it carried.
func viaClient(m *bubbleFake, client *http.Client) func() (string, error) {
	return func() (string, error) {
		resp, err := client.Get(m.URL + fincalcauthtest.ClientsPath)
		if err != nil {
			return "", err
		}
		resp.Body.Close()
		auth := resp.Request.Header.Get("Authorization")
		return strings.TrimPrefix(auth, "Bearer "), nil
	}
}

func TestBackgroundRefresh(t *testing.T) {
	for _, g := range getters {
		t.Run(g.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				// A slow endpoint: a caller that waited on it would be seen.
				m := newBubbleFake()
				m.FailAlways(fincalcauthtest.Fault{Delay: 50 * time.Millisecond})
				get := g.make(m, m.config())
				first, err := get()
				if err != nil {
					t.Fatalf("first token: %v", err)
				}
				time.Sleep(11 * time.Hour)
				if tok, _ := get(); tok != first || m.requests() != 1 {
					t.Fatalf("at 11h: another token after %d requests; want the first and no refresh yet", m.requests())
				}
				// In the window: about 12h before expiry, less up to 5%
				// of jitter.
				time.Sleep(time.Hour + 37*time.Minute)

				var wg sync.WaitGroup
				for range 100 {
					wg.Go(func() {
						start := time.Now()
						tok, err := get()
						if err != nil || tok != first || time.Since(start) != 0 {
							t.Errorf("in the refresh window: %v after %v, same token %v; want the first token at once", err, time.Since(start), tok == first)
						}
					})
				}
				wg.Wait()
				synctest.Wait() // the background fetch is under way
				time.Sleep(time.Second)
				if n := m.requests(); n != 2 {
					t.Errorf("100 callers in the window caused %d token requests, want 2 in all", n)
				}
				if tok, _ := get(); tok == first || !m.ValidToken(tok) {
					t.Errorf("after the background refresh: not a new valid token")
				}
				// Nothing runs when nobody asks.
				time.Sleep(48 * time.Hour)
				if n := m.requests(); n != 2 {
					t.Errorf("%d token requests while idle", n)
				}
			})
		})
	}
}

func TestBackgroundRefreshFailure(t *testing.T) {
	for _, g := range getters {
		t.Run(g.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := newBubbleFake()
				var logs lockedBuffer
				cfg := m.config()
				cfg.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
				get := g.make(m, cfg)
				first, err := get()
				if err != nil {
					t.Fatal(err)
				}
				m.FailAlways(fail(503))
				time.Sleep(12*time.Hour + 37*time.Minute)

				// Until the token is no longer valid, callers get it with
				// no error, and the endpoint sees rationed attempts.
				const step = 2 * time.Second
				validUntil := time.Now().Add(11*time.Hour + 23*time.Minute - 11*time.Second)
				for time.Now().Before(validUntil) {
					if tok, err := get(); err != nil || tok != first {
						t.Fatalf("at %v: %v, same token %v; want the first token and no error", time.Now(), err, tok == first)
					}
					time.Sleep(step)
				}
				fetches := (m.requests() - 1) / fincalcauth.MaxAttempts
				// Over 11 hours, a fetch every 48 to 60 seconds once the
				// cool-down has reached its cap, and the next call after it.
				if lo, hi := int(11*time.Hour/(time.Minute+step)), 11*60*60/48+30; fetches < lo || fetches > hi {
					t.Errorf("%d background fetches in 11 hours, want %d to %d", fetches, lo, hi)
				}
				time.Sleep(2 * time.Second)
				if _, err := get(); err == nil {
					t.Errorf("no error after the token expired")
				}

				warn := strings.Count(logs.String(), `"level":"WARN"`)
				if warn < fetches {
					t.Errorf("%d Warn records for %d failed background fetches", warn, fetches)
				}
				var record string // the first Warn record
				for _, line := range strings.Split(logs.String(), "\n") {
					if strings.Contains(line, `"level":"WARN"`) {
						record = line
						break
					}
				}
				for _, want := range []string{`"status":503`, `"next_attempt"`, "background token refresh failed"} {
					if !strings.Contains(record, want) {
						t.Errorf("log record %s lacks %s", record, want)
					}
				}
				checkNoSecrets(t, logs.String())

				// Recovery.
				m.Recover()
				time.Sleep(fincalcauth.MaxCooldown + time.Second)
				if tok, err := get(); err != nil || tok == first {
					t.Errorf("after recovery: %v, same token %v", err, tok == first)
				}
			})
		})
	}
}

// lockedBuffer is a log destination safe for concurrent use.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// checkNoSecrets fails t if logs show the fake's client secret or any
// of its tokens, which all start with "fake-".
func checkNoSecrets(t *testing.T, logs string) {
	t.Helper()
	if strings.Contains(logs, "fake-") {
		t.Errorf("logs contain the client secret or a token: %s", logs)
	}
}

func TestDebugLogAfterRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newBubbleFake()
		m.FailNext(fail(502))
		var logs lockedBuffer
		cfg := m.config()
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		if _, err := cfg.TokenSource(m.ctx()).Token(); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs.String(), "level=DEBUG") || !strings.Contains(logs.String(), "attempts=2") {
			t.Errorf("no Debug record of the retried fetch: %s", logs.String())
		}
		checkNoSecrets(t, logs.String())
	})
}

func TestRefreshAheadExplicit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newBubbleFake()
		cfg := m.config()
		cfg.RefreshAhead = time.Hour
		ts := cfg.TokenSource(m.ctx())
		ts.Token()
		time.Sleep(23*time.Hour - time.Second)
		ts.Token()
		synctest.Wait()
		if n := m.requests(); n != 1 {
			t.Errorf("refresh started %v before expiry with RefreshAhead 1h", time.Hour+time.Second)
		}
		time.Sleep(2 * time.Second)
		ts.Token()
		synctest.Wait()
		if n := m.requests(); n != 2 {
			t.Errorf("no refresh inside the RefreshAhead window: %d requests", n)
		}
	})
}

func TestDefaultRefreshWindow(t *testing.T) {
	cfg := testConfig("")
	seen := map[time.Duration]bool{}
	for range 50 {
		w := fincalcauth.RefreshWindow(cfg, 24*time.Hour)
		if w > 12*time.Hour || w < 12*time.Hour*95/100 {
			t.Fatalf("default window for 24h tokens is %v, want about 12h", w)
		}
		seen[w] = true
		if w := fincalcauth.RefreshWindow(cfg, time.Hour); w > 30*time.Minute || w < 28*time.Minute {
			t.Fatalf("default window for 1h tokens is %v, want about 30m", w)
		}
	}
	if len(seen) < 2 {
		t.Errorf("no jitter: every source has window %v", seen)
	}
	cfg.RefreshAhead = 3 * time.Hour
	if w := fincalcauth.RefreshWindow(cfg, 24*time.Hour); w != 3*time.Hour {
		t.Errorf("explicit RefreshAhead 3h gives %v", w)
	}
}

func TestShortLivedTokens(t *testing.T) {
	// Tokens far shorter than FinCalc's still get refreshed ahead.
	synctest.Test(t, func(t *testing.T) {
		m := newBubbleFake()
		m.SetTokenLifetime(time.Minute)
		ts := m.config().TokenSource(m.ctx())
		var got []string
		for range 10 {
			tok, err := ts.Token()
			if err != nil {
				t.Fatal(err)
			}
			if len(got) == 0 || got[len(got)-1] != tok.AccessToken {
				got = append(got, tok.AccessToken)
			}
			// Every request succeeds, so the n-th token is the n-th answer.
			if issued := m.tokenTimes()[len(got)-1]; time.Since(issued) >= 50*time.Second {
				t.Errorf("token %d handed out %v after its issue, within 10s of its expiry", len(got), time.Since(issued))
			}
			time.Sleep(20 * time.Second)
		}
		if len(got) != 5 || len(m.tokenTimes()) != 5 {
			t.Errorf("%d distinct tokens from %d requests over 200s of 60s tokens, want 5", len(got), len(m.tokenTimes()))
		}
	})
}

func TestClientRequestContextBoundsTokenWait(t *testing.T) {
	// A request waiting for a token stops when its own context is done,
	// not only at the fetch's 30-second bound.
	synctest.Test(t, func(t *testing.T) {
		m := newBubbleFake()
		m.FailAlways(hang)
		client := m.config().Client(m.ctx())
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", m.URL+fincalcauthtest.ClientsPath, nil)
		start := time.Now()
		_, err := client.Do(req)
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != time.Second {
			t.Errorf("Do() = %v after %v; want the request's deadline after 1s", err, time.Since(start))
		}
		time.Sleep(fincalcauth.FetchTimeout) // let the abandoned fetch end
	})
}

// slowHandler is a slog.Handler that takes a second for each record.
type slowHandler struct{ slog.Handler }

func (h slowHandler) Handle(ctx context.Context, r slog.Record) error {
	time.Sleep(time.Second)
	return h.Handler.Handle(ctx, r)
}

func TestSlowLoggerDoesNotDelayCallers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newBubbleFake()
		m.FailAlways(fail(400))
		cfg := m.config()
		cfg.Logger = slog.New(slowHandler{slog.NewTextHandler(io.Discard, nil)})
		start := time.Now()
		if _, err := cfg.TokenSource(m.ctx()).Token(); err == nil {
			t.Fatal("Token() succeeded against a failing endpoint")
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("Token() returned after %v: the caller waited for the log handler", d)
		}
		time.Sleep(time.Second) // let the record be written
	})
}

func TestTokenSourceExpiryIsRefreshMoment(t *testing.T) {
	for _, lifetime := range []time.Duration{time.Minute, time.Hour, 24 * time.Hour} {
		t.Run(lifetime.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := newBubbleFake()
				m.SetTokenLifetime(lifetime)
				ts := m.config().TokenSource(m.ctx())
				tok, err := ts.Token()
				if err != nil {
					t.Fatal(err)
				}
				// Half the lifetime, plus up to 5% of that as jitter.
				if d := time.Until(tok.Expiry); !tok.Valid() || d < lifetime/2 || d > lifetime/2*105/100 {
					t.Errorf("fresh token: Valid() = %v, Expiry in %v; want true, about %v", tok.Valid(), d, lifetime/2)
				}
				if tok.ExpiresIn != int64(lifetime/time.Second) {
					t.Errorf("ExpiresIn = %d, want FinCalc's %v", tok.ExpiresIn, lifetime)
				}
				if n := testing.AllocsPerRun(100, func() { ts.Token() }); n != 0 {
					t.Errorf("cached Token() allocates %v times", n)
				}
				// Valid until its Expiry, then replaced.
				time.Sleep(time.Until(tok.Expiry) - time.Nanosecond)
				if again, _ := ts.Token(); again.AccessToken != tok.AccessToken || !again.Valid() || m.requests() != 1 {
					t.Errorf("just before Expiry: %q (Valid %v) after %d requests; want the same valid token", again.AccessToken, again.Valid(), m.requests())
				}
				time.Sleep(time.Nanosecond)
				ts.Token()
				synctest.Wait()
				if next, _ := ts.Token(); next.AccessToken == tok.AccessToken || !next.Valid() {
					t.Errorf("after Expiry: %q (Valid %v); want a new valid token", next.AccessToken, next.Valid())
				}
			})
		})
	}
}

func TestRefreshAheadBeyondLifetime(t *testing.T) {
	// RefreshAhead at or beyond the lifetime counts as zero: a steady
	// caller does not start a fetch at every cool-down.
	synctest.Test(t, func(t *testing.T) {
		m := newBubbleFake()
		m.SetTokenLifetime(time.Hour)
		cfg := m.config()
		cfg.RefreshAhead = 2 * time.Hour
		ts := cfg.TokenSource(m.ctx())
		for range 3600 {
			if _, err := ts.Token(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second)
		}
		// About half the lifetime each: two or three tokens in an hour.
		if n := m.requests(); n > 3 {
			t.Errorf("%d token requests in an hour of 1-hour tokens, want at most 3", n)
		}
	})
	for _, ahead := range []time.Duration{24 * time.Hour, 48 * time.Hour} {
		cfg := testConfig("")
		cfg.RefreshAhead = ahead
		if w := fincalcauth.RefreshWindow(cfg, 24*time.Hour); w > 12*time.Hour || w < 12*time.Hour*95/100 {
			t.Errorf("RefreshAhead %v on 24h tokens gives window %v, want about 12h", ahead, w)
		}
	}
	cfg := testConfig("")
	cfg.RefreshAhead = 23 * time.Hour
	if w := fincalcauth.RefreshWindow(cfg, 24*time.Hour); w != 23*time.Hour {
		t.Errorf("RefreshAhead 23h on 24h tokens gives window %v, want it exact", w)
	}
}
