package fincalcauth

// Internals of SignIn for the tests of package fincalcauth_test.

const SourceCacheSize = sourceCacheSize

// CachedSources returns how many sources s keeps in memory.
func CachedSources(s *SignIn) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lru.Len()
}
