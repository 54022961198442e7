package secrettext

import (
	"context"
	"encoding/json"
	"html"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestMentions(t *testing.T) {
	const secret = `pä"ss/<w'o>&rd 𝄞+%x\y`
	tests := []struct {
		text string
		want bool
	}{
		{"nothing here", false},
		{"raw " + secret, true},
		{`JSON pä\"ss\/\u003cw\u0027o\u003e\u0026rd \ud834\udd1e+%x\\y`, true},
		{`Go p\xc3\xa4\"ss/<w'o>&rd \U0001d11e+%x\\y`, true},
		{"percent p%C3%a4%22ss%2F%3Cw'o%3E%26rd+%F0%9D%84%9E%2B%25x%5Cy", true},
		{"entities p&#228;&quot;ss/&lt;w&#039;o&gt;&amp;rd &#x1D11E;+%x\\y", true},
		{"layers p%26%23228%3B%5C%22ss", false},
		{`a piece, cut at its space: "pä\"ss/<w'o>&rd"`, true},
		{"seven bytes: pä\"ss/", false},
		{"plus for space: pä\"ss/<w'o>&rd+𝄞 %x\\y", true},
	}
	for _, tt := range tests {
		if got := Mentions(tt.text, secret); got != tt.want {
			t.Errorf("Mentions(%q) = %v, want %v", tt.text, got, tt.want)
		}
	}
	if Mentions("anything", "", "") {
		t.Error("empty secrets are mentioned")
	}
	if !Mentions("abc", "b") || Mentions("abc", "d") {
		t.Error("short secrets are not found whole")
	}
}

func TestCheckStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Check(ctx, "a\\u0041", "secret-value"); err == nil {
		t.Error("Check went on after its context was done")
	}
	// Many layers, each of which decodes to a new text as long as the
	// last: more work than the budget allows.
	deep := "41"
	for range 200 {
		deep = "%25" + deep[1:]
		deep = strings.Replace(deep, "%", "%25", 1)
	}
	text := strings.Repeat("filler ", 1<<15) + deep
	if _, err := Check(context.Background(), text, "secret-value"); err != ErrBudget {
		t.Errorf("Check of %d layers: %v, want ErrBudget", 200, err)
	}
	if !Mentions(text, "secret-value") {
		t.Error("a text too costly to check is not taken as mentioning the secret")
	}
	if m, err := Check(context.Background(), strings.Repeat("filler %41 ", 1<<15), "secret-value"); m || err != nil {
		t.Errorf("Check of a long text of one layer: %v, %v", m, err)
	}
}

// FuzzMentions checks that a secret is found through up to four layers
// of encoding, whatever surrounds it. The encoders are the standard
// library's, not this package's decoders read backwards. Its seed corpus
// is in testdata/fuzz/FuzzMentions.
func FuzzMentions(f *testing.F) {
	f.Add(`pä"ss/<w'o>&rd 𝄞+%x\y`, uint8(0b11100100), "before ", " after")
	f.Add("Xq7Lm2Rt9Vb4Nc8Zk1Wd", uint8(0b00011011), `{"a":"`, `"}`)
	f.Fuzz(func(t *testing.T, secret string, layers uint8, before, after string) {
		if !utf8.ValidString(secret) || !utf8.ValidString(before) || !utf8.ValidString(after) {
			t.Skip("encoders replace invalid UTF-8")
		}
		encoders := []func(string) string{
			func(s string) string { b, _ := json.Marshal(s); return string(b) },
			url.QueryEscape,
			url.PathEscape,
			html.EscapeString,
		}
		text := before + secret + after
		for i := range 4 {
			text = encoders[layers>>(2*i)&3](text)
		}
		if secret != "" && !Mentions(text, secret) {
			t.Errorf("Mentions(%q, %q) = false", text, secret)
		}
	})
}
