package fincalcauth_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/fincalcauthtest"
)

// The tests in this file run several OS processes, the test binary
// re-executed as a process of a fleet (see fleetChild), that share one
// FileStore dir, against one fake FinCalc on loopback in the test's
// own process, which counts their token requests.

// fleetChildEnv, when set to a token URL, makes the test binary a process
// of a fleet rather than run tests.
const fleetChildEnv = "FINCALCAUTH_FLEET_CHILD"

func TestMain(m *testing.M) {
	if url := os.Getenv(fleetChildEnv); url != "" {
		fleetChild(url)
		return
	}
	os.Exit(m.Run())
}

// fleetChild gets a token from the fake FinCalc at url, with a FileStore
// in FINCALCAUTH_FLEET_DIR, at the moment in FINCALCAUTH_START (Unix
// nanoseconds) if set, and prints "token " and the token, or "error "
// and the error. With FINCALCAUTH_LEASE_CAP set, its leases last at most
// that long in the dir, so that a test need not wait out a whole lease
// after it kills the process.
func fleetChild(url string) {
	var store fincalcauth.Store = fincalcauth.NewFileStore(os.Getenv("FINCALCAUTH_FLEET_DIR"))
	if d, err := time.ParseDuration(os.Getenv("FINCALCAUTH_LEASE_CAP")); err == nil {
		store = cappedLeases{store.(fincalcauth.Leaser), d}
	}
	cfg := &fincalcauth.Config{
		ClientID:     fincalcauthtest.ClientID,
		ClientSecret: fincalcauthtest.ClientSecret,
		EmailAddress: fincalcauthtest.EmailAddress,
		Scopes:       []string{fincalcauth.ScopeFactFind},
		TokenURL:     url,
		Store:        store,
	}
	if ns, err := strconv.ParseInt(os.Getenv("FINCALCAUTH_START"), 10, 64); err == nil {
		time.Sleep(time.Until(time.Unix(0, ns)))
	}
	tok, err := cfg.TokenSource(context.Background()).Token()
	if err != nil {
		fmt.Println("error", err)
		return
	}
	fmt.Println("token", tok.AccessToken)
}

// cappedLeases is a real Leaser whose leases last at most max.
type cappedLeases struct {
	fincalcauth.Leaser
	max time.Duration
}

func (s cappedLeases) Lease(ctx context.Context, key string, owner []byte, expiry time.Time) (bool, error) {
	if limit := time.Now().Add(s.max); limit.Before(expiry) {
		expiry = limit
	}
	return s.Leaser.Lease(ctx, key, owner, expiry)
}

// startFleetChild starts a process of a fleet on the fake's token URL and
// the store in dir, with the given extra environment; its output goes to
// out.
func startFleetChild(tb testing.TB, fake *fincalcauthtest.Server, dir string, out io.Writer, env ...string) *exec.Cmd {
	tb.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), append([]string{fleetChildEnv + "=" + fake.TokenURL, "FINCALCAUTH_FLEET_DIR=" + dir}, env...)...)
	cmd.Stdout, cmd.Stderr = out, os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	return cmd
}

// runFleetChildren starts n processes of a fleet that ask for a token at
// the same moment, after all have started, and returns what each
// printed.
func runFleetChildren(tb testing.TB, fake *fincalcauthtest.Server, dir string, n int) []string {
	tb.Helper()
	start := "FINCALCAUTH_START=" + strconv.FormatInt(time.Now().Add(2*time.Second).UnixNano(), 10)
	outs := make([]bytes.Buffer, n)
	var cmds []*exec.Cmd
	for i := range outs {
		cmds = append(cmds, startFleetChild(tb, fake, dir, &outs[i], start))
	}
	var printed []string
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			tb.Fatalf("process %d: %v", i, err)
		}
		printed = append(printed, strings.TrimSpace(outs[i].String()))
	}
	return printed
}

// checkOneToken checks that every process printed the same valid token.
func checkOneToken(t *testing.T, fake *fincalcauthtest.Server, printed []string) {
	t.Helper()
	for i, p := range printed {
		if p != printed[0] || !strings.HasPrefix(p, "token ") || !fake.ValidToken(strings.TrimPrefix(p, "token ")) {
			t.Errorf("process %d printed %q; want the same token as the first, %q", i, p, printed[0])
		}
	}
}

func TestFileStoreFleetColdStart(t *testing.T) {
	// Ten processes start at the same moment against an empty dir, and
	// the endpoint takes 300ms: one token request, one token.
	fake := fincalcauthtest.NewServer()
	defer fake.Close()
	fake.FailAlways(fincalcauthtest.Fault{Delay: 300 * time.Millisecond})
	printed := runFleetChildren(t, fake, t.TempDir(), 10)
	checkOneToken(t, fake, printed)
	if n := fake.TokenRequests(); n != 1 {
		t.Errorf("10 processes starting at once made %d token requests; want 1", n)
	}
}

func TestFileStoreFleetThrottled(t *testing.T) {
	// FinCalc answers 429 asking for a minute: five processes send one
	// request, and each says how long FinCalc asked to wait.
	fake := fincalcauthtest.NewServer()
	defer fake.Close()
	fake.FailAlways(fincalcauthtest.Fault{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"60"}}})
	for i, p := range runFleetChildren(t, fake, t.TempDir(), 5) {
		if !strings.HasPrefix(p, "error fincalcauth: ") || !strings.Contains(p, "asked to wait 1m0s") {
			t.Errorf("process %d printed %q; want the 429, saying how long FinCalc asked to wait", i, p)
		}
	}
	if n := fake.TokenRequests(); n != 1 {
		t.Errorf("5 processes made %d token requests to a throttled endpoint; want 1", n)
	}
}

func TestFileStoreFleetHolderKilled(t *testing.T) {
	// A process takes the lease and is killed (SIGKILL) while its token
	// request is under way: the others wait out its lease, then one of
	// them fetches for all.
	fake := fincalcauthtest.NewServer()
	defer fake.Close()
	fake.FailNext(fincalcauthtest.Fault{Delay: time.Hour}) // the holder's request: no answer
	dir := t.TempDir()
	holder := startFleetChild(t, fake, dir, io.Discard, "FINCALCAUTH_LEASE_CAP=2s")
	for deadline := time.Now().Add(30 * time.Second); fake.TokenRequests() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			holder.Process.Kill()
			t.Fatal("the holder sent no token request within 30s")
		}
	}
	outs := make([]bytes.Buffer, 5)
	var cmds []*exec.Cmd
	for i := range outs {
		cmds = append(cmds, startFleetChild(t, fake, dir, &outs[i]))
	}
	holder.Process.Signal(syscall.SIGKILL)
	holder.Wait()
	var printed []string
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("process %d: %v", i, err)
		}
		printed = append(printed, strings.TrimSpace(outs[i].String()))
	}
	checkOneToken(t, fake, printed)
	if n := fake.TokenRequests(); n != 2 {
		t.Errorf("%d token requests: want 2, the killed holder's and one for the others", n)
	}
}

// BenchmarkFileStoreFleetColdStart starts 10 processes that share a
// FileStore dir, empty at first, and ask for a token at the same
// moment from an endpoint that takes 300 ms to answer, and reports the
// token requests they make in all.
func BenchmarkFileStoreFleetColdStart(b *testing.B) {
	fake := fincalcauthtest.NewServer()
	defer fake.Close()
	fake.FailAlways(fincalcauthtest.Fault{Delay: 300 * time.Millisecond})
	requests := 0
	for b.Loop() {
		before := fake.TokenRequests()
		for i, p := range runFleetChildren(b, fake, b.TempDir(), 10) {
			if !strings.HasPrefix(p, "token ") {
				b.Fatalf("process %d printed %q", i, p)
			}
		}
		requests += fake.TokenRequests() - before
	}
	b.ReportMetric(float64(requests)/float64(b.N), "token-requests")
}

// BenchmarkFileStoreHolderKilled measures, with the real 30 s leases, how
// long after a process took the lease and was killed (SIGKILL) while its
// token request was under way five other processes sharing its dir,
// started meanwhile, all have a token, and the token requests made, the
// killed one's included. Each iteration takes about 30 s.
func BenchmarkFileStoreHolderKilled(b *testing.B) {
	fake := fincalcauthtest.NewServer()
	defer fake.Close()
	requests := 0
	for b.Loop() {
		before := fake.TokenRequests()
		fake.FailNext(fincalcauthtest.Fault{Delay: time.Hour}) // the holder's request: no answer
		dir := b.TempDir()
		holder := startFleetChild(b, fake, dir, io.Discard)
		for deadline := time.Now().Add(30 * time.Second); fake.TokenRequests() == before; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				holder.Process.Kill()
				b.Fatal("the holder sent no token request within 30s")
			}
		}
		taken := time.Now() // the holder took its lease just before
		outs := make([]bytes.Buffer, 5)
		var cmds []*exec.Cmd
		for i := range outs {
			cmds = append(cmds, startFleetChild(b, fake, dir, &outs[i]))
		}
		holder.Process.Signal(syscall.SIGKILL)
		holder.Wait()
		for i, cmd := range cmds {
			if err := cmd.Wait(); err != nil || !strings.HasPrefix(outs[i].String(), "token ") {
				b.Fatalf("process %d: %v, %q", i, err, outs[i].String())
			}
		}
		b.ReportMetric(time.Since(taken).Seconds(), "s-after-lease-taken")
		requests += fake.TokenRequests() - before
	}
	b.ReportMetric(float64(requests)/float64(b.N), "token-requests")
}
