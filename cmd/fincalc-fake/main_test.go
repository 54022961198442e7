package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/fincalcauthtest"
	"github.com/google/go-cmp/cmp"
)

// The tests run the command in process, with a context in place of the
// signals, and as a built binary, which fincalc-token (built too) and curl
// reach with the lines it prints.

var binDir string // holds fincalc-fake and fincalc-token

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fincalc-fake-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	for _, pkg := range []string{".", "github.com/gofincalc/fincalcauth/cmd/fincalc-token"} {
		build := exec.Command("go", "build", "-o", dir+string(filepath.Separator), pkg)
		build.Stderr = os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building", pkg+":", err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// printed is what the command printed at start.
type printed struct {
	exports map[string]string // FINCALC_... variables, unquoted
	apiCurl string            // the curl line for the API
	lines   string            // all of them
}

// readPrinted reads the lines the command prints at start from r, up to
// the last one, the token request with curl.
func readPrinted(t *testing.T, r io.Reader) printed {
	t.Helper()
	p := printed{exports: map[string]string{}}
	sc := bufio.NewScanner(r)
	curls := 0
	for curls < 2 && sc.Scan() {
		line := sc.Text()
		p.lines += line + "\n"
		switch {
		case strings.HasPrefix(line, "export "):
			k, v, _ := strings.Cut(strings.TrimPrefix(line, "export "), "=")
			p.exports[k] = strings.Trim(v, "'")
		case strings.HasPrefix(line, "curl "):
			if curls == 0 {
				p.apiCurl = line
			}
			curls++
		}
	}
	if curls < 2 {
		t.Fatalf("the output ended early (%v): %q", sc.Err(), p.lines)
	}
	return p
}

// config returns the Config the exported settings describe, as
// fincalc-token reads them.
func (p printed) config() *fincalcauth.Config {
	return &fincalcauth.Config{
		TokenURL:     p.exports["FINCALC_TOKEN_URL"],
		ClientID:     p.exports["FINCALC_CLIENT_ID"],
		ClientSecret: p.exports["FINCALC_CLIENT_SECRET"],
		EmailAddress: p.exports["FINCALC_EMAIL_ADDRESS"],
		Scopes:       strings.Split(p.exports["FINCALC_SCOPES"], ","),
	}
}

// apiURL returns the URL the API curl line calls.
func (p printed) apiURL() string {
	f := strings.Fields(p.apiCurl)
	return f[len(f)-1]
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// callAPI gets url with a bearer token and returns the status and body.
func callAPI(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdoutR, stdoutW := io.Pipe()
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-token-lifetime", "90m"}, stdoutW, &stderr)
		stdoutW.Close()
	}()
	p := readPrinted(t, stdoutR)

	base := strings.TrimSuffix(p.exports["FINCALC_TOKEN_URL"], fincalcauthtest.TokenPath)
	wantExports := map[string]string{
		"FINCALC_TOKEN_URL":     base + fincalcauthtest.TokenPath,
		"FINCALC_CLIENT_ID":     fincalcauthtest.ClientID,
		"FINCALC_CLIENT_SECRET": fincalcauthtest.ClientSecret,
		"FINCALC_EMAIL_ADDRESS": fincalcauthtest.EmailAddress,
		"FINCALC_SCOPES":        fincalcauth.ScopeFactFind,
	}
	if diff := cmp.Diff(wantExports, p.exports); diff != "" {
		t.Errorf("exported settings (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(base, "http://127.0.0.1:") {
		t.Errorf("listening at %q, want a loopback address", base)
	}
	if want := base + fincalcauthtest.ClientsPath; p.apiURL() != want || !strings.Contains(p.apiCurl, "$(fincalc-token -no-cache)") {
		t.Errorf("curl line %q; want one calling %s with a token from fincalc-token -no-cache", p.apiCurl, want)
	}

	tok, err := p.config().Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tok.ExpiresIn != 5400 {
		t.Errorf("expires_in %d, want 5400 from -token-lifetime", tok.ExpiresIn)
	}
	status, body := callAPI(t, p.apiURL(), tok.AccessToken)
	if got, want := fmt.Sprint(status, " ", body), `200 {"data":[],"meta":{"total":0},"success":true}`+"\n"; got != want {
		t.Errorf("API answer %q, want %q", got, want)
	}
	if status, _ := callAPI(t, p.apiURL(), "fake-not-issued"); status != http.StatusUnauthorized {
		t.Errorf("API answer to a token not issued: %d, want 401", status)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run returned %v after its context ended, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
	wantLog := "fincalc-fake: POST /api/oauth/token 200\n" +
		"fincalc-fake: GET /api/v2/clients 200\n" +
		"fincalc-fake: GET /api/v2/clients 401\n"
	if diff := cmp.Diff(wantLog, stderr.String()); diff != "" {
		t.Errorf("standard error (-want +got):\n%s", diff)
	}
	if _, err := http.Get(base); err == nil {
		t.Error("the server still answers after run returned")
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string // contained in standard error
	}{
		{"help", []string{"-h"}, exitOK, "usage: fincalc-fake"},
		{"unknown flag", []string{"-port", "80"}, exitUsage, "flag provided but not defined: -port"},
		{"argument", []string{"serve"}, exitUsage, `unexpected argument "serve"`},
		{"all interfaces", []string{"-addr", ":0"}, exitUsage, "must be loopback"},
		{"a public address", []string{"-addr", "0.0.0.0:8080"}, exitUsage, "must be loopback"},
		{"a host name", []string{"-addr", "example.com:8080"}, exitUsage, "must be loopback"},
		{"no port", []string{"-addr", "127.0.0.1"}, exitUsage, "missing port"},
		{"short lifetime", []string{"-token-lifetime", "500ms"}, exitUsage, "shorter than a second"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A run that got as far as serving would return at once,
			// with status 0.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			var stdout, stderr bytes.Buffer
			code := exitCode(run(ctx, tt.args, &stdout, &stderr), &stderr)
			if code != tt.code || !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("exit status %d, standard error %q; want %d and %q", code, stderr.String(), tt.code, tt.stderr)
			}
			if stdout.Len() != 0 {
				t.Errorf("standard output %q, want none", stdout.String())
			}
		})
	}
}

func TestAddressInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var stdout, stderr bytes.Buffer
	code := exitCode(run(context.Background(), []string{"-addr", l.Addr().String()}, &stdout, &stderr), &stderr)
	if code != exitFail || !strings.Contains(stderr.String(), "address already in use") || stdout.Len() != 0 {
		t.Errorf("exit status %d, standard output %q, standard error %q; want %d and a message", code, stdout.String(), stderr.String(), exitFail)
	}
}

func TestShellQuote(t *testing.T) {
	tests := map[string]string{
		"http://127.0.0.1:8080/api/oauth/token": "http://127.0.0.1:8080/api/oauth/token",
		"http://[::1]:8080/api/oauth/token":     "'http://[::1]:8080/api/oauth/token'",
		"hello@example.com":                     "hello@example.com",
		"fact-find,client-information":          "fact-find,client-information",
		"":                                      "''",
		"it's $HOME":                            `'it'\''s $HOME'`,
	}
	got := map[string]string{}
	for in := range tests {
		got[in] = shellQuote(in)
	}
	if diff := cmp.Diff(tests, got); diff != "" {
		t.Errorf("shellQuote (-want +got):\n%s", diff)
	}
}

// TestBinary starts the command as a person would, pastes what it prints
// into a shell to call the API with a token from fincalc-token, and stops
// it with a signal.
func TestBinary(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no signals to send on Windows")
	}
	for _, sig := range []os.Signal{os.Interrupt, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			home := t.TempDir()
			cmd := exec.Command(filepath.Join(binDir, "fincalc-fake"))
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr syncBuffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Process.Kill() // if the test fails before the signal
			p := readPrinted(t, stdout)

			// fincalc-token, with the settings printed.
			tokenCmd := exec.Command(filepath.Join(binDir, "fincalc-token"), "-no-cache")
			tokenCmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "XDG_CACHE_HOME=" + filepath.Join(home, "cache")}
			for k, v := range p.exports {
				tokenCmd.Env = append(tokenCmd.Env, k+"="+v)
			}
			var tokenErr bytes.Buffer
			tokenCmd.Stderr = &tokenErr
			out, err := tokenCmd.Output()
			if err != nil {
				t.Fatalf("fincalc-token: %v: %s", err, tokenErr.String())
			}
			token := strings.TrimSpace(string(out))
			if status, _ := callAPI(t, p.apiURL(), token); status != http.StatusOK {
				t.Errorf("API status %d with fincalc-token's token, want 200", status)
			}

			// The lines as printed, pasted into a shell.
			if _, err := exec.LookPath("curl"); err == nil {
				sh := exec.Command("sh", "-c", p.lines)
				sh.Env = []string{"PATH=" + binDir + string(filepath.ListSeparator) + os.Getenv("PATH"), "HOME=" + home}
				var shErr bytes.Buffer
				sh.Stderr = &shErr
				out, err := sh.Output()
				if err != nil {
					t.Errorf("the printed lines in a shell: %v: %s", err, shErr.String())
				}
				if !strings.Contains(string(out), `{"data":[],"meta":{"total":0},"success":true}`) || !strings.Contains(string(out), `"access_token":"fake-`) {
					t.Errorf("the printed lines in a shell wrote %q; want the API's answer and a token", out)
				}
			} else {
				t.Log("no curl: the printed lines are not run in a shell")
			}

			start := time.Now()
			cmd.Process.Signal(sig)
			if err := cmd.Wait(); err != nil {
				t.Errorf("after %v: %v, want exit status 0; standard error:\n%s", sig, err, stderr.String())
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("the command ended %v after %v, want at once", d, sig)
			}
			if strings.Contains(stderr.String(), fincalcauthtest.ClientSecret) || strings.Contains(stderr.String(), token) {
				t.Errorf("standard error shows a secret or a token:\n%s", stderr.String())
			}
		})
	}
}
