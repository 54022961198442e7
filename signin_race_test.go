//go:build race

package fincalcauth_test

// raceEnabled is whether the race detector is on: the largest
// simulations run smaller under it.
const raceEnabled = true
