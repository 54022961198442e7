// Package secrettext decides whether a text mentions a secret, in any of
// the encodings a server or a library could have applied to it on the way.
// The library and the fincalc-token command share it.
//
// A text mentions a secret if the secret appears in the text or in any
// decoding of it: layer after layer, until nothing changes, the text is
// read as JSON and Go string escapes (\", \/, \n, \xe4, \u00e4, \U0001d11e,
// \ud834\udd1e), as percent-encoding with hex digits in either case, and as
// HTML entities (named, decimal and hex). A plus sign and a space count as
// the same character, so that form encoding (+ for a space) is read both
// ways. No list of spellings is involved: a spelling is seen through
// because it decodes to the secret.
//
// A piece of a secret counts too: any [Piece] bytes of it in a row, as a
// text that was cut (net/http quotes a status line up to its first space)
// may hold. A secret shorter than that counts only whole.
package secrettext

import (
	"context"
	"errors"
	"html"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Piece is the length in bytes of the shortest piece of a secret that a
// text mentions it by. It is the size of a word: see eachPiece.
const Piece = 8

// ErrBudget is the error of [Check] when a text has more layers of
// encoding than its work budget allows to decode.
var ErrBudget = errors.New("too many layers of encoding to decode")

// budgetPerByte and budgetBase make the work budget of a text: the bytes
// decoded and searched, over all its decodings, are at most
// budgetPerByte times its length plus budgetBase.
const (
	budgetPerByte = 32
	budgetBase    = 64 << 10
)

// Mentions reports whether text, or any decoding of it, holds one of
// secrets. Empty secrets are ignored. A text too costly to decode within
// the work budget counts as mentioning a secret.
func Mentions(text string, secrets ...string) bool {
	m, err := Check(context.Background(), text, secrets...)
	return m || err != nil
}

// Check is [Mentions] that stops when ctx is done. Its work is at most a
// fixed multiple of the length of text. It returns an error,
// ctx's or [ErrBudget], when it stopped before it could decide; the
// caller must then treat text as mentioning a secret.
func Check(ctx context.Context, text string, secrets ...string) (bool, error) {
	m := newMatcher(secrets)
	if m.empty() {
		return false, nil
	}
	budget := budgetPerByte*len(text) + budgetBase
	seen := map[string]bool{text: true}
	todo := []string{text}
	for len(todo) > 0 {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		t := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		budget -= len(t) * (1 + len(m.short))
		if budget < 0 {
			return false, ErrBudget
		}
		if m.match(foldPlus(t)) {
			return true, nil
		}
		for _, decode := range decoders {
			if d := decode(t); d != t && !seen[d] {
				seen[d] = true
				todo = append(todo, d)
			}
		}
	}
	return false, nil
}

// matcher finds secrets, and their pieces, in a text.
type matcher struct {
	short  []string        // secrets shorter than Piece, found whole
	pieces map[uint64]bool // the pieces of the others, 8 bytes in a word
}

func newMatcher(secrets []string) *matcher {
	m := &matcher{pieces: map[uint64]bool{}}
	for _, s := range secrets {
		s = foldPlus(s)
		switch {
		case len(s) >= Piece:
			eachPiece(s, func(w uint64) bool { m.pieces[w] = true; return false })
		case s != "":
			m.short = append(m.short, s)
		}
	}
	return m
}

func (m *matcher) empty() bool { return len(m.short) == 0 && len(m.pieces) == 0 }

func (m *matcher) match(t string) bool {
	for _, s := range m.short {
		if strings.Contains(t, s) {
			return true
		}
	}
	return len(m.pieces) > 0 && eachPiece(t, func(w uint64) bool { return m.pieces[w] })
}

// eachPiece calls f with every Piece bytes in a row of s, as one word,
// until f returns true; it returns whether f did.
func eachPiece(s string, f func(uint64) bool) bool {
	var w uint64
	for i := 0; i < len(s); i++ {
		w = w<<8 | uint64(s[i])
		if i >= Piece-1 && f(w) {
			return true
		}
	}
	return false
}

// foldPlus writes every plus sign of s as a space.
func foldPlus(s string) string { return strings.ReplaceAll(s, "+", " ") }

var decoders = []func(string) string{unescape, unpercent, unentity}

func unentity(s string) string {
	if !strings.Contains(s, "&") {
		return s
	}
	return html.UnescapeString(s)
}

// unpercent decodes every %XX of s, whatever the case of its hex digits,
// and keeps any other % as it is.
func unpercent(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(hexVal(s[i+1])<<4 | hexVal(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unescape decodes the backslash escapes of JSON and Go strings in s,
// with UTF-16 surrogate pairs written as two \u escapes. An escape that
// is not valid is kept as it is.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		c := s[i+1]
		if r, ok := simpleEscapes[c]; ok {
			b.WriteByte(r)
			i++
			continue
		}
		var n int
		switch c {
		case 'x':
			n = 2
		case 'u':
			n = 4
		case 'U':
			n = 8
		}
		v, ok := hexAt(s, i+2, n)
		if n == 0 || !ok {
			if c >= '0' && c <= '7' && i+3 < len(s) {
				if o, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
					b.WriteByte(byte(o))
					i += 3
					continue
				}
			}
			b.WriteByte(s[i])
			continue
		}
		i += 1 + n
		switch {
		case c == 'x':
			b.WriteByte(byte(v))
		case utf16.IsSurrogate(rune(v)) && strings.HasPrefix(s[i+1:], `\u`):
			lo, ok := hexAt(s, i+3, 4)
			if r := utf16.DecodeRune(rune(v), rune(lo)); ok && r != utf8.RuneError {
				b.WriteRune(r)
				i += 6
				continue
			}
			b.WriteRune(utf8.RuneError)
		default:
			b.WriteRune(rune(v))
		}
	}
	return b.String()
}

var simpleEscapes = map[byte]byte{
	'"': '"', '\'': '\'', '\\': '\\', '/': '/',
	'a': '\a', 'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t', 'v': '\v',
}

// hexAt reads n hex digits of s from i.
func hexAt(s string, i, n int) (uint32, bool) {
	if n == 0 || i+n > len(s) {
		return 0, false
	}
	var v uint32
	for _, c := range []byte(s[i : i+n]) {
		if !isHex(c) {
			return 0, false
		}
		v = v<<4 | uint32(hexVal(c))
	}
	return v, true
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
