package fincalcauth_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gofincalc/fincalcauth"
	"github.com/google/go-cmp/cmp"
)

func TestFileStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	s := fincalcauth.NewFileStore(dir)
	ctx := context.Background()
	if v, err := s.Load(ctx, "k"); v != nil || err != nil {
		t.Fatalf("Load before any Save = %q, %v", v, err)
	}
	hour := time.Now().Add(time.Hour)
	if err := s.Save(ctx, "k", []byte("v1"), hour); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Load(ctx, "k"); string(v) != "v1" || err != nil {
		t.Errorf("Load = %q, %v; want v1", v, err)
	}
	if runtime.GOOS != "windows" {
		checkMode(t, dir, 0o700)
		checkMode(t, filepath.Join(dir, "k.token"), 0o600)
	}
	// Compare-and-delete.
	s.Delete(ctx, "k", []byte("v0"))
	if v, _ := s.Load(ctx, "k"); string(v) != "v1" {
		t.Errorf("Delete of another value removed the entry")
	}
	s.Delete(ctx, "k", []byte("v1"))
	if v, _ := s.Load(ctx, "k"); v != nil {
		t.Errorf("Delete of the value left %q", v)
	}
	// Expired entries are removed as they are come across.
	s.Save(ctx, "old", []byte("x"), time.Now().Add(-time.Second))
	s.Save(ctx, "other", []byte("y"), time.Now().Add(time.Millisecond))
	time.Sleep(5 * time.Millisecond)
	s.Save(ctx, "k", []byte("v2"), hour)
	if v, _ := s.Load(ctx, "old"); v != nil {
		t.Errorf("expired entry loaded: %q", v)
	}
	names := dirNames(t, dir)
	if diff := cmp.Diff([]string{"k.token"}, names); diff != "" {
		t.Errorf("files after expiry (-want +got):\n%s", diff)
	}
	// Any key works; one that is not a plain name is hashed.
	s.Save(ctx, "../../etc/passwd", []byte("z"), hour)
	if v, _ := s.Load(ctx, "../../etc/passwd"); string(v) != "z" {
		t.Errorf("odd key: Load = %q", v)
	}
	for _, n := range dirNames(t, dir) {
		if strings.Contains(n, "passwd") {
			t.Errorf("file %s named after the key", n)
		}
	}
	// Loose modes are repaired on read.
	if runtime.GOOS != "windows" {
		os.Chmod(dir, 0o755)
		os.Chmod(filepath.Join(dir, "k.token"), 0o644)
		if v, err := s.Load(ctx, "k"); string(v) != "v2" || err != nil {
			t.Errorf("Load = %q, %v", v, err)
		}
		checkMode(t, dir, 0o700)
		checkMode(t, filepath.Join(dir, "k.token"), 0o600)
	}
	if err := s.Clear(); err != nil {
		t.Fatal(err)
	}
	if names := dirNames(t, dir); len(names) != 0 {
		t.Errorf("files after Clear: %v", names)
	}
}

func checkMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s has mode %v, want %v", path, got, want)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestFileStoreDefaultDir(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	base, err := os.UserCacheDir()
	if err != nil {
		t.Skip("no user cache dir here:", err)
	}
	if got, want := fincalcauth.NewFileStore("").Dir(), filepath.Join(base, "fincalcauth"); got != want {
		t.Errorf("NewFileStore(\"\").Dir() = %s, want %s", got, want)
	}
	if err := fincalcauth.NewFileStore("").Save(context.Background(), "k", []byte("v"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		checkMode(t, filepath.Join(base, "fincalcauth"), 0o700)
	}
}

// TestFileStoreDeleteAgainstOtherProcess runs a second process that saves
// newer values while this one deletes older ones: a delete must never
// remove a newer value, so that the last one saved is there at the end.
func TestFileStoreDeleteAgainstOtherProcess(t *testing.T) {
	if dir := os.Getenv("FINCALCAUTH_STORE_WRITER"); dir != "" {
		s := fincalcauth.NewFileStore(dir)
		for i := 1; i <= 300; i++ {
			s.Save(context.Background(), "k", fmt.Appendf(nil, "v%d", i), time.Now().Add(time.Hour))
		}
		return
	}
	dir := t.TempDir()
	s := fincalcauth.NewFileStore(dir)
	ctx := context.Background()
	s.Save(ctx, "k", []byte("v0"), time.Now().Add(time.Hour))
	cmd := exec.Command(os.Args[0], "-test.run=^TestFileStoreDeleteAgainstOtherProcess$")
	cmd.Env = append(os.Environ(), "FINCALCAUTH_STORE_WRITER="+dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() { done <- cmd.Wait() }()
	deletes := 0
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			running = false
		default:
			// Delete whatever is there unless it is the last value.
			if v, _ := s.Load(ctx, "k"); v != nil && string(v) != "v300" {
				s.Delete(ctx, "k", v)
				deletes++
			}
		}
	}
	if v, err := s.Load(ctx, "k"); string(v) != "v300" {
		t.Errorf("after %d deletes of older values, the store holds %q, %v; want v300", deletes, v, err)
	}
}

func TestFileStoreLease(t *testing.T) {
	if !fincalcauth.HaveFlock {
		t.Skip("FileStore has no leases without flock")
	}
	s := fincalcauth.NewFileStore(filepath.Join(t.TempDir(), "cache"))
	ctx := context.Background()
	hour := time.Now().Add(time.Hour)
	past := time.Now().Add(-time.Second)
	steps := []struct {
		name    string
		release bool // else lease
		owner   string
		expiry  time.Time
		want    bool // lease taken
	}{
		{"free", false, "a", hour, true},
		{"held by another", false, "b", hour, false},
		{"held by self: extended", false, "a", hour.Add(time.Hour), true},
		{"release by another", true, "b", time.Time{}, false},
		{"still held after another's release", false, "b", hour, false},
		{"released by its owner", true, "a", time.Time{}, false},
		{"free after release", false, "b", hour, true},
		{"extended into the past", false, "b", past, true},
		{"expired: taken over", false, "a", hour, true},
		{"release by the expired holder", true, "b", time.Time{}, false},
		{"still held after the expired holder's release", false, "b", hour, false},
		{"another key is free", false, "b", hour, true},
	}
	for _, st := range steps {
		key := "k"
		if st.name == "another key is free" {
			key = "k2"
		}
		if st.release {
			if err := s.Release(ctx, key, []byte(st.owner)); err != nil {
				t.Fatalf("%s: Release: %v", st.name, err)
			}
			continue
		}
		got, err := s.Lease(ctx, key, []byte(st.owner), st.expiry)
		if err != nil || got != st.want {
			t.Fatalf("%s: Lease(%s) = %v, %v; want %v", st.name, st.owner, got, err, st.want)
		}
	}
	checkMode(t, filepath.Join(s.Dir(), "k.lease"), 0o600)
	// The lease leaves the entry alone, and the entry the lease.
	s.Save(ctx, "k", []byte("v"), hour)
	if v, _ := s.Load(ctx, "k"); string(v) != "v" {
		t.Errorf("Load beside a lease = %q", v)
	}
	if ok, _ := s.Lease(ctx, "k", []byte("b"), hour); ok {
		t.Errorf("a Save ended the lease")
	}
	if err := s.Clear(); err != nil {
		t.Fatal(err)
	}
	if names := dirNames(t, s.Dir()); len(names) != 0 {
		t.Errorf("files after Clear: %v", names)
	}
	if ok, _ := s.Lease(ctx, "k", []byte("b"), hour); !ok {
		t.Errorf("the lease survived Clear")
	}
}

func TestFileStoreLeaseRefusesOddFile(t *testing.T) {
	if !fincalcauth.HaveFlock {
		t.Skip("FileStore has no leases without flock")
	}
	dir := t.TempDir()
	s := fincalcauth.NewFileStore(dir)
	outside := filepath.Join(t.TempDir(), "outside")
	os.WriteFile(outside, nil, 0o644)
	os.Symlink(outside, filepath.Join(dir, "k.lease"))
	ctx := context.Background()
	if ok, err := s.Lease(ctx, "k", []byte("a"), time.Now().Add(time.Hour)); ok || err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("Lease through a link = %v, %v; want an error that names the link", ok, err)
	}
	s.Release(ctx, "k", []byte("a"))
	if err := s.Clear(); err == nil {
		t.Errorf("Clear left a link alone without saying so")
	}
	checkMode(t, outside, 0o644)
	if b, _ := os.ReadFile(outside); len(b) != 0 {
		t.Errorf("the link's target was written: %q", b)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "k.lease")); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("the link was not left alone: %v", err)
	}
}

// The children of TestFileStoreLeaseProcesses, told apart by the
// environment.
const (
	leaseDirEnv  = "FINCALCAUTH_LEASE_DIR"
	leaseRoleEnv = "FINCALCAUTH_LEASE_ROLE" // "victim" or a contender's name
)

// leaseChild takes the lease of "k" in the store of dir as role says,
// and records in dir/log each time it holds it: "S name now expiry" once
// it holds it (times in Unix nanoseconds), "E name" before it releases
// it.
func leaseChild(dir, role string) error {
	s := fincalcauth.NewFileStore(filepath.Join(dir, "store"))
	log, err := os.OpenFile(filepath.Join(dir, "log"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	record := func(format string, args ...any) error {
		_, err := fmt.Fprintf(log, format+"\n", args...)
		return err
	}
	ctx := context.Background()
	owner := []byte(rand.Text())
	if role == "victim" {
		// Hold the lease for a short while, and never release it: the
		// parent kills this process.
		expiry := time.Now().Add(300 * time.Millisecond)
		if ok, err := s.Lease(ctx, "k", owner, expiry); !ok || err != nil {
			return fmt.Errorf("the victim found the lease taken: %v", err)
		}
		if err := record("S victim %d %d", time.Now().UnixNano(), expiry.UnixNano()); err != nil {
			return err
		}
		select {}
	}
	for range 25 {
		for {
			expiry := time.Now().Add(10 * time.Second)
			ok, err := s.Lease(ctx, "k", owner, expiry)
			if err != nil {
				return err
			}
			if ok {
				if err := record("S %s %d %d", role, time.Now().UnixNano(), expiry.UnixNano()); err != nil {
					return err
				}
				break
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(time.Millisecond) // hold it for a moment
		if err := record("E %s", role); err != nil {
			return err
		}
		if err := s.Release(ctx, "k", owner); err != nil {
			return err
		}
	}
	return nil
}

// TestFileStoreLeaseProcesses runs processes that contend for one lease:
// a victim that takes it and is killed while it holds it, then
// contenders that take and release it again and again. No two hold it at
// once, and nobody takes the victim's before its expiry.
func TestFileStoreLeaseProcesses(t *testing.T) {
	if dir := os.Getenv(leaseDirEnv); dir != "" {
		if err := leaseChild(dir, os.Getenv(leaseRoleEnv)); err != nil {
			fmt.Fprintln(os.Stderr, "lease child:", err)
			os.Exit(1)
		}
		return
	}
	if !fincalcauth.HaveFlock {
		t.Skip("FileStore has no leases without flock")
	}
	dir := t.TempDir()
	logPath := filepath.Join(dir, "log")
	if err := os.WriteFile(logPath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := func(role string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestFileStoreLeaseProcesses$")
		cmd.Env = append(os.Environ(), leaseDirEnv+"="+dir, leaseRoleEnv+"="+role)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	victim := start("victim")
	for {
		if b, _ := os.ReadFile(logPath); len(b) > 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the victim never took the lease")
		}
		time.Sleep(5 * time.Millisecond)
	}
	var contenders []*exec.Cmd
	for i := range 4 {
		contenders = append(contenders, start(fmt.Sprintf("c%d", i)))
	}
	victim.Process.Kill() // SIGKILL
	victim.Wait()
	for _, c := range contenders {
		if err := c.Wait(); err != nil {
			t.Fatalf("a contender failed: %v", err)
		}
	}

	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	holder, until, holds := "", int64(0), 0
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		switch {
		case f[0] == "S" && len(f) == 4:
			now, _ := strconv.ParseInt(f[2], 10, 64)
			if holder != "" && (holder != "victim" || now < until) {
				t.Fatalf("line %d: %s takes the lease that %s holds until %d", n, f[1], holder, until)
			}
			holder, holds = f[1], holds+1
			until, _ = strconv.ParseInt(f[3], 10, 64)
		case f[0] == "E" && len(f) == 2 && f[1] == holder:
			holder = ""
		default:
			t.Fatalf("line %d: %q while %q holds the lease", n, sc.Text(), holder)
		}
	}
	if holds != 1+4*25 {
		t.Errorf("%d holds, want %d", holds, 1+4*25)
	}
}

// nobody returns the uid and gid of user nobody, skipping t unless it
// runs as root, which alone can give a file to another user.
func nobody(t *testing.T) (uid, gid int) {
	t.Helper()
	if runtime.GOOS == "windows" || os.Geteuid() != 0 {
		t.Skip("giving a file to another user needs root; this test runs as uid", os.Geteuid())
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody here:", err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

// entryContent returns a valid entry's file content.
func entryContent(value string, expiry time.Time) []byte {
	return fmt.Appendf(nil, "fincalcauth store 1\n%d\n%s", expiry.UnixMilli(), value)
}

func TestFileStoreRefusesDir(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no POSIX modes on Windows")
	}
	tests := []struct {
		name string
		why  string
		make func(t *testing.T, dir string) (storeDir string)
	}{
		{"link to a dir", "symbolic link", func(t *testing.T, dir string) string {
			os.Symlink(dir, dir+"-link")
			return dir + "-link"
		}},
		{"writable by others", "writable by others", func(t *testing.T, dir string) string {
			os.Chmod(dir, 0o777)
			return dir
		}},
		{"writable by its group", "writable by others", func(t *testing.T, dir string) string {
			os.Chmod(dir, 0o770)
			return dir
		}},
		{"another user's", "owned by uid", func(t *testing.T, dir string) string {
			uid, gid := nobody(t)
			os.Chown(dir, uid, gid)
			return dir
		}},
		{"a file", "not a dir", func(t *testing.T, dir string) string {
			os.WriteFile(dir+"-file", nil, 0o600)
			return dir + "-file"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "store")
			os.Mkdir(dir, 0o755)
			os.WriteFile(filepath.Join(dir, "k.token"), entryContent("v", time.Now().Add(time.Hour)), 0o644)
			storeDir := tt.make(t, dir)
			mode := func() fs.FileMode {
				fi, err := os.Stat(dir)
				if err != nil {
					t.Fatal(err)
				}
				return fi.Mode()
			}
			before := mode()
			s := fincalcauth.NewFileStore(storeDir)
			ctx := context.Background()
			check := func(op string, err error) {
				t.Helper()
				if err == nil || !strings.Contains(err.Error(), tt.why) || !strings.Contains(err.Error(), storeDir) {
					t.Errorf("%s = %v; want an error that names %s, %q", op, err, storeDir, tt.why)
				}
			}
			v, err := s.Load(ctx, "k")
			check("Load", err)
			if v != nil {
				t.Errorf("Load = %q", v)
			}
			check("Save", s.Save(ctx, "new", []byte("v"), time.Now().Add(time.Hour)))
			check("Delete", s.Delete(ctx, "k", []byte("v")))
			_, err = s.Lease(ctx, "k", []byte("a"), time.Now().Add(time.Hour))
			check("Lease", err)
			check("Clear", s.Clear())
			if after := mode(); after != before {
				t.Errorf("the dir's mode went from %v to %v", before, after)
			}
			checkMode(t, filepath.Join(dir, "k.token"), 0o644)
			if diff := cmp.Diff([]string{"k.token"}, dirNames(t, dir)); diff != "" {
				t.Errorf("files in the refused dir (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFileStoreSweepBounded(t *testing.T) {
	dir := t.TempDir()
	s := fincalcauth.NewFileStore(dir)
	ctx := context.Background()
	const n = 100
	for i := range n {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("old%d.token", i)), entryContent("v", time.Now().Add(-time.Hour)), 0o600)
	}
	expired := func() int {
		c := 0
		for _, name := range dirNames(t, dir) {
			if strings.HasPrefix(name, "old") {
				c++
			}
		}
		return c
	}
	s.Save(ctx, "k", []byte("v"), time.Now().Add(time.Hour))
	if removed := n - expired(); removed == 0 || removed > fincalcauth.SweepFiles {
		t.Errorf("one Save removed %d expired entries, want 1 to %d", removed, fincalcauth.SweepFiles)
	}
	for range 50 {
		s.Save(ctx, "k", []byte("v"), time.Now().Add(time.Hour))
	}
	if left := expired(); left != 0 {
		t.Errorf("%d expired entries left after 51 Saves", left)
	}
}

func TestFileStoreRefusedEntryLoggedOnce(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("symbolic links need privileges on Windows")
	}
	synctest.Test(t, func(t *testing.T) {
		m := newBubbleFake()
		dir := t.TempDir()
		store := fincalcauth.NewFileStore(dir)
		var logs lockedBuffer
		cfg := storeConfig(m, store)
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		outside := filepath.Join(t.TempDir(), "outside")
		os.WriteFile(outside, nil, 0o644)
		path := filepath.Join(dir, fincalcauth.StoreKey(cfg)+".token")
		os.Symlink(outside, path)
		// Three sources, each of which finds the link: one Warn record.
		for range 3 {
			os.Remove(path)
			os.Symlink(outside, path)
			if _, err := cfg.TokenSource(m.ctx()).Token(); err != nil {
				t.Fatal(err)
			}
		}
		if n := strings.Count(logs.String(), "symbolic link"); n != 1 {
			t.Errorf("%d records of the link, want 1:\n%s", n, logs.String())
		}
		checkMode(t, outside, 0o644)
	})
}

// TestFileStoreLeaseDirRemoved checks that a Lease whose dir is removed
// under it returns, with an error or not, instead of trying for ever.
func TestFileStoreLeaseDirRemoved(t *testing.T) {
	if !fincalcauth.HaveFlock {
		t.Skip("FileStore has no leases without flock")
	}
	dir := filepath.Join(t.TempDir(), "cache")
	s := fincalcauth.NewFileStore(dir)
	stop := make(chan struct{})
	removed := make(chan struct{})
	go func() {
		defer close(removed)
		for {
			select {
			case <-stop:
				return
			default:
				os.RemoveAll(dir)
			}
		}
	}()
	defer func() { close(stop); <-removed }()
	deadline := time.Now().Add(300 * time.Millisecond)
	for i := 0; time.Now().Before(deadline); i++ {
		done := make(chan struct{})
		go func() {
			defer close(done)
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			s.Lease(ctx, "k", []byte("a"), time.Now().Add(time.Hour))
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("Lease %d still running 5s after its context's 50ms ended, its dir removed", i)
		}
	}
}
