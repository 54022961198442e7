package redisstore_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/fincalcauthtest"
	"github.com/gofincalc/fincalcauth/redisstore"
	"github.com/redis/go-redis/v9"
)

var _ fincalcauth.Leaser = (*redisstore.Store)(nil)

func TestLeaseContract(t *testing.T) {
	ctx := context.Background()
	rdb := client(t, shared)
	s := redisstore.New(rdb)
	key := t.Name()
	leaseKey := redisstore.Prefix + key + ":lease"
	a, b := []byte("owner-a"), []byte("owner-b")
	// A clean start, also when -count runs the test again on the same server.
	if err := rdb.Del(ctx, redisstore.Prefix+key, leaseKey).Err(); err != nil {
		t.Fatal(err)
	}
	take := func(owner []byte, d time.Duration) bool {
		t.Helper()
		ok, err := s.Lease(ctx, key, owner, time.Now().Add(d))
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !take(a, time.Minute) {
		t.Fatal("a free lease was not taken")
	}
	// Its own key, holding the owner, expiring with the lease.
	if v, _ := rdb.Get(ctx, leaseKey).Result(); v != "owner-a" {
		t.Errorf("GET %s = %q; want the owner", leaseKey, v)
	}
	if ttl, _ := rdb.PTTL(ctx, leaseKey).Result(); ttl <= 59*time.Second || ttl > time.Minute {
		t.Errorf("PTTL %s = %v; want about a minute", leaseKey, ttl)
	}
	if n, _ := rdb.Exists(ctx, redisstore.Prefix+key).Result(); n != 0 {
		t.Errorf("the lease wrote the token's key")
	}
	// The token's key is another's.
	if err := s.Save(ctx, key, []byte("token"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Load(ctx, key); string(v) != "token" {
		t.Errorf("Load beside a lease = %q", v)
	}
	if take(b, time.Minute) {
		t.Errorf("a held lease was taken by another owner")
	}
	// The holder extends it.
	if !take(a, 2*time.Minute) {
		t.Errorf("the holder could not extend its lease")
	}
	if ttl, _ := rdb.PTTL(ctx, leaseKey).Result(); ttl <= time.Minute {
		t.Errorf("PTTL after extension = %v; want about two minutes", ttl)
	}
	// Compare-and-delete release.
	if err := s.Release(ctx, key, b); err != nil {
		t.Fatal(err)
	}
	if take(b, time.Minute) {
		t.Errorf("another owner's release ended the lease")
	}
	if err := s.Release(ctx, key, a); err != nil {
		t.Fatal(err)
	}
	if !take(b, 50*time.Millisecond) {
		t.Errorf("a released lease was not taken")
	}
	// It expires by itself; an expired holder cannot release the next's.
	time.Sleep(100 * time.Millisecond)
	if !take(a, time.Minute) {
		t.Errorf("an expired lease was not taken")
	}
	s.Release(ctx, key, b)
	if take(b, time.Minute) {
		t.Errorf("the release of an expired holder ended the next holder's lease")
	}
	// An expiry already past takes nothing.
	s.Release(ctx, key, a)
	if ok, err := s.Lease(ctx, key, a, time.Now().Add(-time.Second)); ok || err != nil {
		t.Errorf("Lease with a past expiry = %v, %v; want false", ok, err)
	}
	if n, _ := rdb.Exists(ctx, leaseKey).Result(); n != 0 {
		t.Errorf("a lease with a past expiry was set")
	}
}

func TestLeaseIsExclusive(t *testing.T) {
	// Clients of their own race for one lease, over and over: at most one
	// holds it at any moment.
	ctx := context.Background()
	key := t.Name()
	var holders, most atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		s := redisstore.New(client(t, shared))
		owner := fmt.Appendf(nil, "owner-%d", w)
		wg.Go(func() {
			for range 200 {
				ok, err := s.Lease(ctx, key, owner, time.Now().Add(time.Minute))
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					n := holders.Add(1)
					if n > most.Load() {
						most.Store(n)
					}
					holders.Add(-1)
					s.Release(ctx, key, owner)
				}
			}
		})
	}
	wg.Wait()
	if most.Load() != 1 {
		t.Errorf("at most %d holders at once; want 1", most.Load())
	}
}

// childEnv, when set, makes the test binary a process of a fleet (see
// child) rather than run tests.
const childEnv = "FINCALCAUTH_REDIS_FLEET_CHILD"

// child is one process of a fleet: it gets a token from the fake FinCalc
// at the URL in childEnv, with a store in the Redis at
// FINCALCAUTH_REDIS_ADDR, at the moment in FINCALCAUTH_START (Unix
// nanoseconds), prints it, and returns its exit status. With
// FINCALCAUTH_LEASE_CAP set, its leases last at most that long in Redis,
// so that a test need not wait out a whole lease after it kills it.
func child() int {
	rdb := redis.NewClient(&redis.Options{Addr: os.Getenv("FINCALCAUTH_REDIS_ADDR")})
	defer rdb.Close()
	var store fincalcauth.Store = redisstore.New(rdb)
	if d, err := time.ParseDuration(os.Getenv("FINCALCAUTH_LEASE_CAP")); err == nil {
		store = cappedLeases{redisstore.New(rdb), d}
	}
	cfg := &fincalcauth.Config{
		ClientID:     fincalcauthtest.ClientID,
		ClientSecret: fincalcauthtest.ClientSecret,
		EmailAddress: fincalcauthtest.EmailAddress,
		Scopes:       []string{fincalcauth.ScopeFactFind},
		TokenURL:     os.Getenv(childEnv),
		Store:        store,
	}
	if ns, err := strconv.ParseInt(os.Getenv("FINCALCAUTH_START"), 10, 64); err == nil {
		time.Sleep(time.Until(time.Unix(0, ns)))
	}
	tok, err := cfg.TokenSource(context.Background()).Token()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(tok.AccessToken)
	return 0
}

// cappedLeases is a real Store whose leases last at most max in Redis.
type cappedLeases struct {
	*redisstore.Store
	max time.Duration
}

func (s cappedLeases) Lease(ctx context.Context, key string, owner []byte, expiry time.Time) (bool, error) {
	return s.Store.Lease(ctx, key, owner, earlier(expiry, time.Now().Add(s.max)))
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// startChild starts a process of a fleet with the given extra
// environment; its output goes to out.
func startChild(t testing.TB, fake *fincalcauthtest.Server, srv *server, out io.Writer, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), append([]string{childEnv + "=" + fake.TokenURL, "FINCALCAUTH_REDIS_ADDR=" + srv.addr}, env...)...)
	cmd.Stdout, cmd.Stderr = out, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func TestFleetOfProcessesColdStart(t *testing.T) {
	// Ten processes, each with its own Redis client, start at the same
	// moment against an empty store, and the endpoint takes 300ms: one
	// token request, one token.
	srv, fake, _ := ownServer(t)
	fake.FailAlways(fincalcauthtest.Fault{Delay: 300 * time.Millisecond})
	start := time.Now().Add(2 * time.Second) // after every process has started
	outs := make([]bytes.Buffer, 10)
	var cmds []*exec.Cmd
	for i := range outs {
		cmds = append(cmds, startChild(t, fake, srv, &outs[i], "FINCALCAUTH_START="+strconv.FormatInt(start.UnixNano(), 10)))
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("process %d: %v", i, err)
		}
	}
	first := strings.TrimSpace(outs[0].String())
	for i := range outs {
		if got := strings.TrimSpace(outs[i].String()); got != first || !fake.ValidToken(got) {
			t.Errorf("process %d printed a token of its own, or none", i)
		}
	}
	if n := fake.TokenRequests(); n != 1 {
		t.Errorf("10 processes starting at once made %d token requests; want 1", n)
	}
}

func TestFleetOfProcessesHolderKilled(t *testing.T) {
	// A process takes the lease and is killed (SIGKILL) while its token
	// request is under way: the others wait out its lease, then one of
	// them fetches for all.
	srv, fake, _ := ownServer(t)
	fake.FailNext(fincalcauthtest.Fault{Delay: time.Hour}) // the holder's request: no answer
	var holderOut bytes.Buffer
	holder := startChild(t, fake, srv, &holderOut, "FINCALCAUTH_LEASE_CAP=2s")
	for deadline := time.Now().Add(30 * time.Second); fake.TokenRequests() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			holder.Process.Kill()
			t.Fatal("the holder sent no token request within 30s")
		}
	}
	outs := make([]bytes.Buffer, 5)
	var cmds []*exec.Cmd
	for i := range outs {
		cmds = append(cmds, startChild(t, fake, srv, &outs[i]))
	}
	time.Sleep(300 * time.Millisecond) // the others wait on the lease
	if n := fake.TokenRequests(); n != 1 {
		t.Errorf("%d token requests while the holder's lease lasts; want 1", n)
	}
	holder.Process.Signal(syscall.SIGKILL)
	holder.Wait()
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("process %d: %v", i, err)
		}
	}
	first := strings.TrimSpace(outs[0].String())
	for i := range outs {
		if got := strings.TrimSpace(outs[i].String()); got != first || !fake.ValidToken(got) {
			t.Errorf("process %d printed a token of its own, or none", i)
		}
	}
	if n := fake.TokenRequests(); n != 2 {
		t.Errorf("%d token requests: want 2, the killed holder's and one for the others", n)
	}
}

func TestFleetThrottledThroughRedis(t *testing.T) {
	// FinCalc answers 429 asking for a minute: sources with clients of
	// their own send one request, and every error says how long FinCalc
	// asked to wait.
	srv, fake, _ := ownServer(t)
	fake.FailAlways(fincalcauthtest.Fault{Status: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"60"}}})
	var wg sync.WaitGroup
	errs := make([]error, 10)
	for i := range errs {
		cfg := fleetConfig(fake, client(t, srv))
		wg.Go(func() { _, errs[i] = cfg.TokenSource(context.Background()).Token() })
	}
	wg.Wait()
	for i, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "asked to wait 1m0s") {
			t.Errorf("source %d: %v; want the 429, saying how long FinCalc asked to wait", i, err)
		}
	}
	if n := fake.TokenRequests(); n != 1 {
		t.Errorf("10 sources made %d token requests to a throttled endpoint; want 1", n)
	}
}

func TestRedisDownLogNamesCause(t *testing.T) {
	// With Redis gone, go-redis's own retries outlast the store's bound
	// of a second; the Warn record still names the cause.
	srv, fake, _ := ownServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.addr}) // go-redis's defaults
	defer rdb.Close()
	srv.cmd.Process.Kill()
	srv.cmd.Wait()
	var logs bytes.Buffer
	var mu sync.Mutex
	cfg := fleetConfig(fake, rdb)
	cfg.Logger = slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))
	if _, err := cfg.TokenSource(context.Background()).Token(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		mu.Lock()
		got := logs.String()
		mu.Unlock()
		if strings.Contains(got, "connection refused") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no Warn record names the cause: %s", got)
		}
	}
}
