package main

import (
	"context"
	"time"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/internal/tokenstore"
	"golang.org/x/oauth2"
)

// minRemaining is how long a cached token must still be valid to be
// reused: long enough for the command that uses it.
const minRemaining = 5 * time.Minute

// cache is the command's token cache: the library's file store in its
// default dir, with the library's key names and sealing, so that the
// command and a service whose Config.Store is fincalcauth.NewFileStore("")
// share one token. Each call returns when its context ends, whatever the
// file system does. A nil *cache holds nothing.
type cache struct {
	store *fincalcauth.FileStore
	box   *tokenstore.Box
}

// newCache returns the cache of cfg's token, or nil if the user has no
// cache dir.
func newCache(cfg *fincalcauth.Config) *cache {
	store := fincalcauth.NewFileStore("")
	if store.Dir() == "" {
		return nil
	}
	tokenURL := cfg.TokenURL
	if tokenURL == "" {
		tokenURL = fincalcauth.TokenURL
	}
	return &cache{
		store: store,
		box:   tokenstore.New(cfg.ClientSecret, tokenURL, cfg.ClientID, cfg.EmailAddress, cfg.Scopes),
	}
}

// load returns the cached token, whatever time it has left, or nil if
// there is none or it cannot be read or opened, and why not. The error
// is ctx's cause if ctx ended.
func (c *cache) load(ctx context.Context) (*oauth2.Token, error) {
	if c == nil {
		return nil, nil
	}
	v, err := bounded(ctx, func() ([]byte, error) { return c.store.Load(ctx, c.box.Name()) })
	if err != nil || v == nil {
		return nil, err
	}
	return c.box.Open(v), nil
}

// usable returns t if it has more than minRemaining left at now, with
// ExpiresIn counted from now, or nil.
func usable(t *oauth2.Token, now time.Time) *oauth2.Token {
	if t == nil || t.Expiry.Sub(now) <= minRemaining {
		return nil
	}
	u := *t
	u.ExpiresIn = int64(t.Expiry.Sub(now) / time.Second)
	return &u
}

// save stores tok, sealed, until its expiry.
func (c *cache) save(ctx context.Context, tok *oauth2.Token) error {
	if c == nil {
		return nil
	}
	v := c.box.Seal(tok)
	_, err := bounded(ctx, func() (struct{}, error) { return struct{}{}, c.store.Save(ctx, c.box.Name(), v, tok.Expiry) })
	return err
}

// clearCache removes every cached token of the user: it needs no settings,
// since an entry left by a rotated secret cannot be found by the new one.
func (c *command) clearCache(ctx context.Context) error {
	if err := c.refused("-clear-cache takes no -%s: it removes every cached token",
		"client-id", "email", "scopes", "token-url", "client-secret-file", "refresh", "no-cache", "status", "json"); err != nil {
		return err
	}
	store := fincalcauth.NewFileStore("")
	if store.Dir() == "" {
		return &usageError{problems: []string{"-clear-cache: this user has no cache dir"}}
	}
	ctx, done := c.stage(ctx, "the token cache in "+store.Dir()+" to be cleared")
	defer done()
	if _, err := bounded(ctx, func() (struct{}, error) { return struct{}{}, store.Clear() }); err != nil {
		return err
	}
	c.say("cleared %s", store.Dir())
	return nil
}
