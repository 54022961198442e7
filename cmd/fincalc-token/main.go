// Command fincalc-token prints a FinCalc access token, for use on a
// command line:
//
//	curl -H "Authorization: Bearer $(fincalc-token)" https://api.fincalc.co.uk/api/v2/clients
//
// Install it with
//
//	go install github.com/gofincalc/fincalcauth/cmd/fincalc-token@latest
//
// fincalc-token -help lists its settings (environment variables, and the
// flags that override them), its flags, the scopes, the cache dir and
// the exit codes. The client secret is never taken from a flag's value,
// since other users of the machine can read a command line;
// -client-secret-file - on a terminal prompts for it without echo. A
// missing or invalid setting ends the command with exit status 2 and a
// message naming the variable or flag it came from; no request is sent.
//
// # Output
//
// On success it prints the access token and a newline on standard output,
// or with -json an object {"access_token", "token_type", "expiry",
// "expires_in"} with an RFC 3339 expiry and the seconds left, and exits 0.
// On failure it exits 1, or 2 for a bad setting or flag, or 130 when
// Ctrl-C ended it, and standard output stays empty. Every message on
// standard error starts with "fincalc-token: "; a failure is told in one
// such line, with a hint on the next where there is one (credentials
// refused, nothing listening at the token URL). With -json a failure is
// instead one JSON object on standard error, {"error", "status",
// "retry_after", "hint"}: the HTTP status of the token endpoint's answer
// and the seconds it asked to wait, or null. No message shows the secret
// or a token: a message that mentions a token the command holds, such as
// a server's refusal that quotes the cached one, is withheld, and says
// so.
//
// -timeout (30 s by default) bounds the whole run, retries and the token
// cache's file system included; only the time a person takes to type the
// secret at the prompt does not count. Ctrl-C ends the run at once,
// whatever it waits for. A wait of more than a few seconds is told on
// standard error when that is a terminal. -v tells on standard error what
// happens: the cache, each attempt and how it ended, each wait and why.
//
// # Cache
//
// A token is reused across runs while it has more than 5 minutes left. It
// is kept, sealed, by the library's file store in its default dir (see
// fincalcauth.NewFileStore and fincalcauth.FileStore), where a service
// whose Config.Store is fincalcauth.NewFileStore("") finds and shares it.
//
// -refresh fetches a new token even when one is cached, and caches it;
// -no-cache neither reads nor writes the cache; -clear-cache removes every
// cached token of the user and needs no settings; -status prints the
// settings in use, where the secret comes from and whether a token is
// cached, and sends no request (-status -json: as a JSON object).
//
// # Demo
//
// fincalc-token -demo starts a fake FinCalc (package fincalcauthtest) in
// the process and fetches a token from it as a real run would, without
// the cache. It prints the token, and on standard error what happened:
// the request sent, with the secret masked, and the token's expiry.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/internal/secrettext"
)

const (
	defaultTimeout = 30 * time.Second

	// noticeAfter is how long a wait lasts before the command says, on a
	// terminal, that it is still waiting.
	noticeAfter = 3 * time.Second
)

func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
	interrupt := make(chan os.Signal, 1)
	signal.Notify(interrupt, os.Interrupt)
	go func() {
		<-interrupt
		cancel(errInterrupted)
	}()
	c := newCommand(os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	c.stderrTTY = isTerminal(os.Stderr)
	os.Exit(c.report(c.run(ctx, os.Args[1:])))
}

// command is one run of the command: its input and output, its flags,
// and what it learns on the way that its messages depend on.
type command struct {
	getenv      func(string) string
	stdin       io.Reader
	stdout      io.Writer
	stderr      io.Writer // safe for concurrent use
	stderrTTY   bool      // whether stderr is a terminal, where long waits are told
	noticeAfter time.Duration

	o        options
	r        resolved  // the settings, once read
	deadline time.Time // the end of -timeout

	mu   sync.Mutex
	held []string // the tokens the run holds, which no message may show
}

func newCommand(getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) *command {
	return &command{getenv: getenv, stdin: stdin, stdout: stdout, stderr: &lockedWriter{w: stderr}, noticeAfter: noticeAfter}
}

// options are the command's flags.
type options struct {
	clientID, email, scopes, tokenURL, secretFile string
	json, noCache, clearCache, refresh, status    bool
	demo, verbose, help, version                  bool
	timeout                                       time.Duration
	set                                           map[string]bool // the flags given
}

func (c *command) newFlagSet() *flag.FlagSet {
	o := &c.o
	fs := flag.NewFlagSet("fincalc-token", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // report says what went wrong
	fs.Usage = func() {}
	for _, s := range settingsTable {
		fs.StringVar(s.dest(o), s.flag, "", s.about+" (default $"+s.env+")")
	}
	fs.BoolVar(&o.json, "json", false, "print a JSON object with access_token, token_type, expiry and expires_in; with -status, the status; failures as JSON on standard error")
	fs.BoolVar(&o.refresh, "refresh", false, "fetch a new token even if one is cached, and cache it")
	fs.BoolVar(&o.noCache, "no-cache", false, "neither read nor write the token cache")
	fs.BoolVar(&o.clearCache, "clear-cache", false, "remove every cached token of this user, and fetch nothing; needs no settings")
	fs.BoolVar(&o.status, "status", false, "print the settings in use and whether a token is cached, and send no request")
	fs.DurationVar(&o.timeout, "timeout", defaultTimeout, "give up after this long, retries and the cache included")
	fs.BoolVar(&o.verbose, "v", false, "tell on standard error what happens: cache, attempts, waits")
	fs.BoolVar(&o.demo, "demo", false, "fetch a token from a fake FinCalc started in this process")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.BoolVar(&o.help, "help", false, "print this help and exit")
	fs.BoolVar(&o.help, "h", false, "print this help and exit")
	return fs
}

// run runs the command with args, and returns why it failed, if it did:
// report tells the user.
func (c *command) run(ctx context.Context, args []string) error {
	err := c.exec(ctx, args)
	if err != nil && errors.Is(context.Cause(ctx), errInterrupted) {
		return errInterrupted
	}
	return err
}

func (c *command) exec(ctx context.Context, args []string) error {
	fs := c.newFlagSet()
	c.o.json = jsonAsked(args) // for the errors of parsing, too
	if err := fs.Parse(args); err != nil {
		for _, a := range args {
			if name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "="); strings.HasPrefix(a, "-") && name == "client-secret" {
				return &usageError{problems: []string{"the secret is not taken from a flag, since other users can read the command line; set FINCALC_CLIENT_SECRET or use -client-secret-file"}}
			}
		}
		return &usageError{problems: []string{err.Error()}, hint: "fincalc-token -help lists the flags and settings"}
	}
	c.o.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { c.o.set[f.Name] = true })
	switch {
	case fs.NArg() > 0:
		return &usageError{problems: []string{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}, hint: "fincalc-token -help lists the flags and settings"}
	case c.o.help:
		return c.printHelp(fs)
	case c.o.version:
		_, err := fmt.Fprintln(c.stdout, "fincalc-token", version())
		return err
	case c.o.timeout <= 0:
		return &usageError{problems: []string{fmt.Sprintf("-timeout (%v) must be positive", c.o.timeout)}}
	}
	c.deadline = time.Now().Add(c.o.timeout)
	switch {
	case c.o.demo:
		return c.runDemo(ctx)
	case c.o.clearCache:
		return c.clearCache(ctx)
	}

	problems, err := c.settings(ctx)
	if err != nil {
		return err
	}
	if c.o.status {
		if err := c.printStatus(ctx, len(problems) == 0); err != nil {
			return err
		}
	}
	if len(problems) > 0 {
		return &usageError{problems: problems}
	}
	if c.o.status {
		return nil
	}
	var cache *cache
	if !c.o.noCache {
		cache = newCache(c.r.cfg)
	}
	tok, err := c.obtain(ctx, c.r.cfg, cache)
	if err != nil {
		return err
	}
	return c.printToken(tok)
}

// jsonAsked reports whether args ask for -json, as flag would parse
// them, so that a failure to parse them is told as asked too.
func jsonAsked(args []string) bool {
	asked := false
	for _, a := range args {
		if a == "--" || !strings.HasPrefix(a, "-") {
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name != "json" {
			continue
		}
		asked = true
		if hasValue {
			asked, _ = strconv.ParseBool(value)
		}
	}
	return asked
}

// hold adds tokens that no message may show.
func (c *command) hold(tokens ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range tokens {
		if t != "" && !slices.Contains(c.held, t) {
			c.held = append(c.held, t)
		}
	}
}

// mentionsHeld reports whether text mentions a token the run holds. (The
// library withholds the secret and the tokens it knows of itself.)
func (c *command) mentionsHeld(text string) bool {
	c.mu.Lock()
	held := slices.Clone(c.held)
	c.mu.Unlock()
	return len(held) > 0 && secrettext.Mentions(text, held...)
}

// say writes a line of -v on stderr.
func (c *command) say(format string, args ...any) {
	if c.o.verbose {
		c.tell(format, args...)
	}
}

// tell writes a message on stderr, each line prefixed with the command's
// name, or a note in its place if it mentions a token the run holds.
func (c *command) tell(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if c.mentionsHeld(msg) {
		msg = "(a message withheld: it mentions a token this command holds)"
	}
	var b strings.Builder
	for line := range strings.Lines(msg) {
		b.WriteString("fincalc-token: " + strings.TrimSuffix(line, "\n") + "\n")
	}
	io.WriteString(c.stderr, b.String())
}

// refused reports, with why (a format of the flag's name), the first of
// the named flags that the run was given, if any: flags that a mode
// would ignore are refused, not ignored silently.
func (c *command) refused(why string, names ...string) error {
	for _, name := range names {
		if c.o.set[name] {
			return &usageError{problems: []string{fmt.Sprintf(why, name)}}
		}
	}
	return nil
}

// version returns the module version the binary was built from.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && (v == "" || v == "(devel)") {
			v += " " + s.Value
		}
	}
	return v
}

func (c *command) printHelp(fs *flag.FlagSet) error {
	dir := fincalcauth.NewFileStore("").Dir()
	if dir == "" {
		dir = "none: this user has no cache dir"
	}
	var b strings.Builder
	b.WriteString(`usage: fincalc-token [flags]

Prints a FinCalc access token on standard output, for use on a command line:

  curl -H "Authorization: Bearer $(fincalc-token)" https://api.fincalc.co.uk/api/v2/clients

Settings come from the environment; flags override them. The secret comes
from FINCALC_CLIENT_SECRET or -client-secret-file, never from a flag's value.

`)
	for _, s := range settingsTable {
		fmt.Fprintf(&b, "  %-22s %-20s %s\n", s.env, "-"+s.flag, s.about)
	}
	fmt.Fprintf(&b, `
Scopes: %s (fact-find data of a client), %s (household
financial data), %s (client information).

Tokens are cached, sealed, in %s,
and reused while more than 5 minutes remain.

Exit status: 0 success, 1 the token could not be had, 2 a bad or missing
setting or flag, 130 interrupted (Ctrl-C).

Flags:
`, fincalcauth.ScopeFactFind, fincalcauth.ScopeClientFinancials, fincalcauth.ScopeClientInformation, dir)
	if _, err := io.WriteString(c.stdout, b.String()); err != nil {
		return err
	}
	fs.SetOutput(c.stdout)
	fs.PrintDefaults()
	return nil
}

// lockedWriter is a writer safe for concurrent use: -v, the notice of a
// long wait and the run's own messages share stderr.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
