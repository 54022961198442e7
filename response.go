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

	// maxDescription bounds how much of a server's description an error
	// message quotes.
	maxDescription = 300
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

// parseResponse turns a token endpoint's answer into a token, or an error
// that wraps an *oauth2.RetrieveError. resp supplies the status, and a
// copy of it fit to keep goes in the RetrieveError; body is what was read
// of resp.Body, and cut says whether that was all of it. red removes the
// secrets from everything the error reports. now is the time the expiry
// counts from.
func parseResponse(resp *http.Response, body []byte, cut bool, red func() redactor, now time.Time) (*oauth2.Token, error) {
	a := answer{resp: resp, body: body, cut: cut, red: red}
	var env envelope
	jsonErr := json.Unmarshal(body, &env)
	if jsonErr == nil && env.Success == nil && env.Data == nil && env.Message == nil {
		// Valid JSON but not an object with envelope fields: null, a
		// number, an array, or an object of other keys.
		jsonErr = errors.New("not a FinCalc response envelope")
	}
	ok2xx := resp.StatusCode >= 200 && resp.StatusCode < 300
	if !ok2xx || (jsonErr == nil && env.Success != nil && !*env.Success) {
		return nil, a.refused(env.Message)
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
			return 0, fmt.Errorf("is %q, not a number", v)
		}
	default:
		return 0, fmt.Errorf("is a %s, not a number", jsonKind(v))
	}
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f):
		return 0, fmt.Errorf("is %v, not a whole number of seconds", f)
	case f <= 0:
		return 0, fmt.Errorf("is %v, not positive", f)
	case f > maxExpiresIn:
		return 0, fmt.Errorf("is %v, more than ten years", f)
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
		return "not JSON: " + syn.Error()
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

// answer is a token endpoint's answer that failed, with what it takes to
// report it.
type answer struct {
	resp *http.Response
	body []byte
	cut  bool            // body is the start of a longer one
	red  func() redactor // built only for a failure, which is rare
}

// retrieveError returns the RetrieveError for a, with description, and
// the redactor that made it, which for a 2xx answer also removes the
// access tokens in the body.
func (a answer) retrieveError(description string) (*oauth2.RetrieveError, redactor) {
	red := a.red()
	if a.resp.StatusCode >= 200 && a.resp.StatusCode < 300 {
		red = red.withTokens(a.body)
	}
	return &oauth2.RetrieveError{
		Response:         red.response(a.resp),
		Body:             red.bytes(a.body, a.cut),
		ErrorDescription: red.text(description, 0),
	}, red
}

// malformed reports a 2xx answer that carries no usable token.
func (a answer) malformed(problem string) error {
	re, red := a.retrieveError("malformed token response: " + problem)
	return &fetchError{
		msg:   "malformed token response (" + re.Response.Status + "): " + red.text(problem, maxDescription),
		cause: re,
	}
}

// refused reports a refusal: a non-2xx status, or "success": false.
func (a answer) refused(message json.RawMessage) error {
	re, _ := a.retrieveError(describeMessage(message))
	msg := "token request failed: " + re.Response.Status
	if a.resp.StatusCode >= 200 && a.resp.StatusCode < 300 {
		msg = "token request refused (" + re.Response.Status + ` with "success": false)`
	}
	if loc, err := a.resp.Location(); err == nil && a.resp.StatusCode/100 == 3 {
		msg += ": redirects are not followed, so that the secret goes to the token URL alone (this one is to " + a.red().text(loc.Host, maxDescription) + ")"
	}
	if re.ErrorDescription != "" {
		msg += ": " + truncate(re.ErrorDescription, maxDescription)
	}
	if wait := parseRetryAfter(a.resp.Header.Get("Retry-After"), time.Now()); wait > 0 {
		msg += fmt.Sprintf(" (the server asked to wait %v before trying again)", wait)
	}
	return &fetchError{msg: msg, cause: re}
}

// describeMessage reads FinCalc's "message": either
// {"description": "..."} or a plain string. It returns "" for anything else.
func describeMessage(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return strings.TrimSpace(s)
	}
	var m struct {
		Description string `json:"description"`
	}
	if json.Unmarshal(raw, &m) == nil {
		return strings.TrimSpace(m.Description)
	}
	return ""
}
