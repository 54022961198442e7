package fincalcauth

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofincalc/fincalcauth/internal/tokenstore"
	"golang.org/x/oauth2"
)

const (
	// fetchTimeout bounds each fetch of a TokenSource or Client, its
	// retries included, whatever the HTTP client's own timeout.
	fetchTimeout = 30 * time.Second

	// expiryDelta is how long before its expiry a token stops being
	// used, as x/oauth2's default, against clock skew.
	expiryDelta = 10 * time.Second

	// defaultRefreshAhead is half of FinCalc's 24-hour token lifetime:
	// the refresh window when Config.RefreshAhead is zero.
	defaultRefreshAhead = defaultLifetime / 2

	// maxRefreshJitter is the largest fraction by which a source
	// shortens the default refresh window.
	maxRefreshJitter = 0.05

	// firstCooldown and maxCooldown bound the pause after a failed
	// fetch; it doubles with each further failure.
	firstCooldown = time.Second
	maxCooldown   = time.Minute

	// leaseTTL is how long a lease on a store's key lasts: a fetch's
	// bound, since its holder fetches no longer than that.
	leaseTTL = fetchTimeout

	// pollMin and pollMax bound the pause between two looks at the store
	// while another process holds the lease.
	pollMin = 10 * time.Millisecond
	pollMax = 20 * time.Millisecond
)

// refresher caches a token, replaces it in the background ahead of its
// expiry, and rations fetches while the token endpoint fails. It is safe
// for concurrent use. Its fast path is an atomic load and a time
// comparison.
type refresher struct {
	f            *fetcher
	ctx          context.Context // values only: never cancelled
	refreshAhead time.Duration   // Config.RefreshAhead
	jitter       float64         // in [0, maxRefreshJitter): this source's share of the default window it gives up
	logger       *slog.Logger

	store   Store           // Config.Store; nil for none
	leaser  Leaser          // store, if it grants leases
	noLease atomic.Bool     // leaser said that it cannot grant leases here
	box     *tokenstore.Box // names and seals this source's tokens in store

	cur atomic.Pointer[entry] // nil until the first token

	mu       sync.Mutex // guards the fields below
	inflight *flight    // the fetch under way, if any
	lastErr  error      // the last fetch's error, until a success
	failures int        // consecutive failed fetches
	nextTry  time.Time  // no fetch starts before this, but a blocking one after a success

	refusals    int       // consecutive fetches for a token the API refused
	nextRefusal time.Time // no such fetch starts before this

	storeFailures int       // consecutive fetches whose store work failed
	storeNextTry  time.Time // the store is left alone until then
}

// entry is a cached token and when to act on it.
type entry struct {
	tok        *oauth2.Token
	refreshAt  time.Time // start replacing it from here on
	validUntil time.Time // stop using it from here on
	stored     []byte    // the sealed value under which the store holds it, if any
	loaded     bool      // it came from the store
}

// flight is one fetch; done closes when e or err is set.
type flight struct {
	done chan struct{}
	e    *entry
	err  error
}

// newRefresher returns a refresher for c, which must be valid, that
// fetches with hc, ctx's HTTP client (see newFetcher). It keeps ctx's
// values but not its cancellation.
func newRefresher(ctx context.Context, c *Config, hc *http.Client) *refresher {
	r := &refresher{
		f:            newFetcher(hc, c),
		ctx:          context.WithoutCancel(ctx),
		refreshAhead: c.RefreshAhead,
		jitter:       rand.Float64() * maxRefreshJitter,
		logger:       c.Logger,
	}
	if c.Store != nil {
		r.store = c.Store
		r.leaser, _ = c.Store.(Leaser)
		r.box = tokenstore.New(c.ClientSecret, c.tokenURL(), c.ClientID, c.EmailAddress, c.Scopes)
	}
	return r
}

// window returns how long before expiry a token of the given lifetime
// starts being replaced. A RefreshAhead at or beyond the lifetime would
// put each token in its window from its issue, and a steady caller would
// start a fetch at each cool-down: it counts as zero.
func (r *refresher) window(lifetime time.Duration) time.Duration {
	if r.refreshAhead > 0 && r.refreshAhead < lifetime {
		return r.refreshAhead
	}
	w := min(lifetime/2, defaultRefreshAhead)
	return w - time.Duration(float64(w)*r.jitter)
}

// token returns the entry of a valid token. The caller must not modify
// it. When no valid token is in hand and a fetch is under way, token
// waits for it, or until ctx is done.
func (r *refresher) token(ctx context.Context) (*entry, error) {
	if e := r.cur.Load(); e != nil && time.Now().Before(e.refreshAt) {
		return e, nil
	}
	return r.slowToken(ctx)
}

func (r *refresher) slowToken(ctx context.Context) (*entry, error) {
	now := time.Now()
	r.mu.Lock()
	if e := r.cur.Load(); e != nil && now.Before(e.validUntil) {
		// Still valid, but due for replacement: answer now and let one
		// background fetch replace it.
		if !now.Before(e.refreshAt) && r.inflight == nil && !now.Before(r.nextTry) {
			r.start(nil, nil)
		}
		r.mu.Unlock()
		return e, nil
	}
	fl := r.inflight
	if fl == nil {
		if r.lastErr != nil && now.Before(r.nextTry) {
			err := r.lastErr
			r.mu.Unlock()
			return nil, err
		}
		fl = r.start(nil, ctx)
	}
	r.mu.Unlock()
	select {
	case <-fl.done:
		return fl.e, fl.err
	case <-ctx.Done():
		return nil, &TokenError{err: fmt.Errorf("fincalcauth: waiting for a token: %w", ctx.Err())}
	}
}

// start begins a fetch in a goroutine of its own, of a token to replace
// the current one; refused, if set, is a token the API refused. caller
// is the context of the caller that waits for it, if any, under which an
// Observer is told about it. r.mu must be held.
func (r *refresher) start(refused *entry, caller context.Context) *flight {
	fl := &flight{done: make(chan struct{})}
	r.inflight = fl
	go r.run(fl, r.cur.Load(), refused, caller)
	return fl
}

func (r *refresher) run(fl *flight, cur, refused *entry, caller context.Context) {
	bound, cause := fetchTimeout, errFetchTimeout
	if r.leaser != nil && !r.noLease.Load() {
		bound, cause = leaseTTL+fetchTimeout, errWaitTimeout
	}
	ctx, cancel := context.WithTimeoutCause(r.ctx, bound, cause)
	if r.f.obs != nil {
		ctx = withCaller(ctx, r.ctx, caller)
	}
	e, f := r.obtain(ctx, cur, refused)
	cancel()
	if f == nil {
		r.tookIntoUse(ctx, e)
	} else {
		f.err = asTokenError(f.err)
	}
	now := time.Now()

	r.mu.Lock()
	r.inflight = nil
	if f == nil {
		fl.e = e
		r.f.remember(e.tok.AccessToken)
		r.cur.Store(fl.e)
		r.lastErr, r.failures = nil, 0
		r.nextTry = now.Add(firstCooldown)
	} else {
		fl.err = f.err
		r.lastErr = f.err
		r.failures = f.failures
		r.nextTry = f.until
	}
	failures, next, cur := r.failures, r.nextTry, r.cur.Load()
	r.mu.Unlock()
	// Release the callers first: a slow log handler must not hold them up.
	close(fl.done)

	if f == nil || r.logger == nil {
		return
	}
	attrs := []slog.Attr{
		slog.String("error", f.err.Error()),
		slog.Int("status", statusOf(f.err)),
		slog.Int("failures", failures),
		slog.Time("next_attempt", next),
	}
	msg := "fincalcauth: token fetch failed"
	if cur != nil && now.Before(cur.validUntil) {
		msg = "fincalcauth: background token refresh failed; the current token stays in use"
		attrs = append(attrs, slog.Time("token_valid_until", cur.validUntil))
	}
	r.logger.LogAttrs(r.ctx, slog.LevelWarn, msg, attrs...)
}

// failure is a failed fetch and the cool-down that follows it.
type failure struct {
	err      error
	until    time.Time // no fetch starts before then
	failures int       // consecutive failed fetches, this one included
}

// failed returns the failure of a fetch that failed with err: the next
// step of the cool-down schedule, lengthened to the moment that the
// server named in a Retry-After, if later.
func (r *refresher) failed(err error) *failure {
	r.mu.Lock()
	n := r.failures + 1
	r.mu.Unlock()
	until := time.Now().Add(cooldown(n))
	var th *throttled
	if errors.As(err, &th) && th.until.After(until) {
		until = th.until
	}
	return &failure{err: err, until: until, failures: n}
}

// errFetchTimeout is the cause of a fetch that took longer than
// fetchTimeout.
var errFetchTimeout = fmt.Errorf("%w: token fetch took longer than %v", context.DeadlineExceeded, fetchTimeout)

// errWaitTimeout is the cause of a fetch that, with the wait for another
// process's fetch, took longer than leaseTTL+fetchTimeout.
var errWaitTimeout = fmt.Errorf("%w: no token within %v of waiting for another process's fetch and fetching", context.DeadlineExceeded, leaseTTL+fetchTimeout)

// statusOf returns the HTTP status of a failed fetch, or 0 when the
// server gave none.
func statusOf(err error) int {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		return re.Response.StatusCode
	}
	return 0
}

// newEntry schedules tok's replacement.
//
// With a store, sources that share it share one token, and so one
// expiry: each starts its refresh at a moment of its own over the last
// fifth of the time between the token's issue and the refresh point, so
// that the first to start saves a token the others find. The moment is
// drawn anew for each token. With a Leaser, this only keeps contention
// for the lease low: the lease alone makes one fetch per cycle.
func (r *refresher) newEntry(tok *oauth2.Token) *entry {
	lifetime := time.Duration(tok.ExpiresIn) * time.Second
	validUntil := tok.Expiry.Add(-expiryDelta)
	refreshAt := tok.Expiry.Add(-r.window(lifetime))
	if refreshAt.After(validUntil) {
		refreshAt = validUntil
	}
	if r.store != nil {
		issued := tok.Expiry.Add(-lifetime)
		refreshAt = refreshAt.Add(-time.Duration(float64(refreshAt.Sub(issued)) * rand.Float64() / 5))
	}
	return &entry{tok: tok, refreshAt: refreshAt, validUntil: validUntil}
}

// cooldown returns the pause after the n-th consecutive failure: about a
// second, doubling, at most maxCooldown, less up to a fifth at random.
func cooldown(n int) time.Duration {
	d := maxCooldown
	if n < 7 {
		d = min(firstCooldown<<(n-1), maxCooldown)
	}
	return d - rand.N(d/5+1)
}

// replace is told that the API refused e's token before its expiry
// (revoked, or the credentials rotated). It returns a flight that ends
// with e's replacement: a fetch under way, one it starts, or, if e was
// already replaced, one that has ended. It returns nil while such fetches
// are rationed, after a run of them, or while the token endpoint is in
// its cool-down. ctx is the context of the request that waits for it. Until a replacement is in hand, e stays in use: the 401
// may be the API's mistake, and e is the best token there is.
func (r *refresher) replace(ctx context.Context, e *entry) *flight {
	r.mu.Lock()
	defer r.mu.Unlock()
	if cur := r.cur.Load(); cur != e && cur != nil {
		return &flight{done: closedChan, e: cur}
	}
	if r.inflight != nil {
		return r.inflight
	}
	now := time.Now()
	if now.Before(r.nextRefusal) || (r.lastErr != nil && now.Before(r.nextTry)) {
		return nil
	}
	if now.Sub(r.nextRefusal) > maxCooldown {
		r.refusals = 0 // a quiet spell: a new run
	}
	r.refusals++
	r.nextRefusal = now.Add(cooldown(r.refusals))
	return r.start(e, ctx)
}

var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// reuseEarlyExpiry is the early expiry given to
// oauth2.ReuseTokenSourceWithExpiry. The tokens that reuseAdapter hands it
// expire when the refresher wants to replace them, so no margin is needed;
// zero would mean x/oauth2's 10 seconds.
const reuseEarlyExpiry = time.Nanosecond

// reuseAdapter is the source that oauth2.ReuseTokenSourceWithExpiry
// wraps. It hands out a copy of the shared token, since ReuseTokenSource
// writes to each token it is given, whose Expiry is the moment the
// refresher starts replacing it: until then ReuseTokenSource answers on
// its own, and from then on it asks the refresher at each call.
type reuseAdapter struct{ r *refresher }

func (a reuseAdapter) Token() (*oauth2.Token, error) {
	e, err := a.r.token(a.r.ctx) // never done; the source's values for an Observer
	if err != nil {
		return nil, err
	}
	t := *e.tok
	t.Expiry = e.refreshAt
	return &t, nil
}

// errSource is the source of a Config that failed validation.
type errSource struct{ err error }

func (s errSource) Token() (*oauth2.Token, error) { return nil, s.err }

// obtain returns a token to replace cur (nil for none), or the failure
// to get one. refused, if set, is a token the API refused: it is removed
// from the store first, unless another process has replaced it there.
//
// With a store, a token that another process saved is used if it is
// neither cur nor due for refresh. Otherwise, if the store grants
// leases, obtain takes the lease of the key before it fetches, looks in
// the store again, and fetches only if the store still holds no such
// token and no other process's failure that is in its cool-down; it
// saves the token, or its failure, before it releases the lease. While
// another process holds the lease, obtain waits for its token to appear
// in the store, and takes the lease itself when that one ends without a
// token. A fetched token is saved before obtain returns, so that a
// source made right afterwards finds it. A store that fails is left
// alone, and the fetch goes on as it would without one.
func (r *refresher) obtain(ctx context.Context, cur, refused *entry) (*entry, *failure) {
	w := r.beginStore(ctx)
	defer w.end()
	if w == nil {
		return r.fetch(ctx, nil, time.Time{})
	}
	if refused != nil && refused.stored != nil {
		storeCall(w, "delete", false, func(ctx context.Context) (struct{}, error) {
			return struct{}{}, r.store.Delete(ctx, r.box.Name(), refused.stored)
		})
	}
	// The tokens to replace: cur, and one the store holds that is due.
	var old []string
	if cur != nil {
		old = append(old, cur.tok.AccessToken)
	}
	newer := func(e *entry) bool {
		return e != nil && !slices.Contains(old, e.tok.AccessToken) && time.Now().Before(e.refreshAt)
	}
	e := r.load(w, false)
	if newer(e) {
		return e, nil
	}
	if e != nil {
		old = append(old, e.tok.AccessToken)
	}
	if r.leaser == nil || r.noLease.Load() {
		return r.fetch(ctx, w, time.Time{})
	}
	owner := newOwner()
	for waited := false; w.ok(); waited = true {
		expiry := time.Now().Add(leaseTTL)
		taken, ok := storeCall(w, "lease", waited, func(ctx context.Context) (bool, error) {
			taken, err := r.leaser.Lease(ctx, r.box.Name(), owner, expiry)
			if errors.Is(err, errors.ErrUnsupported) {
				// A store that cannot grant leases here, such as a
				// FileStore without flock, is used without them.
				r.noLease.Store(true)
				return false, nil
			}
			return taken, err
		})
		if taken {
			return r.holdLease(ctx, w, owner, expiry, newer)
		}
		if !ok {
			break
		}
		if r.noLease.Load() {
			return r.fetch(ctx, w, time.Time{})
		}
		// Another process fetches: wait for its token.
		t := time.NewTimer(pollMin + rand.N(pollMax-pollMin+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, r.failed(fmt.Errorf("fincalcauth: waiting for the token that another process is fetching: %w", context.Cause(ctx)))
		case <-t.C:
		}
		if e := r.load(w, true); newer(e) {
			return e, nil
		}
	}
	return r.fetch(ctx, w, time.Time{}) // the store failed: no lease
}

// holdLease obtains a token under the lease of owner, which ends at
// expiry, and releases the lease.
func (r *refresher) holdLease(ctx context.Context, w *storeWork, owner []byte, expiry time.Time, newer func(*entry) bool) (*entry, *failure) {
	defer func() { go r.release(owner, w.ok()) }()
	// The previous holder may have saved a token, or its failure.
	if e := r.load(w, false); newer(e) {
		return e, nil
	}
	if f := r.loadFailure(w); f != nil {
		return nil, f
	}
	e, f := r.fetch(ctx, w, expiry)
	if f != nil && w.ok() {
		tf := tokenstore.Failure{Until: f.until, Status: statusOf(f.err), Failures: f.failures}
		var th *throttled
		if errors.As(f.err, &th) {
			tf.RetryAfter = time.Until(th.until).Round(time.Second)
		}
		v := r.box.SealFailure(tf)
		storeCall(w, "save", false, func(ctx context.Context) (struct{}, error) {
			return struct{}{}, r.store.Save(ctx, r.box.FailureName(), v, f.until)
		})
	}
	return e, f
}

// fetch fetches a token, within fetchTimeout and before end unless it is
// zero, and saves it in w's store unless w is nil or has failed.
func (r *refresher) fetch(ctx context.Context, w *storeWork, end time.Time) (*entry, *failure) {
	deadline := time.Now().Add(fetchTimeout)
	if !end.IsZero() && end.Before(deadline) {
		deadline = end
	}
	ctx, cancel := context.WithDeadlineCause(ctx, deadline, errFetchTimeout)
	tok, err := r.f.fetch(ctx)
	cancel()
	if err != nil {
		return nil, r.failed(err)
	}
	e := r.newEntry(tok)
	if !w.ok() {
		return e, nil
	}
	v := r.box.Seal(tok)
	if _, ok := storeCall(w, "save", false, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, r.store.Save(ctx, r.box.Name(), v, tok.Expiry)
	}); ok {
		e.stored = v
	}
	return e, nil
}

// release releases owner's lease, in a goroutine of its own, after the
// token or the failure is saved: no caller waits for it, and it is tried
// even when the store work of the fetch ran out of its bound, so that the
// others need not wait out the lease. It is bounded by storeTimeout, and
// a failure is logged unless the store had failed already.
func (r *refresher) release(owner []byte, log bool) {
	ctx, cancel := context.WithTimeout(r.ctx, storeTimeout)
	defer cancel()
	if err := r.leaser.Release(ctx, r.box.Name(), owner); err != nil && log {
		r.logStoreFailure("release", err)
	}
}

// newOwner returns a random owner of a lease.
func newOwner() []byte {
	b := make([]byte, 16)
	crand.Read(b)
	return []byte(hex.EncodeToString(b))
}

// load returns the valid token that w's store holds, or nil. A value that
// does not open, is too large or has expired is a miss.
func (r *refresher) load(w *storeWork, poll bool) *entry {
	v, ok := storeCall(w, "load", poll, func(ctx context.Context) ([]byte, error) {
		return r.store.Load(ctx, r.box.Name())
	})
	if !ok || v == nil {
		return nil
	}
	tok := r.box.Open(v)
	if tok == nil || !headerSafe(tok.AccessToken) || !headerSafe(tok.TokenType) {
		return nil
	}
	e := r.newEntry(tok)
	if !time.Now().Before(e.validUntil) {
		return nil
	}
	e.stored, e.loaded = v, true
	return e
}

// loadFailure returns the failure that another process saved in w's
// store, whose cool-down this source adopts, or nil if there is none or
// its cool-down is over.
func (r *refresher) loadFailure(w *storeWork) *failure {
	v, ok := storeCall(w, "load", false, func(ctx context.Context) ([]byte, error) {
		return r.store.Load(ctx, r.box.FailureName())
	})
	if !ok || v == nil {
		return nil
	}
	tf, ok := r.box.OpenFailure(v)
	if !ok || !time.Now().Before(tf.Until) {
		return nil
	}
	r.mu.Lock()
	n := max(r.failures, tf.Failures)
	r.mu.Unlock()
	return &failure{err: sharedFailure(tf), until: tf.Until, failures: n}
}

// sharedFailure returns the error of a source that adopts the cool-down
// of another process's failed fetch. For a failure with an HTTP status,
// an *oauth2.RetrieveError with that status is in its chain.
func sharedFailure(tf tokenstore.Failure) error {
	msg := "another process that shares the token store failed to fetch a token"
	var cause error
	if tf.Status != 0 {
		status := fmt.Sprintf("%d %s", tf.Status, http.StatusText(tf.Status))
		resp := &http.Response{Status: status, StatusCode: tf.Status, Header: http.Header{}}
		if tf.RetryAfter > 0 {
			resp.Header.Set("Retry-After", strconv.FormatInt(int64(tf.RetryAfter/time.Second), 10))
		}
		cause = &oauth2.RetrieveError{Response: resp, Body: []byte{}}
		msg += ": " + status
	}
	if tf.RetryAfter > 0 {
		msg += fmt.Sprintf(" (the server asked to wait %v before trying again)", tf.RetryAfter)
	}
	msg += "; no token request from this process until " + tf.Until.UTC().Format(time.RFC3339)
	return fmt.Errorf("fincalcauth: %w", &fetchError{msg: msg, cause: cause})
}
