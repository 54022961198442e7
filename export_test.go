package fincalcauth

import (
	"context"
	"net/http"
	"time"

	"github.com/gofincalc/fincalcauth/internal/tokenstore"
	"golang.org/x/oauth2"
)

// Internals for the tests of package fincalcauth_test.

// ParseResponse parses a whole answer, reporting it without secret.
func ParseResponse(resp *http.Response, body []byte, secret string, now time.Time) (*oauth2.Token, error) {
	a := newAnswer(resp, body, false, func() reporter { return reporter{ctx: context.Background(), secrets: []string{secret}} }, now)
	return parseResponse(&a, now)
}

const (
	FetchTimeout = fetchTimeout
	SleepBudget  = sleepBudget
	MaxAttempts  = maxAttempts
	MaxCooldown  = maxCooldown
)

func ParseRetryAfter(v string, now time.Time) time.Duration { return parseRetryAfter(v, now) }

// RefreshWindow returns the refresh window a new source of c gives a
// token of the given lifetime.
func RefreshWindow(c *Config, lifetime time.Duration) time.Duration {
	return newRefresher(context.Background(), c, nil).window(lifetime)
}

// ClientTokenLookup returns the token lookup that c's transport makes on
// each request; c must come from Config.Client.
func ClientTokenLookup(c *http.Client) func() (*oauth2.Token, error) {
	r := c.Transport.(*transport).r
	return func() (*oauth2.Token, error) {
		e, err := r.token(context.Background())
		if err != nil {
			return nil, err
		}
		return e.tok, nil
	}
}

// LockClient takes the lock of the refresher behind c, a client from
// Config.Client, and returns its release.
func LockClient(c *http.Client) (unlock func()) {
	r := c.Transport.(*transport).r
	r.mu.Lock()
	return r.mu.Unlock
}

// RefreshOffset returns how long after a token's issue a new source of c
// starts replacing a token of the given lifetime.
func RefreshOffset(c *Config, lifetime time.Duration) time.Duration {
	r := newRefresher(context.Background(), c, nil)
	now := time.Now()
	e := r.newEntry(&oauth2.Token{AccessToken: "t", Expiry: now.Add(lifetime), ExpiresIn: int64(lifetime / time.Second)})
	return e.refreshAt.Sub(now)
}

// RefreshOffsets returns, for n tokens of the given lifetime that one new
// source of c is given in turn, how long after issue it starts replacing
// each.
func RefreshOffsets(c *Config, lifetime time.Duration, n int) []time.Duration {
	r := newRefresher(context.Background(), c, nil)
	var offsets []time.Duration
	for range n {
		now := time.Now()
		e := r.newEntry(&oauth2.Token{AccessToken: "t", Expiry: now.Add(lifetime), ExpiresIn: int64(lifetime / time.Second)})
		offsets = append(offsets, e.refreshAt.Sub(now))
	}
	return offsets
}

// StoreKey returns the key under which sources of c keep their token.
func StoreKey(c *Config) string {
	return tokenstore.New(c.ClientSecret, c.tokenURL(), c.ClientID, c.EmailAddress, c.Scopes).Name()
}

// SealFor seals a token as sources of c do, under key, for tests of
// values that must not open.
func SealFor(c *Config, access string, expiry time.Time) []byte {
	b := tokenstore.New(c.ClientSecret, c.tokenURL(), c.ClientID, c.EmailAddress, c.Scopes)
	return b.Seal(&oauth2.Token{AccessToken: access, TokenType: "Bearer", Expiry: expiry, ExpiresIn: 86400})
}

const LeaseTTL = leaseTTL
