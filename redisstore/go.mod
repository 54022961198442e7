module github.com/gofincalc/fincalcauth/redisstore

go 1.26.0

require (
	github.com/gofincalc/fincalcauth v0.0.0-00010101000000-000000000000
	github.com/redis/go-redis/v9 v9.23.0
	golang.org/x/oauth2 v0.38.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)

// The store is developed with the module it plugs into; a release pins
// a tagged version of it instead.
replace github.com/gofincalc/fincalcauth => ../
