package fincalcauth

import "strings"

// connRefused and connReset tell two kinds of transport failure apart
// for transportKind. Plan 9 has no error numbers: its errors are text.

func connRefused(err error) bool { return strings.Contains(err.Error(), "connection refused") }

func connReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "hungup")
}
