package main

import "strings"

// mentions reports whether text holds one of secrets. It stands in for
// secrettext.Mentions, which also decodes the layers a server may apply.
func mentions(text string, secrets ...string) bool {
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			return true
		}
	}
	return false
}
