package tokenstore

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"
)

func TestSealOpenFailure(t *testing.T) {
	b := box()
	f := Failure{Until: time.Date(2026, 12, 1, 12, 1, 0, 0, time.UTC), Status: 429, RetryAfter: time.Minute, Failures: 2}
	v := b.SealFailure(f)
	got, ok := b.OpenFailure(v)
	if !ok {
		t.Fatal("a sealed failure does not open")
	}
	if diff := cmp.Diff(f, got); diff != "" {
		t.Errorf("OpenFailure (-want +got):\n%s", diff)
	}
	if b.FailureName() == b.Name() {
		t.Errorf("the failure's key name is the token's")
	}
	other := New("another secret", tokenURL, "12345", "hello@example.com", []string{"fact-find", "client-information"})
	tampered := append([]byte(nil), v...)
	tampered[len(tampered)-1] ^= 1
	token := b.Seal(&oauth2.Token{AccessToken: "a", TokenType: "Bearer", Expiry: f.Until, ExpiresIn: 60})
	for name, value := range map[string][]byte{
		"tampered":         tampered,
		"another secret's": other.SealFailure(f),
		"a token":          token,
		"empty":            {},
		"no moment in it":  b.SealFailure(Failure{Status: 429}),
	} {
		if _, ok := b.OpenFailure(value); ok {
			t.Errorf("%s value opens as a failure", name)
		}
	}
	// Nor does a failure open as a token.
	if b.Open(v) != nil {
		t.Errorf("a failure opens as a token")
	}
}
