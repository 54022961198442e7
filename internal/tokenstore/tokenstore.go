// Package tokenstore names and seals the tokens that fincalcauth keeps in
// a store, as [github.com/gofincalc/fincalcauth.Store] describes: the
// library and the fincalc-token command share it.
package tokenstore

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"slices"
	"time"

	"golang.org/x/oauth2"
)

// version is the first byte of a sealed value; a value of another
// version does not open.
const version = 1

// MaxValue is the largest sealed value that Open reads; a store may
// refuse to return more.
const MaxValue = 16 << 10

// salt is the HKDF salt of every key the package derives.
var salt = []byte("fincalcauth token store")

// sealed is what a sealed value holds: enough to use the token, to
// schedule its refresh and, for the sign-in flow, to refresh it. Values
// sealed before RefreshToken existed open with it empty.
type sealed struct {
	AccessToken  string    `json:"access_token"`
	TokenType    string    `json:"token_type"`
	Expiry       time.Time `json:"expiry"`
	ExpiresIn    int64     `json:"expires_in"` // the lifetime FinCalc gave, in seconds
	RefreshToken string    `json:"refresh_token,omitempty"`
}

// Box names and seals the tokens of one set of credentials.
type Box struct {
	name string
	aead cipher.AEAD
}

// New returns the Box for the given credentials. The order of scopes,
// and repeats, do not matter.
func New(secret, tokenURL, clientID, email string, scopes []string) *Box {
	nameKey := derive(secret, "key name")
	sealKey := derive(secret, "seal v1")

	scopes = slices.Clone(scopes)
	slices.Sort(scopes)
	scopes = slices.Compact(scopes)
	mac := hmac.New(sha256.New, nameKey)
	for _, part := range append([]string{tokenURL, clientID, email}, scopes...) {
		binary.Write(mac, binary.BigEndian, uint64(len(part)))
		mac.Write([]byte(part))
	}
	block, err := aes.NewCipher(sealKey)
	if err != nil {
		panic("tokenstore: " + err.Error()) // a 32-byte key always makes a cipher
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("tokenstore: " + err.Error())
	}
	return &Box{name: hex.EncodeToString(mac.Sum(nil)[:20]), aead: aead}
}

func derive(secret, purpose string) []byte {
	k, err := hkdf.Key(sha256.New, []byte(secret), salt, "fincalcauth "+purpose, 32)
	if err != nil {
		panic("tokenstore: " + err.Error()) // 32 bytes of SHA-256 HKDF never fails
	}
	return k
}

// Name returns the key name: 40 lower-case hex digits.
func (b *Box) Name() string { return b.name }

// Seal returns t sealed for b's key name: its access token, type,
// expiry, lifetime (ExpiresIn) and refresh token, not its Extra fields.
func (b *Box) Seal(t *oauth2.Token) []byte {
	plain, err := json.Marshal(sealed{AccessToken: t.AccessToken, TokenType: t.Type(), Expiry: t.Expiry, ExpiresIn: t.ExpiresIn, RefreshToken: t.RefreshToken})
	if err != nil {
		panic("tokenstore: " + err.Error()) // strings, a time and an integer always encode
	}
	return b.seal(plain, b.additional())
}

// seal seals plain with additional data ad, behind the version byte and
// a random nonce.
func (b *Box) seal(plain, ad []byte) []byte {
	out := make([]byte, 1+b.aead.NonceSize(), 1+b.aead.NonceSize()+len(plain)+b.aead.Overhead())
	out[0] = version
	rand.Read(out[1:])
	return b.aead.Seal(out, out[1:], plain, ad)
}

// open returns what v seals with additional data ad, or nil.
func (b *Box) open(v, ad []byte) []byte {
	n := b.aead.NonceSize()
	if len(v) > MaxValue || len(v) < 1+n || v[0] != version {
		return nil
	}
	plain, err := b.aead.Open(nil, v[1:1+n], v[1+n:], ad)
	if err != nil {
		return nil
	}
	return plain
}

// Open returns the token sealed in v, or nil for a value that does not
// open: tampered with, sealed for another key name or other credentials,
// of another version, larger than MaxValue, or holding an empty access
// token or a lifetime that is not positive.
func (b *Box) Open(v []byte) *oauth2.Token {
	plain := b.open(v, b.additional())
	var t sealed
	if plain == nil || json.Unmarshal(plain, &t) != nil || t.AccessToken == "" || t.ExpiresIn <= 0 {
		return nil
	}
	return &oauth2.Token{AccessToken: t.AccessToken, TokenType: t.TokenType, Expiry: t.Expiry, ExpiresIn: t.ExpiresIn, RefreshToken: t.RefreshToken}
}

func (b *Box) additional() []byte { return []byte("fincalcauth token v1\x00" + b.name) }

// Failure is a failed fetch that a process leaves in a store beside the
// token, so that the other processes that share the store share its
// cool-down instead of each sending a request of its own.
type Failure struct {
	Until      time.Time     `json:"until"`       // no token request before then
	Status     int           `json:"status"`      // the HTTP status of the answer; 0 for none
	RetryAfter time.Duration `json:"retry_after"` // what the answer's Retry-After asked; 0 for none
	Failures   int           `json:"failures"`    // consecutive failed fetches
}

// FailureName returns the key name of the credentials' failure: the key
// name and "-failed".
func (b *Box) FailureName() string { return b.name + "-failed" }

// SealFailure returns f sealed for b's failure name.
func (b *Box) SealFailure(f Failure) []byte {
	plain, err := json.Marshal(f)
	if err != nil {
		panic("tokenstore: " + err.Error()) // a time and integers always encode
	}
	return b.seal(plain, b.failureAdditional())
}

// OpenFailure returns the failure sealed in v, or false for a value that
// does not open, as [Box.Open] says, or that holds no moment.
func (b *Box) OpenFailure(v []byte) (Failure, bool) {
	plain := b.open(v, b.failureAdditional())
	var f Failure
	if plain == nil || json.Unmarshal(plain, &f) != nil || f.Until.IsZero() {
		return Failure{}, false
	}
	return f, true
}

func (b *Box) failureAdditional() []byte { return []byte("fincalcauth failure v1\x00" + b.name) }
