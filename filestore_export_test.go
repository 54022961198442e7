package fincalcauth

// Internals for the FileStore tests of package fincalcauth_test.

const (
	SweepFiles = sweepFiles
	StaleTemp  = staleTemp
	HaveFlock  = haveFlock
)
