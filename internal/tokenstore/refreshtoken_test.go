package tokenstore

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"
)

// TestRefreshToken: a refresh token is sealed and opens, and a value
// sealed before refresh tokens were opens without one.
func TestRefreshToken(t *testing.T) {
	b := New("secret", "https://x.test/oauth/token", "1", "\x00sign-in\x00ada", []string{"fact-find"})
	expiry := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name  string
		value []byte
		want  *oauth2.Token
	}{
		{"with refresh token",
			b.Seal(&oauth2.Token{AccessToken: "a", TokenType: "Bearer", RefreshToken: "r", Expiry: expiry, ExpiresIn: 60}),
			&oauth2.Token{AccessToken: "a", TokenType: "Bearer", RefreshToken: "r", Expiry: expiry, ExpiresIn: 60}},
		{"sealed before refresh tokens",
			sealRaw(b, `{"access_token":"a","token_type":"Bearer","expiry":"2030-01-02T03:04:05Z","expires_in":60}`),
			&oauth2.Token{AccessToken: "a", TokenType: "Bearer", Expiry: expiry, ExpiresIn: 60}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := b.Open(tt.value)
			if d := cmp.Diff(tt.want, got, cmp.AllowUnexported(oauth2.Token{})); d != "" {
				t.Errorf("Open (-want +got):\n%s", d)
			}
		})
	}
}

// sealRaw seals plain as Seal does.
func sealRaw(b *Box, plain string) []byte {
	out := make([]byte, 1+b.aead.NonceSize())
	out[0] = version
	rand.Read(out[1:])
	return b.aead.Seal(out, out[1:], []byte(plain), b.additional())
}
