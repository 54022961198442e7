package fincalcauth

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"unicode/utf8"
)

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
