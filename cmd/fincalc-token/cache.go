package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gofincalc/fincalcauth"
	"golang.org/x/oauth2"
)

// minRemaining is how long a cached token must still be valid to be
// reused: long enough for the command that uses it.
const minRemaining = 5 * time.Minute

// cache holds tokens in files, one per key, readable by the user alone.
// A nil *cache holds nothing.
type cache struct {
	dir string
	key string
}

// entry is a cache file's content. It holds no secret but the token.
type entry struct {
	AccessToken string    `json:"access_token"`
	TokenType   string    `json:"token_type"`
	Expiry      time.Time `json:"expiry"`
}

// cacheDir returns the cache's folder, or "" if the user has none.
func cacheDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "fincalcauth")
}

// cacheKey names the token of cfg: its token URL, client ID, email
// address, set of scopes and a hash of its secret, so that a change to
// any of them is another entry. The secret itself is not recoverable
// from the key.
func cacheKey(cfg *fincalcauth.Config) string {
	scopes := slices.Clone(cfg.Scopes)
	slices.Sort(scopes)
	scopes = slices.Compact(scopes)
	tokenURL := cfg.TokenURL
	if tokenURL == "" {
		tokenURL = fincalcauth.TokenURL
	}
	secret := sha256.Sum256([]byte("fincalc-token secret\x00" + cfg.ClientSecret))
	h := sha256.New()
	for _, part := range []string{tokenURL, cfg.ClientID, cfg.EmailAddress, strings.Join(scopes, " "), hex.EncodeToString(secret[:])} {
		fmt.Fprintf(h, "%d:%s\x00", len(part), part)
	}
	return hex.EncodeToString(h.Sum(nil))[:40]
}

func (c *cache) path() string {
	return filepath.Join(c.dir, "token-"+c.key+".json")
}

// load returns the cached token if it has more than minRemaining left at
// now. A missing, unreadable or corrupt entry is no token.
func (c *cache) load(now time.Time) *oauth2.Token {
	if c == nil {
		return nil
	}
	b, err := os.ReadFile(c.path())
	if err != nil {
		return nil
	}
	var e entry
	if json.Unmarshal(b, &e) != nil || e.AccessToken == "" || e.Expiry.Sub(now) <= minRemaining {
		return nil
	}
	return &oauth2.Token{AccessToken: e.AccessToken, TokenType: e.TokenType, Expiry: e.Expiry,
		ExpiresIn: int64(e.Expiry.Sub(now) / time.Second)}
}

// store writes tok atomically: to a temporary file of mode 0600 in the
// cache's folder, renamed over the entry, so that concurrent runs never
// see a torn file.
func (c *cache) store(tok *oauth2.Token) error {
	if c == nil {
		return nil
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return err
	}
	// MkdirAll leaves an existing folder as it is.
	if err := os.Chmod(c.dir, 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(entry{AccessToken: tok.AccessToken, TokenType: tok.Type(), Expiry: tok.Expiry})
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(c.dir, ".token-*.tmp") // mode 0600
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, c.path())
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// clear removes the entry, if any.
func (c *cache) clear() error {
	err := os.Remove(c.path())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
