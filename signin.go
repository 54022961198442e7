package fincalcauth

import (
	"bytes"
	"container/list"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofincalc/fincalcauth/internal/tokenstore"
	"golang.org/x/oauth2"
)

// Endpoint is FinCalc's OAuth2 endpoint for the sign-in flow, for
// oauth2.Config. Its AuthStyle sends the client credentials in the form
// body, which Passport accepts, so that no request is ever sent twice to
// find out which style the server wants (x/oauth2's AuthStyleAutoDetect
// would resend a refused refresh).
var Endpoint = oauth2.Endpoint{
	AuthURL:   "https://api.fincalc.co.uk/oauth/authorize",
	TokenURL:  "https://api.fincalc.co.uk/oauth/token",
	AuthStyle: oauth2.AuthStyleInParams,
}

// ErrSignInRequired is in the error chain when user has no tokens, or the
// refresh token was refused (revoked, expired): the application sends the
// person through the sign-in flow again.
var ErrSignInRequired = errors.New("fincalcauth: sign-in required")

const (
	// refreshLifetime is how long a store keeps a person's entry after
	// the access token's expiry: Passport's default refresh-token
	// lifetime, since the token answer does not say.
	refreshLifetime = 366 * 24 * time.Hour

	// signInLeaseTTL is how long a person's lease lasts unless renewed,
	// as it is while its holder refreshes or saves: short enough that a
	// process that dies holding it costs the others no more than this
	// wait.
	signInLeaseTTL = 20 * time.Second

	// signInLeasePoll bounds the pause between two looks at the store while
	// another process holds the lease.
	signInLeasePoll = 250 * time.Millisecond

	// sourceCacheSize bounds the sources a SignIn keeps in memory.
	sourceCacheSize = 4096

	// lockedAccount is the API's message for a locked account, which no
	// new token mends.
	lockedAccount = "User account is locked."
)

// SignIn keeps the tokens of the people who signed in to an application
// with FinCalc, one entry per user key, in Store.
//
// The store is the record of each person's tokens, not a cache: Passport
// rotates refresh tokens, so each refresh makes the stored refresh token
// useless and the new one exists only in the answer. Every process that
// shares the store shares each person's tokens: a refresh takes the
// person's lease, when Store is a [Leaser], reads the store again, uses a
// token that another process has already rotated if there is one, and
// otherwise refreshes and saves the new pair before it releases the
// lease, so that a fleet sends one refresh per expired token. Without a
// Leaser, processes that refresh at once may spend the same refresh
// token: the loser, on its invalid_grant, looks in the store once and
// uses the winner's token if it is there already; if not, that one call
// fails with [ErrSignInRequired], and the next one finds the winner's.
//
// A refresh is never sent twice: if its answer is lost (a dropped
// connection, a timeout), the server may have rotated the token, and the
// next attempt, a second or more later, sends the same refresh token,
// which is then refused: a lost answer can cost the person a sign-in. A
// refreshed pair that the store does not take is logged at Error, kept in
// memory and used, and saved again, holding the lease, until the store
// takes it. While the store fails, a process goes on with the tokens it
// holds; one that holds none fails with the store's error, which is not
// [ErrSignInRequired]. Store calls are bounded by a second each.
//
// The tokens are sealed as [Config.Store]'s are, under a key derived from
// Config.ClientSecret, and filed under a keyed hash of the token URL, the
// client ID, the user key and the scopes. The methods fail before any I/O
// if Config is nil, has no ClientID, ClientSecret or Endpoint.TokenURL,
// or has a TokenURL that is not https (plain http only to a loopback
// host), or if Store is nil.
//
// Logger, if set, receives a Warn record for each failed refresh, failed
// store call and locked account, and an Error record for each refreshed
// pair that the store did not take; no record holds a secret.
//
// Observer, if set, is told what the sources of all users do, as
// [Config.Observer] is: each token request of the code exchange and of
// each refresh as a fetch, with the context of the caller that waits for
// it; each store call but a lease's release; each token that a source
// takes into use (there is no refresh ahead: its RefreshAt is its
// ValidUntil); each 401 from the API to a request of [SignIn.Client]. The
// Source of an event is the first 8 characters of the key name of the
// user's entry, a keyed hash; it differs from one user to another, so a
// [Health] set here reports on whichever user's token was taken into use
// last. The Err of a [FetchEnd] is the token request's error, not a
// [TokenError]. Nil reports nothing.
//
// Credentials go in the form body, or in an HTTP Basic header when
// Config.Endpoint.AuthStyle is [oauth2.AuthStyleInHeader]. A SignIn must
// not be copied or its fields changed after first use; it is safe for
// concurrent use.
type SignIn struct {
	Config *oauth2.Config // ClientID, ClientSecret, RedirectURL, Scopes; Endpoint: Endpoint or a fake's
	Store  Store          // required: where each user's tokens live, sealed as today's tokens are
	Logger *slog.Logger   // optional, as Config.Logger

	// Observer, if set, is told about fetches, store calls, tokens taken
	// into use and 401s, as described above. Nil reports nothing.
	Observer Observer

	checked sync.Once
	invalid error // what validate found, once

	// noLease is set once Store's Lease has said, with an error that
	// wraps errors.ErrUnsupported, that it grants no leases here: the
	// store is then used as a plain Store.
	noLease atomic.Bool

	mu      sync.Mutex
	sources map[sourceKey]*list.Element // of *userSource, most recently used first in lru
	lru     list.List
}

// sourceKey names a cached source: one person, through one HTTP client.
type sourceKey struct {
	user string
	hc   *http.Client
}

// validate returns what makes s unusable, or nil. It looks at s's
// fields once, on first use.
func (s *SignIn) validate() error {
	if s == nil {
		return errors.New("fincalcauth: nil *SignIn")
	}
	s.checked.Do(func() { s.invalid = s.check() })
	return s.invalid
}

func (s *SignIn) check() error {
	switch {
	case s.Config == nil:
		return errors.New("fincalcauth: SignIn.Config is nil")
	case s.Config.ClientID == "":
		return errors.New("fincalcauth: SignIn.Config.ClientID is empty")
	case s.Config.ClientSecret == "":
		return errors.New("fincalcauth: SignIn.Config.ClientSecret is empty; it seals the tokens in the store")
	case s.Store == nil:
		return errors.New("fincalcauth: SignIn.Store is nil; the sign-in flow keeps its tokens there")
	}
	if p := checkTokenURL(s.Config.Endpoint.TokenURL); p != "" {
		return fmt.Errorf("fincalcauth: SignIn.Config.Endpoint.TokenURL %s", p)
	}
	return nil
}

// Exchange trades an authorization code for tokens and saves them under user.
//
// opts are those given to x/oauth2's Exchange, such as
// oauth2.VerifierOption(verifier) for PKCE. The token request uses ctx's
// HTTP client, as [Config.Token] does, and is sent once: a code is good
// for one use. A failed Exchange returns an error with an
// [*oauth2.RetrieveError] in its chain when the server answered, and
// saves nothing. The returned token has no RefreshToken: the refresh
// token stays in the store, so that only the SignIn spends it. A pair
// that the store does not take at once is kept by this process and saved
// again, as after a refresh.
func (s *SignIn) Exchange(ctx context.Context, user, code string, opts ...oauth2.AuthCodeOption) (*oauth2.Token, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	ctx = orBackground(ctx)
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}}
	if s.Config.RedirectURL != "" {
		form.Set("redirect_uri", s.Config.RedirectURL)
	}
	// x/oauth2 applies its options through an unexported method: have
	// it write them into a URL, and read them back.
	extra, _ := url.Parse((&oauth2.Config{Endpoint: oauth2.Endpoint{AuthURL: "x:"}}).AuthCodeURL("", opts...))
	for k, vs := range extra.Query() {
		if k != "response_type" && k != "client_id" {
			form[k] = vs
		}
	}
	u := s.source(ctx, user)
	secrets := []string{code, form.Get("code_verifier")}
	tok, _, err := u.w.request(ctx, form, secrets)
	if err != nil {
		return nil, fmt.Errorf("fincalcauth: exchanging the authorization code: %w", err)
	}
	u.install(ctx, u.newEntry(tok))
	return publicToken(tok), nil
}

// TokenSource returns a source of user's access tokens, refreshed and saved as needed.
//
// The source is the one [SignIn.Client] uses: see there. Its tokens are
// valid until 10 seconds before FinCalc's expiry, carry no RefreshToken,
// and are shared with other callers, who must not modify them. Its
// errors have [ErrSignInRequired] in their chain when the person must
// sign in again. Token requests use ctx's HTTP client; ctx's values are
// kept, its cancellation is not.
func (s *SignIn) TokenSource(ctx context.Context, user string) oauth2.TokenSource {
	if err := s.validate(); err != nil {
		return errSource{err}
	}
	return signInTokenSource{s.source(orBackground(ctx), user)}
}

// Client returns an HTTP client that sends user's access token, as Config.Client does.
//
// Client may be called for each request: the SignIn keeps one source per
// user and HTTP client of ctx (the most recent 4096), so that a request
// whose token is fresh costs no store read and no token request. A token
// is refreshed when it is within 10 seconds of its expiry, under the
// rules of [SignIn].
//
// When the API answers 401, the client looks in the store: if another
// process has saved a newer token, it replays the request once with that
// one; if not, it refreshes, as on expiry, and replays once (a request
// whose body cannot be sent again is not replayed; it gets the 401).
// Such refreshes are rationed, from about a second apart to a minute,
// so that an API that refuses every token costs a handful of token
// requests. A 401 that says "User account is locked." goes back to the
// caller as is, with a Warn record: no token mends it. When the refresh
// is refused, the request fails with [ErrSignInRequired] in its chain,
// inside the *url.Error.
//
// The token goes where [Config.Client]'s does, and the client is built on
// ctx's HTTP client in the same way. If s is unusable, every request
// fails with the reason.
func (s *SignIn) Client(ctx context.Context, user string) *http.Client {
	ctx = orBackground(ctx)
	base := contextClient(ctx)
	if base == nil {
		base = http.DefaultClient
	}
	t := &signInTransport{base: base.Transport}
	if t.base == nil {
		t.base = http.DefaultTransport
	}
	if t.err = s.validate(); t.err == nil {
		t.u = s.source(ctx, user)
	}
	return &http.Client{Transport: t, CheckRedirect: base.CheckRedirect, Jar: base.Jar, Timeout: base.Timeout}
}

// SignOut forgets user's tokens.
//
// It deletes user's entry from the store and from this process. Other
// processes that share the store find the entry gone when they next
// consult it, at their next refresh or 401, and then answer
// [ErrSignInRequired]. With a [Leaser], it deletes under user's lease, so
// that a refresh under way in another process cannot put the entry back
// afterwards. The tokens are not revoked at FinCalc.
func (s *SignIn) SignOut(ctx context.Context, user string) error {
	if err := s.validate(); err != nil {
		return err
	}
	ctx = orBackground(ctx)
	s.mu.Lock()
	for k, el := range s.sources {
		if k.user == user {
			el.Value.(*userSource).forget()
			s.lru.Remove(el)
			delete(s.sources, k)
		}
	}
	s.mu.Unlock()
	u := newUserSource(s, ctx, user)
	// Delete under the person's lease: a refresh under way in another
	// process saves its new pair before it releases the lease, and would
	// otherwise put the entry back after the delete.
	if l, _ := u.lease(ctx, nil, false); l.u != nil {
		defer l.release()
	}
	for range 3 {
		v, err := storeCallFor(u, ctx, "load", false, func(ctx context.Context) ([]byte, error) { return s.Store.Load(ctx, u.box.Name()) })
		if err != nil {
			return fmt.Errorf("fincalcauth: signing out: reading the store: %w", err)
		}
		if v == nil {
			return nil
		}
		if _, err := storeCallFor(u, ctx, "delete", false, func(ctx context.Context) (struct{}, error) {
			return struct{}{}, s.Store.Delete(ctx, u.box.Name(), v)
		}); err != nil {
			return fmt.Errorf("fincalcauth: signing out: deleting from the store: %w", err)
		}
	}
	return errors.New("fincalcauth: signing out: the store's entry keeps changing")
}

// source returns the cached source of user for ctx's HTTP client, or a
// new one.
func (s *SignIn) source(ctx context.Context, user string) *userSource {
	k := sourceKey{user, contextClient(ctx)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.sources[k]; ok {
		s.lru.MoveToFront(el)
		return el.Value.(*userSource)
	}
	if s.sources == nil {
		s.sources = make(map[sourceKey]*list.Element)
	}
	u := newUserSource(s, ctx, user)
	s.sources[k] = s.lru.PushFront(u)
	if s.lru.Len() > sourceCacheSize {
		old := s.lru.Back()
		s.lru.Remove(old)
		ou := old.Value.(*userSource)
		delete(s.sources, sourceKey{ou.user, ou.w.hcKey})
	}
	return u
}

// signInBox returns the box of user's tokens.
func signInBox(c *oauth2.Config, user string) *tokenstore.Box {
	// A NUL cannot start an email address: these names never meet
	// those of the client-credentials flow.
	return tokenstore.New(c.ClientSecret, c.Endpoint.TokenURL, c.ClientID, "\x00sign-in\x00"+user, c.Scopes)
}

// publicToken returns a copy of tok fit to hand out: no refresh token.
func publicToken(tok *oauth2.Token) *oauth2.Token {
	return &oauth2.Token{AccessToken: tok.AccessToken, TokenType: tok.TokenType, Expiry: tok.Expiry, ExpiresIn: tok.ExpiresIn}
}

// userSource keeps one person's token in one process.
type userSource struct {
	user   string
	store  Store
	leaser Leaser // store, if it is a Leaser
	// noLease is the SignIn's: set, leaser grants no leases here.
	noLease *atomic.Bool
	owner   []byte // this source's name as a lease holder
	box     *tokenstore.Box
	w       *signInWire
	ctx     context.Context // values only
	logger  *slog.Logger
	obs     Observer // SignIn.Observer
	source  string   // the Source of obs's events

	cur atomic.Pointer[userEntry]

	mu          sync.Mutex
	inflight    *userFlight
	lastErr     error
	failures    int
	nextTry     time.Time // no refresh starts before this after a failure
	refusals    int
	nextRefusal time.Time // no refresh for a 401 starts before this
}

type userEntry struct {
	tok        *oauth2.Token          // with its refresh token
	stored     atomic.Pointer[[]byte] // the sealed value the store holds, once known
	validUntil time.Time
	loaded     bool // it came from the store
}

type userFlight struct {
	done chan struct{}
	e    *userEntry
	err  error
}

func newUserSource(s *SignIn, ctx context.Context, user string) *userSource {
	u := &userSource{
		user:   user,
		store:  s.Store,
		box:    signInBox(s.Config, user),
		ctx:    context.WithoutCancel(ctx),
		logger: s.Logger,
	}
	u.leaser, _ = s.Store.(Leaser)
	u.noLease = &s.noLease
	u.owner = newOwner()
	if s.Observer != nil {
		u.obs, u.source = s.Observer, u.box.Name()[:8]
	}
	c := *s.Config
	c.Scopes = append([]string(nil), c.Scopes...)
	u.w = &signInWire{cfg: &c, client: tokenClient(contextClient(ctx)), hcKey: contextClient(ctx), logger: s.Logger, obs: u.obs, source: u.source}
	return u
}

func (u *userSource) newEntry(tok *oauth2.Token) *userEntry {
	return &userEntry{tok: tok, validUntil: tok.Expiry.Add(-expiryDelta)}
}

// token returns the entry of a valid token, refreshing it if needed.
func (u *userSource) token(ctx context.Context) (*userEntry, error) {
	if e := u.cur.Load(); e != nil && time.Now().Before(e.validUntil) {
		return e, nil
	}
	return u.refresh(ctx, nil)
}

// refresh replaces the current token, expired or, if refused is set,
// refused by the API, and returns the replacement. One refresh at a time
// runs per source; callers wait for it or until ctx is done.
func (u *userSource) refresh(ctx context.Context, refused *userEntry) (*userEntry, error) {
	u.mu.Lock()
	cur := u.cur.Load()
	now := time.Now()
	switch {
	case refused == nil && cur != nil && now.Before(cur.validUntil):
		u.mu.Unlock()
		return cur, nil
	case refused != nil && cur != refused && cur != nil:
		u.mu.Unlock()
		return cur, nil
	}
	fl := u.inflight
	if fl == nil {
		if u.lastErr != nil && now.Before(u.nextTry) {
			err := u.lastErr
			u.mu.Unlock()
			return nil, err
		}
		if refused != nil {
			if now.Before(u.nextRefusal) {
				u.mu.Unlock()
				return nil, nil
			}
			if now.Sub(u.nextRefusal) > maxCooldown {
				u.refusals = 0
			}
			u.refusals++
			u.nextRefusal = now.Add(cooldown(u.refusals))
		}
		fl = &userFlight{done: make(chan struct{})}
		u.inflight = fl
		go u.run(fl, cur, refused, ctx)
	}
	u.mu.Unlock()
	select {
	case <-fl.done:
		return fl.e, fl.err
	case <-ctx.Done():
		return nil, fmt.Errorf("fincalcauth: waiting for a token: %w", ctx.Err())
	}
}

// run refreshes for the flight fl, which caller's context waits for.
func (u *userSource) run(fl *userFlight, cur, refused *userEntry, caller context.Context) {
	// The refresh runs to its end whoever waits for it: cut short, its
	// answer would be lost, and the refresh token with it.
	ctx, cancel := context.WithTimeout(u.ctx, signInLeaseTTL+fetchTimeout)
	if u.obs != nil {
		ctx = withCaller(ctx, u.ctx, caller)
	}
	e, retryAfter, err := u.obtain(ctx, cur, refused)
	cancel()
	if err == nil {
		u.tookIntoUse(ctx, e)
	}
	now := time.Now()
	u.mu.Lock()
	u.inflight = nil
	fl.e, fl.err = e, err
	switch {
	case err == nil:
		u.cur.Store(e)
		u.lastErr, u.failures = nil, 0
	case errors.Is(err, ErrSignInRequired):
		u.cur.Store(nil)
		u.lastErr, u.failures = nil, 0
	default:
		u.lastErr = err
		u.failures++
		u.nextTry = now.Add(max(cooldown(u.failures), retryAfter))
	}
	u.mu.Unlock()
	close(fl.done)
	if err != nil && u.logger != nil && !errors.Is(err, ErrSignInRequired) {
		u.logger.LogAttrs(u.ctx, slog.LevelWarn, "fincalcauth: sign-in token refresh failed",
			slog.String("error", err.Error()), slog.Int("status", statusOf(err)))
	}
}

// obtain returns a token to replace cur: one that another process
// rotated, or a new one, saved before the lease is released.
func (u *userSource) obtain(ctx context.Context, cur, refused *userEntry) (*userEntry, time.Duration, error) {
	stale := cur
	if refused != nil {
		stale = refused
	}
	usable := func(e *userEntry) bool {
		return e != nil && newer(e, stale) && time.Now().Before(e.validUntil)
	}
	if u.leasing() {
		// A look before the lease: a process that starts, or that
		// another has overtaken, needs none.
		if e, err := u.load(ctx); err == nil && usable(e) {
			return e, 0, nil
		}
	}
	l, adopted := u.lease(ctx, stale, true)
	if adopted != nil {
		return adopted, 0, nil
	}
	keepLease := false
	defer func() {
		if !keepLease {
			l.release()
		}
	}()

	stored, err := u.load(ctx)
	if err == nil && stored == nil && cur != nil && cur.stored.Load() != nil {
		// The entry this process saved or read is gone: the person
		// signed out, or a refresh elsewhere was refused.
		return nil, 0, fmt.Errorf("%w: %s", ErrSignInRequired, "the stored tokens were deleted")
	}
	if usable(stored) {
		return stored, 0, nil
	}
	base := stored
	if cur != nil && (base == nil || cur.tok.Expiry.After(base.tok.Expiry)) {
		// This process holds a pair that the store has not taken yet.
		base = cur
	}
	if base == nil && err != nil {
		return nil, 0, fmt.Errorf("fincalcauth: reading the sign-in token store: %w", err)
	}
	if base == nil {
		return nil, 0, fmt.Errorf("%w: no tokens are stored for this user", ErrSignInRequired)
	}
	if base.tok.RefreshToken == "" {
		u.deleteEntry(ctx, base)
		return nil, 0, fmt.Errorf("%w: the stored tokens have no refresh token", ErrSignInRequired)
	}

	stop := l.keep()
	tok, retryAfter, err := u.w.request(ctx, url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {base.tok.RefreshToken},
	}, []string{base.tok.RefreshToken, base.tok.AccessToken})
	stop()
	if err != nil {
		if !refusedRefresh(err) {
			return nil, retryAfter, fmt.Errorf("fincalcauth: refreshing the sign-in token: %w", err)
		}
		// Look once more: another process may have rotated the token
		// between the load and the refresh.
		if again, lerr := u.load(ctx); lerr == nil && again != nil && again.tok.RefreshToken != base.tok.RefreshToken && time.Now().Before(again.validUntil) {
			return again, 0, nil
		}
		u.deleteEntry(ctx, base)
		return nil, 0, fmt.Errorf("%w: the refresh token was refused: %w", ErrSignInRequired, err)
	}
	if tok.RefreshToken == "" {
		tok.RefreshToken = base.tok.RefreshToken // kept, as x/oauth2 keeps it
	}
	e := u.newEntry(tok)
	if !u.save(ctx, e) {
		keepLease = true
		go u.saveUntilStored(e, l)
	}
	return e, 0, nil
}

// newer reports whether e holds another token than old.
func newer(e, old *userEntry) bool {
	return old == nil || e.tok.AccessToken != old.tok.AccessToken
}

// refusedRefresh reports whether err is the server's refusal of a
// refresh token: 400 invalid_grant (league 9), or 401 invalid_request
// (league 8).
func refusedRefresh(err error) bool {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response == nil {
		return false
	}
	return (re.Response.StatusCode == http.StatusBadRequest && re.ErrorCode == "invalid_grant") ||
		(re.Response.StatusCode == http.StatusUnauthorized && re.ErrorCode == "invalid_request")
}

// install makes e the current token after an exchange, and saves it.
func (u *userSource) install(ctx context.Context, e *userEntry) {
	u.mu.Lock()
	u.lastErr, u.failures, u.nextTry = nil, 0, time.Time{}
	u.cur.Store(e)
	u.mu.Unlock()
	u.tookIntoUse(ctx, e)
	if !u.save(ctx, e) {
		go u.saveUntilStored(e, heldLease{})
	}
}

// forget drops the source's token, for SignOut.
func (u *userSource) forget() {
	u.mu.Lock()
	u.cur.Store(nil)
	u.mu.Unlock()
}

// save saves e in the store and reports whether the store took it; a
// failure is logged at Error.
func (u *userSource) save(ctx context.Context, e *userEntry) bool {
	v := u.box.Seal(e.tok)
	_, err := storeCallFor(u, ctx, "save", false, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, u.store.Save(ctx, u.box.Name(), v, e.tok.Expiry.Add(refreshLifetime))
	})
	if err != nil {
		if u.logger != nil {
			u.logger.LogAttrs(u.ctx, slog.LevelError, "fincalcauth: the store did not take a new sign-in token; it is kept in memory and saved again until the store takes it",
				slog.String("error", err.Error()))
		}
		return false
	}
	e.stored.Store(&v)
	return true
}

// saveUntilStored saves e again, with a growing pause and renewing l,
// until the store takes it or e is no longer the current token, and then
// releases l.
func (u *userSource) saveUntilStored(e *userEntry, l heldLease) {
	defer func() {
		u.mu.Lock()
		busy := u.inflight != nil // a refresh of this source holds the lease now
		u.mu.Unlock()
		if !busy {
			l.release()
		}
	}()
	for n := 1; ; n++ {
		time.Sleep(cooldown(n))
		if u.cur.Load() != e {
			return
		}
		l.renew()
		if u.save(u.ctx, e) {
			return
		}
	}
}

// load returns the entry the store holds, or nil for none; err is the
// store's failure.
func (u *userSource) load(ctx context.Context) (*userEntry, error) {
	return u.loadEntry(ctx, false)
}

// poll is load while waiting for another process's refresh.
func (u *userSource) poll(ctx context.Context) (*userEntry, error) {
	return u.loadEntry(ctx, true)
}

func (u *userSource) loadEntry(ctx context.Context, poll bool) (*userEntry, error) {
	v, err := storeCallFor(u, ctx, "load", poll, func(ctx context.Context) ([]byte, error) { return u.store.Load(ctx, u.box.Name()) })
	if err != nil || v == nil {
		return nil, err
	}
	tok := u.box.Open(v)
	if tok == nil || !headerSafe(tok.AccessToken) || !headerSafe(tok.TokenType) {
		return nil, nil
	}
	e := u.newEntry(tok)
	e.stored.Store(&v)
	e.loaded = true
	return e, nil
}

// deleteEntry removes e from the store, unless the store holds another
// value.
func (u *userSource) deleteEntry(ctx context.Context, e *userEntry) {
	v := e.stored.Load()
	if v == nil {
		return
	}
	storeCallFor(u, ctx, "delete", false, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, u.store.Delete(ctx, u.box.Name(), *v)
	})
}

// storeCallFor runs call, one call of u's store, bounded by
// storeTimeout whatever the store does with its context: it returns when
// call does or when the bound passes, and a call given up goes on in its
// goroutine until the store answers. A failure is logged at Warn. For
// this flow a failed call is not skipped over: a failed load is not a
// miss, and a failed save is saved again (see [SignIn]). The call is
// reported to u's Observer under ctx, but for a release, and for a poll
// (a call made while waiting for another process's refresh) only when it
// finds something or fails.
func storeCallFor[T any](u *userSource, ctx context.Context, op string, poll bool, call func(context.Context) (T, error)) (T, error) {
	obsCtx := ctx
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	start := time.Now()
	var res storeResult[T]
	select {
	case res = <-goStoreCall(ctx, call):
	case <-ctx.Done():
		res.err = fmt.Errorf("no answer within %v: %w", storeTimeout, ctx.Err())
	}
	if u.obs != nil && op != "release" {
		reportStoreOp(u.obs, u.source, obsCtx, StoreOperation(op), poll, res.v, res.err, time.Since(start))
	}
	if res.err != nil && u.logger != nil {
		u.logger.LogAttrs(u.ctx, slog.LevelWarn, "fincalcauth: sign-in token store "+op+" failed",
			slog.String("error", res.err.Error()))
	}
	return res.v, res.err
}

// heldLease is a person's lease held by a source; the zero value is no
// lease.
type heldLease struct {
	u     *userSource
	owner []byte
}

func (l heldLease) release() {
	if l.u == nil {
		return
	}
	storeCallFor(l.u, l.u.ctx, "release", false, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, l.u.leaser.Release(ctx, l.u.box.Name(), l.owner)
	})
}

// renew extends the lease.
func (l heldLease) renew() {
	if l.u == nil {
		return
	}
	storeCallFor(l.u, l.u.ctx, "lease", false, func(ctx context.Context) (bool, error) {
		return l.u.leaser.Lease(ctx, l.u.box.Name(), l.owner, time.Now().Add(signInLeaseTTL))
	})
}

// keep renews l every third of its lifetime until stop is called, and
// stop returns once no renewal is under way: a refresh is never cut
// short (its answer would be lost), so the lease lasts as long as the
// refresh does, and no other process refreshes the same token meanwhile.
func (l heldLease) keep() (stop func()) {
	if l.u == nil {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(signInLeaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				l.renew()
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// lease takes the person's lease, if the store is a Leaser, and returns
// its release. While another process holds it, lease waits; if adopt is
// set, it also watches the store: if a token other than stale appears
// there, it returns that token and no lease. If the store fails, or ctx
// is done, it goes on without a lease.
func (u *userSource) lease(ctx context.Context, stale *userEntry, adopt bool) (l heldLease, adopted *userEntry) {
	if !u.leasing() {
		return heldLease{}, nil
	}
	owner := u.owner
	key := u.box.Name()
	pause := signInLeasePoll / 5
	for waited := false; ; waited = true {
		ok, err := storeCallFor(u, ctx, "lease", waited, func(ctx context.Context) (bool, error) {
			ok, err := u.leaser.Lease(ctx, key, owner, time.Now().Add(signInLeaseTTL))
			if errors.Is(err, errors.ErrUnsupported) {
				// A store that cannot grant leases here, such as a
				// FileStore without flock, is used without them.
				u.noLease.Store(true)
				return false, nil
			}
			return ok, err
		})
		if err != nil || u.noLease.Load() {
			return heldLease{}, nil
		}
		if ok {
			return heldLease{u, owner}, nil
		}
		if adopt {
			if e, err := u.poll(ctx); err == nil && e != nil && newer(e, stale) && time.Now().Before(e.validUntil) {
				return heldLease{}, e
			}
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return heldLease{}, nil
		case <-t.C:
		}
		pause = min(pause*2, signInLeasePoll)
	}
}

// leasing reports whether u's store grants leases, as far as it knows.
func (u *userSource) leasing() bool {
	return u.leaser != nil && !u.noLease.Load()
}

// signInTokenSource is the source of SignIn.TokenSource.
type signInTokenSource struct{ u *userSource }

func (s signInTokenSource) Token() (*oauth2.Token, error) {
	e, err := s.u.token(s.u.ctx) // never done; the source's values for an Observer
	if err != nil {
		return nil, err
	}
	t := publicToken(e.tok)
	t.Expiry = e.validUntil
	return t, nil
}

// signInTransport is the RoundTripper of SignIn.Client.
type signInTransport struct {
	u    *userSource
	err  error
	base http.RoundTripper
}

func (t *signInTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.err != nil {
		closeBody(req)
		return nil, t.err
	}
	if !carriesToken(req) {
		return t.base.RoundTrip(req)
	}
	e, err := t.u.token(req.Context())
	if err != nil {
		closeBody(req)
		return nil, err
	}
	replayable := replayable(req)
	req2 := req.Clone(req.Context())
	e.tok.SetAuthHeader(req2)
	resp, err := t.send(req2, e)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	replayed := false
	if t.u.obs != nil {
		defer func() { t.u.obs.Observe(req.Context(), Unauthorized{Source: t.u.source, Replayed: replayed}) }()
	}
	if accountLocked(resp) {
		if t.u.logger != nil {
			t.u.logger.LogAttrs(req.Context(), slog.LevelWarn, "fincalcauth: the API says the user account is locked; the token is not replaced")
		}
		return resp, nil
	}
	e2, err := t.u.refresh(req.Context(), e)
	if err != nil {
		if errors.Is(err, ErrSignInRequired) {
			discard(resp)
			return nil, err
		}
		return resp, nil
	}
	if e2 == nil || e2.tok.AccessToken == e.tok.AccessToken || !replayable {
		return resp, nil
	}
	req3 := replay(req, resp, e2.tok)
	if req3 == nil {
		return resp, nil
	}
	replayed = true
	return t.send(req3, e2)
}

// send sends req, which carries e's token, as [transport.send] does: a
// failure or a Location that mentions a secret is reported withheld.
func (t *signInTransport) send(req *http.Request, e *userEntry) (*http.Response, error) {
	return sendWithToken(t.base, req, func() reporter {
		return signInReporter(req.Context(), []string{e.tok.AccessToken, e.tok.RefreshToken, t.u.w.cfg.ClientSecret})
	})
}

// accountLocked reports whether resp, a 401 from the API, says the
// account is locked. It leaves resp's body readable from its start.
func accountLocked(resp *http.Response) bool {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(b), resp.Body), resp.Body}
	_, msg := describe(b)
	return strings.EqualFold(msg, lockedAccount)
}

// signInWire sends the sign-in flow's token requests.
type signInWire struct {
	cfg    *oauth2.Config
	client *http.Client
	hcKey  *http.Client // ctx's client, the cache key
	logger *slog.Logger
	obs    Observer // told of each request as a fetch
	source string
}

// request sends one token request with form, adding the client
// credentials, and returns the token, or an error with the server's
// Retry-After, if any. A 429 is waited out and sent again while the
// waits add up to no more than sleepBudget: a throttled request was not
// processed. Nothing else is sent twice. secrets are the form's secrets,
// which the error never repeats. The request is reported to w's Observer
// as a fetch, each attempt sent as a FetchAttempt.
func (w *signInWire) request(ctx context.Context, form url.Values, secrets []string) (*oauth2.Token, time.Duration, error) {
	tr := startTrace(w.obs, w.source, ctx)
	tok, wait, err := w.send(ctx, tr, form, secrets)
	tr.end(tok, err)
	return tok, wait, err
}

// send sends the attempts of request, each reported to tr.
func (w *signInWire) send(ctx context.Context, tr *fetchTrace, form url.Values, secrets []string) (*oauth2.Token, time.Duration, error) {
	secrets = append(secrets, w.cfg.ClientSecret)
	var slept time.Duration
	for {
		tok, retryAfter, code, throttled, err := w.attempt(ctx, form, secrets)
		tr.attempt(outcome{code: code, err: err})
		if !throttled {
			return tok, retryAfter, err
		}
		wait := max(retryAfter, time.Second)
		if slept+wait > sleepBudget {
			return nil, wait, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, wait, err
		case <-t.C:
		}
		slept += wait
	}
}

// attempt sends one token request. code is the answer's status, or 0 if
// none came; throttled reports a 429 read whole.
func (w *signInWire) attempt(ctx context.Context, form url.Values, secrets []string) (tok *oauth2.Token, retryAfter time.Duration, code int, throttled bool, err error) {
	f := url.Values{}
	for k, vs := range form {
		f[k] = vs
	}
	basic := w.cfg.Endpoint.AuthStyle == oauth2.AuthStyleInHeader
	if !basic {
		f.Set("client_id", w.cfg.ClientID)
		f.Set("client_secret", w.cfg.ClientSecret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.Endpoint.TokenURL, strings.NewReader(f.Encode()))
	if err != nil {
		return nil, 0, 0, false, fmt.Errorf("token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if basic {
		req.SetBasicAuth(url.QueryEscape(w.cfg.ClientID), url.QueryEscape(w.cfg.ClientSecret))
	}
	sent := time.Now()
	resp, err := w.client.Do(req)
	if err != nil {
		return nil, 0, 0, false, transportError(signInReporter(ctx, secrets), "token request failed (the server may have processed it)", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBodySize))
	if err != nil {
		return nil, 0, resp.StatusCode, false, transportError(signInReporter(ctx, secrets), "reading the token response failed ("+statusLine(resp.StatusCode)+"; the server processed the request)", err)
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	tok, err = parseSignInAnswer(signInReporter(ctx, secrets), resp, body, sent)
	return tok, retryAfter, resp.StatusCode, resp.StatusCode == http.StatusTooManyRequests, err
}

// signInReporter returns the reporter of a token request's failure:
// it withholds text that mentions one of secrets, the request's.
func signInReporter(ctx context.Context, secrets []string) reporter {
	return reporter{ctx: context.WithoutCancel(ctx), secrets: secrets}
}

// parseSignInAnswer reads a token answer of the sign-in flow: the token
// plain, or inside FinCalc's {"success", "data"} envelope; an error in
// league's shape (error, error_description, hint, message) or in
// FinCalc's envelope.
func parseSignInAnswer(p reporter, resp *http.Response, body []byte, now time.Time) (*oauth2.Token, error) {
	var obj map[string]json.RawMessage
	jsonErr := json.Unmarshal(body, &obj)
	var success *bool
	if raw, ok := obj["success"]; ok {
		json.Unmarshal(raw, &success)
	}
	ok2xx := resp.StatusCode/100 == 2
	if !ok2xx || (success != nil && !*success) {
		return nil, signInRefusal(p, resp, body, obj)
	}
	malformed := func(problem string) error {
		re := &oauth2.RetrieveError{Response: p.response(resp), ErrorDescription: "malformed token response: " + problem}
		return &fetchError{msg: "malformed token response (" + re.Response.Status + "): " + problem, cause: re}
	}
	if jsonErr != nil || obj == nil {
		return nil, malformed("not a JSON object")
	}
	data := obj
	if raw, ok := obj["data"]; ok && success != nil {
		data = nil
		if json.Unmarshal(raw, &data) != nil || data == nil {
			return nil, malformed(`"data" is not an object`)
		}
	}
	str := func(k string) (string, bool) {
		raw, ok := data[k]
		if !ok || string(raw) == "null" {
			return "", true
		}
		var s string
		return s, json.Unmarshal(raw, &s) == nil
	}
	access, ok := str("access_token")
	if !ok || access == "" || !headerSafe(access) {
		return nil, malformed("access_token is missing, empty or not fit for an HTTP header")
	}
	refresh, ok := str("refresh_token")
	if !ok {
		return nil, malformed("refresh_token is not a string")
	}
	tokenType, ok := str("token_type")
	if !ok || (tokenType != "" && !headerSafe(tokenType)) {
		return nil, malformed("token_type is not a string fit for an HTTP header")
	}
	if tokenType == "" {
		tokenType = "Bearer"
	}
	expiresIn := int64(defaultLifetime / time.Second)
	if raw, present := data["expires_in"]; present {
		var v any
		json.Unmarshal(raw, &v)
		n, err := parseExpiresIn(v)
		if err != nil {
			return nil, malformed("expires_in " + err.Error())
		}
		expiresIn = n
	}
	return &oauth2.Token{
		AccessToken:  access,
		TokenType:    tokenType,
		RefreshToken: refresh,
		Expiry:       now.Add(time.Duration(expiresIn) * time.Second),
		ExpiresIn:    expiresIn,
	}, nil
}

// signInRefusal reports a refused token request: league's error and
// description, with its hint, or FinCalc's message, each withheld whole
// if it mentions a secret of the request.
func signInRefusal(p reporter, resp *http.Response, body []byte, obj map[string]json.RawMessage) error {
	code, desc := describe(body)
	var hint string
	json.Unmarshal(obj["hint"], &hint)
	if hint = strings.TrimSpace(hint); hint != "" {
		desc += " (" + hint + ")"
	}
	if !headerSafe(code) || p.withheld(code) != "" {
		code = ""
	}
	desc, why := p.text(desc)
	re := &oauth2.RetrieveError{
		Response:         p.response(resp),
		ErrorCode:        code,
		ErrorDescription: desc,
	}
	if p.withheld(string(body)) == "" {
		re.Body = body
	}
	msg := "token request failed: " + re.Response.Status
	if resp.StatusCode/100 == 2 {
		msg = "token request refused (" + re.Response.Status + ` with "success": false)`
	}
	if code != "" {
		msg += ": " + code
	}
	switch {
	case why != "":
		msg += ": (the description is " + why + ")"
	case desc != "":
		msg += ": " + desc
	}
	if wait := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); wait > 0 {
		msg += fmt.Sprintf(" (the server asked to wait %v before trying again)", wait)
	}
	return &fetchError{msg: msg, cause: re}
}
