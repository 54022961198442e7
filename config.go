package fincalcauth

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/url"
	"strings"
	"time"
)

// Config describes FinCalc's client-credentials flow: the credentials of the
// client application and the endpoint that issues its tokens.
//
// A token request is a POST of a JSON object with the five documented
// fields: grant_type ("client_credentials"), client_id, client_secret,
// scope (the Scopes joined by spaces) and email_address.
//
// A Config is read, never modified, by its methods. [Config.TokenSource] and
// [Config.Client] take a copy, so changing a Config after calling them does
// not affect sources and clients made before. An invalid Config makes
// them, and [Config.Token], fail before any network I/O with the error of
// [Config.Validate].
type Config struct {
	// ClientID is the client identifier issued by FinCalc. Required.
	ClientID string

	// ClientSecret is the secret that goes with ClientID. Required.
	// It is sent only in the body of the token request.
	ClientSecret string

	// EmailAddress is the address used to log in to the FinCalc app.
	// Required: FinCalc refuses a token request without it.
	EmailAddress string

	// Scopes lists the requested scopes, such as [ScopeFactFind]. At least
	// one is required; they are sent joined by single spaces.
	Scopes []string

	// TokenURL is the token endpoint. Empty means [TokenURL], FinCalc's.
	// It must be an absolute https URL; plain http is accepted only for a
	// loopback host (localhost, 127.0.0.0/8 or ::1), as tests use.
	TokenURL string

	// RefreshAhead is how long before its expiry a cached token starts
	// being replaced in the background by [Config.TokenSource] and
	// [Config.Client]. Zero means about half of the token's lifetime
	// (12 hours for FinCalc's 24-hour tokens), less a little jitter that
	// differs from one source to another so that a fleet of processes
	// does not refresh in lockstep. A positive value is used as given.
	// Negative values are invalid. A token is never used within 10
	// seconds of its expiry.
	RefreshAhead time.Duration

	// Logger receives records about background refreshes: Warn when one
	// fails (with the HTTP status, if any, and when the next attempt is
	// due) and Debug when a fetch succeeds after retries. Nil means no
	// logging. No record contains the client secret or a token.
	Logger *slog.Logger
}

// ConfigError reports a Config that cannot be used. Field names the
// offending Config field. A ConfigError is returned before any network I/O.
type ConfigError struct {
	// Field is the name of the Config field, such as "EmailAddress".
	Field string
	// Problem says what is wrong with it.
	Problem string
}

// Error returns "fincalcauth: invalid Config.<Field>: <Problem>".
func (e *ConfigError) Error() string {
	return "fincalcauth: invalid Config." + e.Field + ": " + e.Problem
}

// Validate reports whether c can be used, with no network I/O. It returns
// nil, or an error that joins one [*ConfigError] per problem, so that
// errors.As finds the first. A program can call it at start-up to fail
// early on bad configuration.
func (c *Config) Validate() error {
	if c == nil {
		return &ConfigError{Field: "(Config)", Problem: "nil *Config"}
	}
	var errs []error
	bad := func(field, problem string) {
		errs = append(errs, &ConfigError{Field: field, Problem: problem})
	}
	if c.ClientID == "" {
		bad("ClientID", "empty")
	}
	if c.ClientSecret == "" {
		bad("ClientSecret", "empty")
	}
	switch {
	case c.EmailAddress == "":
		bad("EmailAddress", "empty")
	case !validEmail(c.EmailAddress):
		bad("EmailAddress", fmt.Sprintf("%q is not an email address", c.EmailAddress))
	}
	if len(c.Scopes) == 0 {
		bad("Scopes", "no scope given; use one or more of the Scope constants")
	}
	for i, s := range c.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\r\n") {
			bad("Scopes", fmt.Sprintf("entry %d (%q) is empty or contains white space", i, s))
		}
	}
	if err := checkTokenURL(c.tokenURL()); err != "" {
		bad("TokenURL", err)
	}
	if c.RefreshAhead < 0 {
		bad("RefreshAhead", fmt.Sprintf("negative (%v)", c.RefreshAhead))
	}
	return errors.Join(errs...)
}

func (c *Config) tokenURL() string {
	if c.TokenURL == "" {
		return TokenURL
	}
	return c.TokenURL
}

// validEmail reports whether s is a bare address such as "a@example.com",
// with no display name or angle brackets.
func validEmail(s string) bool {
	a, err := mail.ParseAddress(s)
	return err == nil && a.Name == "" && a.Address == s && strings.Contains(s, "@")
}

// checkTokenURL returns what is wrong with raw as a token URL, or "".
func checkTokenURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Sprintf("%q is not a URL", raw)
	}
	if !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return fmt.Sprintf("%q is not an absolute URL", u.Redacted())
	}
	if u.User != nil {
		return fmt.Sprintf("%q has user information; credentials go in ClientID and ClientSecret", u.Redacted())
	}
	switch u.Scheme {
	case "https":
		return ""
	case "http":
		if isLoopback(u.Hostname()) {
			return ""
		}
		return fmt.Sprintf("%q uses plain http to a host that is not loopback; the client secret is never sent in clear text", u.Redacted())
	default:
		return fmt.Sprintf("%q: scheme %q is not https", u.Redacted(), u.Scheme)
	}
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// plainConfig has Config's fields and none of its methods, for Format.
type plainConfig Config

// Format formats c as fmt would format a struct with Config's fields,
// except that a non-empty ClientSecret is printed as REDACTED.
//
// Its receiver is a value, unlike the other methods', so that a Config
// and a *Config are both redacted: a pointer receiver would leave a plain
// Config, or one inside another value, printed in full.
func (c Config) Format(f fmt.State, verb rune) {
	p := plainConfig(c)
	if p.ClientSecret != "" {
		p.ClientSecret = "REDACTED"
	}
	s := fmt.Sprintf(fmt.FormatString(f, verb), p)
	if verb == 'v' && f.Flag('#') {
		s = strings.Replace(s, "fincalcauth.plainConfig", "fincalcauth.Config", 1)
	}
	fmt.Fprint(f, s)
}
