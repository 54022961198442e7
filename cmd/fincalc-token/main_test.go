package main_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofincalc/fincalcauth/fincalcauthtest"
	"github.com/google/go-cmp/cmp"
)

// The tests build the command and run it as a person would, against
// fincalcauthtest, with a cache folder of their own.

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

// env is a test's environment: a fake FinCalc and a cache folder.
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
	e := &env{t: t, srv: srv, home: home, cache: filepath.Join(home, "xdg-cache"), vars: map[string]string{
		"FINCALC_CLIENT_ID":     fincalcauthtest.ClientID,
		"FINCALC_CLIENT_SECRET": fincalcauthtest.ClientSecret,
		"FINCALC_EMAIL_ADDRESS": fincalcauthtest.EmailAddress,
		"FINCALC_SCOPES":        "fact-find,client-information",
		"FINCALC_TOKEN_URL":     srv.TokenURL,
	}}
	return e
}

func (e *env) run(stdin string, args ...string) result {
	e.t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + e.home, "XDG_CACHE_HOME=" + e.cache}
	for k, v := range e.vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
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
	if strings.Contains(r.Stdout+r.Stderr, fincalcauthtest.ClientSecret) {
		e.t.Errorf("output shows the client secret: %+v", r)
	}
	return r
}

// cacheFiles returns the token files in the cache folder.
func (e *env) cacheFiles() []string {
	files, _ := filepath.Glob(filepath.Join(e.cache, "fincalcauth", "*"))
	return files
}

func (e *env) issued(r result) bool {
	return e.srv.ValidToken(strings.TrimSuffix(r.Stdout, "\n"))
}

func TestSuccess(t *testing.T) {
	e := newEnv(t)
	r := e.run("")
	if r.Code != 0 || r.Stderr != "" || !strings.HasSuffix(r.Stdout, "\n") || strings.Count(r.Stdout, "\n") != 1 || !e.issued(r) {
		t.Fatalf("run = %+v; want exit 0, an issued token and a newline on stdout, nothing on stderr", r)
	}
}

func TestCache(t *testing.T) {
	e := newEnv(t)
	first := e.run("")
	second := e.run("")
	if first.Code != 0 || second.Stdout != first.Stdout {
		t.Fatalf("second run printed %q, first %q", second.Stdout, first.Stdout)
	}
	if n := e.srv.TokenRequests(); n != 1 {
		t.Errorf("two runs made %d token requests; want 1, the second from the cache", n)
	}

	// The same scopes in another order and form are the same entry.
	e.vars["FINCALC_SCOPES"] = "client-information fact-find"
	if r := e.run(""); r.Stdout != first.Stdout || e.srv.TokenRequests() != 1 {
		t.Errorf("reordered scopes missed the cache")
	}

	// Other scopes are another token.
	e.vars["FINCALC_SCOPES"] = "fact-find"
	third := e.run("")
	if third.Code != 0 || third.Stdout == first.Stdout || e.srv.TokenRequests() != 2 {
		t.Errorf("after a scope change: %+v after %d requests; want a new token", third, e.srv.TokenRequests())
	}
	// So are other settings: email, client ID, token URL are checked by
	// the fake, so a changed secret stands for them here.
	if n := len(e.cacheFiles()); n != 2 {
		t.Errorf("%d cache files, want 2: %v", n, e.cacheFiles())
	}
}

func TestCacheFileModes(t *testing.T) {
	e := newEnv(t)
	// A cache folder that exists with loose modes is tightened.
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
			e.run("")
			files := e.cacheFiles()
			if len(files) != 1 {
				t.Fatalf("cache files: %v", files)
			}
			if err := os.WriteFile(files[0], []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			r := e.run("")
			if r.Code != 0 || !e.issued(r) || e.srv.TokenRequests() != 2 {
				t.Fatalf("run with a %s cache file: %+v", name, r)
			}
			// Replaced: the next run takes the new token from it.
			if again := e.run(""); again.Stdout != r.Stdout || e.srv.TokenRequests() != 2 {
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
			r := e.run("")
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
		r := e.run("")
		if r.Code != 2 || r.Stdout != "" || !strings.Contains(r.Stderr, "EmailAddress") || e.srv.TokenRequests() != 0 {
			t.Errorf("run = %+v; want exit 2, a message naming EmailAddress, no request", r)
		}
	})
	t.Run("secret from a flag", func(t *testing.T) {
		e := newEnv(t)
		r := e.run("", "-client-secret=abc")
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
	r := e.run("", "-client-id", fincalcauthtest.ClientID, "-email", fincalcauthtest.EmailAddress,
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
	if r := e.run("", "-no-cache", "-client-secret-file", path); r.Code != 0 || !e.issued(r) {
		t.Errorf("secret from a file: %+v", r)
	}
	if r := e.run(fincalcauthtest.ClientSecret+"\n", "-no-cache", "-client-secret-file", "-"); r.Code != 0 || !e.issued(r) {
		t.Errorf("secret from stdin: %+v", r)
	}
	if r := e.run("", "-client-secret-file", filepath.Join(e.home, "missing")); r.Code != 2 || !strings.Contains(r.Stderr, "-client-secret-file") {
		t.Errorf("missing secret file: %+v", r)
	}
}

func TestRejected(t *testing.T) {
	e := newEnv(t)
	e.vars["FINCALC_CLIENT_SECRET"] = "wrong-secret"
	r := e.run("")
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
	r := e.run("", "-json")
	if r.Code != 0 {
		t.Fatal(r)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(r.Stdout), &got); err != nil {
		t.Fatalf("-json printed %q: %v", r.Stdout, err)
	}
	expiry, err := time.Parse(time.RFC3339, got["expiry"])
	if err != nil || time.Until(expiry) < 23*time.Hour || time.Until(expiry) > 25*time.Hour {
		t.Errorf("expiry %q, want RFC 3339 about 24h ahead", got["expiry"])
	}
	if !e.srv.ValidToken(got["access_token"]) || got["token_type"] != "Bearer" || len(got) != 3 {
		t.Errorf("-json printed %v", got)
	}
}

func TestNoCacheAndClearCache(t *testing.T) {
	e := newEnv(t)
	e.run("", "-no-cache")
	if files := e.cacheFiles(); len(files) != 0 {
		t.Errorf("-no-cache wrote %v", files)
	}
	e.run("")
	if len(e.cacheFiles()) != 1 {
		t.Fatalf("no cache file")
	}
	if r := e.run("", "-clear-cache"); r.Code != 0 || r.Stdout != "" {
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
	r := e.run("", "-demo")
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
	if r := e.run("", "-h"); r.Code != 0 || !strings.Contains(r.Stderr, "-client-secret-file") {
		t.Errorf("-h: %+v", r)
	}
	if r := e.run("", "-nonsense"); r.Code != 2 {
		t.Errorf("unknown flag: %+v", r)
	}
	if r := e.run("", "extra"); r.Code != 2 {
		t.Errorf("extra argument: %+v", r)
	}
}
