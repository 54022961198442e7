package fincalcauth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// redacted stands in for a secret that was removed.
const redacted = "REDACTED"

// A redactor removes secrets from text that a server or the transport
// produced, before the text goes into an error or a log record. Every
// such string passes through one: its methods are the only way the
// package turns server data into reported text.
//
// The secrets are the client secret and, for a 2xx answer, the access
// tokens in it. Each is removed in every spelling a server could echo it
// in: raw; inside any JSON string, whatever its escapes, by comparing
// decoded strings; as PHP's json_encode and Symfony's JsonResponse write
// it; URL-encoded; and HTML-escaped.
type redactor struct {
	forms [][]string // the spellings of each secret, longest first: tokens first, then the client secret
	// exact holds tokens too short to search for in text (a one-letter
	// "token" would erase every such letter): only a JSON string that is
	// one of them is redacted.
	exact []string
}

// minTokenSearch is the length from which a token is searched for
// everywhere, not only as a whole JSON string.
const minTokenSearch = 8

func newRedactor(secret string) redactor {
	var r redactor
	r.add(secret)
	return r
}

func (r *redactor) add(secret string) {
	if secret == "" {
		return
	}
	r.forms = append(r.forms, spellings(secret))
}

// withTokens returns r extended with the access tokens in body, a 2xx
// answer: the values of its secret members (see secretValues), so that
// they are redacted wherever else they appear too. The tokens come before
// the secret, so that a short secret redacted first cannot hide a token
// from this search.
func (r redactor) withTokens(body []byte) redactor {
	var out redactor
	lits := jsonStrings(body)
	for _, i := range secretValues(body, lits) {
		tok := decodeJSONString(body[lits[i].start+1 : lits[i].contentEnd()])
		if len(tok) < minTokenSearch {
			out.exact = append(out.exact, tok)
		} else {
			out.add(tok)
		}
	}
	out.forms = append(out.forms, r.forms...)
	out.exact = append(out.exact, r.exact...)
	return out
}

// bytes returns a copy of b with every secret replaced by REDACTED,
// and the value of every secret member (see secretValues), whatever it
// holds. When cut is true, b
// is the start of a longer text, and an end of b that could begin a
// secret in any spelling is removed too.
func (r redactor) bytes(b []byte, cut bool) []byte {
	out := r.redact(b, 0)
	if cut {
		out = r.trimPartial(out)
	}
	return out
}

// maxDepth bounds how deep redact looks into JSON held in JSON strings,
// such as a request body that net/http quotes in an error.
const maxDepth = 3

func (r redactor) redact(b []byte, depth int) []byte {
	// Inside JSON strings, compare decoded text, so that any escaping is
	// seen through; then replace the spellings anywhere else.
	lits := jsonStrings(b)
	hidden := secretValues(b, lits)
	var buf bytes.Buffer
	last := 0
	for i, l := range lits {
		decoded := decodeJSONString(b[l.start+1 : l.contentEnd()])
		hide := slices.Contains(hidden, i)
		clean, changed := redacted, hide && decoded != redacted
		if !hide {
			clean, changed = r.replace(decoded)
		}
		if !hide && !changed && depth < maxDepth && strings.Contains(decoded, `"`) {
			if inner := string(r.redact([]byte(decoded), depth+1)); inner != decoded {
				clean, changed = inner, true
			}
		}
		if !changed {
			continue
		}
		buf.Write(b[last : l.start+1])
		buf.Write(encodeJSONString(clean))
		last = l.contentEnd()
	}
	out := b
	if last > 0 {
		buf.Write(b[last:])
		out = buf.Bytes()
	} else {
		out = bytes.Clone(b)
	}
	for _, forms := range r.forms {
		for _, f := range forms {
			if bytes.Contains(out, []byte(f)) {
				out = bytes.ReplaceAll(out, []byte(f), []byte(redacted))
			}
		}
	}
	return out
}

// secretValues returns the indexes in lits, the JSON strings of b, of the
// values of secret members: members whose name ends in "secret" or
// "token", whatever the escapes in the name, and whose value is a string,
// complete or cut short.
func secretValues(b []byte, lits []jsonLit) []int {
	var values []int
	for i := 0; i+1 < len(lits); i++ {
		name := lits[i]
		if !name.closed || !followsColon(b, name.end, lits[i+1].start) {
			continue
		}
		n := strings.ToLower(decodeJSONString(b[name.start+1 : name.end-1]))
		if strings.HasSuffix(n, "secret") || strings.HasSuffix(n, "token") {
			values = append(values, i+1)
		}
	}
	return values
}

// text returns s ready for an error message or a log record: secrets
// redacted, control characters escaped, then shortened to at most max
// bytes (0 means no limit), in that order.
func (r redactor) text(s string, max int) string {
	s = escapeControls(string(r.bytes([]byte(s), false)))
	if max > 0 {
		s = truncate(s, max)
	}
	return s
}

// changes reports whether r would redact anything in s.
func (r redactor) changes(s string) bool {
	return string(r.bytes([]byte(s), false)) != s
}

// replace replaces every spelling of every secret in s, the content of
// a JSON string.
func (r redactor) replace(s string) (string, bool) {
	if slices.Contains(r.exact, s) {
		return redacted, true
	}
	changed := false
	for _, forms := range r.forms {
		for _, f := range forms {
			if strings.Contains(s, f) {
				s = strings.ReplaceAll(s, f, redacted)
				changed = true
			}
		}
	}
	return s, changed
}

// trimPartial removes from the end of b the longest piece that could
// start a secret: a prefix of one of its spellings, or, inside a JSON
// string left open, text that decodes to a prefix of one.
func (r redactor) trimPartial(b []byte) []byte {
	cutAt := len(b)
	text := string(b)
	var open string // the decoded content of a JSON string left open
	lits := jsonStrings(b)
	if len(lits) > 0 && !lits[len(lits)-1].closed {
		open = decodeJSONString(b[lits[len(lits)-1].start+1:])
	}
	for _, forms := range r.forms {
		for _, f := range forms {
			cutAt = min(cutAt, len(b)-overlap(text, f))
			if open != "" && overlap(open, f) > 0 {
				cutAt = min(cutAt, lits[len(lits)-1].start+1)
			}
		}
	}
	if cutAt == len(b) {
		return b
	}
	return append(b[:cutAt:cutAt], redacted...)
}

// overlap returns the length of the longest end of s that is a prefix
// of f, by Knuth-Morris-Pratt, in time linear in len(f).
func overlap(s, f string) int {
	if len(s) > len(f) {
		s = s[len(s)-len(f):]
	}
	if len(s) == 0 || len(f) == 0 {
		return 0
	}
	next := make([]int32, len(f)) // next[i]: longest proper border of f[:i+1]
	for i, k := 1, int32(0); i < len(f); i++ {
		for k > 0 && f[i] != f[k] {
			k = next[k-1]
		}
		if f[i] == f[k] {
			k++
		}
		next[i] = k
	}
	k := int32(0)
	for i := 0; i < len(s); i++ {
		for k > 0 && (int(k) == len(f) || s[i] != f[k]) {
			k = next[k-1]
		}
		if int(k) < len(f) && s[i] == f[k] {
			k++
		}
	}
	return int(k)
}

// response returns a copy of resp fit to be kept in an error: its
// status line and header values redacted, no body, and a request that
// leads back to no body either (GetBody would return the secret).
func (r redactor) response(resp *http.Response) *http.Response {
	c := *resp
	c.Status = r.text(resp.Status, maxDescription)
	c.Header = make(http.Header, len(resp.Header))
	for k, vs := range resp.Header {
		for _, v := range vs {
			c.Header[k] = append(c.Header[k], r.text(v, 0))
		}
	}
	c.Body = http.NoBody
	c.Trailer = nil
	if resp.Request != nil {
		c.Request = &http.Request{
			Method: resp.Request.Method,
			URL:    resp.Request.URL,
			Proto:  resp.Request.Proto,
			Header: resp.Request.Header.Clone(),
			Host:   resp.Request.Host,
		}
	}
	return &c
}

// spellings lists the ways a server could echo secret, longest first:
// each base form (raw, URL-encoded, HTML-escaped) as it stands and as
// each JSON encoder writes it (Go's, PHP's json_encode, Symfony's
// JsonResponse, every rune escaped, Go's %q), with "/" as is or as "\/",
// and with the hex digits of its escapes in either case; and Go's JSON of
// it, as the request body holds it, URL-encoded or HTML-escaped.
func spellings(secret string) []string {
	seen := map[string]bool{}
	var forms []string
	add := func(f string) {
		if f != "" && !seen[f] {
			seen[f] = true
			forms = append(forms, f)
		}
	}
	q, p := url.QueryEscape(secret), url.PathEscape(secret)
	bases := []string{secret, q, p, lowerHexEscapes(q, "%", 2), lowerHexEscapes(p, "%", 2), html.EscapeString(secret)}
	for _, entities := range []*strings.Replacer{
		strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `'`, "&apos;", `"`, "&quot;"),
		strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `'`, "&#x27;", `"`, "&#x22;"),
	} {
		bases = append(bases, entities.Replace(secret))
	}
	styles := []jsonStyle{goPlain, goHTML, php, symfony, everyRune}
	if len(secret) > maxEveryRune {
		styles = styles[:len(styles)-1]
	}
	done := map[string]bool{}
	for _, base := range bases {
		if done[base] {
			continue
		}
		done[base] = true
		add(base)
		for _, style := range styles {
			f := jsonEscape(base, style)
			for _, g := range []string{f, strings.ReplaceAll(f, "/", `\/`)} {
				add(g)
				add(upperHexEscapes(g, `\u`, 4))
				add(lowerHexEscapes(g, `\u`, 4))
			}
		}
		if quoted := strconv.Quote(base); len(quoted) >= 2 {
			add(quoted[1 : len(quoted)-1]) // Go's %q, as net/http quotes a bad line
		}
	}
	// The other way round: an echo of the request body, which is JSON,
	// URL-encoded or HTML-escaped.
	for _, style := range []jsonStyle{goPlain, goHTML} {
		f := jsonEscape(secret, style)
		q, p := url.QueryEscape(f), url.PathEscape(f)
		for _, g := range []string{q, p, lowerHexEscapes(q, "%", 2), lowerHexEscapes(p, "%", 2), html.EscapeString(f)} {
			add(g)
		}
	}
	// Longest first, so that a spelling that holds another is replaced whole.
	slices.SortStableFunc(forms, func(a, b string) int { return len(b) - len(a) })
	return forms
}

// maxEveryRune is the longest secret whose every rune is also tried as a
// \u escape: no server writes a long access token that way.
const maxEveryRune = 1024

// jsonStyle is the way an encoder writes a JSON string.
type jsonStyle int

const (
	goPlain   jsonStyle = iota // encoding/json without HTML escaping
	goHTML                     // encoding/json's default: <, >, & as \u003c
	php                        // json_encode: "/" as "\/", non-ASCII as \u00e9
	symfony                    // JsonResponse: php's, and <>&'" as \u003C
	everyRune                  // every rune as a \u escape
)

// jsonEscape returns the inside of the JSON string for s, as style writes it.
func jsonEscape(s string, style jsonStyle) string {
	if style != everyRune && !strings.ContainsFunc(s, func(r rune) bool {
		return r < 0x20 || r >= 0x7f || strings.ContainsRune(`"\\/<>&'`, r)
	}) {
		return s // nothing that any style escapes
	}
	var b strings.Builder
	u := func(r rune) {
		if r > 0xffff {
			r -= 0x10000
			fmt.Fprintf(&b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
		} else {
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	for _, r := range s {
		switch {
		case style == everyRune:
			u(r)
		case style == symfony && strings.ContainsRune(`<>&'"`, r):
			fmt.Fprintf(&b, `\u%04X`, r)
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '/' && (style == php || style == symfony):
			b.WriteString(`\/`)
		case (r == '<' || r == '>' || r == '&') && style == goHTML:
			u(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == '\u2028' || r == '\u2029':
			u(r)
		case r >= 0x80 && (style == php || style == symfony):
			u(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// upperHexEscapes and lowerHexEscapes rewrite the hex digits of every
// escape of the form prefix + n hex digits in s.
func upperHexEscapes(s, prefix string, n int) string {
	return mapHexEscapes(s, prefix, n, strings.ToUpper)
}
func lowerHexEscapes(s, prefix string, n int) string {
	return mapHexEscapes(s, prefix, n, strings.ToLower)
}

func mapHexEscapes(s, prefix string, n int, f func(string) string) string {
	if !strings.Contains(s, prefix) {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, prefix)
		if i < 0 || i+len(prefix)+n > len(s) {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i+len(prefix)])
		b.WriteString(f(s[i+len(prefix) : i+len(prefix)+n]))
		s = s[i+len(prefix)+n:]
	}
}

// jsonLit is a JSON string literal found in a text: b[start] is its
// opening quote, b[end-1] its closing one when closed; an unclosed one
// runs to the end of the text.
type jsonLit struct {
	start, end int
	closed     bool
}

func (l jsonLit) contentEnd() int {
	if l.closed {
		return l.end - 1
	}
	return l.end
}

// jsonStrings finds the JSON string literals in b, reading it as JSON
// would; in a text that is not JSON, what it finds is harmless.
func jsonStrings(b []byte) []jsonLit {
	var lits []jsonLit
	for i := 0; i < len(b); i++ {
		if b[i] != '"' {
			continue
		}
		l := jsonLit{start: i, end: len(b)}
		for j := i + 1; j < len(b); j++ {
			if b[j] == '\\' {
				j++
				continue
			}
			if b[j] == '"' {
				l.end, l.closed = j+1, true
				break
			}
		}
		lits = append(lits, l)
		i = l.end - 1
	}
	return lits
}

// followsColon reports whether only white space and one colon stand
// between from and to.
func followsColon(b []byte, from, to int) bool {
	between := bytes.TrimSpace(b[from:to])
	return len(between) == 1 && between[0] == ':'
}

// decodeJSONString decodes the inside of a JSON string leniently: an
// escape that is invalid is kept as written, and one cut short at the
// end is dropped.
func decodeJSONString(b []byte) string {
	var out strings.Builder
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '\\' {
			out.WriteByte(c)
			continue
		}
		if i+1 >= len(b) {
			break
		}
		i++
		switch b[i] {
		case '"', '\\', '/':
			out.WriteByte(b[i])
		case 'b':
			out.WriteByte('\b')
		case 'f':
			out.WriteByte('\f')
		case 'n':
			out.WriteByte('\n')
		case 'r':
			out.WriteByte('\r')
		case 't':
			out.WriteByte('\t')
		case 'u':
			r, n := decodeUnicodeEscape(b[i+1:])
			if n < 0 { // cut short
				return out.String()
			}
			if n == 0 {
				out.WriteString(`\u`)
				continue
			}
			out.WriteRune(r)
			i += n
		default:
			out.WriteByte('\\')
			out.WriteByte(b[i])
		}
	}
	return out.String()
}

// decodeUnicodeEscape decodes the hex digits after a \u, and a low
// surrogate's escape after a high one. It returns the rune and the bytes
// used; n is 0 for invalid digits and -1 for digits cut short.
func decodeUnicodeEscape(b []byte) (r rune, n int) {
	hex4 := func(b []byte) (rune, int) {
		if len(b) < 4 {
			for _, c := range b {
				if !isHex(c) {
					return 0, 0
				}
			}
			return 0, -1
		}
		var v rune
		for _, c := range b[:4] {
			if !isHex(c) {
				return 0, 0
			}
			v = v<<4 | rune(hexVal(c))
		}
		return v, 4
	}
	r, n = hex4(b)
	if n <= 0 {
		return 0, n
	}
	if r >= 0xd800 && r < 0xdc00 {
		if len(b) >= 6 && b[4] == '\\' && b[5] == 'u' {
			lo, m := hex4(b[6:])
			if m < 0 {
				return 0, -1
			}
			if m == 4 && lo >= 0xdc00 && lo < 0xe000 {
				return 0x10000 + (r-0xd800)<<10 + (lo - 0xdc00), 10
			}
		} else if len(b) < 6 {
			return 0, -1
		}
		return utf8.RuneError, 4
	}
	return r, 4
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func hexVal(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// encodeJSONString returns the inside of the JSON string for s.
func encodeJSONString(s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(s) // a string always encodes
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	return b[1 : len(b)-1]
}

// escapeControls writes control characters (C0, DEL, C1, and the line
// and paragraph separators) and invalid UTF-8 as Go escapes, so that
// server text cannot forge a log line or move a terminal's cursor.
func escapeControls(s string) string {
	clean := true
	for _, r := range s {
		if isControl(r) || r == utf8.RuneError {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case isControl(r) && r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		case isControl(r):
			fmt.Fprintf(&b, `\u%04x`, r)
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
