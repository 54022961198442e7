package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// The exit statuses.
const (
	exitOK          = 0
	exitFail        = 1
	exitUsage       = 2
	exitInterrupted = 130 // 128 + SIGINT, as shells report it
)

// usageError is a bad or missing setting or flag: exit status 2.
type usageError struct {
	problems []string // one line each
	hint     string   // what to do, if anything
}

func (e *usageError) Error() string { return strings.Join(e.problems, "; ") }

// interruptedError is the cause of a run that Ctrl-C ended: exit status
// 130.
type interruptedError struct{}

func (interruptedError) Error() string { return "interrupted" }

var errInterrupted error = interruptedError{}

// failure is a failed run as -json tells it on stderr.
type failure struct {
	Error      string `json:"error"`
	Status     *int   `json:"status"`      // the token endpoint's HTTP status, if it answered
	RetryAfter *int64 `json:"retry_after"` // the seconds it asked to wait, if it did
	Hint       string `json:"hint,omitempty"`
}

// report tells the user why the run failed, if it did, and returns the
// exit status: the one place where errors are printed.
func (c *command) report(err error) int {
	if err == nil {
		return exitOK
	}
	code := exitFail
	lines := []string{err.Error()}
	var f failure
	var ue *usageError
	var ie interruptedError
	switch {
	case errors.As(err, &ie):
		code = exitInterrupted
	case errors.As(err, &ue):
		code = exitUsage
		lines = ue.problems
		f.Hint = ue.hint
	default:
		f.Hint = c.hint(err)
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		f.Status = &re.Response.StatusCode
		if wait, ok := retryAfter(re.Response.Header.Get("Retry-After"), time.Now()); ok {
			f.RetryAfter = &wait
		}
	}
	if c.mentionsHeld(strings.Join(lines, "\n")) {
		// A server's description that quotes a token, such as the cached
		// one, which the library cannot know of.
		lines = []string{"the error's text is withheld: it mentions a token this command holds"}
		if f.Status != nil {
			lines[0] = fmt.Sprintf("the token endpoint answered %d %s; the error's text is withheld: it mentions a token this command holds", *f.Status, http.StatusText(*f.Status))
		}
	}
	if c.o.json {
		f.Error = strings.Join(lines, "; ")
		b, _ := json.Marshal(f)
		fmt.Fprintf(c.stderr, "%s\n", b)
		return code
	}
	if f.Hint != "" {
		lines = append(lines, f.Hint)
	}
	var b strings.Builder
	for _, l := range lines {
		for line := range strings.Lines(l) {
			b.WriteString("fincalc-token: " + strings.TrimSuffix(line, "\n") + "\n")
		}
	}
	io.WriteString(c.stderr, b.String())
	return code
}

// hint says what to check, for the failures that have an answer to that.
func (c *command) hint(err error) string {
	if c.r.cfg == nil {
		return "" // no settings of the user's: -demo, -clear-cache
	}
	var re *oauth2.RetrieveError
	switch {
	case errors.As(err, &re) && re.Response != nil && re.Response.StatusCode == http.StatusUnauthorized:
		return "FinCalc refused the credentials: check the client ID (" + c.source("ClientID") +
			"), the email address (" + c.source("EmailAddress") + ") and the client secret (" + c.source("ClientSecret") + ")"
	case connectFailed(err):
		where := "the token URL"
		if u, perr := url.Parse(shownURL(c.r.cfg)); perr == nil && u.Host != "" {
			where = u.Host
		}
		if c.source("TokenURL") == "default" {
			return "nothing accepts connections at " + where + ": check FINCALC_TOKEN_URL (not set: FinCalc's own endpoint is used)"
		}
		return "nothing accepts connections at " + where + ": check the token URL (" + c.source("TokenURL") + ")"
	}
	return ""
}

// source names where the run's setting of a Config field came from: a
// variable, a flag, or "default".
func (c *command) source(field string) string {
	if s, ok := c.r.by[field]; ok {
		return s.source
	}
	for _, s := range settingsTable {
		if s.field == field && s.field != "TokenURL" {
			return s.env
		}
	}
	return "default"
}

// retryAfter reads a Retry-After header, in seconds or an HTTP date, as
// whole seconds from now.
func retryAfter(v string, now time.Time) (int64, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
		return n, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, int64(t.Sub(now).Round(time.Second)/time.Second)), true
	}
	return 0, false
}

// connectFailed reports whether err is a failure to connect to an
// address that was found, and not for want of time: a refused
// connection, or a host or network that cannot be reached. The library
// names the kind in the error's text.
func connectFailed(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	return errors.As(err, &op) && op.Op == "dial" && !op.Timeout() && !errors.As(err, &dns)
}
