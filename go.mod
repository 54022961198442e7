module github.com/gofincalc/fincalcauth

go 1.26.0

require (
	github.com/google/go-cmp v0.7.0
	golang.org/x/oauth2 v0.38.0
	golang.org/x/term v0.48.0
)

require golang.org/x/sys v0.50.0 // indirect
