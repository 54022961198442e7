package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gofincalc/fincalcauth"
	"golang.org/x/term"
)

// settingsTable lists the settings: -help shows it, the flags are made
// from it, and messages name its variables and flags.
var settingsTable = []struct {
	field, env, flag, about string
	dest                    func(*options) *string // the flag's value
}{
	{"ClientID", "FINCALC_CLIENT_ID", "client-id", "the client ID FinCalc issued", func(o *options) *string { return &o.clientID }},
	{"ClientSecret", "FINCALC_CLIENT_SECRET", "client-secret-file", `the client secret (the flag: a file that holds it, "-" for stdin)`, func(o *options) *string { return &o.secretFile }},
	{"EmailAddress", "FINCALC_EMAIL_ADDRESS", "email", "the email address of your FinCalc login", func(o *options) *string { return &o.email }},
	{"Scopes", "FINCALC_SCOPES", "scopes", "scopes, separated by spaces or commas", func(o *options) *string { return &o.scopes }},
	{"TokenURL", "FINCALC_TOKEN_URL", "token-url", "the token endpoint (default: FinCalc's)", func(o *options) *string { return &o.tokenURL }},
}

// setting is one setting as the user gave it.
type setting struct {
	source string // what the user set: "FINCALC_EMAIL_ADDRESS" or "-email"
	value  string
}

// resolved are the settings of a run.
type resolved struct {
	cfg          *fincalcauth.Config
	by           map[string]setting // by Config field, for those the user gave
	secretSource string             // where the secret came from; "" if nowhere
}

// settings builds the run's Config from flags, environment and defaults
// into c.r, and lists what is missing or wrong, in the terms the user
// gave them. It fails only if ctx ends while the secret is read.
func (c *command) settings(ctx context.Context) ([]string, error) {
	var problems []string
	r := resolved{cfg: &fincalcauth.Config{}, by: map[string]setting{}}
	pick := func(field string, required bool) string {
		for _, s := range settingsTable {
			switch {
			case s.field != field:
			case c.o.set[s.flag]:
				v := *s.dest(&c.o)
				r.by[field] = setting{"-" + s.flag, v}
				return v
			case strings.TrimSpace(c.getenv(s.env)) != "":
				v := strings.TrimSpace(c.getenv(s.env))
				r.by[field] = setting{s.env, v}
				return v
			case required:
				problems = append(problems, fmt.Sprintf("%s is not set (or use -%s)", s.env, s.flag))
			}
		}
		return ""
	}
	o := c.o
	r.cfg.ClientID = pick("ClientID", true)
	r.cfg.EmailAddress = pick("EmailAddress", true)
	r.cfg.TokenURL = pick("TokenURL", false)
	if scopes := pick("Scopes", true); scopes != "" {
		r.cfg.Scopes = strings.FieldsFunc(scopes, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
		if len(r.cfg.Scopes) == 0 {
			problems = append(problems, fmt.Sprintf("%s (%q) names no scope", r.by["Scopes"].source, scopes))
		}
	}
	switch {
	case o.secretFile != "":
		r.secretSource = "the file " + o.secretFile + " (-client-secret-file)"
		if o.secretFile == "-" {
			r.secretSource = "standard input (-client-secret-file -)"
		}
		r.by["ClientSecret"] = setting{source: "-client-secret-file"}
		secret, err := c.readSecret(ctx, o.secretFile, r.secretSource)
		if te := (*timeoutError)(nil); ctx.Err() != nil || errors.As(err, &te) {
			return nil, err
		}
		if err != nil {
			problems = append(problems, err.Error())
		}
		r.cfg.ClientSecret = secret
	case c.getenv("FINCALC_CLIENT_SECRET") != "":
		r.cfg.ClientSecret = c.getenv("FINCALC_CLIENT_SECRET")
		r.secretSource = "the environment (FINCALC_CLIENT_SECRET)"
		r.by["ClientSecret"] = setting{source: "FINCALC_CLIENT_SECRET"}
	default:
		problems = append(problems, "FINCALC_CLIENT_SECRET is not set (or use -client-secret-file)")
	}
	c.r = r
	if len(problems) == 0 {
		// Empty values are reported above, by their variable's name.
		problems = configProblems(r)
	}
	return problems, nil
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
		s, ok := r.by[ce.Field]
		if !ok {
			s.source = ce.Field
		}
		switch {
		case ce.Field == "ClientSecret":
			problems = append(problems, s.source+": the secret "+ce.Problem)
		case ce.Field == "Scopes":
			problems = append(problems, s.source+" ("+quoteAsTyped(s.value)+"): the scope "+ce.Problem)
		default:
			// The user's value, as typed, stands in for the library's
			// quote of the whole value, if the problem starts with one.
			reason, whole := strings.CutPrefix(ce.Problem, strconv.Quote(ce.Value)+" ")
			if !whole || ce.Value == "" {
				reason = ": " + ce.Problem
			} else {
				reason = " " + reason
			}
			problems = append(problems, s.source+" ("+quoteAsTyped(s.value)+")"+reason)
		}
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

// maxSecret bounds what is read of a secret's file or stdin, which may
// be a device that never ends.
const maxSecret = 64 << 10

// readSecret reads the secret from path, or stdin for "-", without its
// trailing newline, under the run's -timeout and until ctx ends. On a
// terminal it prompts on stderr, does not echo, and starts -timeout anew
// once the secret is typed. source says where the secret comes from.
func (c *command) readSecret(ctx context.Context, path, source string) (string, error) {
	var b []byte
	var err error
	switch {
	case path == "-" && isTerminal(c.stdin):
		b, err = readPassword(ctx, c.stdin.(*os.File), c.stderr)
		c.deadline = time.Now().Add(c.o.timeout)
	default:
		read := func() ([]byte, error) {
			r := c.stdin
			if path != "-" {
				f, err := os.Open(path)
				if err != nil {
					return nil, err
				}
				defer f.Close()
				r = f
			}
			b, err := io.ReadAll(io.LimitReader(r, maxSecret+1))
			if err == nil && len(b) > maxSecret {
				err = fmt.Errorf("more than %d bytes: not a client secret", maxSecret)
			}
			return b, err
		}
		c.say("reading the client secret from %s", source)
		sctx, done := c.stage(ctx, "the client secret from "+source)
		b, err = bounded(sctx, read)
		done()
	}
	if ctx.Err() != nil {
		return "", context.Cause(ctx)
	}
	if err != nil {
		var te *timeoutError
		if errors.As(err, &te) {
			return "", err
		}
		return "", fmt.Errorf("-client-secret-file %s: %v", path, err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("-client-secret-file %s is empty", path)
	}
	return s, nil
}

func isTerminal(v any) bool {
	f, ok := v.(*os.File)
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
	b, err := bounded(ctx, func() ([]byte, error) { return term.ReadPassword(fd) })
	fmt.Fprintln(stderr)
	return b, err
}
