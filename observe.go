package fincalcauth

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/gofincalc/fincalcauth/internal/tokenstore"
	"golang.org/x/oauth2"
)

// TokenError is in the chain of every error returned because no token
// could be obtained: by [Config.Token], by the Token method of a source
// from [Config.TokenSource], and by a request of a client from
// [Config.Client], inside the *url.Error that net/http returns. It wraps
// the cause: an [*oauth2.RetrieveError] when FinCalc answered, else a
// transport error or a context's error. Its text is its cause's, which
// starts with "fincalcauth: ". An invalid Config is reported by a
// [*ConfigError] instead.
//
// A service can tell with errors.As whether a failed API call failed
// for want of a token or at the API itself.
type TokenError struct {
	err error
}

// Error returns the text of the error that TokenError wraps.
func (e *TokenError) Error() string { return e.err.Error() }

// Unwrap returns the cause.
func (e *TokenError) Unwrap() error { return e.err }

// asTokenError returns err inside a TokenError, unless it is nil or one
// already.
func asTokenError(err error) error {
	if _, ok := err.(*TokenError); ok || err == nil {
		return err
	}
	return &TokenError{err: err}
}

// Observer is told what sources and clients do, for metrics, traces and
// health checks: set one in [Config.Observer] or [SignIn.Observer]. Package
// github.com/gofincalc/fincalcauth/otelfincalc turns the events into
// OpenTelemetry metrics and spans; [Health] keeps the state a health
// check needs; [MultiObserver] combines observers.
//
// Its methods are called synchronously, from the goroutine doing the
// work, possibly from several goroutines at once: they must be safe for
// concurrent use and return quickly, since callers may be waiting. They
// are never called when a caller is served a cached token, the hot path.
// The events carry no secret, no client ID, email address or token; the
// errors in them are those the package returns.
type Observer interface {
	// StartFetch is called when a fetch of a token begins, before its
	// first request. ctx is the context of the caller that waits for the
	// fetch: that of the request of a client from [Config.Client], or
	// the one given to [Config.Token]. For a fetch that no caller waits
	// for (e.Background is true), or whose caller has no context of its
	// own (the Token method of a source), it is the source's: the
	// context given to [Config.TokenSource] or [Config.Client]. The
	// context that StartFetch returns is passed to Observe for the
	// events of this fetch: each [FetchAttempt] and its [FetchEnd].
	StartFetch(ctx context.Context, e FetchStart) context.Context

	// Observe is called for every other event, an [Event]: a
	// [FetchAttempt], a [FetchEnd], a [StoreOp], a [TokenInUse] or an
	// [Unauthorized], with the context of the fetch, caller or source it
	// belongs to. An observer should ignore the events it does not know:
	// more may be added.
	Observe(ctx context.Context, e Event)
}

// Event is an event given to [Observer.Observe]. The set of events is
// closed to other packages but may grow.
type Event interface{ event() }

// Outcome is the result of a fetch or of a store operation, as reported
// in [FetchEnd] and [StoreOp]. Its values are short lower-case words, fit
// for a metric's attribute.
type Outcome string

// The outcomes.
const (
	// OutcomeOK is a fetch that returned a token, or a store operation
	// that succeeded (for a lease: granted).
	OutcomeOK Outcome = "ok"
	// OutcomeRefused is a fetch that FinCalc answered without a token and
	// that a retry would not mend: a status of 3xx or 4xx other than 408
	// and 429, or a 2xx without a usable token. It usually means bad
	// credentials.
	OutcomeRefused Outcome = "refused"
	// OutcomeFailed is a fetch that got no answer, or only transient
	// failures (408, 429, 5xx) until it gave up, or that a context ended;
	// or a store operation that failed or was given up.
	OutcomeFailed Outcome = "failed"
	// OutcomeHit is a store load that found a value.
	OutcomeHit Outcome = "hit"
	// OutcomeMiss is a store load that found nothing, or a lease that
	// another process holds.
	OutcomeMiss Outcome = "miss"
)

// StoreOperation names an operation on a [Store], as reported in
// [StoreOp]. The set is open: new operations may be added.
type StoreOperation string

// The store operations.
const (
	StoreLoad   StoreOperation = "load"
	StoreSave   StoreOperation = "save"
	StoreDelete StoreOperation = "delete"
	// StoreLease is a request for the lease of a [Leaser]: OutcomeOK
	// when granted, OutcomeMiss when another process holds it.
	StoreLease StoreOperation = "lease"
)

// FetchStart begins a fetch of a token: see [Observer.StartFetch].
type FetchStart struct {
	// Source identifies the credentials without revealing them: the first
	// 8 characters of their key name in a [Store], which is the same for
	// every source of one Config's credentials, with or without a store.
	// For a [SignIn], the first 8 characters of the key name of the
	// user's entry.
	Source string
	// Background is true when no caller waits for the fetch: it replaces
	// a token that is still valid.
	Background bool
}

// FetchAttempt is one token request of a fetch.
type FetchAttempt struct {
	Source string // as in [FetchStart]
	// Attempt counts the requests of the fetch, from 1.
	Attempt int
	// Outcome is the attempt's, as [FetchEnd.Outcome] would be were it
	// the last: OutcomeFailed for a transient failure.
	Outcome Outcome
	// StatusCode is the HTTP status of the answer, or 0 if none came.
	StatusCode int
	// Duration is how long the request took.
	Duration time.Duration
	// Err is the attempt's failure, or nil if it returned a token.
	Err error
}

// FetchEnd ends a fetch.
type FetchEnd struct {
	Source   string  // as in [FetchStart]
	Outcome  Outcome // OutcomeOK, OutcomeRefused or OutcomeFailed
	Attempts int     // token requests sent
	// StatusCode is the HTTP status of the last answer, or 0 if none came.
	StatusCode int
	// Duration is how long the fetch took, its retries included.
	Duration time.Duration
	// Expiry is FinCalc's expiry of the token fetched, if any.
	Expiry time.Time
	// Err is the error the fetch returned, a [*TokenError] (for a
	// [SignIn], the token request's error), or nil.
	Err error
}

// StoreOp is one call of a [Store], which the source gives up after a
// second.
type StoreOp struct {
	Source    string // as in [FetchStart]
	Operation StoreOperation
	// Outcome is OutcomeHit or OutcomeMiss for a load that the store
	// answered, OutcomeOK for another operation that succeeded, and
	// OutcomeFailed for a call that failed or was given up.
	Outcome  Outcome
	Duration time.Duration
	Err      error // the failure, if Outcome is OutcomeFailed
}

// TokenInUse reports that a source took a new token into use: from here
// on it serves it to its callers.
type TokenInUse struct {
	Source string // as in [FetchStart]
	// FromStore is true for a token found in the [Store], false for one
	// fetched.
	FromStore bool
	// Expiry is FinCalc's expiry of the token.
	Expiry time.Time
	// RefreshAt is when the source starts replacing it, and ValidUntil
	// when it stops serving it.
	RefreshAt, ValidUntil time.Time
}

// Unauthorized reports that the API answered 401 to a request of a
// client from [Config.Client] or [SignIn.Client], before the token's
// expiry.
type Unauthorized struct {
	Source string // as in [FetchStart]
	// Replayed is true if the request was sent again with a new token;
	// false if the response went back to the caller: the request's body
	// could not be sent again, no new token could be had (such fetches
	// are rationed), or the request's context ended.
	Replayed bool
}

func (FetchAttempt) event() {}
func (FetchEnd) event()     {}
func (StoreOp) event()      {}
func (TokenInUse) event()   {}
func (Unauthorized) event() {}

// MultiObserver returns an Observer that passes each event to each of
// observers in turn, skipping nil ones. The context that one's
// StartFetch returns is given to the next one's, so that each sees what
// the ones before it added.
func MultiObserver(observers ...Observer) Observer {
	var m multiObserver
	for _, o := range observers {
		if o != nil {
			m = append(m, o)
		}
	}
	return m
}

type multiObserver []Observer

func (m multiObserver) StartFetch(ctx context.Context, e FetchStart) context.Context {
	for _, o := range m {
		ctx = o.StartFetch(ctx, e)
	}
	return ctx
}

func (m multiObserver) Observe(ctx context.Context, e Event) {
	for _, o := range m {
		o.Observe(ctx, e)
	}
}

// Health is an [Observer] that keeps what a service's health check needs
// to know about a source, with no token request: whether it holds a
// valid token, until when, and its last failure. Its zero value is ready
// to use. Give each Config its own Health, in Config.Observer, with
// [MultiObserver] if there are other observers:
//
//	health := new(fincalcauth.Health)
//	cfg.Observer = fincalcauth.MultiObserver(otelfincalc.New(), health)
//	...
//	if s := health.Status(); !s.Valid { ... }
type Health struct {
	mu         sync.Mutex
	validUntil time.Time
	expiry     time.Time
	lastErr    error
	lastAt     time.Time
	failures   int
}

// HealthStatus is what [Health.Status] reports.
type HealthStatus struct {
	// Valid is true if the source holds a token that it serves, and will
	// until ValidUntil.
	Valid      bool
	ValidUntil time.Time // zero before the first token
	// Expiry is FinCalc's expiry of that token, 10 seconds after
	// ValidUntil.
	Expiry time.Time
	// LastFailure is the error of the last fetch that failed, a
	// [*TokenError], and LastFailureAt when it ended; nil and zero if
	// none has. A later success does not clear them.
	LastFailure   error
	LastFailureAt time.Time
	// Failures counts the fetches that failed since the last success.
	Failures int
}

// Status returns what h has observed, as of now.
func (h *Health) Status() HealthStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	return HealthStatus{
		Valid:         time.Now().Before(h.validUntil),
		ValidUntil:    h.validUntil,
		Expiry:        h.expiry,
		LastFailure:   h.lastErr,
		LastFailureAt: h.lastAt,
		Failures:      h.failures,
	}
}

// StartFetch returns ctx.
func (h *Health) StartFetch(ctx context.Context, e FetchStart) context.Context { return ctx }

// Observe records the tokens taken into use and the fetches that end.
func (h *Health) Observe(ctx context.Context, e Event) {
	switch e := e.(type) {
	case TokenInUse:
		h.mu.Lock()
		h.validUntil, h.expiry = e.ValidUntil, e.Expiry
		h.mu.Unlock()
	case FetchEnd:
		h.mu.Lock()
		if e.Err != nil {
			h.lastErr, h.lastAt = e.Err, time.Now()
			h.failures++
		} else {
			h.failures = 0
		}
		h.mu.Unlock()
	}
}

// sourceID returns the Source of c's events: the start of its key name.
func sourceID(c *Config) string {
	return tokenstore.New(c.ClientSecret, c.tokenURL(), c.ClientID, c.EmailAddress, c.Scopes).Name()[:8]
}

// callerKey is the key of the context value through which a refresher
// tells its fetch the context to report it under.
type callerKey struct{}

// observed is the value under callerKey.
type observed struct {
	ctx        context.Context
	background bool
}

// obsContext returns the context to report an event of a fetch under:
// the one a refresher put in ctx, else ctx.
func obsContext(ctx context.Context) context.Context {
	if o, ok := ctx.Value(callerKey{}).(observed); ok {
		return o.ctx
	}
	return ctx
}

// fetchTrace reports one fetch to an Observer. Its methods do nothing on
// a nil fetchTrace, the fetch of a Config without Observer.
type fetchTrace struct {
	obs      Observer
	ctx      context.Context
	source   string
	start    time.Time
	sent     time.Time // when the current attempt started
	attempts int
	code     int // the last answer's status
}

// startTrace begins reporting a fetch under ctx, the fetch's context,
// or under the context that a refresher put in it.
func (f *fetcher) startTrace(ctx context.Context) *fetchTrace {
	return startTrace(f.obs, f.source, ctx)
}

// startTrace begins reporting to obs, if not nil, a fetch of source
// under ctx, the fetch's context, or under the context that a
// refresher or a sign-in source put in it.
func startTrace(obs Observer, source string, ctx context.Context) *fetchTrace {
	if obs == nil {
		return nil
	}
	e := FetchStart{Source: source}
	if o, ok := ctx.Value(callerKey{}).(observed); ok {
		ctx, e.Background = o.ctx, o.background
	}
	now := time.Now()
	return &fetchTrace{obs: obs, ctx: obs.StartFetch(ctx, e), source: source, start: now, sent: now}
}

// attempt reports the end of an attempt, and starts timing the next.
func (t *fetchTrace) attempt(o outcome) {
	if t == nil {
		return
	}
	now := time.Now()
	t.attempts++
	t.code = o.code
	t.obs.Observe(t.ctx, FetchAttempt{Source: t.source, Attempt: t.attempts, Outcome: outcomeOf(o.err, o.code),
		StatusCode: o.code, Duration: now.Sub(t.sent), Err: o.err})
	t.sent = now
}

// end reports the end of the fetch.
func (t *fetchTrace) end(tok *oauth2.Token, err error) {
	if t == nil {
		return
	}
	e := FetchEnd{Source: t.source, Outcome: outcomeOf(err, t.code), Attempts: t.attempts, StatusCode: t.code, Duration: time.Since(t.start), Err: err}
	if err == nil {
		e.Expiry = tok.Expiry
	}
	t.obs.Observe(t.ctx, e)
}

// outcomeOf classifies a fetch or an attempt that ended with err after
// an answer of the given status (0 for none).
func outcomeOf(err error, code int) Outcome {
	switch {
	case err == nil:
		return OutcomeOK
	case code != 0 && !transientStatus(code) &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded):
		return OutcomeRefused
	}
	return OutcomeFailed
}

// withCaller returns ctx carrying what a fetch of a refresher whose
// context is base reports its events under: caller's context if a caller
// waits for it, else base.
func withCaller(ctx, base, caller context.Context) context.Context {
	o := observed{ctx: caller}
	if caller == nil {
		o = observed{ctx: base, background: true}
	}
	return context.WithValue(ctx, callerKey{}, o)
}

// tookIntoUse reports that e, obtained under ctx, is now r's token.
func (r *refresher) tookIntoUse(ctx context.Context, e *entry) {
	if r.f.obs == nil {
		return
	}
	r.f.obs.Observe(obsContext(ctx), TokenInUse{Source: r.f.source, FromStore: e.loaded,
		Expiry: e.tok.Expiry, RefreshAt: e.refreshAt, ValidUntil: e.validUntil})
}

// storeOp reports a store call under ctx that returned v and err. A
// poll, made while waiting for another process's fetch, is reported only
// when it finds something or fails: a wait makes many.
func (r *refresher) storeOp(ctx context.Context, op StoreOperation, poll bool, v any, err error, d time.Duration) {
	reportStoreOp(r.f.obs, r.f.source, ctx, op, poll, v, err, d)
}

// reportStoreOp reports to obs a store call of source under ctx, as
// [refresher.storeOp] says.
func reportStoreOp(obs Observer, source string, ctx context.Context, op StoreOperation, poll bool, v any, err error, d time.Duration) {
	e := StoreOp{Source: source, Operation: op, Outcome: OutcomeOK, Duration: d, Err: err}
	switch v := v.(type) {
	case []byte:
		e.Outcome = OutcomeHit
		if v == nil {
			e.Outcome = OutcomeMiss
		}
	case bool: // a lease: granted or not
		if !v {
			e.Outcome = OutcomeMiss
		}
	}
	if err != nil {
		e.Outcome = OutcomeFailed
	}
	if poll && e.Outcome == OutcomeMiss {
		return
	}
	obs.Observe(obsContext(ctx), e)
}

// unauthorized reports a 401 from the API to a request under ctx.
func (r *refresher) unauthorized(ctx context.Context, replayed bool) {
	r.f.obs.Observe(ctx, Unauthorized{Source: r.f.source, Replayed: replayed})
}

// tookIntoUse reports that e, obtained under ctx, is now u's token. A
// sign-in token is replaced when it stops being served: its RefreshAt is
// its ValidUntil.
func (u *userSource) tookIntoUse(ctx context.Context, e *userEntry) {
	if u.obs == nil {
		return
	}
	u.obs.Observe(obsContext(ctx), TokenInUse{Source: u.source, FromStore: e.loaded,
		Expiry: e.tok.Expiry, RefreshAt: e.validUntil, ValidUntil: e.validUntil})
}
