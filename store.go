package fincalcauth

import (
	"context"
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
// The store is an optimisation, never a dependency: a call that fails,
// or takes longer than a second, is given up (a load counts as a miss, a
// save or a delete as not done), and the source goes on as it would
// without a store, logging a Warn record.
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
// at most one process at a time fetches the token of a key, fleet-wide.
// A source whose Config.Store is a Leaser takes the lease of its key
// before it fetches; other sources wait for the holder's token to appear
// in the store instead of fetching their own. [FileStore] and
// redisstore's Store implement it; a Store that does not is used without
// leases.
type Leaser interface {
	Store
	// Lease takes the lease on key until expiry for owner, a random value
	// that identifies the holder, and reports whether it did: it does if
	// nobody holds a lease on key that has not expired, or owner does
	// (the lease is then extended to expiry). A lease is kept apart from
	// the value saved under key, which it leaves alone.
	Lease(ctx context.Context, key string, owner []byte, expiry time.Time) (bool, error)
	// Release ends owner's lease on key. It does nothing if the lease is
	// not owner's, or has expired: a holder that overran its lease cannot
	// end another's.
	Release(ctx context.Context, key string, owner []byte) error
}

// storeTimeout bounds each call of a Store, whatever the store does with
// its context.
const storeTimeout = time.Second

// storeCall runs call with a context bounded by storeTimeout, and
// returns when call does or when the bound passes, whichever comes
// first: a store that ignores its context, as go-redis does unless its
// client was built with ContextTimeoutEnabled, cannot hold the source up
// longer. A call given up goes on in its goroutine until the store
// answers. A failure is logged at Warn.
func storeCall[T any](r *refresher, ctx context.Context, op string, call func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := call(ctx)
		done <- result{v, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-ctx.Done():
		res.err = fmt.Errorf("no answer within %v: %w", storeTimeout, ctx.Err())
	}
	if res.err != nil && r.logger != nil {
		r.logger.LogAttrs(r.ctx, slog.LevelWarn, "fincalcauth: token store "+op+" failed; going on without the store",
			slog.String("error", res.err.Error()))
	}
	return res.v, res.err
}
