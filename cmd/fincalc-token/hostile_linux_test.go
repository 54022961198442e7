package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gofincalc/fincalcauth/internal/tokenstore"
)

// The cache's file system may hold anything at an entry's path: a store
// that reads it may block or read forever. -timeout and Ctrl-C end the
// run all the same, whether the store refuses the entry (a miss, and a
// token fetched) or waits on it.

// entryPath returns the path of e's cache entry, after a run that puts a
// token there, so that a change of the store's file names fails the test
// rather than make it pass without reaching the entry.
func (e *env) entryPath() string {
	e.t.Helper()
	if r := e.call(""); r.Code != 0 {
		e.t.Fatalf("a run to fill the cache: %+v", r)
	}
	scopes := strings.FieldsFunc(e.vars["FINCALC_SCOPES"], func(r rune) bool { return r == ',' || r == ' ' })
	box := tokenstore.New(e.vars["FINCALC_CLIENT_SECRET"], e.vars["FINCALC_TOKEN_URL"], e.vars["FINCALC_CLIENT_ID"], e.vars["FINCALC_EMAIL_ADDRESS"], scopes)
	path := filepath.Join(e.cache, "fincalcauth", box.Name()+".token")
	if files := e.cacheFiles(); len(files) != 1 || files[0] != path {
		e.t.Fatalf("cache files %v; want %s", files, path)
	}
	return path
}

// zeroDevice returns a device that reads as endless zeros: /dev/zero, or
// for root a node of the test's own, so that a store that follows a link
// and repairs the mode of its target cannot change /dev/zero's.
func zeroDevice(t *testing.T) string {
	if os.Geteuid() != 0 {
		return "/dev/zero"
	}
	path := filepath.Join(t.TempDir(), "zero")
	if err := syscall.Mknod(path, syscall.S_IFCHR|0o666, 1<<8|5); err != nil {
		t.Skipf("cannot make a zero device of the test's own as root: %v", err)
	}
	return path
}

// hostileEntries puts at the cache entry's path something a store may
// block on or read forever.
var hostileEntries = map[string]func(t *testing.T, path string){
	"FIFO": func(t *testing.T, path string) {
		if err := syscall.Mkfifo(path, 0o600); err != nil {
			t.Fatal(err)
		}
	},
	"link to a zero device": func(t *testing.T, path string) {
		if err := os.Symlink(zeroDevice(t), path); err != nil {
			t.Fatal(err)
		}
	},
}

func TestTimeoutWithHostileEntry(t *testing.T) {
	for name, put := range hostileEntries {
		for _, args := range [][]string{{"-v"}, {"-v", "-refresh"}, {"-status"}} {
			t.Run(name+" "+strings.Join(args, " "), func(t *testing.T) {
				e := newEnv(t)
				path := e.entryPath()
				os.Remove(path)
				put(t, path)
				s := e.start(nil, append(args, "-timeout", "1s")...)
				r := s.end(20 * time.Second)
				dir := filepath.Dir(path)
				switch {
				case r.Code == 1 && strings.Contains(r.Stderr, "-timeout 1s reached while waiting for the token cache in "+dir) && (args[0] == "-status" || r.Stdout == ""):
					// The store waited on the entry.
				case r.Code == 0 && (args[0] == "-status" || e.issued(r)):
					// The store refused the entry: a miss.
				default:
					t.Errorf("run = %+v; want exit 1 naming the cache, or a token", r)
				}
			})
		}
	}
}

func TestInterruptWithHostileEntry(t *testing.T) {
	for name, put := range hostileEntries {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			path := e.entryPath()
			os.Remove(path)
			put(t, path)
			s := e.start(nil, "-v", "-timeout", "1h")
			s.waitFor("reading the token cache")
			time.Sleep(50 * time.Millisecond) // into the store's call
			s.cmd.Process.Signal(os.Interrupt)
			r := s.end(10 * time.Second)
			switch {
			case r.Code == 130 && strings.HasSuffix(r.Stderr, "fincalc-token: interrupted\n") && r.Stdout == "":
			case r.Code == 0 && e.issued(r):
				// The store refused the entry, and the run ended before Ctrl-C.
			default:
				t.Errorf("run = %+v; want exit 130 after Ctrl-C", r)
			}
		})
	}
}

func TestInterruptWhileReadingSecret(t *testing.T) {
	e := newEnv(t)
	delete(e.vars, "FINCALC_CLIENT_SECRET")
	pr, pw, err := os.Pipe() // stays open: the secret never comes
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	s := e.start(pr, "-v", "-client-secret-file", "-", "-timeout", "1h")
	pr.Close()
	s.waitFor("reading the client secret from standard input")
	time.Sleep(50 * time.Millisecond) // into the read
	s.cmd.Process.Signal(os.Interrupt)
	r := s.end(10 * time.Second)
	if r.Code != 130 || !strings.HasSuffix(r.Stderr, "fincalc-token: interrupted\n") || r.Stdout != "" {
		t.Errorf("run = %+v; want exit 130 after Ctrl-C", r)
	}
	if n := e.srv.TokenRequests(); n != 0 {
		t.Errorf("%d token requests without a secret", n)
	}
}

func TestTimeoutWhileReadingSecret(t *testing.T) {
	e := newEnv(t)
	delete(e.vars, "FINCALC_CLIENT_SECRET")
	fifo := filepath.Join(e.home, "secret")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.start(nil, "-client-secret-file", fifo, "-timeout", "500ms").end(10 * time.Second)
	if r.Code != 1 || !strings.Contains(r.Stderr, "-timeout 500ms reached while waiting for the client secret from the file "+fifo) {
		t.Errorf("run = %+v; want exit 1 naming the secret file", r)
	}
}

func TestSecretFileNeverEnds(t *testing.T) {
	e := newEnv(t)
	delete(e.vars, "FINCALC_CLIENT_SECRET")
	r := e.start(nil, "-client-secret-file", "/dev/zero", "-timeout", "5s").end(10 * time.Second)
	if r.Code != 2 || !strings.Contains(r.Stderr, "-client-secret-file /dev/zero: more than 65536 bytes") {
		t.Errorf("run = %+v; want exit 2: the file is longer than a secret", r)
	}
}
