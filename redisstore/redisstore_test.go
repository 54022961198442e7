package redisstore_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/fincalcauthtest"
	"github.com/gofincalc/fincalcauth/redisstore"
	"github.com/redis/go-redis/v9"
)

// The tests run against a real redis-server (Debian's package
// redis-server), which they start on a free loopback port with
// persistence off and stop by its PID. There is no mock.

// server is a redis-server started for the tests.
type server struct {
	addr string
	cmd  *exec.Cmd
}

// startServer starts redis-server on a free loopback port and waits
// until it answers.
func startServer() (*server, error) {
	path, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found (apt-get install redis-server): %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(path, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", os.TempDir(), "--loglevel", "warning")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{addr: "127.0.0.1:" + strconv.Itoa(port), cmd: cmd}
	rdb := redis.NewClient(&redis.Options{Addr: s.addr})
	defer rdb.Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if rdb.Ping(context.Background()).Err() == nil {
			return s, nil
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("redis-server on %s did not answer within 10s", s.addr)
		}
	}
}

// stop kills the server by its PID and waits for it.
func (s *server) stop() {
	syscall.Kill(s.cmd.Process.Pid, syscall.SIGCONT) // in case a test left it stopped
	s.cmd.Process.Kill()
	s.cmd.Wait()
}

// shared is the server of the tests that need no server of their own.
var shared *server

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(child())
	}
	var err error
	shared, err = startServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, "redisstore tests:", err)
		os.Exit(1)
	}
	os.Setenv("REDIS_ADDR", shared.addr) // for the examples
	code := m.Run()
	shared.stop()
	os.Exit(code)
}

// client returns a client of srv, closed with the test, whose timeouts
// are an application's long ones: the store's bound must not rely on them.
func client(t testing.TB, srv *server) *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: srv.addr, ReadTimeout: time.Minute, WriteTimeout: time.Minute, DialTimeout: time.Minute, MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func TestStoreContract(t *testing.T) {
	ctx := context.Background()
	rdb := client(t, shared)
	s := redisstore.New(rdb)
	key := t.Name()
	if v, err := s.Load(ctx, key); v != nil || err != nil {
		t.Fatalf("Load of a missing key = %q, %v", v, err)
	}
	expiry := time.Now().Add(time.Hour)
	if err := s.Save(ctx, key, []byte("v1"), expiry); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Load(ctx, key); string(v) != "v1" || err != nil {
		t.Errorf("Load = %q, %v; want v1", v, err)
	}
	// The key is prefixed, and expires with the token.
	if got, _ := rdb.Get(ctx, redisstore.Prefix+key).Result(); got != "v1" {
		t.Errorf("GET %s = %q", redisstore.Prefix+key, got)
	}
	if at, err := rdb.Do(ctx, "PEXPIRETIME", redisstore.Prefix+key).Int64(); err != nil || at != expiry.UnixMilli() {
		t.Errorf("PEXPIRETIME = %d, %v; want the token's expiry %d", at, err, expiry.UnixMilli())
	}
	// Compare-and-delete.
	s.Delete(ctx, key, []byte("v0"))
	if v, _ := s.Load(ctx, key); string(v) != "v1" {
		t.Errorf("Delete of another value removed the entry")
	}
	if err := s.Delete(ctx, key, []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Load(ctx, key); v != nil {
		t.Errorf("Delete of the value left %q", v)
	}
	// An expiry already past saves nothing; a short one expires.
	s.Save(ctx, key, []byte("old"), time.Now().Add(-time.Second))
	if n, _ := rdb.Exists(ctx, redisstore.Prefix+key).Result(); n != 0 {
		t.Errorf("a value with a past expiry was saved")
	}
	s.Save(ctx, key, []byte("brief"), time.Now().Add(50*time.Millisecond))
	time.Sleep(100 * time.Millisecond)
	if v, _ := s.Load(ctx, key); v != nil {
		t.Errorf("a value outlived its expiry: %q", v)
	}
	// A huge value is a miss, not a read of megabytes.
	rdb.Set(ctx, redisstore.Prefix+key, bytes.Repeat([]byte("x"), 1<<20), time.Minute)
	if v, err := s.Load(ctx, key); v != nil || err != nil {
		t.Errorf("Load of a 1 MiB value = %d bytes, %v; want a miss", len(v), err)
	}
}

func TestDeleteIsAtomic(t *testing.T) {
	// Many deletes of an old value race with saves of new ones: the last
	// value saved is always there at the end.
	ctx := context.Background()
	s := redisstore.New(client(t, shared))
	key := t.Name()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 200 {
				s.Save(ctx, key, fmt.Appendf(nil, "w%d-%d", w, i), time.Now().Add(time.Hour))
				s.Delete(ctx, key, fmt.Appendf(nil, "w%d-%d", (w+1)%4, i))
			}
		})
	}
	wg.Wait()
	s.Save(ctx, key, []byte("last"), time.Now().Add(time.Hour))
	s.Delete(ctx, key, []byte("w0-199"))
	if v, _ := s.Load(ctx, key); string(v) != "last" {
		t.Errorf("after racing deletes, Load = %q; want last", v)
	}
}

// fleetConfig returns the fake's Config with a store in Redis.
func fleetConfig(fake *fincalcauthtest.Server, rdb redis.UniversalClient) *fincalcauth.Config {
	cfg := fake.ClientConfig()
	cfg.Store = redisstore.New(rdb)
	return cfg
}

func TestSourcesShareATokenThroughRedis(t *testing.T) {
	fake := fincalcauthtest.NewServer()
	defer fake.Close()
	rdb := client(t, shared)
	ctx := context.Background()
	first, err := fleetConfig(fake, rdb).TokenSource(ctx).Token()
	if err != nil {
		t.Fatal(err)
	}
	// Another process starts: it finds the token in Redis.
	second, err := fleetConfig(fake, rdb).TokenSource(ctx).Token()
	if err != nil || second.AccessToken != first.AccessToken || fake.TokenRequests() != 1 {
		t.Fatalf("second source: same token %v, %v, after %d token requests", second != nil && second.AccessToken == first.AccessToken, err, fake.TokenRequests())
	}
	// Redis learns nothing: no token, secret, client ID or email in it.
	keys, _ := rdb.Keys(ctx, redisstore.Prefix+"*").Result()
	if len(keys) == 0 {
		t.Fatal("no key in Redis")
	}
	for _, k := range keys {
		v, _ := rdb.Get(ctx, k).Result()
		for _, s := range []string{first.AccessToken, fincalcauthtest.ClientSecret, fincalcauthtest.ClientID, fincalcauthtest.EmailAddress, "fact-find"} {
			if strings.Contains(k+v, s) {
				t.Errorf("Redis entry %s shows %q", k, s)
			}
		}
	}
}

// ownServer starts a redis-server for t alone, which the test may kill
// or stop, a fake FinCalc, and a client of the server.
func ownServer(t *testing.T) (*server, *fincalcauthtest.Server, *redis.Client) {
	t.Helper()
	srv, err := startServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.stop)
	fake := fincalcauthtest.NewServer()
	t.Cleanup(fake.Close)
	return srv, fake, client(t, srv)
}

func TestSourcesSurviveRedisKilled(t *testing.T) {
	srv, fake, rdb := ownServer(t)
	ctx := context.Background()
	var logs bytes.Buffer
	var mu sync.Mutex
	cfg := func() *fincalcauth.Config {
		c := fleetConfig(fake, rdb)
		c.Logger = slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))
		return c
	}
	client := cfg().Client(ctx)
	resp, err := client.Get(fake.URL + fincalcauthtest.ClientsPath)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("before the kill: %v", err)
	}
	resp.Body.Close()

	srv.cmd.Process.Kill() // mid-run
	srv.cmd.Wait()

	// The store says that it failed: a miss would hide a Redis that is down.
	for name, err := range map[string]error{
		"Load":   func() error { _, err := redisstore.New(rdb).Load(ctx, "k"); return err }(),
		"Save":   redisstore.New(rdb).Save(ctx, "k", []byte("v"), time.Now().Add(time.Hour)),
		"Delete": redisstore.New(rdb).Delete(ctx, "k", []byte("v")),
		"Lease": func() error {
			_, err := redisstore.New(rdb).Lease(ctx, "k", []byte("o"), time.Now().Add(time.Minute))
			return err
		}(),
		"Release": redisstore.New(rdb).Release(ctx, "k", []byte("o")),
	} {
		if err == nil || !strings.HasPrefix(err.Error(), "redisstore: ") {
			t.Errorf("%s with Redis down = %v; want a redisstore error", name, err)
		}
	}

	// The running source keeps its token; a new one fetches its own.
	for range 10 {
		resp, err := client.Get(fake.URL + fincalcauthtest.ClientsPath)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("after the kill: %v", err)
		}
		resp.Body.Close()
	}
	tok, err := cfg().TokenSource(ctx).Token()
	if err != nil || !fake.ValidToken(tok.AccessToken) {
		t.Fatalf("a new source with Redis down: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("no Warn record of the store's failure: %s", logs.String())
	}
	if strings.Contains(logs.String(), tok.AccessToken) || strings.Contains(logs.String(), fincalcauthtest.ClientSecret) {
		t.Errorf("logs show a token or the secret: %s", logs.String())
	}
}

func TestHungRedisCostsABound(t *testing.T) {
	// A Redis that accepts connections but answers nothing, with a
	// client whose timeouts are a minute and that ignores contexts, costs
	// a new source about a second in all, not a minute.
	srv, fake, rdb := ownServer(t)
	rdb.Ping(context.Background()) // a connection in the pool
	syscall.Kill(srv.cmd.Process.Pid, syscall.SIGSTOP)
	defer syscall.Kill(srv.cmd.Process.Pid, syscall.SIGCONT)

	start := time.Now()
	tok, err := fleetConfig(fake, rdb).TokenSource(context.Background()).Token()
	if err != nil || !fake.ValidToken(tok.AccessToken) {
		t.Fatalf("Token() with a hung Redis: %v", err)
	}
	// One second for all the store's calls, and a loopback fetch;
	// generous for a loaded machine, and far below the client's minute.
	// BENCHMARKS.md has the figure.
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the first token took %v with a hung Redis", d)
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
