package fincalcauth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/oauth2"
)

const (
	// maxBodySize bounds how much of a token response is read.
	maxBodySize = 1 << 20

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

// envelope is the wrapper of every FinCalc API response, as a token
// response fills it: data is an object.
type envelope struct {
	Success *bool           `json:"success"`
	Data    map[string]any  `json:"data"`
	Message json.RawMessage `json:"message"`
}

// tokenError is a failed token request. Its text is short and free of
// secrets; the whole story is in the wrapped error, an
// *oauth2.RetrieveError for an answer from the server.
type tokenError struct {
	msg  string
	errs []error
}

func (e *tokenError) Error() string   { return e.msg }
func (e *tokenError) Unwrap() []error { return e.errs }

// parseResponse turns a token endpoint's answer into a token, or an error
// that wraps an *oauth2.RetrieveError. resp supplies the status and is
// referenced by the RetrieveError; body is what was read of resp.Body.
// secret is removed from everything the error reports. now is the time
// the expiry counts from.
func parseResponse(resp *http.Response, body []byte, secret string, now time.Time) (*oauth2.Token, error) {
	// One pass decodes the envelope and its data. A "data" that is not an
	// object makes Unmarshal report a type error for that field alone; it
	// is reported below, once the rest is known to be an envelope.
	var env envelope
	jsonErr := json.Unmarshal(body, &env)
	var typeErr *json.UnmarshalTypeError
	dataNotObject := errors.As(jsonErr, &typeErr) && typeErr.Field == "data"
	if dataNotObject {
		jsonErr = nil
	}
	if jsonErr == nil && env.Success == nil && env.Data == nil && env.Message == nil && !dataNotObject {
		// Valid JSON but not an object with envelope fields: null, a
		// number, an array, or an object of other keys.
		jsonErr = errors.New("not a FinCalc response envelope")
	}
	ok2xx := resp.StatusCode >= 200 && resp.StatusCode < 300
	if !ok2xx || (jsonErr == nil && env.Success != nil && !*env.Success) {
		return nil, retrieveError(resp, body, env.Message, secret)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, malformed(resp, body, secret, "empty body")
	}
	if jsonErr != nil {
		return nil, malformed(resp, body, secret, describeJSONError(jsonErr))
	}
	if env.Success == nil {
		return nil, malformed(resp, body, secret, `no "success" field`)
	}
	data := env.Data
	if dataNotObject || data == nil {
		return nil, malformed(resp, body, secret, `"data" is not an object`)
	}
	access, ok := data["access_token"].(string)
	if !ok || access == "" {
		return nil, malformed(resp, body, secret, `"data.access_token" is missing or empty`)
	}
	tokenType := "Bearer"
	if v, present := data["token_type"]; present && v != nil {
		s, ok := v.(string)
		if !ok {
			return nil, malformed(resp, body, secret, `"data.token_type" is not a string`)
		}
		if s != "" {
			tokenType = s
		}
	}
	lifetime := defaultLifetime
	var expiresIn int64
	if v, present := data["expires_in"]; present {
		n, err := parseExpiresIn(v)
		if err != nil {
			return nil, malformed(resp, body, secret, `"data.expires_in" `+err.Error())
		}
		expiresIn = n
		lifetime = time.Duration(n) * time.Second
	} else {
		expiresIn = int64(defaultLifetime / time.Second)
	}
	tok := &oauth2.Token{
		AccessToken: access,
		TokenType:   tokenType,
		Expiry:      now.Add(lifetime),
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
			return 0, fmt.Errorf("is %q, not a number", truncate(v, 40))
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

// malformed reports a 2xx answer that carries no usable token.
func malformed(resp *http.Response, body []byte, secret, problem string) error {
	re := &oauth2.RetrieveError{
		Response:         resp,
		Body:             redact(body, secret),
		ErrorDescription: "malformed token response: " + problem,
	}
	return &tokenError{
		msg:  "fincalcauth: malformed token response (" + resp.Status + "): " + redactString(problem, secret),
		errs: []error{re},
	}
}

// retrieveError reports a refusal: a non-2xx status, or "success": false.
func retrieveError(resp *http.Response, body []byte, message json.RawMessage, secret string) error {
	desc := redactString(describeMessage(message), secret)
	re := &oauth2.RetrieveError{
		Response:         resp,
		Body:             redact(body, secret),
		ErrorDescription: desc,
	}
	msg := "fincalcauth: token request failed: " + resp.Status
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		msg = "fincalcauth: token request refused (" + resp.Status + ` with "success": false)`
	}
	if desc != "" {
		msg += ": " + truncate(desc, maxDescription)
	}
	return &tokenError{msg: msg, errs: []error{re}}
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

// redact returns a copy of b with every occurrence of secret, raw or as
// JSON would escape it, and the value of every JSON member whose name
// ends in "token", replaced by REDACTED. A 2xx answer that is reported
// as malformed may still hold an access token.
func redact(b []byte, secret string) []byte {
	out := bytes.Clone(b)
	if secret != "" {
		for _, form := range secretForms(secret) {
			out = bytes.ReplaceAll(out, []byte(form), []byte("REDACTED"))
		}
	}
	return tokenMember.ReplaceAll(out, []byte(`${1}"REDACTED"`))
}

func redactString(s, secret string) string {
	return string(redact([]byte(s), secret))
}

// tokenMember matches a JSON member whose name ends in "token" and whose
// value is a string, complete or cut short; group 1 is all before the
// value.
var tokenMember = regexp.MustCompile(`("[A-Za-z_]*token"\s*:\s*)"(?:[^"\\]|\\.)*(?:"|\\?$)`)

// secretForms lists the spellings of secret that a server could echo:
// as is, JSON-escaped with and without HTML escaping, and with "/"
// escaped as "\/".
func secretForms(secret string) []string {
	forms := []string{secret}
	add := func(f string) {
		for _, g := range forms {
			if g == f {
				return
			}
		}
		forms = append(forms, f)
	}
	var buf bytes.Buffer
	for _, html := range []bool{true, false} {
		buf.Reset()
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(html)
		if enc.Encode(secret) == nil {
			quoted := strings.TrimSuffix(buf.String(), "\n")
			inner := quoted[1 : len(quoted)-1]
			add(inner)
			add(strings.ReplaceAll(inner, "/", `\/`))
		}
	}
	return forms
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
