package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gofincalc/fincalcauth"
	"golang.org/x/oauth2"
)

// requestTimeout bounds each token request, as the library's own client
// does.
const requestTimeout = 10 * time.Second

// obtain returns a token for cfg: from cache, unless -refresh, or fetched
// and saved in cache. A nil cache is none. Every wait ends at the run's
// deadline.
func (c *command) obtain(ctx context.Context, cfg *fincalcauth.Config, cache *cache) (*oauth2.Token, error) {
	if cache == nil {
		c.say("no cache")
	} else {
		// Read even with -refresh: a refusal may quote the cached token,
		// which no message may show.
		c.say("reading the token cache in %s", cache.store.Dir())
		sctx, done := c.stage(ctx, "the token cache in "+cache.store.Dir())
		cached, err := cache.load(sctx)
		ended := sctx.Err() != nil
		done()
		if ended {
			return nil, err
		}
		if cached != nil {
			c.hold(cached.AccessToken)
		}
		switch t := usable(cached, time.Now()); {
		case err != nil:
			c.say("cache not readable, not used: %v", err)
		case c.o.refresh:
			c.say("-refresh: not using the cache")
		case t != nil:
			c.say("cache hit: a token that expires at %s", t.Expiry.UTC().Format(time.RFC3339))
			return t, nil
		default:
			c.say("cache miss")
		}
	}

	if c.o.verbose {
		cfg.Logger = slog.New(&verboseHandler{c: c})
	}
	hc := &http.Client{Timeout: requestTimeout}
	sctx, done := c.stage(context.WithValue(ctx, oauth2.HTTPClient, hc), "a token from "+shownURL(cfg))
	tok, err := cfg.Token(sctx)
	done()
	if err != nil {
		return nil, err
	}
	c.hold(tok.AccessToken)
	if cache == nil {
		return tok, nil
	}
	sctx, done = c.stage(ctx, "the token cache in "+cache.store.Dir()+" to take the token")
	err = cache.save(sctx, tok)
	done()
	switch {
	case ctx.Err() != nil:
		return nil, context.Cause(ctx)
	case err != nil:
		c.tell("warning: token not cached: %v", err)
	default:
		c.say("token cached")
	}
	return tok, nil
}

// shownURL returns cfg's token URL fit to show: see shownTokenURL.
func shownURL(cfg *fincalcauth.Config) string {
	raw := cfg.TokenURL
	if raw == "" {
		raw = fincalcauth.TokenURL
	}
	if s := shownTokenURL(raw); s != "" {
		return s
	}
	return "the token URL"
}

func (c *command) printToken(tok *oauth2.Token) error {
	var err error
	if c.o.json {
		err = json.NewEncoder(c.stdout).Encode(struct {
			AccessToken string `json:"access_token"`
			TokenType   string `json:"token_type"`
			Expiry      string `json:"expiry"`
			ExpiresIn   int64  `json:"expires_in"`
		}{tok.AccessToken, tok.Type(), tok.Expiry.UTC().Format(time.RFC3339), int64(time.Until(tok.Expiry) / time.Second)})
	} else {
		_, err = fmt.Fprintln(c.stdout, tok.AccessToken)
	}
	if err != nil {
		return fmt.Errorf("writing the token: %w", err)
	}
	return nil
}
