package fincalcauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gofincalc/fincalcauth/internal/secrettext"
)

// redacted stands in for the secret of a Config that is printed.
const redacted = "REDACTED"

// maxDescription bounds how much of a server's text an error quotes.
const maxDescription = 300

// reporter decides what of a server's text may go into an error or a log
// record: text that mentions one of its secrets, as [secrettext.Check]
// decides, is withheld whole. Its checks stop when ctx is done.
type reporter struct {
	ctx     context.Context
	secrets []string
	all     string // why all text is withheld, if it is
}

// withheld returns why s may not be reported, or "" if it may.
func (p reporter) withheld(s string) string {
	if p.all != "" {
		return p.all
	}
	m, err := secrettext.Check(p.ctx, s, p.secrets...)
	switch {
	case err != nil:
		return "withheld: it could not be checked for secrets (" + err.Error() + ")"
	case m:
		return "withheld: it mentions a secret"
	}
	return ""
}

// text returns s, capped, with control characters escaped, if it may be
// reported; else "" and why not.
func (p reporter) text(s string) (string, string) {
	if why := p.withheld(s); why != "" {
		return "", why
	}
	return truncate(escapeControls(s), maxDescription), ""
}

// keptHeaders are the response headers that a RetrieveError keeps, as
// azcore's log policy does: no other header, nor its name, is reported.
var keptHeaders = []string{"Cache-Control", "Content-Length", "Content-Type", "Date", "Retry-After", "Server", "WWW-Authenticate"}

// response returns a copy of resp fit to keep in an error: its status as
// code and standard text, the values of keptHeaders that mention no
// secret, no body, and a request that leads back to no body either
// (GetBody would return the secret).
func (p reporter) response(resp *http.Response) *http.Response {
	c := *resp
	c.Status = statusLine(resp.StatusCode)
	c.Header = http.Header{}
	for _, k := range keptHeaders {
		for _, v := range resp.Header.Values(k) {
			if p.withheld(v) == "" {
				c.Header.Add(k, escapeControls(v))
			}
		}
	}
	c.Body, c.Trailer, c.TLS = http.NoBody, nil, nil
	if resp.Request != nil {
		c.Request = &http.Request{Method: resp.Request.Method, URL: resp.Request.URL, Proto: resp.Request.Proto, Host: resp.Request.Host, Header: http.Header{}}
	}
	return &c
}

// statusLine returns code and its standard text, never the server's.
func statusLine(code int) string {
	if t := http.StatusText(code); t != "" {
		return strconv.Itoa(code) + " " + t
	}
	return strconv.Itoa(code)
}

// maxTokenValues bounds how many secret members of a 2xx answer are
// searched for; an answer with more has none of its text reported.
const maxTokenValues = 16

// tokenValues returns the values of b's members whose name ends in
// "token" or "secret", decoded, in time linear in len(b); ok is false if
// there are more than maxTokenValues.
func tokenValues(b []byte) (values []string, ok bool) {
	var prev string // the last string literal, decoded, if a colon follows it
	for i := 0; i < len(b); i++ {
		if b[i] != '"' {
			continue
		}
		j := i + 1
		for ; j < len(b) && b[j] != '"'; j++ {
			if b[j] == '\\' {
				j++
			}
		}
		var s string
		if json.Unmarshal(b[i:min(j+1, len(b))], &s) != nil {
			s = string(b[i+1 : min(j, len(b))])
		}
		k := j + 1
		for k < len(b) && strings.IndexByte(" \t\r\n", b[k]) >= 0 {
			k++
		}
		name := strings.ToLower(prev)
		if prev != "" && (strings.HasSuffix(name, "token") || strings.HasSuffix(name, "secret")) && s != "" {
			if values = append(values, s); len(values) > maxTokenValues {
				return nil, false
			}
		}
		prev = ""
		if k < len(b) && b[k] == ':' {
			prev = s
		}
		i = j
	}
	return values, true
}

// describe returns the error code and description of a token endpoint's
// answer: FinCalc's message (an object's "description", or a string),
// or league/oauth2-server's "error_description" and "error".
func describe(body []byte) (code, desc string) {
	var m struct {
		Message     json.RawMessage `json:"message"`
		Error       any             `json:"error"`
		Description any             `json:"error_description"`
	}
	if json.Unmarshal(body, &m) != nil {
		return "", ""
	}
	var d struct{ Description string }
	if json.Unmarshal(m.Message, &desc) != nil && json.Unmarshal(m.Message, &d) == nil {
		desc = d.Description
	}
	if s, ok := m.Description.(string); ok && strings.TrimSpace(desc) == "" {
		desc = s
	}
	code, _ = m.Error.(string)
	return strings.TrimSpace(code), strings.TrimSpace(desc)
}

// transportError reports err, a failure of the transport, such as
// net/http's error that quotes a malformed status or header line: what
// kind of failure it was, its text if it mentions no secret, and err in
// the chain only then; otherwise only the context's error, if err is one.
func transportError(p reporter, what string, err error) error {
	e := &fetchError{msg: what + ": " + transportKind(err), cause: err}
	text, why := p.text(err.Error())
	if why != "" {
		e.msg += " (the error text is " + why + ")"
		e.cause = nil
		for _, ctxErr := range []error{context.Canceled, context.DeadlineExceeded} {
			if errors.Is(err, ctxErr) {
				e.cause = ctxErr
			}
		}
		return e
	}
	e.msg += ": " + text
	return e
}

// transportKind names the kind of a transport failure.
func transportKind(err error) string {
	var dns *net.DNSError
	var op *net.OpError
	var ne net.Error
	switch {
	case verificationFailed(err):
		return "the server's TLS certificate could not be verified, which no retry can mend"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return "timed out"
	case errors.As(err, &dns):
		return "the server's name did not resolve"
	case connRefused(err):
		return "connection refused"
	case connReset(err) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "connection reset or closed"
	case errors.As(err, &op):
		return "connection failed"
	}
	return "the answer is not valid HTTP"
}

// escapeControls writes control characters (C0, DEL, C1, and the line
// and paragraph separators) and invalid UTF-8 as Go escapes, so that
// server text cannot forge a log line or move a terminal's cursor.
func escapeControls(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return isControl(r) || r == utf8.RuneError }) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case isControl(r):
			q := strconv.QuoteRune(r) // \n, \x1b, \u2028
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func isControl(r rune) bool {
	return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029'
}

// truncate shortens s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
