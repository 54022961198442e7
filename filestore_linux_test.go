package fincalcauth_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gofincalc/fincalcauth"
	"github.com/google/go-cmp/cmp"
)

// The FileStore tests that need FIFOs, device nodes and /proc.

// withDeadline runs f, and ends the tests if it takes more than 10 s: a
// store call must not wait on what it finds in the dir.
func withDeadline(what string, f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		// Stop the whole test binary: f may be reading /dev/zero.
		panic(what + " blocked for 10s")
	}
}

// zeroDevice returns a character device that reads as endless zeros.
// Root could change the mode of /dev/zero itself, as a store that
// followed links would: root's tests get a device node of their own.
func zeroDevice(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		return "/dev/zero"
	}
	path := filepath.Join(t.TempDir(), "zero")
	if err := syscall.Mknod(path, syscall.S_IFCHR|0o666, 1<<8|5); err != nil {
		t.Skip("no device node here for a private /dev/zero:", err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Skip("device nodes cannot be opened here:", err)
	}
	f.Close()
	return path
}

// procStatus returns the field of /proc/self/status, in kB, or 0.
func procStatus(field string) int {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(status)) {
		if f := strings.Fields(line); len(f) == 3 && f[0] == field {
			kb, _ := strconv.Atoi(f[1])
			return kb
		}
	}
	return 0
}

func TestFileStoreRefusesOddEntries(t *testing.T) {
	hour := time.Now().Add(time.Hour)
	tests := []struct {
		name string
		why  string                                   // in the first Load's error
		make func(t *testing.T, path, outside string) // puts the odd thing at path
	}{
		{"link to a file outside", "symbolic link", func(t *testing.T, path, outside string) {
			os.Symlink(outside, path)
		}},
		{"link to /dev/zero", "symbolic link", func(t *testing.T, path, outside string) {
			os.Symlink(zeroDevice(t), path)
		}},
		{"FIFO", "not a regular file", func(t *testing.T, path, outside string) {
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Skip("no FIFO here:", err)
			}
		}},
		{"device", "not a regular file", func(t *testing.T, path, outside string) {
			if os.Geteuid() != 0 {
				t.Skip("making a device node needs root; this test runs as uid", os.Geteuid())
			}
			if err := syscall.Mknod(path, syscall.S_IFCHR|0o666, 1<<8|5); err != nil {
				t.Skip("no device node here:", err)
			}
		}},
		{"dir", "not a regular file", func(t *testing.T, path, outside string) {
			os.Mkdir(path, 0o755)
		}},
		{"another user's file", "owned by uid", func(t *testing.T, path, outside string) {
			uid, gid := nobody(t)
			os.WriteFile(path, entryContent("theirs", hour), 0o644)
			os.Chown(path, uid, gid)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			outside := filepath.Join(t.TempDir(), "outside")
			if err := os.WriteFile(outside, entryContent("outside", hour), 0o644); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "k.token")
			tt.make(t, path, outside)
			before, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			s := fincalcauth.NewFileStore(dir)
			ctx := context.Background()
			withDeadline("the store's calls", func() {
				// Reported once, then a plain miss.
				if v, err := s.Load(ctx, "k"); v != nil || err == nil || !strings.Contains(err.Error(), tt.why) || !strings.Contains(err.Error(), path) {
					t.Errorf("first Load = %q, %v; want nil and an error that names %s, %q", v, err, path, tt.why)
				}
				if v, err := s.Load(ctx, "k"); v != nil || err != nil {
					t.Errorf("second Load = %q, %v; want nil, nil", v, err)
				}
				if err := s.Delete(ctx, "k", []byte("theirs")); err != nil {
					t.Errorf("Delete = %v", err)
				}
				if err := s.Save(ctx, "other", []byte("v"), hour); err != nil { // and sweep
					t.Errorf("Save of another key = %v", err)
				}
			})
			if after, err := os.Lstat(path); err != nil {
				t.Errorf("the odd entry is gone: %v", err)
			} else if after.Mode() != before.Mode() || after.ModTime() != before.ModTime() || !os.SameFile(before, after) {
				t.Errorf("the odd entry was changed: %v, modified %v; was %v, %v", after.Mode(), after.ModTime(), before.Mode(), before.ModTime())
			}
			checkMode(t, outside, 0o644)
			if b, _ := os.ReadFile(outside); !bytes.Equal(b, entryContent("outside", hour)) {
				t.Errorf("the file outside holds %q", b)
			}
			if tt.name == "dir" {
				return
			}
			// A Save replaces the odd entry, never what it links to.
			withDeadline("Save", func() {
				if err := s.Save(ctx, "k", []byte("mine"), hour); err != nil {
					t.Errorf("Save = %v", err)
				}
			})
			if v, err := s.Load(ctx, "k"); string(v) != "mine" || err != nil {
				t.Errorf("Load after Save = %q, %v", v, err)
			}
			checkMode(t, outside, 0o644)
			checkMode(t, path, 0o600)
		})
	}
}

// memoryEnv names the dir in which a child of TestFileStoreMemory
// runs the store's calls.
const memoryEnv = "FINCALCAUTH_MEMORY_DIR"

// TestFileStoreMemory runs the store's calls on a dir that holds 1 GiB
// sparse files and a link to /dev/zero in a child process, and checks its
// peak memory.
func TestFileStoreMemory(t *testing.T) {
	if dir := os.Getenv(memoryEnv); dir != "" {
		// Should the calls read without bound, stop at 256 MiB, to
		// spare the machine.
		go func() {
			for {
				if kb := procStatus("VmRSS:"); kb > 256<<10 {
					fmt.Printf("VmHWM: %d kB\n", kb)
					os.Exit(0)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}()
		s := fincalcauth.NewFileStore(dir)
		ctx := context.Background()
		for _, key := range []string{"big", "zero", "headed"} {
			s.Load(ctx, key)
			s.Delete(ctx, key, []byte("v"))
		}
		s.Save(ctx, "new", []byte("v"), time.Now().Add(time.Hour)) // and sweep
		fmt.Printf("VmHWM: %d kB\n", procStatus("VmHWM:"))
		return
	}
	if procStatus("VmHWM:") == 0 {
		t.Skip("no /proc/self/status here to read the peak memory from")
	}
	dir := t.TempDir()
	sparse := func(name string, head []byte) {
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(head)
		if err := f.Truncate(1 << 30); err != nil {
			t.Skip("no sparse files here:", err)
		}
		f.Close()
	}
	sparse("big.token", nil)
	sparse("headed.token", entryContent("v", time.Now().Add(time.Hour)))
	sparse("swept.token", entryContent("v", time.Now().Add(-time.Hour))) // read by the sweep
	os.Symlink(zeroDevice(t), filepath.Join(dir, "zero.token"))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestFileStoreMemory$")
	cmd.Env = append(os.Environ(), memoryEnv+"="+dir)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	fields := strings.Fields(string(out))
	if len(fields) < 3 || fields[0] != "VmHWM:" || fields[2] != "kB" {
		t.Fatalf("no peak memory in the child's output:\n%s", out)
	}
	kb, _ := strconv.Atoi(fields[1])
	t.Logf("the child's peak memory: %d kB", kb)
	if kb > 64<<10 {
		t.Errorf("peak memory %d kB, want under 64 MiB", kb)
	}
}

func TestFileStoreSweepsOldTempFiles(t *testing.T) {
	dir := t.TempDir()
	s := fincalcauth.NewFileStore(dir)
	ctx := context.Background()
	old := time.Now().Add(-2 * fincalcauth.StaleTemp)
	for _, name := range []string{".tmp-old", "k.token.del-1-2", "k.lease.del-1-2", ".tmp-new", ".tmp-fifo"} {
		path := filepath.Join(dir, name)
		if name == ".tmp-fifo" {
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Skip("no FIFO here:", err)
			}
		} else {
			os.WriteFile(path, []byte("x"), 0o600)
		}
		if name != ".tmp-new" {
			os.Chtimes(path, old, old)
		}
	}
	for range 3 {
		s.Save(ctx, "k", []byte("v"), time.Now().Add(time.Hour))
	}
	want := []string{".tmp-fifo", ".tmp-new", "k.token"}
	if diff := cmp.Diff(want, dirNames(t, dir)); diff != "" {
		t.Errorf("files after the sweeps (-want +got):\n%s", diff)
	}
}
