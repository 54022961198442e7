// Package fincalcauth gets OAuth2 access tokens for the FinCalc API, for
// use with [golang.org/x/oauth2]: from its client-credentials endpoint
// with [Config], and for people who sign in with FinCalc with [SignIn].
//
// FinCalc's token endpoint takes a JSON body with an extra email_address
// and wraps its answer in a {"success": ..., "data": ...} envelope, so
// golang.org/x/oauth2/clientcredentials cannot talk to it. Most programs
// need only [Config.Client]:
//
//	cfg := &fincalcauth.Config{ClientID: id, ClientSecret: secret,
//		EmailAddress: email, Scopes: []string{fincalcauth.ScopeFactFind}}
//	client := cfg.Client(ctx)
//	resp, err := client.Get("https://api.fincalc.co.uk/api/v2/clients")
//
// The client sends "Authorization: Bearer <token>" and replaces the token
// before it expires; [Config.TokenSource] serves the same tokens.
//
// # Refresh and failure policy
//
// Within one fetch, a transient failure (a connection error other than a
// certificate that fails to verify, a timeout, or HTTP 408, 429, 500,
// 502, 503 or 504) is retried, up to 4 attempts, after sleeps of about
// 250ms, 500ms and 1s with jitter, lengthened by a Retry-After, 2 seconds
// in all at most: a Retry-After that asks for more ends the fetch. Any
// other failure is final. Errors from FinCalc wrap an [*oauth2.RetrieveError].
//
// A source from [Config.TokenSource] or [Config.Client] fetches a token
// when first asked, then replaces it [Config.RefreshAhead] before its
// expiry in one goroutine while callers keep the current one. Each fetch
// takes 30 seconds at most. After a failed fetch, the next one waits for
// a cool-down of about 1 second that doubles with each further failure
// up to 1 minute, or longer if a Retry-After asks; meanwhile callers get
// the current token while it is valid, else the last error at once.
// Nothing runs while nobody asks. Sources that share a [Config.Store]
// share one token: a fleet sends one token request per cycle if the store
// grants leases ([Leaser]), else one per process whose fetches overlap.
//
// # Secrets
//
// The client secret and the tokens a source holds or has handed out are
// never in an error, what it wraps, or a log record. A server's text is
// reported only as its parsed description, capped, control characters
// escaped, and withheld whole, saying so, if it mentions one of them or
// an access token of the same answer: decoded layer after layer (JSON and
// Go escapes, percent-encoding, HTML entities), it holds one, or 8 bytes
// of one in a row. A RetrieveError keeps only the Body of a refusal read
// whole that mentions none, the status as code and standard text, and a
// few headers; its Request leads back to no body. A transport failure is
// reported by its kind, with its cause only if that mentions none. A
// Config prints REDACTED in place of its secret.
package fincalcauth

import (
	"context"
	"net/http"

	"golang.org/x/oauth2"
)

// TokenURL is FinCalc's client-credentials token endpoint, used when
// [Config.TokenURL] is empty.
const TokenURL = "https://api.fincalc.co.uk/api/oauth/token"

// Scopes of the FinCalc API, for [Config.Scopes].
const (
	// ScopeFactFind grants access to the fact-find data of a client.
	ScopeFactFind = "fact-find"
	// ScopeClientFinancials grants access to household financial data.
	ScopeClientFinancials = "client-financials"
	// ScopeClientInformation grants access to client information.
	ScopeClientInformation = "client-information"
)

// Token fetches a new token from the token endpoint, with no caching:
// most programs want [Config.Client] or [Config.TokenSource] instead.
//
// Token requests use the *http.Client that ctx carries under
// [oauth2.HTTPClient], as everywhere in x/oauth2, or else one with a
// 10-second timeout per request, where x/oauth2 would use
// [http.DefaultClient], which has none. Redirects are not followed, so
// that the secret goes to the token URL alone. Token returns when ctx is
// done, with an error that wraps ctx's error.
//
// The returned token has FinCalc's Expiry and ExpiresIn, and every field
// of the response's "data" object is available through its Extra method.
func (c *Config) Token(ctx context.Context) (*oauth2.Token, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	ctx = orBackground(ctx)
	return newFetcher(contextClient(ctx), c).fetch(ctx)
}

// TokenSource returns a source of tokens for c that caches its token and
// replaces it as the package documentation says. It is safe for
// concurrent use.
//
// The source uses ctx's HTTP client as [Config.Token] does. It keeps ctx's
// values but not its cancellation or deadline, so that a source made in
// an HTTP handler keeps working after that request ends.
//
// The returned source is the one [oauth2.ReuseTokenSourceWithExpiry]
// makes, so that [oauth2.NewClient] uses it as is. The tokens it returns
// report as Expiry the moment the source starts replacing them (see
// [Config.RefreshAhead]), not FinCalc's expiry, which ExpiresIn still
// gives: Valid() is true from issue until then. After that moment, while
// the replacement is under way or the token endpoint fails, the source
// keeps returning the current token, which FinCalc still accepts, with
// Valid() false, until 10 seconds before FinCalc's expiry. As with any
// x/oauth2 source, callers share the returned tokens and must not modify
// them. If c is invalid, every call of its Token method returns the
// validation error.
func (c *Config) TokenSource(ctx context.Context) oauth2.TokenSource {
	if err := c.Validate(); err != nil {
		return oauth2.ReuseTokenSource(nil, errSource{err})
	}
	ctx = orBackground(ctx)
	r := newRefresher(ctx, c, contextClient(ctx))
	return oauth2.ReuseTokenSourceWithExpiry(nil, reuseAdapter{r}, reuseEarlyExpiry)
}

// Client returns an HTTP client that adds a bearer token from c to every
// request. It caches and replaces tokens as [Config.TokenSource] does,
// and takes no lock while its token is fresh. A request waiting for a
// token stops when its own context is done. Each client holds a token of
// its own: build one at start-up and reuse it, since a client made per
// request sends a token request per request.
//
// When the API answers 401, the client fetches a new token and replays
// the request once with it, if its body can be sent again
// (http.Request.GetBody is set, or there is no body); a second 401 goes
// back to the caller. The refused token stays in use until a new one is
// in hand, and such fetches are rationed as failed ones are (see the
// package documentation), so that an API that refuses every token costs
// a handful of token requests, not one per request. A client from
// oauth2.NewClient cannot do this: x/oauth2's transport does not look at
// responses.
//
// The token goes only to the host of the request the caller made, and
// on redirects to where net/http would forward the caller's own
// Authorization header: that host and its subdomains.
//
// The client is built on ctx's HTTP client under [oauth2.HTTPClient], if
// any (its Transport, CheckRedirect, Jar and Timeout), else on
// [http.DefaultTransport]; like [oauth2.NewClient] it keeps ctx's values
// but, unlike it, not its cancellation. If c is invalid, every request
// fails with the validation error. The returned client and its Transport
// should not be modified.
func (c *Config) Client(ctx context.Context) *http.Client {
	ctx = orBackground(ctx)
	hc := contextClient(ctx)
	base := hc
	if base == nil {
		base = http.DefaultClient
	}
	t := &transport{base: base.Transport}
	if t.base == nil {
		t.base = http.DefaultTransport
	}
	if t.err = c.Validate(); t.err == nil {
		t.r = newRefresher(ctx, c, hc)
	}
	return &http.Client{
		Transport:     t,
		CheckRedirect: base.CheckRedirect,
		Jar:           base.Jar,
		Timeout:       base.Timeout,
	}
}
