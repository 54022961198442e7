// Command fincalc-fake runs a fake FinCalc on a loopback address until
// Ctrl-C, for trying fincalc-token, curl or a client in any language
// without FinCalc. Install it with
//
//	go install github.com/gofincalc/fincalcauth/cmd/fincalc-fake@latest
//
// It prints on standard output the lines that point fincalc-token at it,
// and examples with curl, ready to paste into a shell:
//
//	$ fincalc-fake
//	# A fake FinCalc listens at http://127.0.0.1:41234 until Ctrl-C.
//	# Settings for fincalc-token:
//	export FINCALC_TOKEN_URL=http://127.0.0.1:41234/api/oauth/token
//	export FINCALC_CLIENT_ID=12345
//	export FINCALC_CLIENT_SECRET=fake-secret-bVc8ztJq3N92uUM4mRSoDkE6
//	export FINCALC_EMAIL_ADDRESS=hello@example.com
//	export FINCALC_SCOPES=fact-find
//	# An API call with a token from fincalc-token:
//	curl -H "Authorization: Bearer $(fincalc-token -no-cache)" http://127.0.0.1:41234/api/v2/clients
//	# A token with curl alone:
//	curl -H 'Content-Type: application/json' -d '{"client_id":"12345",...}' http://127.0.0.1:41234/api/oauth/token
//
// -no-cache keeps fincalc-token from reusing a token that an earlier run
// of the fake issued, which this one would refuse. The fake is package
// fincalcauthtest's Server: its token endpoint takes FinCalc's
// client-credentials requests with the credentials printed, and its API
// path (fincalcauthtest.ClientsPath) answers only to a token it issued;
// tokens live only as long as the process. The secret printed is the
// fake's own, public one.
//
// On standard error it logs each request, as method, path and status.
//
// Flags:
//
//	-addr host:port        the address to listen on, on loopback only
//	                       (default 127.0.0.1:0, a free port)
//	-token-lifetime d      the lifetime of the tokens it issues (default 24h)
//
// Exit status: 0 after SIGINT (Ctrl-C) or SIGTERM, which close the
// server; 1 if it cannot listen or serve; 2 for a bad command line.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/fincalcauthtest"
)

const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// usageError is a bad command line. Its text, unless empty (the flag
// package has told already), goes on standard error.
type usageError string

func (e usageError) Error() string { return string(e) }

// exitCode reports err on stderr and returns the exit status for it.
func exitCode(err error, stderr io.Writer) int {
	var usage usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &usage):
		if usage != "" {
			fmt.Fprintln(stderr, "fincalc-fake:", usage)
		}
		return exitUsage
	default:
		fmt.Fprintln(stderr, "fincalc-fake:", err)
		return exitFail
	}
}

// run serves a fake FinCalc until ctx is done, then closes it and
// returns nil.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fincalc-fake", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "listen on this `host:port`, on loopback only; port 0 picks a free one")
	lifetime := fs.Duration("token-lifetime", fincalcauthtest.DefaultTokenLifetime, "the lifetime of the tokens issued")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fincalc-fake [-addr host:port] [-token-lifetime d]")
		fmt.Fprintln(stderr, "Runs a fake FinCalc until Ctrl-C and prints the settings for fincalc-token.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError("")
	}
	if fs.NArg() > 0 {
		return usageError(fmt.Sprintf("unexpected argument %q", fs.Arg(0)))
	}
	if *lifetime < time.Second {
		return usageError(fmt.Sprintf("-token-lifetime %v is shorter than a second", *lifetime))
	}
	if err := checkLoopback(*addr); err != nil {
		return err
	}
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return err // "listen tcp 127.0.0.1:8080: bind: address already in use"
	}
	defer l.Close()
	if a, ok := l.Addr().(*net.TCPAddr); !ok || !a.IP.IsLoopback() {
		return usageError(fmt.Sprintf("-addr %q: listening at %v, not on loopback", *addr, l.Addr()))
	}

	fake := fincalcauthtest.NewMemoryServer()
	fake.SetTokenLifetime(*lifetime)
	fake.URL = "http://" + l.Addr().String()
	fake.TokenURL = fake.URL + fincalcauthtest.TokenPath
	hs := &http.Server{
		Handler:           logRequests(fake, &lockedWriter{w: stderr}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	if _, err := io.WriteString(stdout, setup(fake.ClientConfig(), fake.URL)); err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(l) }()
	select {
	case <-ctx.Done():
		hs.Close()
		<-served
		return nil
	case err := <-served:
		return fmt.Errorf("serving: %w", err)
	}
}

// checkLoopback refuses an address whose host is not loopback: the fake
// hands a token to anyone who sends its public secret.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return usageError(fmt.Sprintf("-addr %q: %v", addr, err))
	}
	if ip, err := netip.ParseAddr(host); host == "localhost" || err == nil && ip.IsLoopback() {
		return nil
	}
	return usageError(fmt.Sprintf("-addr %q: the host must be loopback (127.0.0.1, ::1 or localhost), since the fake hands a token to anyone", addr))
}

// setup returns the lines printed at start: the settings of cfg as
// fincalc-token reads them, and the curl examples for the fake at base.
func setup(cfg *fincalcauth.Config, base string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# A fake FinCalc listens at %s until Ctrl-C.\n", base)
	b.WriteString("# Settings for fincalc-token:\n")
	for _, kv := range [][2]string{
		{"FINCALC_TOKEN_URL", cfg.TokenURL},
		{"FINCALC_CLIENT_ID", cfg.ClientID},
		{"FINCALC_CLIENT_SECRET", cfg.ClientSecret},
		{"FINCALC_EMAIL_ADDRESS", cfg.EmailAddress},
		{"FINCALC_SCOPES", strings.Join(cfg.Scopes, ",")},
	} {
		fmt.Fprintf(&b, "export %s=%s\n", kv[0], shellQuote(kv[1]))
	}
	b.WriteString("# An API call with a token from fincalc-token:\n")
	fmt.Fprintf(&b, "curl -H \"Authorization: Bearer $(fincalc-token -no-cache)\" %s\n", shellQuote(base+fincalcauthtest.ClientsPath))
	body, _ := json.Marshal(map[string]string{
		"grant_type":    "client_credentials",
		"client_id":     cfg.ClientID,
		"client_secret": cfg.ClientSecret,
		"email_address": cfg.EmailAddress,
		"scope":         strings.Join(cfg.Scopes, " "),
	})
	b.WriteString("# A token with curl alone:\n")
	fmt.Fprintf(&b, "curl -H 'Content-Type: application/json' -d %s %s\n", shellQuote(string(body)), shellQuote(cfg.TokenURL))
	return b.String()
}

// shellQuote returns v as one word of a POSIX shell: as it is if it holds
// no character special to a shell, else in single quotes.
func shellQuote(v string) string {
	special := func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("@%+=:,./_-", r))
	}
	if v != "" && strings.IndexFunc(v, special) < 0 {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// logRequests writes a line on w for each request h serves: method, path
// and status, or "no answer" for a dropped or abandoned one.
func logRequests(h http.Handler, w io.Writer) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: rw}
		defer func() {
			status := "no answer"
			if sw.status != 0 {
				status = fmt.Sprint(sw.status)
			}
			fmt.Fprintf(w, "fincalc-fake: %s %s %s\n", r.Method, r.URL.Path, status)
		}()
		h.ServeHTTP(sw, r)
	})
}

// statusWriter notes the status of an answer.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection, which a
// dropped connection needs.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// lockedWriter serializes the writes of concurrent requests.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
