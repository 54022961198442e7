package fincalcauth_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/fincalcauthtest"
	"golang.org/x/oauth2"
)

// signInChildEnv tells the test binary, re-executed, to act as one
// process of an application: see TestSignInProcessesRefreshOnce.
const signInChildEnv = "FINCALCAUTH_SIGNIN_CHILD"

// fakeSignInConfig is what SignInConfig of the fake at base returns,
// for a process that has only its URL.
func fakeSignInConfig(base string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     fincalcauthtest.ClientID,
		ClientSecret: fincalcauthtest.ClientSecret,
		Endpoint:     oauth2.Endpoint{AuthURL: base + fincalcauthtest.AuthorizePath, TokenURL: base + fincalcauthtest.SignInTokenPath, AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL:  redirectURL,
		Scopes:       []string{fincalcauth.ScopeFactFind, fincalcauth.ScopeClientFinancials, fincalcauth.ScopeClientInformation},
	}
}

// signInChild is one process: it says "ready", waits for the go file to
// appear, asks for ada's token and prints a digest of it, or the error.
// With a go file of "get", it makes an API request for ada instead and
// prints its status.
func signInChild(spec string) {
	dir, rest, _ := strings.Cut(spec, "|")
	base, goFile, _ := strings.Cut(rest, "|")
	app := &fincalcauth.SignIn{Config: fakeSignInConfig(base), Store: fincalcauth.NewFileStore(dir)}
	ts := app.TokenSource(context.Background(), "ada")
	if goFile == "get" {
		resp, err := app.Client(context.Background(), "ada").Get(base + fincalcauthtest.ClientsPath)
		if err != nil {
			fmt.Println("error", err)
			return
		}
		resp.Body.Close()
		fmt.Println("status", resp.StatusCode)
		return
	}
	fmt.Println("ready")
	for {
		if _, err := os.Stat(goFile); err == nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	tok, err := ts.Token()
	if err != nil {
		fmt.Println("error", err)
		return
	}
	sum := sha256.Sum256([]byte(tok.AccessToken))
	fmt.Println("token", hex.EncodeToString(sum[:8]))
}

// TestSignInProcessesRefreshOnce starts 10 processes that share a
// FileStore and hold one person's expired token, and lets them ask at
// once: one refresh, no invalid_grant, one token for all.
func TestSignInProcessesRefreshOnce(t *testing.T) {
	if spec := os.Getenv(signInChildEnv); spec != "" {
		signInChild(spec)
		return
	}
	dir := t.TempDir()
	if _, ok := fincalcauth.Store(fincalcauth.NewFileStore(dir)).(fincalcauth.Leaser); !ok {
		t.Skip("FileStore does not grant leases")
	}
	const processes = 10
	fake := fincalcauthtest.NewServer()
	defer fake.Close()
	fake.SetTokenLifetime(11 * time.Second) // used for 1 s, then due for refresh
	fake.SetSignInThrottle(0)
	app := &fincalcauth.SignIn{Config: fake.SignInConfig(redirectURL), Store: fincalcauth.NewFileStore(dir)}
	(&signInFake{fake, context.Background()}).signIn(t, app, "ada")

	goFile := filepath.Join(t.TempDir(), "go")
	var outs []*bufio.Scanner
	var cmds []*exec.Cmd
	for range processes {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSignInProcessesRefreshOnce$")
		cmd.Env = append(os.Environ(), signInChildEnv+"="+dir+"|"+fake.URL+"|"+goFile)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
		outs = append(outs, bufio.NewScanner(out))
	}
	defer func() {
		for _, cmd := range cmds {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	for _, out := range outs {
		if !out.Scan() || out.Text() != "ready" {
			t.Fatalf("a process did not start: %q", out.Text())
		}
	}
	time.Sleep(1100 * time.Millisecond) // every token is now due
	if err := os.WriteFile(goFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, out := range outs {
		out.Scan()
		seen[out.Text()]++
	}
	s := fake.SignInStats()
	if len(seen) != 1 || s.Refreshes != 1 || s.InvalidGrants != 0 {
		t.Errorf("%d processes: answers %v, stats %+v; want one token for all, 1 refresh, 0 invalid_grant", processes, seen, s)
	}
	for k := range seen {
		if !strings.HasPrefix(k, "token ") {
			t.Errorf("answer %q", k)
		}
	}
}

// TestSignInStaleProcessAcrossProcesses: this process holds ada's token;
// another process, to which the API refuses it, rotates it; this
// process's next request gets the API's 401, finds the new token in the
// FileStore and replays: one refresh, no invalid_grant.
func TestSignInStaleProcessAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	fake := fincalcauthtest.NewServer()
	defer fake.Close()
	app := &fincalcauth.SignIn{Config: fake.SignInConfig(redirectURL), Store: fincalcauth.NewFileStore(dir)}
	(&signInFake{fake, context.Background()}).signIn(t, app, "ada")
	get := func() int {
		resp, err := app.Client(context.Background(), "ada").Get(fake.URL + fincalcauthtest.ClientsPath)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	get()
	fake.ExpireTokens()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSignInProcessesRefreshOnce$")
	cmd.Env = append(os.Environ(), signInChildEnv+"="+dir+"|"+fake.URL+"|get")
	out, err := cmd.Output()
	if first, _, _ := strings.Cut(string(out), "\n"); err != nil || first != "status 200" {
		t.Fatalf("the other process: %q, %v", out, err)
	}
	if status := get(); status != 200 {
		t.Errorf("this process after the rotation: %d", status)
	}
	if s := fake.SignInStats(); s.Refreshes != 1 || s.InvalidGrants != 0 {
		t.Errorf("stats %+v; want 1 refresh, 0 invalid_grant", s)
	}
}
