// Command fincalc-token prints a FinCalc access token, for use on a
// command line:
//
//	curl -H "Authorization: Bearer $(fincalc-token)" https://api.fincalc.co.uk/api/v2/clients
//
// Install it with
//
//	go install github.com/gofincalc/fincalcauth/cmd/fincalc-token@latest
//
// fincalc-token -help lists its settings, flags, scopes, cache folder and
// exit codes.
//
// # Settings
//
// It reads its settings from the environment, and flags override them:
//
//	FINCALC_CLIENT_ID      -client-id           the client ID
//	FINCALC_CLIENT_SECRET  -client-secret-file  the client secret ("-" reads stdin)
//	FINCALC_EMAIL_ADDRESS  -email               the email address of the FinCalc login
//	FINCALC_SCOPES         -scopes              scopes, separated by spaces or commas
//	FINCALC_TOKEN_URL      -token-url           the token endpoint (default: FinCalc's)
//
// The secret is never taken from a flag's value, since other users of the
// machine can read a command line; -client-secret-file - on a terminal
// prompts for it without echo. A missing or invalid setting ends the
// command with exit status 2 and a message naming the variable or flag it
// came from; no request is sent.
//
// # Output
//
// On success it prints the access token and a newline on standard output,
// or with -json an object {"access_token", "token_type", "expiry",
// "expires_in"} with an RFC 3339 expiry and the seconds left, and exits 0.
// On failure it prints the error on standard error and exits 1; standard
// output stays empty. -timeout (30 s by default) bounds the whole run,
// retries included. -v tells on standard error what happens: the cache,
// each attempt and its status, each wait and why. Ctrl-C ends the run at
// once with exit status 130. The secret and the token appear in no
// message.
//
// # Cache
//
// A token is reused across runs while it has more than 5 minutes left. It
// is kept by the library's file store (see fincalcauth.FileStore) in the
// user's cache folder ($XDG_CACHE_HOME/fincalcauth on Linux; see
// os.UserCacheDir), which only the user can read: the folder has mode
// 0700 and its files 0600, and looser modes are repaired when read.
// Entries are sealed with a key derived from the client secret and named
// by a keyed hash of the token URL, client ID, email address and set of
// scopes, so that the folder shows neither the token nor the settings,
// and a service whose Config.Store is a FileStore in the same folder
// shares the token. An entry that cannot be opened is replaced.
//
// -refresh fetches a new token even when one is cached, and caches it;
// -no-cache neither reads nor writes the cache; -clear-cache removes every
// cached token of the user and needs no settings; -status prints the
// settings in use, where the secret comes from and whether a token is
// cached, and sends no request.
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
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/fincalcauthtest"
	"golang.org/x/oauth2"
	"golang.org/x/term"
)

const (
	exitOK          = 0
	exitFail        = 1
	exitUsage       = 2
	exitInterrupted = 130 // 128 + SIGINT, as shells report it

	defaultTimeout = 30 * time.Second
)

// errInterrupted is the cause of a run that Ctrl-C ended.
var errInterrupted = errors.New("interrupted")

func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
	interrupt := make(chan os.Signal, 1)
	signal.Notify(interrupt, os.Interrupt)
	go func() {
		<-interrupt
		cancel(errInterrupted)
	}()
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	os.Exit(code)
}

// options are the command's flags.
type options struct {
	clientID, email, scopes, tokenURL, secretFile string
	json, noCache, clearCache, refresh, status    bool
	demo, verbose, help, version                  bool
	timeout                                       time.Duration
	set                                           map[string]bool // the flags given
}

func newFlagSet(o *options, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("fincalc-token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.clientID, "client-id", "", "client ID (default $FINCALC_CLIENT_ID)")
	fs.StringVar(&o.email, "email", "", "email address of the FinCalc login (default $FINCALC_EMAIL_ADDRESS)")
	fs.StringVar(&o.scopes, "scopes", "", "scopes, separated by spaces or commas (default $FINCALC_SCOPES)")
	fs.StringVar(&o.tokenURL, "token-url", "", "token endpoint (default $FINCALC_TOKEN_URL, else FinCalc's)")
	fs.StringVar(&o.secretFile, "client-secret-file", "", "read the client secret from this file, - for stdin (default $FINCALC_CLIENT_SECRET)")
	fs.BoolVar(&o.json, "json", false, "print a JSON object with access_token, token_type, expiry and expires_in")
	fs.BoolVar(&o.refresh, "refresh", false, "fetch a new token even if one is cached, and cache it")
	fs.BoolVar(&o.noCache, "no-cache", false, "neither read nor write the token cache")
	fs.BoolVar(&o.clearCache, "clear-cache", false, "remove every cached token of this user, and fetch nothing; needs no settings")
	fs.BoolVar(&o.status, "status", false, "print the settings in use and whether a token is cached, and send no request")
	fs.DurationVar(&o.timeout, "timeout", defaultTimeout, "give up after this long, retries included")
	fs.BoolVar(&o.verbose, "v", false, "tell on standard error what happens: cache, attempts, waits")
	fs.BoolVar(&o.demo, "demo", false, "fetch a token from a fake FinCalc started in this process")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.BoolVar(&o.help, "help", false, "print this help and exit")
	fs.BoolVar(&o.help, "h", false, "print this help and exit")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fincalc-token [flags]; fincalc-token -help tells more")
	}
	return fs
}

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	var o options
	fs := newFlagSet(&o, stderr)
	for _, a := range args {
		if name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "="); strings.HasPrefix(a, "-") && name == "client-secret" {
			fmt.Fprintln(stderr, "fincalc-token: the secret is not taken from a flag, since other users can read the command line; set FINCALC_CLIENT_SECRET or use -client-secret-file")
			return exitUsage
		}
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	o.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "fincalc-token: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	dir := cacheDir(getenv)
	switch {
	case o.help:
		printHelp(fs, dir, stdout)
		return exitOK
	case o.version:
		fmt.Fprintln(stdout, "fincalc-token", version())
		return exitOK
	case o.timeout <= 0:
		fmt.Fprintf(stderr, "fincalc-token: -timeout (%v) must be positive\n", o.timeout)
		return exitUsage
	case o.demo:
		return runDemo(ctx, o, stdout, stderr)
	case o.clearCache:
		return clearCache(o, dir, stderr)
	}

	s, problems := settings(ctx, o, getenv, stdin, stderr)
	if errors.Is(context.Cause(ctx), errInterrupted) {
		return interrupted(stderr)
	}
	if o.status {
		printStatus(ctx, s, dir, o, stdout)
		if len(problems) == 0 {
			return exitOK
		}
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(stderr, "fincalc-token:", p)
		}
		return exitUsage
	}
	c := newCache(dir, s.cfg)
	if o.noCache || dir == "" {
		c = nil
	}
	tok, err := obtain(ctx, s.cfg, c, o, stderr)
	if errors.Is(context.Cause(ctx), errInterrupted) {
		return interrupted(stderr)
	}
	if err != nil {
		fmt.Fprintln(stderr, err) // the library's message: what FinCalc answered, how long it asked to wait, or the -timeout
		return exitFail
	}
	return printToken(tok, o.json, stdout, stderr)
}

func interrupted(stderr io.Writer) int {
	fmt.Fprintln(stderr, "fincalc-token: interrupted")
	return exitInterrupted
}

// obtain returns a token for cfg: from c, unless o.refresh, or fetched
// within o.timeout and saved in c. A nil c is no cache.
func obtain(ctx context.Context, cfg *fincalcauth.Config, c *cache, o options, stderr io.Writer) (*oauth2.Token, error) {
	say := func(format string, args ...any) {
		if o.verbose {
			fmt.Fprintf(stderr, "fincalc-token: "+format+"\n", args...)
		}
	}
	switch {
	case c == nil:
		say("no cache")
	case o.refresh:
		say("-refresh: not reading the cache")
	default:
		if tok := c.load(ctx, time.Now()); tok != nil {
			say("cache hit: a token that expires at %s", tok.Expiry.UTC().Format(time.RFC3339))
			return tok, nil
		}
		say("cache miss")
	}
	if o.verbose {
		cfg.Logger = slog.New(&verboseHandler{w: stderr})
	}
	ctx, cancel := context.WithTimeoutCause(ctx, o.timeout, fmt.Errorf("no token within -timeout %v", o.timeout))
	defer cancel()
	tok, err := cfg.Token(ctx)
	if err != nil {
		return nil, err
	}
	if err := c.save(ctx, tok); err != nil {
		fmt.Fprintln(stderr, "fincalc-token: warning: token not cached:", err)
	} else if c != nil {
		say("token cached")
	}
	return tok, nil
}

// verboseHandler writes the library's records, one line each, for -v.
// The library keeps tokens and the secret out of them.
type verboseHandler struct {
	w     io.Writer
	attrs []slog.Attr
}

func (h *verboseHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *verboseHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString("fincalc-token: ")
	b.WriteString(strings.TrimPrefix(r.Message, "fincalcauth: "))
	write := func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	}
	for _, a := range h.attrs {
		write(a)
	}
	r.Attrs(write)
	b.WriteByte('\n')
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *verboseHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &verboseHandler{w: h.w, attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...)}
}

func (h *verboseHandler) WithGroup(string) slog.Handler { return h }

// setting is one setting as the user gave it.
type setting struct {
	source string // what the user set: "FINCALC_EMAIL_ADDRESS" or "-email"; "default" for none
	value  string
}

// resolved are the settings of a run.
type resolved struct {
	cfg          *fincalcauth.Config
	by           map[string]setting // by Config field
	secretSource string             // where the secret came from; "" if nowhere
}

// settings builds the Config from flags, environment and defaults, or
// lists what is missing or wrong, in the terms the user gave them.
func settings(ctx context.Context, o options, getenv func(string) string, stdin io.Reader, stderr io.Writer) (resolved, []string) {
	var problems []string
	r := resolved{cfg: &fincalcauth.Config{}, by: map[string]setting{}}
	pick := func(field, flagName, flagValue, env string, required bool) string {
		if o.set[flagName] {
			r.by[field] = setting{"-" + flagName, flagValue}
			return flagValue
		}
		if v := strings.TrimSpace(getenv(env)); v != "" {
			r.by[field] = setting{env, v}
			return v
		}
		if required {
			problems = append(problems, fmt.Sprintf("%s is not set (or use -%s)", env, flagName))
		}
		return ""
	}
	r.cfg.ClientID = pick("ClientID", "client-id", o.clientID, "FINCALC_CLIENT_ID", true)
	r.cfg.EmailAddress = pick("EmailAddress", "email", o.email, "FINCALC_EMAIL_ADDRESS", true)
	r.cfg.TokenURL = pick("TokenURL", "token-url", o.tokenURL, "FINCALC_TOKEN_URL", false)
	if scopes := pick("Scopes", "scopes", o.scopes, "FINCALC_SCOPES", true); scopes != "" {
		r.cfg.Scopes = strings.FieldsFunc(scopes, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
		if len(r.cfg.Scopes) == 0 {
			problems = append(problems, fmt.Sprintf("%s (%q) names no scope", r.by["Scopes"].source, scopes))
		}
	}
	switch {
	case o.secretFile != "":
		secret, err := readSecret(ctx, o.secretFile, stdin, stderr)
		if err != nil {
			problems = append(problems, err.Error())
		}
		r.cfg.ClientSecret = secret
		r.secretSource = "the file " + o.secretFile + " (-client-secret-file)"
		if o.secretFile == "-" {
			r.secretSource = "standard input (-client-secret-file -)"
		}
		r.by["ClientSecret"] = setting{source: "-client-secret-file"}
	case getenv("FINCALC_CLIENT_SECRET") != "":
		r.cfg.ClientSecret = getenv("FINCALC_CLIENT_SECRET")
		r.secretSource = "the environment (FINCALC_CLIENT_SECRET)"
		r.by["ClientSecret"] = setting{source: "FINCALC_CLIENT_SECRET"}
	default:
		problems = append(problems, "FINCALC_CLIENT_SECRET is not set (or use -client-secret-file)")
	}
	if len(problems) == 0 {
		// Empty values are reported above, by their variable's name.
		problems = configProblems(r)
	}
	return r, problems
}

// configProblems lists what Config.Validate finds, naming the variable or
// flag that each bad value came from, with the value as the user typed
// it (the secret excepted).
func configProblems(r resolved) []string {
	err := r.cfg.Validate()
	if err == nil {
		return nil
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	var problems []string
	for _, e := range errs {
		var ce *fincalcauth.ConfigError
		if !errors.As(e, &ce) {
			problems = append(problems, e.Error())
			continue
		}
		s := r.by[ce.Field]
		if s.source == "" {
			s.source = ce.Field
		}
		if ce.Field == "ClientSecret" {
			problems = append(problems, s.source+": the secret "+ce.Problem)
			continue
		}
		typed := quoteAsTyped(s.value)
		// The library's problem starts with the value it found wrong;
		// the user's own value, as typed, stands in for a whole one.
		reason := ce.Problem
		if q, err := strconv.QuotedPrefix(reason); err == nil && ce.Field != "Scopes" {
			reason = strings.TrimPrefix(reason, q)
			problems = append(problems, s.source+" ("+typed+")"+reason)
			continue
		} else if err == nil {
			reason = "the scope " + reason
		}
		problems = append(problems, s.source+" ("+typed+"): "+reason)
	}
	return problems
}

// quoteAsTyped quotes v as the user typed it, but for the password of a
// URL, which it masks.
func quoteAsTyped(v string) string {
	if u, err := url.Parse(v); err == nil && u.User != nil {
		if _, hasPassword := u.User.Password(); hasPassword {
			return strconv.Quote(u.Redacted())
		}
	} else if err != nil && strings.Contains(v, "@") {
		return `"(not shown: it may hold a password)"`
	}
	return strconv.Quote(v)
}

// readSecret reads the secret from path, or stdin for "-", without its
// trailing newline. On a terminal it prompts on stderr and does not echo.
func readSecret(ctx context.Context, path string, stdin io.Reader, stderr io.Writer) (string, error) {
	var b []byte
	var err error
	switch {
	case path == "-" && isTerminal(stdin):
		b, err = readPassword(ctx, stdin.(*os.File), stderr)
	case path == "-":
		b, err = io.ReadAll(io.LimitReader(stdin, 64<<10))
	default:
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return "", fmt.Errorf("-client-secret-file %s: %v", path, err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("-client-secret-file %s is empty", path)
	}
	return s, nil
}

func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// readPassword prompts on stderr and reads a line from the terminal f
// with echo off, restoring the terminal when done or interrupted.
func readPassword(ctx context.Context, f *os.File, stderr io.Writer) ([]byte, error) {
	fd := int(f.Fd())
	state, err := term.GetState(fd)
	if err != nil {
		return nil, err
	}
	defer term.Restore(fd, state)
	fmt.Fprint(stderr, "FinCalc client secret (not shown): ")
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := term.ReadPassword(fd)
		done <- result{b, err}
	}()
	select {
	case r := <-done:
		fmt.Fprintln(stderr)
		return r.b, r.err
	case <-ctx.Done():
		fmt.Fprintln(stderr)
		return nil, context.Cause(ctx)
	}
}

// refused reports, with why (a format of the flag's name), the first of
// the named flags that the run was given, if any: flags that a mode
// would ignore are refused, not ignored silently.
func refused(o options, stderr io.Writer, why string, names ...string) bool {
	for _, name := range names {
		if o.set[name] {
			fmt.Fprintf(stderr, "fincalc-token: "+why+"\n", name)
			return true
		}
	}
	return false
}

// clearCache removes every cached token of the user: it needs no settings,
// since an entry left by a rotated secret cannot be found by the new one.
func clearCache(o options, dir string, stderr io.Writer) int {
	if refused(o, stderr, "-clear-cache takes no -%s: it removes every cached token",
		"client-id", "email", "scopes", "token-url", "client-secret-file", "refresh", "no-cache", "status", "json") {
		return exitUsage
	}
	if dir == "" {
		fmt.Fprintln(stderr, "fincalc-token: -clear-cache: this user has no cache folder")
		return exitUsage
	}
	if err := fincalcauth.NewFileStore(dir).Clear(); err != nil {
		fmt.Fprintln(stderr, "fincalc-token:", err)
		return exitFail
	}
	if o.verbose {
		fmt.Fprintln(stderr, "fincalc-token: cleared", dir)
	}
	return exitOK
}

// printStatus prints what a run would use, and sends no request.
func printStatus(ctx context.Context, r resolved, dir string, o options, stdout io.Writer) {
	line := func(label, value string) { fmt.Fprintf(stdout, "%-14s %s\n", label+":", value) }
	show := func(label, field, value string) {
		s, ok := r.by[field]
		switch {
		case !ok && field == "TokenURL":
			line(label, fincalcauth.TokenURL+" (default)")
		case !ok:
			line(label, "not set")
		default:
			line(label, value+" ("+s.source+")")
		}
	}
	show("client ID", "ClientID", r.cfg.ClientID)
	show("email address", "EmailAddress", r.cfg.EmailAddress)
	show("scopes", "Scopes", strings.Join(r.cfg.Scopes, " "))
	show("token URL", "TokenURL", quoteAsTyped(r.cfg.TokenURL))
	if r.secretSource == "" {
		line("client secret", "not set")
	} else {
		line("client secret", "set, from "+r.secretSource)
	}
	switch {
	case o.noCache:
		line("cache", "not used (-no-cache)")
		return
	case dir == "":
		line("cache", "none: this user has no cache folder")
		return
	}
	line("cache", dir)
	if r.secretSource == "" || r.cfg.Validate() != nil {
		line("cached token", "unknown: the settings are incomplete")
		return
	}
	c := newCache(dir, r.cfg)
	v, err := c.store.Load(ctx, c.box.Name())
	switch t := c.box.Open(v); {
	case err != nil:
		line("cached token", "unreadable: "+err.Error())
	case t == nil:
		line("cached token", "none")
	default:
		left := time.Until(t.Expiry).Round(time.Second)
		line("cached token", fmt.Sprintf("expires at %s (in %v)", t.Expiry.UTC().Format(time.RFC3339), left))
	}
}

func printToken(tok *oauth2.Token, asJSON bool, stdout, stderr io.Writer) int {
	var err error
	if asJSON {
		err = json.NewEncoder(stdout).Encode(struct {
			AccessToken string `json:"access_token"`
			TokenType   string `json:"token_type"`
			Expiry      string `json:"expiry"`
			ExpiresIn   int64  `json:"expires_in"`
		}{tok.AccessToken, tok.Type(), tok.Expiry.UTC().Format(time.RFC3339), int64(time.Until(tok.Expiry) / time.Second)})
	} else {
		_, err = fmt.Fprintln(stdout, tok.AccessToken)
	}
	if err != nil {
		fmt.Fprintln(stderr, "fincalc-token: writing the token:", err)
		return exitFail
	}
	return exitOK
}

// runDemo fetches a token from a fake FinCalc started in this process,
// through the same path as a real run, and tells what happened.
func runDemo(ctx context.Context, o options, stdout, stderr io.Writer) int {
	if refused(o, stderr, "-demo uses a fake FinCalc of its own and would ignore -%s",
		"client-id", "email", "scopes", "token-url", "client-secret-file", "refresh", "no-cache", "clear-cache", "status") {
		return exitUsage
	}
	srv := fincalcauthtest.NewServer()
	defer srv.Close()
	fmt.Fprintf(stderr, "demo: started a fake FinCalc at %s\n", srv.URL)

	cfg := srv.ClientConfig(fincalcauth.ScopeFactFind, fincalcauth.ScopeClientInformation)
	tok, err := obtain(ctx, cfg, nil, o, stderr)
	if req, ok := srv.LastTokenRequest(); ok {
		fields := req.Fields
		if _, ok := fields["client_secret"]; ok {
			fields["client_secret"] = "REDACTED"
		}
		body, _ := json.MarshalIndent(fields, "      ", "  ")
		fmt.Fprintf(stderr, "demo: sent POST %s\n      Content-Type: %s\n      %s\n", srv.TokenURL, req.ContentType, body)
	}
	if errors.Is(context.Cause(ctx), errInterrupted) {
		return interrupted(stderr)
	}
	if err != nil {
		fmt.Fprintln(stderr, err) // the library's message: what FinCalc answered, how long it asked to wait, or the -timeout
		return exitFail
	}
	fmt.Fprintf(stderr, "demo: the fake FinCalc answered {\"success\": true, \"data\": {...}}: a %s token that expires at %s (in %v)\n",
		tok.Type(), tok.Expiry.UTC().Format(time.RFC3339), time.Duration(tok.ExpiresIn)*time.Second)
	fmt.Fprintln(stderr, "demo: the token, on standard output:")
	return printToken(tok, o.json, stdout, stderr)
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

func printHelp(fs *flag.FlagSet, dir string, stdout io.Writer) {
	if dir == "" {
		dir = "none: this user has no cache folder"
	}
	fmt.Fprintf(stdout, `usage: fincalc-token [flags]

Prints a FinCalc access token on standard output, for use on a command line:

  curl -H "Authorization: Bearer $(fincalc-token)" https://api.fincalc.co.uk/api/v2/clients

Settings come from the environment; flags override them. The secret comes
from FINCALC_CLIENT_SECRET or -client-secret-file, never from a flag's value.

  FINCALC_CLIENT_ID      -client-id           the client ID FinCalc issued
  FINCALC_CLIENT_SECRET  -client-secret-file  the client secret ("-": standard input)
  FINCALC_EMAIL_ADDRESS  -email               the email address of your FinCalc login
  FINCALC_SCOPES         -scopes              scopes, separated by spaces or commas
  FINCALC_TOKEN_URL      -token-url           the token endpoint (default %s)

Scopes: %s (fact-find data of a client), %s (household
financial data), %s (client information).

Tokens are cached, sealed, in %s,
and reused while more than 5 minutes remain.

Exit status: 0 success, 1 the token could not be had, 2 a bad or missing
setting or flag, 130 interrupted (Ctrl-C).

Flags:
`, fincalcauth.TokenURL, fincalcauth.ScopeFactFind, fincalcauth.ScopeClientFinancials, fincalcauth.ScopeClientInformation, dir)
	fs.SetOutput(stdout)
	fs.PrintDefaults()
}
