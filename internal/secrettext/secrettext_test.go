package secrettext

import (
	"context"
	"strings"
	"testing"
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
	// Many layers: each one decodes to a new text.
	deep := "x"
	for range 40 {
		deep = strings.ReplaceAll(deep, "%", "%25") + "%41"
	}
	if _, err := Check(context.Background(), strings.Repeat(deep, 1), "secret-value"); err != nil {
		t.Logf("deep: %v", err)
	}
}
