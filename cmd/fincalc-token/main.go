// Command fincalc-token prints a FinCalc access token, for use on a
// command line:
//
//	curl -H "Authorization: Bearer $(fincalc-token)" https://api.fincalc.co.uk/api/v2/clients
//
// Install it with
//
//	go install github.com/gofincalc/fincalcauth/cmd/fincalc-token@latest
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
// machine can read a command line. A missing setting ends the command with
// exit status 2 and a message naming it; no request is sent.
//
// # Output
//
// On success it prints the access token and a newline on standard output,
// or with -json an object {"access_token", "token_type", "expiry"} with an
// RFC 3339 expiry, and exits 0. On failure it prints the error, with
// FinCalc's description, on standard error and exits 1; standard output
// stays empty. The secret appears in no output.
//
// # Cache
//
// A token is reused across runs while it has more than 5 minutes left. It
// is kept by the library's file store (see fincalcauth.FileStore) in the
// user's cache folder ($XDG_CACHE_HOME/fincalcauth on Linux; see
// os.UserCacheDir), which only the user can read: the folder has mode
// 0700 and its files 0600. Entries are sealed with a key derived from the
// client secret and named by a keyed hash of the token URL, client ID,
// email address and set of scopes, so that the folder shows neither the
// token nor the settings, and a service whose Config.Store is a FileStore
// in the same folder shares the token. An entry that cannot be opened is
// replaced. -no-cache neither reads nor writes the cache; -clear-cache
// removes the entry of the current settings and fetches nothing.
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
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/fincalcauthtest"
	"golang.org/x/oauth2"
)

const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2

	// fetchTimeout bounds a run's token fetch, retries included.
	fetchTimeout = time.Minute
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// options are the command's flags.
type options struct {
	clientID, email, scopes, tokenURL, secretFile string
	json, noCache, clearCache, demo               bool
}

func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fincalc-token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.clientID, "client-id", "", "client ID (default $FINCALC_CLIENT_ID)")
	fs.StringVar(&o.email, "email", "", "email address of the FinCalc login (default $FINCALC_EMAIL_ADDRESS)")
	fs.StringVar(&o.scopes, "scopes", "", "scopes, separated by spaces or commas (default $FINCALC_SCOPES)")
	fs.StringVar(&o.tokenURL, "token-url", "", "token endpoint (default $FINCALC_TOKEN_URL, else FinCalc's)")
	fs.StringVar(&o.secretFile, "client-secret-file", "", "read the client secret from this file, - for stdin (default $FINCALC_CLIENT_SECRET)")
	fs.BoolVar(&o.json, "json", false, "print a JSON object with access_token, token_type and expiry")
	fs.BoolVar(&o.noCache, "no-cache", false, "neither read nor write the token cache")
	fs.BoolVar(&o.clearCache, "clear-cache", false, "remove the cached token of these settings, and fetch nothing")
	fs.BoolVar(&o.demo, "demo", false, "fetch a token from a fake FinCalc started in this process")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: fincalc-token [flags]\n\nPrints a FinCalc access token. Settings come from FINCALC_* environment\nvariables; flags override them. The secret comes from FINCALC_CLIENT_SECRET\nor -client-secret-file, never from a flag's value.\n\n")
		fs.PrintDefaults()
	}
	for _, a := range args {
		if name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "="); strings.HasPrefix(a, "-") && name == "client-secret" {
			fmt.Fprintln(stderr, "fincalc-token: the secret is not taken from a flag, since other users can read the command line; set FINCALC_CLIENT_SECRET or use -client-secret-file")
			return exitUsage
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "fincalc-token: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}

	if o.demo {
		return runDemo(ctx, o, stdout, stderr)
	}

	cfg, problems := settings(o, getenv, stdin)
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(stderr, "fincalc-token:", p)
		}
		return exitUsage
	}
	return fetchAndPrint(ctx, cfg, o, cacheDir(), stdout, stderr)
}

// settings builds the Config from flags and environment, or lists what
// is missing or wrong.
func settings(o options, getenv func(string) string, stdin io.Reader) (*fincalcauth.Config, []string) {
	var problems []string
	pick := func(flagValue, env, flagName string) string {
		if flagValue != "" {
			return flagValue
		}
		v := strings.TrimSpace(getenv(env))
		if v == "" {
			problems = append(problems, fmt.Sprintf("%s is not set (or use -%s)", env, flagName))
		}
		return v
	}
	cfg := &fincalcauth.Config{
		ClientID:     pick(o.clientID, "FINCALC_CLIENT_ID", "client-id"),
		EmailAddress: pick(o.email, "FINCALC_EMAIL_ADDRESS", "email"),
		TokenURL:     o.tokenURL,
	}
	if cfg.TokenURL == "" {
		cfg.TokenURL = strings.TrimSpace(getenv("FINCALC_TOKEN_URL"))
	}
	if s := pick(o.scopes, "FINCALC_SCOPES", "scopes"); s != "" {
		cfg.Scopes = strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
		if len(cfg.Scopes) == 0 {
			problems = append(problems, "FINCALC_SCOPES names no scope")
		}
	}
	switch {
	case o.secretFile != "":
		secret, err := readSecret(o.secretFile, stdin)
		if err != nil {
			problems = append(problems, err.Error())
		}
		cfg.ClientSecret = secret
	case getenv("FINCALC_CLIENT_SECRET") != "":
		cfg.ClientSecret = getenv("FINCALC_CLIENT_SECRET")
	default:
		problems = append(problems, "FINCALC_CLIENT_SECRET is not set (or use -client-secret-file)")
	}
	if len(problems) == 0 {
		// Empty values are reported above, by their variable's name.
		problems = configProblems(cfg)
	}
	return cfg, problems
}

// configProblems lists what Config.Validate finds.
func configProblems(cfg *fincalcauth.Config) []string {
	err := cfg.Validate()
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
		if errors.As(e, &ce) {
			problems = append(problems, "invalid "+ce.Field+": "+ce.Problem)
		} else {
			problems = append(problems, e.Error())
		}
	}
	return problems
}

// readSecret reads the secret from path, or stdin for "-", without its
// trailing newline.
func readSecret(path string, stdin io.Reader) (string, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(io.LimitReader(stdin, 64<<10))
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return "", fmt.Errorf("-client-secret-file: %v", err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("-client-secret-file %s is empty", path)
	}
	return s, nil
}

// fetchAndPrint prints a token for cfg, from the cache in dir when it
// can. dir "" means no cache.
func fetchAndPrint(ctx context.Context, cfg *fincalcauth.Config, o options, dir string, stdout, stderr io.Writer) int {
	c := newCache(dir, cfg)
	if o.noCache || dir == "" {
		c = nil
	}
	if o.clearCache {
		if c == nil {
			fmt.Fprintln(stderr, "fincalc-token: -clear-cache: no cache to clear")
			return exitUsage
		}
		if err := c.store.Clear(); err != nil {
			fmt.Fprintln(stderr, "fincalc-token:", err)
			return exitFail
		}
		return exitOK
	}

	tok, err := obtain(ctx, cfg, c, stderr)
	if err != nil {
		fmt.Fprintln(stderr, err) // "fincalcauth: ..."
		return exitFail
	}
	return printToken(tok, o.json, stdout, stderr)
}

// obtain returns a token for cfg from c, or fetches one and stores it in
// c. A nil c is no cache.
func obtain(ctx context.Context, cfg *fincalcauth.Config, c *cache, stderr io.Writer) (*oauth2.Token, error) {
	if tok := c.load(ctx, time.Now()); tok != nil {
		return tok, nil
	}
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	tok, err := cfg.Token(ctx)
	if err != nil {
		return nil, err
	}
	if err := c.save(ctx, tok); err != nil {
		fmt.Fprintln(stderr, "fincalc-token: warning: token not cached:", err)
	}
	return tok, nil
}

func printToken(tok *oauth2.Token, asJSON bool, stdout, stderr io.Writer) int {
	var err error
	if asJSON {
		err = json.NewEncoder(stdout).Encode(struct {
			AccessToken string `json:"access_token"`
			TokenType   string `json:"token_type"`
			Expiry      string `json:"expiry"`
		}{tok.AccessToken, tok.Type(), tok.Expiry.UTC().Format(time.RFC3339)})
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
	srv := fincalcauthtest.NewServer()
	defer srv.Close()
	fmt.Fprintf(stderr, "demo: started a fake FinCalc at %s\n", srv.URL)

	cfg := srv.ClientConfig(fincalcauth.ScopeFactFind, fincalcauth.ScopeClientInformation)
	tok, err := obtain(ctx, cfg, nil, stderr)
	if req, ok := srv.LastTokenRequest(); ok {
		fields := req.Fields
		if _, ok := fields["client_secret"]; ok {
			fields["client_secret"] = "REDACTED"
		}
		body, _ := json.MarshalIndent(fields, "      ", "  ")
		fmt.Fprintf(stderr, "demo: sent POST %s\n      Content-Type: %s\n      %s\n", srv.TokenURL, req.ContentType, body)
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFail
	}
	fmt.Fprintf(stderr, "demo: the fake FinCalc answered {\"success\": true, \"data\": {...}}: a %s token that expires at %s (in %v)\n",
		tok.Type(), tok.Expiry.UTC().Format(time.RFC3339), time.Duration(tok.ExpiresIn)*time.Second)
	fmt.Fprintln(stderr, "demo: the token, on standard output:")
	return printToken(tok, o.json, stdout, stderr)
}
