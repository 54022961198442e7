package main

import (
	"context"
	"path/filepath"
	"runtime"
	"time"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/internal/tokenstore"
	"golang.org/x/oauth2"
)

// minRemaining is how long a cached token must still be valid to be
// reused: long enough for the command that uses it.
const minRemaining = 5 * time.Minute

// cache is the command's token cache: the library's file store, with the
// library's key names and sealing, so that the command and a service
// whose Config.Store is a FileStore in the same folder share one token.
// A nil *cache holds nothing.
type cache struct {
	store *fincalcauth.FileStore
	box   *tokenstore.Box
}

// newCache returns the cache of cfg's token in dir.
func newCache(dir string, cfg *fincalcauth.Config) *cache {
	tokenURL := cfg.TokenURL
	if tokenURL == "" {
		tokenURL = fincalcauth.TokenURL
	}
	return &cache{
		store: fincalcauth.NewFileStore(dir),
		box:   tokenstore.New(cfg.ClientSecret, tokenURL, cfg.ClientID, cfg.EmailAddress, cfg.Scopes),
	}
}

// load returns the cached token if it has more than minRemaining left at
// now. A missing, unreadable, tampered or expiring entry is no token.
func (c *cache) load(ctx context.Context, now time.Time) *oauth2.Token {
	if c == nil {
		return nil
	}
	v, err := c.store.Load(ctx, c.box.Name())
	if err != nil || v == nil {
		return nil
	}
	t := c.box.Open(v)
	if t == nil || t.Expiry.Sub(now) <= minRemaining {
		return nil
	}
	t.ExpiresIn = int64(t.Expiry.Sub(now) / time.Second)
	return t
}

// save stores tok, sealed, until its expiry.
func (c *cache) save(ctx context.Context, tok *oauth2.Token) error {
	if c == nil {
		return nil
	}
	v := c.box.Seal(tok)
	return c.store.Save(ctx, c.box.Name(), v, tok.Expiry)
}

// cacheDir returns the cache's folder, as os.UserCacheDir would find it
// in the environment getenv reads, or "" if the user has none.
func cacheDir(getenv func(string) string) string {
	var base string
	switch runtime.GOOS {
	case "windows":
		base = getenv("LocalAppData")
	case "darwin", "ios":
		if home := getenv("HOME"); home != "" {
			base = filepath.Join(home, "Library", "Caches")
		}
	case "plan9":
		if home := getenv("home"); home != "" {
			base = filepath.Join(home, "lib", "cache")
		}
	default:
		base = getenv("XDG_CACHE_HOME")
		if !filepath.IsAbs(base) {
			base = ""
			if home := getenv("HOME"); home != "" {
				base = filepath.Join(home, ".cache")
			}
		}
	}
	if base == "" {
		return ""
	}
	return filepath.Join(base, "fincalcauth")
}
