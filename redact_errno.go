//go:build !plan9

package fincalcauth

import (
	"errors"
	"syscall"
)

// connRefused and connReset tell two kinds of transport failure apart
// for transportKind, by the system's error numbers.

func connRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

func connReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }
