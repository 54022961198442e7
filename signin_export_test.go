package fincalcauth

import (
	"context"
	"net/http"
	"time"

	"golang.org/x/oauth2"
)

// Internals of SignIn for the tests of package fincalcauth_test.

const SourceCacheSize = sourceCacheSize

// CachedSources returns how many sources s keeps in memory.
func CachedSources(s *SignIn) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lru.Len()
}

// ParseSignInAnswer parses a whole answer of the sign-in token endpoint,
// reporting it without secrets.
func ParseSignInAnswer(resp *http.Response, body []byte, secrets []string, now time.Time) (*oauth2.Token, error) {
	return parseSignInAnswer(signInReporter(context.Background(), secrets), resp, body, now)
}

// SignInTokenLookup returns the token lookup that c's transport makes on
// each request; c must come from SignIn.Client.
func SignInTokenLookup(c *http.Client) func() (*oauth2.Token, error) {
	u := c.Transport.(*signInTransport).u
	return func() (*oauth2.Token, error) {
		e, err := u.token(context.Background())
		if err != nil {
			return nil, err
		}
		return e.tok, nil
	}
}
