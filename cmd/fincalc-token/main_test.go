package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/fincalcauthtest"
	"github.com/google/go-cmp/cmp"
)

// The tests run the command against fincalcauthtest, with a cache dir
// of their own: most call run in process, through the environment,
// standard input and output it takes; a few build the binary and run it
// as a person would, for signals, exit codes, the secret prompt on a
// terminal and the real cache dir.

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fincalc-token-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "fincalc-token")
	if runtime.GOOS == "windows" {
		binary += ".exe"
	}
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building fincalc-token:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what a run printed and its exit status.
type result struct {
	Stdout, Stderr string
	Code           int
}

// env is a test's environment: a fake FinCalc and a cache dir.
type env struct {
	t     *testing.T
	srv   *fincalcauthtest.Server
	home  string
	cache string
	vars  map[string]string
}

func newEnv(t *testing.T) *env {
	srv := fincalcauthtest.NewServer()
	t.Cleanup(srv.Close)
	home := t.TempDir()
	// The cache is where fincalcauth.NewFileStore("") puts it, for the
	// runs in process and for the binary alike.
	t.Setenv("HOME", home)
	t.Setenv("XDG_CACHE_HOME", filepath.Join(home, "xdg-cache"))
	e := &env{t: t, srv: srv, home: home, cache: filepath.Join(home, "xdg-cache"), vars: map[string]string{
		"FINCALC_CLIENT_ID":     fincalcauthtest.ClientID,
		"FINCALC_CLIENT_SECRET": fincalcauthtest.ClientSecret,
		"FINCALC_EMAIL_ADDRESS": fincalcauthtest.EmailAddress,
		"FINCALC_SCOPES":        "fact-find,client-information",
		"FINCALC_TOKEN_URL":     srv.TokenURL,
	}}
	return e
}

// call runs the command in process.
func (e *env) call(stdin string, args ...string) result {
	e.t.Helper()
	return e.callWith(nil, stdin, args...)
}

// callWith runs the command in process, after set changes it, if set is
// not nil.
func (e *env) callWith(set func(*command), stdin string, args ...string) result {
	e.t.Helper()
	var stdout, stderr bytes.Buffer
	c := newCommand(func(k string) string { return e.vars[k] }, strings.NewReader(stdin), &stdout, &stderr)
	if set != nil {
		set(c)
	}
	code := c.report(c.run(context.Background(), args))
	r := result{Stdout: stdout.String(), Stderr: stderr.String(), Code: code}
	e.checkNoSecret(r)
	return r
}

// checkNoSecret fails the test if r shows the client secret, or a token
// anywhere but alone on standard output.
func (e *env) checkNoSecret(r result) {
	e.t.Helper()
	if strings.Contains(r.Stdout+r.Stderr, fincalcauthtest.ClientSecret) {
		e.t.Errorf("output shows the client secret: %+v", r)
	}
	if strings.Contains(r.Stderr, "fake-") {
		e.t.Errorf("standard error shows a token: %s", r.Stderr)
	}
}

// command returns the built binary, to run with args in e.
func (e *env) command(args ...string) *exec.Cmd {
	cmd := exec.Command(binary, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + e.home, "XDG_CACHE_HOME=" + e.cache}
	for k, v := range e.vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}

// run runs the built binary.
func (e *env) run(stdin string, args ...string) result {
	e.t.Helper()
	cmd := e.command(args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	r := result{Stdout: stdout.String(), Stderr: stderr.String(), Code: code}
	e.checkNoSecret(r)
	return r
}

// started is a run of the binary under way.
type started struct {
	e              *env
	cmd            *exec.Cmd
	stdout, stderr lockedBuffer
	done           chan struct{}
}

// start starts the binary with stdin, which the caller closes, or none
// if nil.
func (e *env) start(stdin io.Reader, args ...string) *started {
	e.t.Helper()
	s := &started{e: e, cmd: e.command(args...), done: make(chan struct{})}
	s.cmd.Stdin = stdin
	s.cmd.Stdout, s.cmd.Stderr = &s.stdout, &s.stderr
	if err := s.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() {
		s.cmd.Wait()
		close(s.done)
	}()
	e.t.Cleanup(func() {
		s.cmd.Process.Kill()
		<-s.done
	})
	return s
}

// waitFor waits until the run has written want on stderr, or ended.
func (s *started) waitFor(want string) {
	s.e.t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(s.stderr.String(), want); {
		select {
		case <-s.done:
			s.e.t.Fatalf("the run ended before it told %q: %s", want, s.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.e.t.Fatalf("the run has not told %q: %s", want, s.stderr.String())
		}
	}
}

// end waits until the run ends, up to limit, and returns its result; it
// kills a run that outlasts limit and fails the test.
func (s *started) end(limit time.Duration) result {
	s.e.t.Helper()
	select {
	case <-s.done:
	case <-time.After(limit):
		s.cmd.Process.Kill()
		<-s.done
		s.e.t.Errorf("the run had not ended after %v; killed", limit)
	}
	r := result{Stdout: s.stdout.String(), Stderr: s.stderr.String(), Code: s.cmd.ProcessState.ExitCode()}
	s.e.checkNoSecret(r)
	return r
}

// cacheFiles returns the token files in the cache dir.
func (e *env) cacheFiles() []string {
	files, _ := filepath.Glob(filepath.Join(e.cache, "fincalcauth", "*"))
	return files
}

func (e *env) issued(r result) bool {
	return e.srv.ValidToken(strings.TrimSuffix(r.Stdout, "\n"))
}

func TestSuccess(t *testing.T) {
	e := newEnv(t)
	r := e.call("")
	if r.Code != 0 || r.Stderr != "" || !strings.HasSuffix(r.Stdout, "\n") || strings.Count(r.Stdout, "\n") != 1 || !e.issued(r) {
		t.Fatalf("run = %+v; want exit 0, an issued token and a newline on stdout, nothing on stderr", r)
	}
}

func TestCache(t *testing.T) {
	e := newEnv(t)
	first := e.call("")
	second := e.call("")
	if first.Code != 0 || second.Stdout != first.Stdout {
		t.Fatalf("second run printed %q, first %q", second.Stdout, first.Stdout)
	}
	if n := e.srv.TokenRequests(); n != 1 {
		t.Errorf("two runs made %d token requests; want 1, the second from the cache", n)
	}

	// The same scopes in another order and form are the same entry.
	e.vars["FINCALC_SCOPES"] = "client-information fact-find"
	if r := e.call(""); r.Stdout != first.Stdout || e.srv.TokenRequests() != 1 {
		t.Errorf("reordered scopes missed the cache")
	}

	// Other scopes are another token.
	e.vars["FINCALC_SCOPES"] = "fact-find"
	third := e.call("")
	if third.Code != 0 || third.Stdout == first.Stdout || e.srv.TokenRequests() != 2 {
		t.Errorf("after a scope change: %+v after %d requests; want a new token", third, e.srv.TokenRequests())
	}
	// So are other settings: email, client ID, token URL are checked by
	// the fake, so a changed secret stands for them here.
	if n := len(e.cacheFiles()); n != 2 {
		t.Errorf("%d cache files, want 2: %v", n, e.cacheFiles())
	}
}

func TestCacheSharedWithService(t *testing.T) {
	e := newEnv(t)
	r := e.call("")
	if r.Code != 0 {
		t.Fatal(r)
	}
	// A service of the same user, with the library's default store.
	cfg := e.srv.ClientConfig("client-information", "fact-find")
	cfg.Store = fincalcauth.NewFileStore("")
	tok, err := cfg.TokenSource(context.Background()).Token()
	if err != nil || tok.AccessToken != strings.TrimSpace(r.Stdout) || e.srv.TokenRequests() != 1 {
		t.Errorf("the service got %v, %v after %d token requests; want the command's token, and no request", tok, err, e.srv.TokenRequests())
	}

	// Where the library has no default dir, the command has no cache.
	t.Setenv("XDG_CACHE_HOME", "relative/cache")
	if dir := fincalcauth.NewFileStore("").Dir(); dir != "" {
		t.Skipf("the library finds a cache dir for a relative XDG_CACHE_HOME: %s", dir)
	}
	r = e.call("", "-status")
	if !strings.Contains(r.Stdout, "cache:         none: this user has no cache dir") {
		t.Errorf("-status with a relative XDG_CACHE_HOME:\n%s", r.Stdout)
	}
	if r := e.call(""); r.Code != 0 || !e.issued(r) || e.srv.TokenRequests() != 2 {
		t.Errorf("a run with no cache dir: %+v", r)
	}
}

func TestCacheFileModes(t *testing.T) {
	e := newEnv(t)
	// A cache dir that exists with loose modes is tightened.
	if err := os.MkdirAll(filepath.Join(e.cache, "fincalcauth"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := e.run("")
	if r.Code != 0 {
		t.Fatal(r)
	}
	dir, err := os.Stat(filepath.Join(e.cache, "fincalcauth"))
	if err != nil {
		t.Fatal(err)
	}
	files := e.cacheFiles()
	if len(files) != 1 {
		t.Fatalf("cache files: %v; want one, and no temporary file", files)
	}
	file, err := os.Stat(files[0])
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]os.FileMode{"dir": dir.Mode().Perm(), "file": file.Mode().Perm()}
	want := map[string]os.FileMode{"dir": 0o700, "file": 0o600}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("modes (-want +got):\n%s", diff)
	}
	// Sealed: the file holds neither the secret nor the token, and its
	// name none of the settings.
	b, _ := os.ReadFile(files[0])
	for _, s := range []string{fincalcauthtest.ClientSecret, strings.TrimSpace(r.Stdout), fincalcauthtest.ClientID, fincalcauthtest.EmailAddress} {
		if strings.Contains(string(b)+files[0], s) {
			t.Errorf("cache file %s shows %q", files[0], s)
		}
	}
}

func TestCorruptCache(t *testing.T) {
	for name, content := range map[string]string{
		"garbage":  "\x00not json",
		"torn":     `{"access_token":"fake-abc","expi`,
		"expiring": fmt.Sprintf(`{"access_token":"fake-old","token_type":"Bearer","expiry":%q}`, time.Now().Add(time.Minute).Format(time.RFC3339)),
		"no token": fmt.Sprintf(`{"expiry":%q}`, time.Now().Add(time.Hour).Format(time.RFC3339)),
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			e.call("")
			files := e.cacheFiles()
			if len(files) != 1 {
				t.Fatalf("cache files: %v", files)
			}
			if err := os.WriteFile(files[0], []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			r := e.call("")
			if r.Code != 0 || !e.issued(r) || e.srv.TokenRequests() != 2 {
				t.Fatalf("run with a %s cache file: %+v", name, r)
			}
			// Replaced: the next run takes the new token from it.
			if again := e.call(""); again.Stdout != r.Stdout || e.srv.TokenRequests() != 2 {
				t.Errorf("the %s cache file was not replaced: %+v", name, again)
			}
		})
	}
}

func TestMissingSettings(t *testing.T) {
	for _, name := range []string{"FINCALC_CLIENT_ID", "FINCALC_CLIENT_SECRET", "FINCALC_EMAIL_ADDRESS", "FINCALC_SCOPES"} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			delete(e.vars, name)
			r := e.call("")
			if r.Code != 2 || r.Stdout != "" || !strings.Contains(r.Stderr, name+" is not set") {
				t.Errorf("run = %+v; want exit 2 and stderr naming %s", r, name)
			}
			if n := e.srv.TokenRequests(); n != 0 {
				t.Errorf("%d requests sent with a missing setting", n)
			}
		})
	}
	t.Run("invalid email", func(t *testing.T) {
		e := newEnv(t)
		e.vars["FINCALC_EMAIL_ADDRESS"] = "hello"
		r := e.call("")
		if r.Code != 2 || r.Stdout != "" || !strings.Contains(r.Stderr, `FINCALC_EMAIL_ADDRESS ("hello") is not an email address`) || e.srv.TokenRequests() != 0 {
			t.Errorf("run = %+v; want exit 2, a message naming FINCALC_EMAIL_ADDRESS, no request", r)
		}
	})
	t.Run("secret from a flag", func(t *testing.T) {
		e := newEnv(t)
		r := e.call("", "-client-secret=abc")
		if r.Code != 2 || !strings.Contains(r.Stderr, "FINCALC_CLIENT_SECRET") || e.srv.TokenRequests() != 0 {
			t.Errorf("run = %+v; want exit 2 and a pointer to FINCALC_CLIENT_SECRET", r)
		}
	})
}

func TestFlagsOverrideEnvironment(t *testing.T) {
	e := newEnv(t)
	e.vars["FINCALC_CLIENT_ID"] = "wrong"
	e.vars["FINCALC_EMAIL_ADDRESS"] = "wrong@example.com"
	e.vars["FINCALC_SCOPES"] = "no-such-scope"
	e.vars["FINCALC_TOKEN_URL"] = "http://127.0.0.1:1/nothing"
	r := e.call("", "-client-id", fincalcauthtest.ClientID, "-email", fincalcauthtest.EmailAddress,
		"-scopes", "fact-find", "-token-url", e.srv.TokenURL)
	if r.Code != 0 || !e.issued(r) {
		t.Errorf("run = %+v", r)
	}
}

func TestSecretFile(t *testing.T) {
	e := newEnv(t)
	delete(e.vars, "FINCALC_CLIENT_SECRET")
	path := filepath.Join(e.home, "secret")
	os.WriteFile(path, []byte(fincalcauthtest.ClientSecret+"\n"), 0o600)
	if r := e.call("", "-no-cache", "-client-secret-file", path); r.Code != 0 || !e.issued(r) {
		t.Errorf("secret from a file: %+v", r)
	}
	if r := e.call(fincalcauthtest.ClientSecret+"\n", "-no-cache", "-client-secret-file", "-"); r.Code != 0 || !e.issued(r) {
		t.Errorf("secret from stdin: %+v", r)
	}
	if r := e.call("", "-client-secret-file", filepath.Join(e.home, "missing")); r.Code != 2 || !strings.Contains(r.Stderr, "-client-secret-file") {
		t.Errorf("missing secret file: %+v", r)
	}
	long := filepath.Join(e.home, "long")
	os.WriteFile(long, bytes.Repeat([]byte("s"), 64<<10+1), 0o600)
	if r := e.call("", "-client-secret-file", long); r.Code != 2 || !strings.Contains(r.Stderr, "more than 65536 bytes") {
		t.Errorf("secret file of more than 64 KiB: %+v", r)
	}
}

func TestRejected(t *testing.T) {
	e := newEnv(t)
	e.vars["FINCALC_CLIENT_SECRET"] = "wrong-secret"
	r := e.call("")
	if r.Code != 1 || r.Stdout != "" || !strings.Contains(r.Stderr, "Client authentication failed.") {
		t.Errorf("run = %+v; want exit 1, FinCalc's description on stderr, empty stdout", r)
	}
	if strings.Contains(r.Stderr, "wrong-secret") {
		t.Errorf("stderr shows the secret: %s", r.Stderr)
	}
	if files := e.cacheFiles(); len(files) != 0 {
		t.Errorf("a failure left cache files: %v", files)
	}
}

func TestJSON(t *testing.T) {
	e := newEnv(t)
	r := e.call("", "-json")
	if r.Code != 0 {
		t.Fatal(r)
	}
	var got struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		Expiry      string `json:"expiry"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	dec := json.NewDecoder(strings.NewReader(r.Stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("-json printed %q: %v", r.Stdout, err)
	}
	expiry, err := time.Parse(time.RFC3339, got.Expiry)
	if err != nil || time.Until(expiry) < 23*time.Hour || time.Until(expiry) > 25*time.Hour {
		t.Errorf("expiry %q, want RFC 3339 about 24h ahead", got.Expiry)
	}
	if left := time.Duration(got.ExpiresIn) * time.Second; left < time.Until(expiry)-2*time.Second || left > time.Until(expiry) {
		t.Errorf("expires_in %d, want the seconds left until %s", got.ExpiresIn, got.Expiry)
	}
	if !e.srv.ValidToken(got.AccessToken) || got.TokenType != "Bearer" {
		t.Errorf("-json printed %+v", got)
	}
}

func TestNoCacheAndClearCache(t *testing.T) {
	e := newEnv(t)
	e.call("", "-no-cache")
	if files := e.cacheFiles(); len(files) != 0 {
		t.Errorf("-no-cache wrote %v", files)
	}
	e.call("")
	if len(e.cacheFiles()) != 1 {
		t.Fatalf("no cache file")
	}
	if r := e.call("", "-clear-cache"); r.Code != 0 || r.Stdout != "" {
		t.Errorf("-clear-cache: %+v", r)
	}
	if files := e.cacheFiles(); len(files) != 0 {
		t.Errorf("-clear-cache left %v", files)
	}
	if n := e.srv.TokenRequests(); n != 2 {
		t.Errorf("%d token requests, want 2: -clear-cache fetches nothing", n)
	}
}

func TestConcurrentRuns(t *testing.T) {
	e := newEnv(t)
	var wg sync.WaitGroup
	results := make([]result, 6)
	for i := range results {
		wg.Go(func() { results[i] = e.run("") })
	}
	wg.Wait()
	for _, r := range results {
		if r.Code != 0 || !e.issued(r) {
			t.Errorf("concurrent run: %+v", r)
		}
	}
	files := e.cacheFiles()
	if len(files) != 1 {
		t.Fatalf("cache files after concurrent runs: %v", files)
	}
	// Not torn: a further run opens it, and sends no request.
	before := e.srv.TokenRequests()
	if r := e.run(""); r.Code != 0 || !e.issued(r) || e.srv.TokenRequests() != before {
		t.Errorf("a run after concurrent runs: %+v, %d token requests before, %d after", r, before, e.srv.TokenRequests())
	}
}

func TestDemo(t *testing.T) {
	e := newEnv(t)
	e.vars = nil // no settings, no credentials
	r := e.call("", "-demo")
	if r.Code != 0 || strings.Count(r.Stdout, "\n") != 1 || !strings.HasPrefix(r.Stdout, "fake-") {
		t.Fatalf("-demo: %+v", r)
	}
	for _, want := range []string{"POST http://127.0.0.1:", "/api/oauth/token", `"client_secret": "REDACTED"`, `"email_address": "hello@example.com"`, "expires at", "24h0m0s"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("-demo's account lacks %q:\n%s", want, r.Stderr)
		}
	}
	if files := e.cacheFiles(); len(files) != 0 {
		t.Errorf("-demo wrote the cache: %v", files)
	}
}

func TestUsage(t *testing.T) {
	e := newEnv(t)
	for _, flag := range []string{"-h", "-help", "--help"} {
		r := e.call("", flag)
		if r.Code != 0 || r.Stderr != "" {
			t.Errorf("%s: exit %d, stderr %q; want the help on stdout and 0", flag, r.Code, r.Stderr)
		}
		for _, want := range []string{"-client-secret-file", "FINCALC_CLIENT_ID", "FINCALC_CLIENT_SECRET", "FINCALC_EMAIL_ADDRESS",
			"FINCALC_SCOPES", "FINCALC_TOKEN_URL", "fact-find", "client-financials", "client-information",
			filepath.Join(e.cache, "fincalcauth"), "Exit status", "130"} {
			if !strings.Contains(r.Stdout, want) {
				t.Errorf("%s does not mention %q:\n%s", flag, want, r.Stdout)
			}
		}
	}
	if r := e.call("", "-nonsense"); r.Code != 2 {
		t.Errorf("unknown flag: %+v", r)
	}
	if r := e.call("", "extra"); r.Code != 2 {
		t.Errorf("extra argument: %+v", r)
	}
}

func TestTimeout(t *testing.T) {
	e := newEnv(t)
	e.srv.FailAlways(fincalcauthtest.Fault{Delay: time.Hour}) // an endpoint that hangs
	start := time.Now()
	r := e.call("", "-timeout", "300ms")
	if r.Code != 1 || r.Stdout != "" || !strings.Contains(r.Stderr, "-timeout 300ms reached while waiting for a token from "+e.srv.TokenURL) {
		t.Errorf("run = %+v; want exit 1 and a message that names the timeout", r)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("a 300ms timeout took %v", d)
	}
	if r := e.call("", "-timeout", "0s"); r.Code != 2 {
		t.Errorf("-timeout 0s: %+v; want exit 2", r)
	}
}

func TestVerbose(t *testing.T) {
	e := newEnv(t)
	e.srv.FailNext(fincalcauthtest.Fault{Status: 503, Header: http.Header{"Retry-After": {"1"}}})
	r := e.call("", "-v")
	if r.Code != 0 || !e.issued(r) {
		t.Fatalf("run = %+v", r)
	}
	for _, want := range []string{"cache miss", "attempt=1 status=503 Service Unavailable", "wait=1s reason=Retry-After", "attempt=2 status=200 OK", "token cached"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("-v does not tell %q:\n%s", want, r.Stderr)
		}
	}
	if r := e.call("", "-v"); !strings.Contains(r.Stderr, "cache hit") {
		t.Errorf("-v on a cached token: %s", r.Stderr)
	}
}

func TestInterrupt(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGINT to send on Windows")
	}
	e := newEnv(t)
	e.srv.FailAlways(fincalcauthtest.Fault{Delay: time.Hour})
	cmd := exec.Command(binary)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + e.home, "XDG_CACHE_HOME=" + e.cache}
	for k, v := range e.vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); e.srv.TokenRequests() == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond) // until the request is under way
	}
	start := time.Now()
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Errorf("exit status %d after Ctrl-C, want 130", code)
	}
	if got := stderr.String(); got != "fincalc-token: interrupted\n" {
		t.Errorf("stderr after Ctrl-C: %q; want one line", got)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the run ended %v after Ctrl-C; want at once", d)
	}
}

func TestRefresh(t *testing.T) {
	e := newEnv(t)
	first := e.call("")
	refreshed := e.call("", "-refresh")
	if refreshed.Code != 0 || refreshed.Stdout == first.Stdout || !e.issued(refreshed) || e.srv.TokenRequests() != 2 {
		t.Fatalf("-refresh: %+v after %d token requests; want a new token", refreshed, e.srv.TokenRequests())
	}
	// It is cached: a revoked token does not come back.
	if again := e.call(""); again.Stdout != refreshed.Stdout || e.srv.TokenRequests() != 2 {
		t.Errorf("after -refresh, a run printed the old or a third token")
	}
}

func TestClearCacheNeedsNoSettings(t *testing.T) {
	e := newEnv(t)
	e.call("")
	// Entries of other settings, such as those of a secret since rotated,
	// which the new one cannot find: here, other scopes.
	e.vars["FINCALC_SCOPES"] = "fact-find"
	e.call("")
	if n := len(e.cacheFiles()); n != 2 {
		t.Fatalf("%d cache files, want 2", n)
	}
	e.vars = map[string]string{} // no settings at all
	if r := e.call("", "-clear-cache"); r.Code != 0 || r.Stdout != "" || r.Stderr != "" {
		t.Errorf("-clear-cache: %+v", r)
	}
	if files := e.cacheFiles(); len(files) != 0 {
		t.Errorf("-clear-cache left %v", files)
	}
	if r := e.call("", "-clear-cache", "-scopes", "fact-find"); r.Code != 2 {
		t.Errorf("-clear-cache with a setting it would ignore: %+v; want exit 2", r)
	}
}

func TestStatus(t *testing.T) {
	e := newEnv(t)
	r := e.call("", "-status")
	want := []string{
		"client ID:     12345 (FINCALC_CLIENT_ID)",
		"email address: hello@example.com (FINCALC_EMAIL_ADDRESS)",
		"scopes:        fact-find client-information (FINCALC_SCOPES)",
		"token URL:     \"" + e.srv.TokenURL + "\" (FINCALC_TOKEN_URL)",
		"client secret: set, from the environment (FINCALC_CLIENT_SECRET)",
		"cache:         " + filepath.Join(e.cache, "fincalcauth"),
		"cached token:  none",
	}
	if diff := cmp.Diff(want, strings.Split(strings.TrimSpace(r.Stdout), "\n")); diff != "" || r.Code != 0 {
		t.Errorf("-status, exit %d (-want +got):\n%s", r.Code, diff)
	}
	tok := e.call("")
	r = e.call("", "-status", "-scopes", "client-information,fact-find")
	if !strings.Contains(r.Stdout, "cached token:  expires at ") || !strings.Contains(r.Stdout, "(-scopes)") || strings.Contains(r.Stdout, strings.TrimSpace(tok.Stdout)) {
		t.Errorf("-status with a cached token:\n%s", r.Stdout)
	}
	if n := e.srv.TokenRequests(); n != 1 {
		t.Errorf("%d token requests; -status sends none", n)
	}
	delete(e.vars, "FINCALC_CLIENT_SECRET")
	path := filepath.Join(e.home, "secret")
	os.WriteFile(path, []byte(fincalcauthtest.ClientSecret), 0o600)
	if r := e.call("", "-status", "-client-secret-file", path); !strings.Contains(r.Stdout, "set, from the file "+path) {
		t.Errorf("-status with a secret file:\n%s", r.Stdout)
	}
	if r := e.call("", "-status"); r.Code != 2 || !strings.Contains(r.Stdout, "client secret: not set") {
		t.Errorf("-status with no secret: %+v", r)
	}
}

func TestPermissionsCheckedOnRead(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix modes")
	}
	e := newEnv(t)
	e.call("")
	dir := filepath.Join(e.cache, "fincalcauth")
	file := e.cacheFiles()[0]
	os.Chmod(dir, 0o755)
	os.Chmod(file, 0o644)
	if r := e.call("", "-status"); r.Code != 0 {
		t.Fatal(r)
	}
	for path, want := range map[string]os.FileMode{dir: 0o700, file: 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v after a read, want %v", path, fi.Mode().Perm(), want)
		}
	}
}

func TestVersion(t *testing.T) {
	e := newEnv(t)
	if r := e.run("", "-version"); r.Code != 0 || !strings.HasPrefix(r.Stdout, "fincalc-token ") || len(strings.TrimSpace(r.Stdout)) <= len("fincalc-token ") {
		t.Errorf("-version: %+v", r)
	}
}

func TestDemoRefusesIgnoredFlags(t *testing.T) {
	e := newEnv(t)
	for _, args := range [][]string{{"-token-url", "https://example.com/t"}, {"-clear-cache"}, {"-scopes", "fact-find"}, {"-refresh"}} {
		r := e.call("", append([]string{"-demo"}, args...)...)
		if r.Code != 2 || !strings.Contains(r.Stderr, "would ignore "+args[0]) {
			t.Errorf("-demo %v: %+v; want exit 2 naming %s", args, r, args[0])
		}
	}
}

func TestErrorsInUsersWords(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
		not  string
	}{
		{name: "email from the environment", env: map[string]string{"FINCALC_EMAIL_ADDRESS": "Bob <a@b.c>"},
			want: `FINCALC_EMAIL_ADDRESS ("Bob <a@b.c>") is not an email address`},
		{name: "email from a flag", args: []string{"-email", "Bob <a@b.c>"},
			want: `-email ("Bob <a@b.c>") is not an email address`},
		{name: "token URL as typed", env: map[string]string{"FINCALC_TOKEN_URL": "not a url"},
			want: `FINCALC_TOKEN_URL ("not a url") is not an absolute URL`},
		{name: "token URL from a flag", args: []string{"-token-url", "ftp://example.com/t"},
			want: `-token-url ("ftp://example.com/t") has scheme "ftp", not https`},
		{name: "token URL with a password", env: map[string]string{"FINCALC_TOKEN_URL": "https://u:hunter2@[::1/t"},
			want: "FINCALC_TOKEN_URL", not: "hunter2"},
		{name: "scopes from a flag", args: []string{"-scopes", "fact-find,client\u00a0information"},
			want: `-scopes ("fact-find,client\u00a0information"): the scope "client\u00a0information"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			maps.Copy(e.vars, tt.env)
			r := e.call("", tt.args...)
			if r.Code != 2 || !strings.Contains(r.Stderr, tt.want) || (tt.not != "" && strings.Contains(r.Stderr, tt.not)) {
				t.Errorf("run = %+v; want exit 2 and %q", r, tt.want)
			}
			if strings.Contains(r.Stderr, "Config.") {
				t.Errorf("the message names a Config field: %s", r.Stderr)
			}
		})
	}
}

func TestRetryAfterSaid(t *testing.T) {
	e := newEnv(t)
	e.srv.FailAlways(fincalcauthtest.Fault{Status: 429, Header: http.Header{"Retry-After": {"30"}}})
	r := e.call("")
	if r.Code != 1 || !strings.Contains(r.Stderr, "the server asked to wait 30s") {
		t.Errorf("run = %+v; want the server's Retry-After in the message", r)
	}
}

func TestRedirectSaid(t *testing.T) {
	e := newEnv(t)
	other := httptest.NewServer(http.NotFoundHandler())
	defer other.Close()
	redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/api/oauth/token", http.StatusMovedPermanently)
	}))
	defer redirecting.Close()
	e.vars["FINCALC_TOKEN_URL"] = redirecting.URL + "/api/oauth/token"
	r := e.call("")
	host := strings.TrimPrefix(other.URL, "http://")
	if r.Code != 1 || !strings.Contains(r.Stderr, "redirects are not followed") || !strings.Contains(r.Stderr, host) {
		t.Errorf("run = %+v; want a message that redirects are not followed, naming %s", r, host)
	}
}

func TestSecretPromptOnTerminal(t *testing.T) {
	// script(1) runs the command on a pseudo-terminal, whose input is
	// what the test writes and whose screen is what script prints.
	script, err := exec.LookPath("script")
	if err != nil || runtime.GOOS != "linux" {
		t.Skip("needs script(1) from util-linux")
	}
	e := newEnv(t)
	delete(e.vars, "FINCALC_CLIENT_SECRET")
	cmd := exec.Command(script, "-qec", binary+" -client-secret-file - -no-cache", "/dev/null")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + e.home, "XDG_CACHE_HOME=" + e.cache, "TERM=dumb"}
	for k, v := range e.vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stdin, _ := cmd.StdinPipe()
	var screen lockedBuffer
	cmd.Stdout, cmd.Stderr = &screen, &screen
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(screen.String(), "client secret") && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond) // until the prompt shows
	}
	// The prompt shows just before the terminal stops echoing: a person
	// types later than that, and so does the test.
	time.Sleep(200 * time.Millisecond)
	io.WriteString(stdin, fincalcauthtest.ClientSecret+"\r")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("no end after the secret was typed; screen:\n%s", screen.String())
	}
	out := screen.String()
	if !strings.Contains(out, "FinCalc client secret (not shown): ") || strings.Contains(out, fincalcauthtest.ClientSecret) {
		t.Errorf("screen shows no prompt, or the secret as typed:\n%q", out)
	}
	if !strings.Contains(out, "fake-") {
		t.Errorf("no token after the secret was typed:\n%q", out)
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent use.
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
