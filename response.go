package fincalcauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

const (
	// defaultLifetime is FinCalc's documented token lifetime, used when a
	// response has no expires_in.
	defaultLifetime = 24 * time.Hour

	// maxExpiresIn bounds expires_in (ten years, in seconds) so that the
	// expiry never overflows a time.Duration.
	maxExpiresIn = 10 * 366 * 24 * 60 * 60
)

// envelope is the wrapper of every FinCalc API response.
type envelope struct {
	Success *bool           `json:"success"`
	Data    json.RawMessage `json:"data"`
	Message json.RawMessage `json:"message"`
}

// fetchError is a failed attempt: a short text, free of secrets, in front
// of its cause, which for an answer from the server is an
// *oauth2.RetrieveError. Its text has no "fincalcauth: " prefix: the
// fetch that returns it adds one.
type fetchError struct {
	msg   string
	cause error
}

func (e *fetchError) Error() string { return e.msg }
func (e *fetchError) Unwrap() error { return e.cause }

// answer is a token endpoint's answer, with what it takes to report it.
type answer struct {
	resp       *http.Response
	body       []byte          // what was read of resp.Body
	cut        bool            // body is the start of a longer one
	retryAfter time.Duration   // what resp's Retry-After header asks for; 0 if none
	host       string          // where a redirect leads, if it may be reported
	rep        func() reporter // what may be reported, made only for a failure
}

// newAnswer returns the answer of resp, whose Retry-After it reads once,
// counting from now.
func newAnswer(resp *http.Response, body []byte, cut bool, rep func() reporter, now time.Time) answer {
	return answer{resp: resp, body: body, cut: cut, rep: rep, retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), now)}
}

func (a *answer) ok() bool { return a.resp.StatusCode >= 200 && a.resp.StatusCode < 300 }

// parseResponse turns a token endpoint's answer into a token, or an error
// that wraps an *oauth2.RetrieveError. now is the time the expiry counts
// from.
func parseResponse(a *answer, now time.Time) (*oauth2.Token, error) {
	body := a.body
	if a.cut && a.ok() {
		return nil, a.malformed("larger than 1 MiB")
	}
	var env envelope
	jsonErr := json.Unmarshal(body, &env)
	if jsonErr == nil && env.Success == nil && env.Data == nil && env.Message == nil {
		// Valid JSON but not an object with envelope fields: null, a
		// number, an array, or an object of other keys.
		jsonErr = errors.New("not a FinCalc response envelope")
	}
	if !a.ok() || (jsonErr == nil && env.Success != nil && !*env.Success) {
		return nil, a.refused()
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, a.malformed("empty body")
	}
	if jsonErr != nil {
		return nil, a.malformed(describeJSONError(jsonErr))
	}
	if env.Success == nil {
		return nil, a.malformed(`no "success" field`)
	}
	var data map[string]any
	if json.Unmarshal(env.Data, &data) != nil || data == nil {
		return nil, a.malformed(`"data" is not an object`)
	}
	access, ok := data["access_token"].(string)
	if !ok || access == "" {
		return nil, a.malformed(`"data.access_token" is missing or empty`)
	}
	if !headerSafe(access) {
		return nil, a.malformed(`"data.access_token" has characters that cannot go in an HTTP header`)
	}
	tokenType := "Bearer"
	if v, present := data["token_type"]; present && v != nil {
		s, ok := v.(string)
		if !ok {
			return nil, a.malformed(`"data.token_type" is not a string`)
		}
		if !headerSafe(s) && s != "" {
			return nil, a.malformed(`"data.token_type" has characters that cannot go in an HTTP header`)
		}
		if s != "" {
			tokenType = s
		}
	}
	expiresIn := int64(defaultLifetime / time.Second)
	if v, present := data["expires_in"]; present {
		n, err := parseExpiresIn(v)
		if err != nil {
			return nil, a.malformed(`"data.expires_in" ` + err.Error())
		}
		expiresIn = n
	}
	tok := &oauth2.Token{
		AccessToken: access,
		TokenType:   tokenType,
		Expiry:      now.Add(time.Duration(expiresIn) * time.Second),
		ExpiresIn:   expiresIn,
	}
	return tok.WithExtra(data), nil
}

// parseExpiresIn accepts a JSON number or a string holding one, and
// requires a positive whole number of seconds.
func parseExpiresIn(v any) (int64, error) {
	var f float64
	switch v := v.(type) {
	case float64:
		f = v
	case string:
		var err error
		f, err = strconv.ParseFloat(v, 64)
		if err != nil || strings.TrimSpace(v) != v {
			return 0, errors.New("is a string that is not a number")
		}
	default:
		return 0, fmt.Errorf("is a %s, not a number", jsonKind(v))
	}
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f):
		return 0, errors.New("is not a whole number of seconds")
	case f <= 0:
		return 0, errors.New("is not positive")
	case f > maxExpiresIn:
		return 0, errors.New("is more than ten years")
	}
	return int64(f), nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func describeJSONError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("not JSON: syntax error at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return "not a FinCalc response envelope: " + typ.Field + " has the wrong type"
	}
	return err.Error()
}

// headerSafe reports whether s can go in an Authorization header as is:
// visible ASCII only, no space or control character.
func headerSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// retrieveError returns the RetrieveError for a, and a note on the
// server's text that it withholds, if any. Its Body is a's unless a is a
// 2xx answer, was cut, or mentions a secret; its description and code
// are the server's unless they mention one.
func (a *answer) retrieveError(description string) (*oauth2.RetrieveError, string) {
	rep := a.rep()
	if a.ok() {
		tokens, ok := tokenValues(a.body)
		if !ok {
			rep.all = "withheld: the answer holds too many tokens to look for"
		}
		rep.secrets = append(tokens, rep.secrets...)
	}
	re := &oauth2.RetrieveError{Response: rep.response(a.resp), ErrorDescription: description}
	code, desc := describe(a.body)
	var why string
	if description == "" && desc != "" {
		re.ErrorDescription, why = rep.text(desc)
	}
	if code != "" && rep.withheld(code) == "" {
		re.ErrorCode = escapeControls(truncate(code, maxDescription))
	}
	if !a.ok() && !a.cut && rep.withheld(string(a.body)) == "" {
		re.Body = a.body
	}
	if loc, err := a.resp.Location(); err == nil && a.resp.StatusCode/100 == 3 {
		a.host, _ = rep.text(loc.Host)
	}
	return re, why
}

// malformed reports a 2xx answer that carries no usable token. problem
// names the field and what is wrong with it, never its value.
func (a *answer) malformed(problem string) error {
	re, _ := a.retrieveError("malformed token response: " + problem)
	return &fetchError{msg: "malformed token response (" + re.Response.Status + "): " + problem, cause: re}
}

// refused reports a refusal: a non-2xx status, or "success": false.
func (a *answer) refused() error {
	re, why := a.retrieveError("")
	msg := "token request failed: " + re.Response.Status
	if a.ok() {
		msg = "token request refused (" + re.Response.Status + ` with "success": false)`
	}
	if a.resp.StatusCode/100 == 3 {
		msg += ": redirects are not followed, so that the secret goes to the token URL alone"
		if a.host != "" {
			msg += " (this one is to " + a.host + ")"
		}
	}
	switch {
	case why != "":
		msg += " (the server's description is " + why + ")"
	case re.ErrorDescription != "":
		msg += ": " + re.ErrorDescription
	}
	if a.retryAfter > 0 {
		msg += fmt.Sprintf(" (the server asked to wait %v before trying again)", a.retryAfter)
	}
	return &fetchError{msg: msg, cause: re}
}

// parseRetryAfter reads a Retry-After header in seconds or HTTP-date
// form, capped at an hour. It returns 0 when v is absent, malformed or
// in the past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	switch {
	case err == nil && n <= 0:
		return 0
	case err == nil:
		return time.Duration(min(n, int64(time.Hour/time.Second))) * time.Second
	case errors.Is(err, strconv.ErrRange) && v[0] != '-':
		// More seconds than an int64 holds: longer than any budget.
		return time.Hour
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return min(d, time.Hour)
		}
	}
	return 0
}
