// Package redisstore keeps fincalcauth's tokens in Redis, so that every
// process of a fleet shares one token, and one fetch of it, through the
// Redis it already runs:
//
//	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
//	cfg.Store = redisstore.New(rdb)
//
// Redis learns nothing from it: the values are sealed and the key names
// keyed hashes, as [fincalcauth.Store] says. Every key starts with [Prefix], and an entry
// expires with its token. fincalcauth bounds the store work of each
// fetch itself, so that neither a Redis that is down or slow nor a client
// built without ContextTimeoutEnabled can hold a caller up for longer
// than about a second.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Prefix starts every key that a Store writes.
const Prefix = "fincalcauth:"

// maxValue is the longest value that Load reads: a sealed token is far
// shorter, and a longer value is not one of ours.
const maxValue = 16 << 10

// Store is a [github.com/gofincalc/fincalcauth.Store] in Redis, and a
// [github.com/gofincalc/fincalcauth.Leaser]: the processes that share it
// fetch one token per key and cycle. It is safe for concurrent use. Its
// errors start with "redisstore: " and wrap go-redis's.
type Store struct {
	client redis.UniversalClient
}

// New returns a Store that keeps its entries through client, go-redis
// v9's UniversalClient: a single node, Sentinel or Cluster.
func New(client redis.UniversalClient) *Store {
	return &Store{client: client}
}

// Load returns the value under Prefix+key, or nil if there is none or it
// is larger than a sealed token can be.
func (s *Store) Load(ctx context.Context, key string) ([]byte, error) {
	v, err := s.client.GetRange(ctx, Prefix+key, 0, maxValue).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("redisstore: load: %w", err)
	case len(v) == 0 || len(v) > maxValue:
		return nil, nil
	}
	return v, nil
}

// Save sets Prefix+key to value, to expire at expiry (SET with PXAT). An
// expiry already past saves nothing.
func (s *Store) Save(ctx context.Context, key string, value []byte, expiry time.Time) error {
	if !time.Now().Before(expiry) {
		return nil
	}
	// SET ... PXAT by hand: go-redis's ExpireAt, and SetArgs' ExpireAt,
	// send EXAT, whole seconds, which would keep an entry up to a second
	// past its token's expiry, or cut it short.
	if err := s.client.Do(ctx, "SET", Prefix+key, value, "PXAT", expiry.UnixMilli()).Err(); err != nil {
		return fmt.Errorf("redisstore: save: %w", err)
	}
	return nil
}

// deleteIfHolds deletes KEYS[1] if it holds ARGV[1], atomically.
var deleteIfHolds = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0`)

// Delete removes Prefix+key if it still holds value, atomically: a value
// that another process saved meanwhile stays.
func (s *Store) Delete(ctx context.Context, key string, value []byte) error {
	if err := deleteIfHolds.Run(ctx, s.client, []string{Prefix + key}, value).Err(); err != nil {
		return fmt.Errorf("redisstore: delete: %w", err)
	}
	return nil
}

// leaseSuffix ends the key of a lease: Prefix+key+leaseSuffix.
const leaseSuffix = ":lease"

// takeLease sets KEYS[1] to ARGV[1] for ARGV[2] milliseconds if it is
// not set (SET NX PX), or extends it if it holds ARGV[1], atomically; it
// returns 1 if KEYS[1] is ARGV[1]'s.
var takeLease = redis.NewScript(`
if redis.call("SET", KEYS[1], ARGV[1], "NX", "PX", ARGV[2]) then
	return 1
end
if redis.call("GET", KEYS[1]) == ARGV[1] then
	redis.call("PEXPIRE", KEYS[1], ARGV[2])
	return 1
end
return 0`)

// Lease takes the lease on key for owner until expiry, in its own Redis
// key, Prefix+key+":lease", holding owner, with SET NX PX: Redis ends it
// at expiry, counted from when Redis receives the call. If owner already
// holds the lease, Lease extends it. An expiry already past takes
// nothing. The script that does this touches one key, as Redis Cluster
// requires.
func (s *Store) Lease(ctx context.Context, key string, owner []byte, expiry time.Time) (bool, error) {
	ttl := time.Until(expiry).Milliseconds()
	if ttl <= 0 {
		return false, nil
	}
	n, err := takeLease.Run(ctx, s.client, []string{Prefix + key + leaseSuffix}, owner, ttl).Int()
	if err != nil {
		return false, fmt.Errorf("redisstore: lease: %w", err)
	}
	return n == 1, nil
}

// Release ends owner's lease on key: it deletes Prefix+key+":lease" if
// the key still holds owner, atomically, so that a holder whose lease
// expired cannot end another's.
func (s *Store) Release(ctx context.Context, key string, owner []byte) error {
	if err := deleteIfHolds.Run(ctx, s.client, []string{Prefix + key + leaseSuffix}, owner).Err(); err != nil {
		return fmt.Errorf("redisstore: release: %w", err)
	}
	return nil
}
