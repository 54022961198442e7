package fincalcauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Store keeps tokens where other processes can find them, so that the
// processes of a fleet, or the runs of a command, share one token rather
// than each fetching its own. Set one in [Config.Store].
//
// A source reads the store only when it has no valid token or its token
// is due for refresh, and saves each token it fetches. The store learns
// nothing. A key name is an HMAC-SHA256, under a key derived from the
// client secret, of the token URL, client ID, email address and set of
// scopes (in any order): it reveals none of them and differs whenever any
// of them, or the secret, differs. A value is the token (access token,
// type, expiry and lifetime) sealed with AES-256-GCM under another key
// derived from the secret, with the key name as additional data, so that
// a value copied to another key does not open: without the client
// secret, a store's reader can neither use a token nor forge one.
// A failed fetch is kept there too, sealed alike, under the key name and
// "-failed", until its cool-down ends (see [Leaser]).
//
// The store is an optimisation, never a dependency. The store calls of
// one fetch (loads, lease, save) cost it a second at most in all, however
// the store fails or hangs: a call that fails, or that the second runs
// out on, is given up (a load counts as a miss, a save or a delete as not
// done), a Warn record names the store's own error, and the fetch goes
// on as it would without a store. The source then leaves the store alone
// for a cool-down of about a second that doubles with each further
// failure up to a minute.
//
// Implementations must be safe for concurrent use. [FileStore] keeps
// tokens in files; package github.com/gofincalc/fincalcauth/redisstore
// keeps them in Redis.
type Store interface {
	// Load returns the value saved under key, or nil and a nil error if there is none.
	Load(ctx context.Context, key string) ([]byte, error)
	// Save saves value under key until expiry.
	Save(ctx context.Context, key string, value []byte, expiry time.Time) error
	// Delete removes the entry under key only if it still holds value.
	Delete(ctx context.Context, key string, value []byte) error
}

// Leaser is a [Store] that also grants short leases on its keys, so that
// at most one process at a time fetches the token of a key, fleet-wide:
// the processes that share a Leaser send one token request per
// credentials and refresh cycle, however many they are and whether they
// start together against an empty store or refresh a shared token. With
// a Store that is not a Leaser, sources fetch without leases, and those
// whose fetches overlap each send a request: a fleet that starts at once
// against an empty store sends one per process.
//
// A source takes the lease of its key, for 30 seconds, before it
// fetches, looks in the store again (the previous holder may have saved
// a token meanwhile), fetches within its lease, saves the token, and
// releases the lease. Meanwhile the other sources wait, looking in the
// store every 10 to 20 ms, and take the holder's token as soon as it is
// saved; if the lease ends without a token, as when its holder dies, one
// of them takes it and fetches. The wait ends with the caller's context,
// and a fetch with its wait takes a minute at most. A holder whose fetch
// fails saves its failure before it releases the lease: the sources that
// take the lease until the failure's cool-down ends (after a Retry-After,
// no sooner than the moment the server named) share that cool-down and
// return an error that names it, with no request of their own.
//
// [FileStore] and redisstore's Store implement Leaser.
type Leaser interface {
	Store
	// Lease takes the lease on key until expiry for owner, a random value
	// that identifies the holder, and reports whether it did: it does if
	// nobody holds a lease on key that has not expired, or owner does
	// (the lease is then extended to expiry). A lease is kept apart from
	// the value saved under key, which it leaves alone, and ends by
	// itself at expiry. An error that wraps errors.ErrUnsupported says
	// that the store cannot grant leases where it runs: sources then use
	// it without leases, rather than as a store that fails.
	Lease(ctx context.Context, key string, owner []byte, expiry time.Time) (bool, error)
	// Release ends owner's lease on key. It does nothing if the lease is
	// not owner's, or has expired: a holder that overran its lease cannot
	// end another's.
	Release(ctx context.Context, key string, owner []byte) error
}

// storeTimeout bounds the store work of one fetch, all its calls
// together, whatever the store does with its contexts. A wait for
// another process's fetch, while the store answers, does not count.
const storeTimeout = time.Second

// storeGrace is how long a call given up at the bound may still answer
// for its failure to be logged with its own cause.
const storeGrace = time.Second

// storeWork is the store work of one fetch. Its calls share one bound of
// storeTimeout, and the first that fails or overruns it ends the work:
// the fetch goes on without the store, and the source leaves the store
// alone for a cool-down.
type storeWork struct {
	r      *refresher
	ctx    context.Context // the fetch's, under which an Observer is told of each call
	left   time.Duration   // of storeTimeout
	failed bool
}

// beginStore returns the store work of a fetch, or nil when the source
// has no store or leaves it alone for now.
func (r *refresher) beginStore(ctx context.Context) *storeWork {
	if r.store == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Now().Before(r.storeNextTry) {
		return nil
	}
	return &storeWork{r: r, ctx: ctx, left: storeTimeout}
}

// end records how w went: a failure starts or lengthens the store's
// cool-down, on the schedule of failed fetches, and a success ends it.
func (w *storeWork) end() {
	if w == nil {
		return
	}
	r := w.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if !w.failed {
		r.storeFailures = 0
		return
	}
	r.storeFailures++
	r.storeNextTry = time.Now().Add(cooldown(r.storeFailures))
}

// ok reports whether w can still call the store.
func (w *storeWork) ok() bool { return w != nil && !w.failed }

// storeCall runs call, one call of w's store, and reports whether it
// succeeded. It returns when call does or when w's bound passes,
// whichever comes first: a store that ignores its context, as go-redis
// does unless its client was built with ContextTimeoutEnabled, cannot
// hold the source up longer. A poll, a call made while waiting for
// another process's fetch, costs w's bound nothing when it succeeds. A
// failure is logged at Warn with the store's own error; a call given up
// at the bound goes on in its goroutine, and is logged with its own
// error if it fails within storeGrace after the bound.
func storeCall[T any](w *storeWork, op string, poll bool, call func(context.Context) (T, error)) (T, bool) {
	var zero T
	if !w.ok() {
		return zero, false
	}
	if w.left <= 0 {
		w.fail(op, fmt.Errorf("the store work of this fetch took longer than %v", storeTimeout))
		return zero, false
	}
	ctx, cancel := context.WithTimeout(w.r.ctx, w.left+storeGrace)
	done := goStoreCall(ctx, call)
	start := time.Now()
	bound := time.NewTimer(w.left)
	select {
	case res := <-done:
		bound.Stop()
		cancel()
		if !poll || res.err != nil {
			w.left -= time.Since(start)
		}
		if w.r.f.obs != nil {
			w.r.storeOp(w.ctx, StoreOperation(op), poll, res.v, res.err, time.Since(start))
		}
		if res.err != nil {
			w.fail(op, res.err)
			return zero, false
		}
		return res.v, true
	case <-bound.C:
	}
	// Given up: log the call's own failure, if it comes soon.
	w.failed = true
	left := w.left
	w.left = 0
	if w.r.f.obs != nil {
		w.r.storeOp(w.ctx, StoreOperation(op), poll, zero, context.DeadlineExceeded, time.Since(start))
	}
	go func() {
		defer cancel()
		err := fmt.Errorf("no answer within %v", left)
		select {
		case res := <-done:
			if res.err != nil && !errors.Is(res.err, context.DeadlineExceeded) && !errors.Is(res.err, context.Canceled) {
				err = fmt.Errorf("%w, then: %w", err, res.err)
			} else if res.err == nil {
				err = fmt.Errorf("%w; it answered after %v", err, time.Since(start).Round(time.Millisecond))
			}
		case <-ctx.Done():
		}
		w.r.logStoreFailure(op, err)
	}()
	return zero, false
}

// storeResult is what one call of a store returned.
type storeResult[T any] struct {
	v   T
	err error
}

// goStoreCall runs call under ctx in a goroutine of its own and returns
// the channel that receives its result, so that its caller can stop
// waiting at a bound of its own: a store may ignore its context. Both
// flows bound their store calls so, each under its own policy
// ([storeCall] and [storeCallFor]).
func goStoreCall[T any](ctx context.Context, call func(context.Context) (T, error)) <-chan storeResult[T] {
	done := make(chan storeResult[T], 1)
	go func() {
		v, err := call(ctx)
		done <- storeResult[T]{v, err}
	}()
	return done
}

// fail records a failed call of w's store and logs it.
func (w *storeWork) fail(op string, err error) {
	w.failed = true
	w.r.logStoreFailure(op, err)
}

// logStoreFailure logs a failed call of the store at Warn.
func (r *refresher) logStoreFailure(op string, err error) {
	if r.logger != nil {
		r.logger.LogAttrs(r.ctx, slog.LevelWarn, "fincalcauth: token store "+op+" failed; going on without the store",
			slog.String("error", err.Error()))
	}
}
