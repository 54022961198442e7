package fincalcauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
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
//
// A Config prints REDACTED in place of a non-empty ClientSecret when
// formatted by fmt, logged by log/slog (it is a [slog.LogValuer]) or
// encoded by encoding/json (see [Config.MarshalJSON]). fmt prints a value
// without calling its methods in two cases, which this cannot cover: a
// verb that fmt finds wrong for the type, such as %p or %w (go vet
// reports them), and a Config inside an unexported field of another value.
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
	// does not refresh in lockstep. A positive value below the token's
	// lifetime is used as given; one at or beyond it counts as zero, since
	// it would put each token in its refresh window from its issue.
	// Negative values are invalid. A token is never used within 10
	// seconds of its expiry.
	RefreshAhead time.Duration

	// Store, if set, shares tokens with the other processes that use the
	// same store and credentials: see [Store]. A source then looks in it
	// before it fetches and saves what it fetches; with a store that is
	// a [Leaser], one source at a time fetches for all of them. Each
	// source starts each refresh at a moment of its own, spread over the
	// last fifth of the time between the token's issue and the refresh
	// point that RefreshAhead sets, so that the sources seldom contend.
	// Nil keeps tokens in this process alone. A token taken from the
	// store has no Extra fields.
	Store Store

	// Logger receives records about fetches: Warn when one of a source or
	// client fails (with the HTTP status, if any, and when the next
	// attempt is due) or its store fails, and Debug for each attempt
	// (its status), each wait before a retry (how long, and whether for
	// backoff or a Retry-After) and a fetch that succeeds after retries.
	// Nil means no logging. No record contains the client secret or a
	// token.
	Logger *slog.Logger

	// Observer, if set, is told about each fetch and its attempts, each
	// store operation, each token a source takes into use and each 401
	// from the API: see [Observer]. Nil reports nothing.
	Observer Observer
}

// ConfigError reports a Config that cannot be used. Field names the
// offending Config field. A ConfigError is returned before any network I/O.
type ConfigError struct {
	// Field is the name of the Config field, such as "EmailAddress".
	Field string
	// Value is the offending value as given: the field's, or for Scopes
	// the one scope at fault. It is always empty for ClientSecret, whose
	// value no error repeats.
	Value string
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
	bad := func(field, value, problem string) {
		if field == "ClientSecret" {
			value = ""
		}
		errs = append(errs, &ConfigError{Field: field, Value: value, Problem: problem})
	}
	if c.ClientID == "" {
		bad("ClientID", "", "empty")
	}
	switch {
	case c.ClientSecret == "":
		bad("ClientSecret", "", "empty")
	case c.ClientSecret == redacted:
		bad("ClientSecret", "", "is the placeholder printed in place of a secret, not a secret")
	}
	for field, v := range map[string]string{"ClientID": c.ClientID, "ClientSecret": c.ClientSecret, "EmailAddress": c.EmailAddress, "TokenURL": c.TokenURL} {
		if !utf8.ValidString(v) {
			// It would go out changed: JSON turns invalid bytes into U+FFFD.
			bad(field, v, "is not valid UTF-8")
		}
	}
	switch {
	case c.EmailAddress == "":
		bad("EmailAddress", "", "empty")
	case !validEmail(c.EmailAddress):
		bad("EmailAddress", c.EmailAddress, fmt.Sprintf("%q is not an email address", c.EmailAddress))
	}
	if len(c.Scopes) == 0 {
		bad("Scopes", "", "no scope given; use one or more of the Scope constants")
	}
	for i, s := range c.Scopes {
		if s == "" || strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 || !utf8.ValidString(s) {
			bad("Scopes", s, fmt.Sprintf("%q (entry %d) is empty or contains white space or control characters", s, i))
		}
	}
	if err := checkTokenURL(c.tokenURL()); err != "" {
		bad("TokenURL", redactedURL(c.TokenURL), err)
	}
	if c.RefreshAhead < 0 {
		bad("RefreshAhead", c.RefreshAhead.String(), fmt.Sprintf("negative (%v)", c.RefreshAhead))
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
		// raw, and url.Error's text, could hold a password: quote neither.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "is not a URL: " + err.Error()
	}
	if !u.IsAbs() || u.Hostname() == "" || u.Opaque != "" {
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
		return fmt.Sprintf("%q has scheme %q, not https", u.Redacted(), u.Scheme)
	}
}

// redactedURL returns raw with any password masked, or "" if raw does
// not parse, since it may then hold one that cannot be found.
func redactedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Redacted()
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// plainConfig has Config's fields and none of its methods, for Format
// and MarshalJSON.
type plainConfig Config

// safe returns c's fields with a non-empty ClientSecret replaced.
func (c Config) safe() plainConfig {
	p := plainConfig(c)
	if p.ClientSecret != "" {
		p.ClientSecret = redacted
	}
	return p
}

// LogValue makes log/slog log c as a group of its fields, with REDACTED
// in place of a non-empty ClientSecret, whether a Store is set, and
// without Logger.
func (c Config) LogValue() slog.Value {
	p := c.safe()
	return slog.GroupValue(
		slog.String("ClientID", p.ClientID),
		slog.String("ClientSecret", p.ClientSecret),
		slog.String("EmailAddress", p.EmailAddress),
		slog.Any("Scopes", p.Scopes),
		slog.String("TokenURL", p.TokenURL),
		slog.Duration("RefreshAhead", p.RefreshAhead),
		slog.Bool("Store", p.Store != nil),
	)
}

// MarshalJSON encodes c as encoding/json would encode a struct with
// Config's fields, except that a non-empty ClientSecret is "REDACTED"
// and Store and Logger are left out. A Config decoded from that has
// ClientSecret "REDACTED", which [Config.Validate] refuses: JSON written
// from a Config can hold a configuration, never the secret.
func (c Config) MarshalJSON() ([]byte, error) {
	p := c.safe()
	return json.Marshal(struct {
		ClientID, ClientSecret, EmailAddress string
		Scopes                               []string
		TokenURL                             string
		RefreshAhead                         time.Duration
	}{p.ClientID, p.ClientSecret, p.EmailAddress, p.Scopes, p.TokenURL, p.RefreshAhead})
}

// Format formats c as fmt would format a struct with Config's fields,
// except that a non-empty ClientSecret is printed as REDACTED.
//
// Its receiver is a value, unlike the other methods', so that a Config
// and a *Config are both redacted: a pointer receiver would leave a plain
// Config, or one inside another value, printed in full.
func (c Config) Format(f fmt.State, verb rune) {
	s := fmt.Sprintf(fmt.FormatString(f, verb), c.safe())
	if verb == 'v' && f.Flag('#') {
		s = strings.Replace(s, "fincalcauth.plainConfig", "fincalcauth.Config", 1)
	}
	fmt.Fprint(f, s)
}
