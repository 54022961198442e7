package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gofincalc/fincalcauth/fincalcauthtest"
	"github.com/google/go-cmp/cmp"
)

// refusingURL returns a loopback token URL where nothing accepts
// connections.
func refusingURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + "/api/oauth/token"
}

func intp(n int) *int       { return &n }
func int64p(n int64) *int64 { return &n }

func TestErrorsAsJSON(t *testing.T) {
	tests := []struct {
		name  string
		setup func(e *env)
		args  []string
		code  int
		want  failure // Error is a part of the error
	}{
		{name: "refused, with Retry-After", setup: func(e *env) {
			e.srv.FailAlways(fincalcauthtest.Fault{Status: 429, Header: http.Header{"Retry-After": {"30"}}})
		}, code: 1, want: failure{Error: "the server asked to wait 30s", Status: intp(429), RetryAfter: int64p(30)}},
		{name: "credentials refused", setup: func(e *env) {
			e.vars["FINCALC_CLIENT_SECRET"] = "wrong-secret"
		}, code: 1, want: failure{Error: "Client authentication failed.", Status: intp(401),
			Hint: "FinCalc refused the credentials: check the client ID (FINCALC_CLIENT_ID), the email address (FINCALC_EMAIL_ADDRESS) and the client secret (FINCALC_CLIENT_SECRET)"}},
		{name: "missing setting", setup: func(e *env) {
			delete(e.vars, "FINCALC_CLIENT_ID")
		}, code: 2, want: failure{Error: "FINCALC_CLIENT_ID is not set (or use -client-id)"}},
		{name: "unknown flag after -json", args: []string{"-nonsense"}, code: 2,
			want: failure{Error: "flag provided but not defined: -nonsense", Hint: "fincalc-token -help lists the flags and settings"}},
		{name: "timeout", setup: func(e *env) {
			e.srv.FailAlways(fincalcauthtest.Fault{Delay: time.Hour})
		}, args: []string{"-timeout", "200ms"}, code: 1, want: failure{Error: "-timeout 200ms reached while waiting for a token from "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			if tt.setup != nil {
				tt.setup(e)
			}
			r := e.call("", append([]string{"-json"}, tt.args...)...)
			if r.Code != tt.code || r.Stdout != "" || strings.Count(r.Stderr, "\n") != 1 {
				t.Fatalf("run = %+v; want exit %d, one line on stderr, nothing on stdout", r, tt.code)
			}
			dec := json.NewDecoder(strings.NewReader(r.Stderr))
			dec.DisallowUnknownFields()
			var got failure
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("stderr %q: %v", r.Stderr, err)
			}
			if !strings.Contains(got.Error, tt.want.Error) {
				t.Errorf("error %q; want it to hold %q", got.Error, tt.want.Error)
			}
			got.Error = tt.want.Error
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("failure (-want +got):\n%s", diff)
			}
			// Keys a script can rely on, null when they do not apply.
			var keys map[string]any
			json.Unmarshal([]byte(r.Stderr), &keys)
			for _, k := range []string{"error", "status", "retry_after"} {
				if _, ok := keys[k]; !ok {
					t.Errorf("no %q in %s", k, r.Stderr)
				}
			}
		})
	}
}

func TestMessagesPrefixed(t *testing.T) {
	tests := []struct {
		name  string
		setup func(e *env)
		args  []string
	}{
		{name: "refused by the server", setup: func(e *env) { e.vars["FINCALC_CLIENT_SECRET"] = "wrong-secret" }},
		{name: "verbose with retries", setup: func(e *env) {
			e.srv.FailNext(fincalcauthtest.Fault{Status: 503}, fincalcauthtest.Fault{Drop: true})
		}, args: []string{"-v"}},
		{name: "nothing listening", setup: func(e *env) { e.vars["FINCALC_TOKEN_URL"] = refusingURL(t) }, args: []string{"-v", "-timeout", "2s"}},
		{name: "timeout", setup: func(e *env) { e.srv.FailAlways(fincalcauthtest.Fault{Delay: time.Hour}) }, args: []string{"-timeout", "200ms"}},
		{name: "bad settings", setup: func(e *env) {
			e.vars["FINCALC_EMAIL_ADDRESS"] = "hello"
			e.vars["FINCALC_SCOPES"] = "fact-find,client\u00a0information"
		}},
		{name: "unknown flag", args: []string{"-nonsense"}},
		{name: "argument", args: []string{"extra"}},
		{name: "secret from a flag", args: []string{"-client-secret=abc"}},
		{name: "demo", args: []string{"-demo", "-v"}},
		{name: "clear-cache", args: []string{"-clear-cache", "-v"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			if tt.setup != nil {
				tt.setup(e)
			}
			r := e.call("", tt.args...)
			if r.Stderr == "" {
				t.Fatalf("run = %+v; want messages", r)
			}
			for line := range strings.Lines(r.Stderr) {
				if !strings.HasPrefix(line, "fincalc-token: ") {
					t.Errorf("a line without the command's name: %q in\n%s", line, r.Stderr)
				}
			}
			if strings.Contains(r.Stderr, "fincalcauth:") && !strings.Contains(r.Stderr, "fincalc-token: fincalcauth: ") {
				t.Errorf("the library's message without the command's name:\n%s", r.Stderr)
			}
		})
	}
}

func TestHints(t *testing.T) {
	tests := []struct {
		name  string
		setup func(e *env)
		args  []string
		want  string
	}{
		{name: "credentials refused", setup: func(e *env) { e.vars["FINCALC_CLIENT_SECRET"] = "wrong-secret" },
			want: "fincalc-token: FinCalc refused the credentials: check the client ID (FINCALC_CLIENT_ID), the email address (FINCALC_EMAIL_ADDRESS) and the client secret (FINCALC_CLIENT_SECRET)\n"},
		{name: "credentials from flags refused", setup: func(e *env) { e.vars["FINCALC_CLIENT_SECRET"] = "wrong-secret" },
			args: []string{"-email", fincalcauthtest.EmailAddress, "-client-id", fincalcauthtest.ClientID},
			want: "check the client ID (-client-id), the email address (-email) and the client secret (FINCALC_CLIENT_SECRET)\n"},
		{name: "nothing listening", setup: func(e *env) { e.vars["FINCALC_TOKEN_URL"] = refusingURL(t) },
			args: []string{"-timeout", "2s"}, want: ": check the token URL (FINCALC_TOKEN_URL)\n"},
		{name: "nothing listening, from a flag", args: []string{"-timeout", "2s", "-token-url", refusingURL(t)},
			want: ": check the token URL (-token-url)\n"},
		{name: "timeout", setup: func(e *env) { e.srv.FailAlways(fincalcauthtest.Fault{Delay: time.Hour}) },
			args: []string{"-timeout", "200ms"}, want: "-timeout 200ms reached while waiting for a token from http://127.0.0.1:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			if tt.setup != nil {
				tt.setup(e)
			}
			r := e.call("", tt.args...)
			if r.Code != 1 || !strings.Contains(r.Stderr, tt.want) {
				t.Errorf("run = %+v; want exit 1 and %q", r, tt.want)
			}
		})
	}
}

func TestRefusalQuotingCachedToken(t *testing.T) {
	// Encoders of the test's own, apart from the decoder that withholds.
	percentAll := func(s string) string {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			fmt.Fprintf(&b, "%%%02x", s[i])
		}
		return b.String()
	}
	htmlDecimal := func(s string) string {
		var b strings.Builder
		for _, r := range s {
			fmt.Fprintf(&b, "&#%d;", r)
		}
		return b.String()
	}
	tests := []struct {
		name   string
		args   []string
		encode func(string) string
	}{
		{name: "raw", args: []string{"-refresh"}},
		{name: "raw, -json", args: []string{"-refresh", "-json"}},
		{name: "raw, -v", args: []string{"-refresh", "-v"}},
		{name: "percent-encoded", args: []string{"-refresh"}, encode: percentAll},
		{name: "HTML entities, -json", args: []string{"-refresh", "-json"}, encode: htmlDecimal},
		{name: "percent-encoded, then HTML", args: []string{"-refresh", "-v"}, encode: func(s string) string { return htmlDecimal(percentAll(s)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			cached := strings.TrimSpace(e.call("").Stdout)
			if !e.srv.ValidToken(cached) {
				t.Fatalf("no token cached")
			}
			quoted := cached
			if tt.encode != nil {
				quoted = tt.encode(cached)
			}
			e.srv.FailNext(fincalcauthtest.Fault{Status: 400, Description: "A token is still valid for this client: " + quoted + "."})
			r := e.call("", tt.args...) // checkNoSecret fails the test if stderr shows the token as is
			if r.Code != 1 || r.Stdout != "" || !strings.Contains(r.Stderr, "withheld: it mentions a token this command holds") || !strings.Contains(r.Stderr, "400") {
				t.Errorf("run = %+v; want exit 1, the status, and a note that the error is withheld", r)
			}
			if strings.Contains(r.Stderr, quoted) {
				t.Errorf("stderr shows the token as the server quoted it:\n%s", r.Stderr)
			}
		})
	}
}

func TestVerboseNoAnswer(t *testing.T) {
	tests := []struct {
		name  string
		setup func(e *env)
		want  string // in the line of attempt 1
	}{
		{name: "connection dropped", setup: func(e *env) { e.srv.FailNext(fincalcauthtest.Fault{Drop: true}) }, want: "closed"},
		{name: "nothing listening", setup: func(e *env) { e.vars["FINCALC_TOKEN_URL"] = refusingURL(t) }, want: "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			tt.setup(e)
			r := e.call("", "-v", "-timeout", "2s")
			told := false
			for line := range strings.Lines(r.Stderr) {
				told = told || strings.Contains(line, "attempt=1 ") && strings.Contains(line, tt.want)
				if strings.HasSuffix(line, "status=no answer\n") {
					t.Errorf("-v told no more than %q", line)
				}
			}
			if !told {
				t.Errorf("-v told:\n%s\nwant attempt 1 told with %q", r.Stderr, tt.want)
			}
		})
	}
}

func TestStillWaiting(t *testing.T) {
	for _, tty := range []bool{true, false} {
		e := newEnv(t)
		e.srv.FailNext(fincalcauthtest.Fault{Delay: 500 * time.Millisecond}) // then the token
		r := e.callWith(func(c *command) {
			c.stderrTTY = tty
			c.noticeAfter = 50 * time.Millisecond
		}, "")
		want := "fincalc-token: still waiting for a token from " + e.srv.TokenURL + " (-timeout 30s, Ctrl-C to stop)\n"
		if r.Code != 0 || strings.Contains(r.Stderr, want) != tty {
			t.Errorf("stderr a terminal: %v; run = %+v; want the notice %q only on a terminal", tty, r, want)
		}
	}
}

func TestConnectFailed(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")}, true},
		{"name not found", &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Name: "fincalc.invalid", IsNotFound: true}}, false},
		{"dial timeout", &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{IsTimeout: true}}, false},
		{"reset while reading", &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}, false},
	}
	for _, tt := range tests {
		err := fmt.Errorf("fincalcauth: token request failed: %w", tt.err)
		if got := connectFailed(err); got != tt.want {
			t.Errorf("%s: connectFailed(%v) = %v, want %v", tt.name, err, got, tt.want)
		}
	}
}
