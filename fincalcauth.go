// Package fincalcauth obtains OAuth2 access tokens for the FinCalc API
// from its client-credentials endpoint, for use with [golang.org/x/oauth2].
//
// FinCalc's token endpoint is not the standard one: it takes a JSON body
// with an extra email_address field and wraps its answer in a
// {"success": ..., "data": ...} envelope, so
// golang.org/x/oauth2/clientcredentials cannot talk to it. With this
// package, a client is one line:
//
//	cfg := &fincalcauth.Config{ClientID: id, ClientSecret: secret,
//		EmailAddress: email, Scopes: []string{fincalcauth.ScopeFactFind}}
//	client := oauth2.NewClient(ctx, cfg.TokenSource(ctx)) // or cfg.Client(ctx)
//
// Every request made with client carries "Authorization: Bearer <token>",
// and the token is replaced before it expires.
//
// # The request
//
// A token request is a POST of a JSON object with the five documented
// fields: grant_type ("client_credentials"), client_id, client_secret,
// scope (the Scopes joined by spaces) and email_address, all JSON strings.
// The client secret travels only in that body. Redirects from the token
// endpoint are not followed, so the body goes to the configured URL only.
//
// Token requests use the *http.Client that the context passed to
// [Config.Token], [Config.TokenSource] or [Config.Client] carries under
// [oauth2.HTTPClient], as everywhere in x/oauth2. Without one they use a
// client of their own with a 10-second timeout per request, where
// x/oauth2 would use [http.DefaultClient], which has none.
//
// # Errors
//
// A Config that cannot work (an empty field, an email that is not an
// address, a token URL that is not absolute https) gives an error before
// any network I/O, made of one [*ConfigError] per problem; [Config.Validate]
// reports the same at start-up.
//
// When FinCalc refuses (any status other than 2xx, or "success": false),
// or answers a 2xx without a usable token, the error has an
// [*oauth2.RetrieveError] in its chain, with Response, Body and
// ErrorDescription set; get it with [errors.As] as for any x/oauth2 code.
// The error's text includes the server's description. The client secret,
// and any access token in an answer reported as malformed, are removed
// from the text, from Body and from ErrorDescription, even when the server
// echoes the request back.
//
// # Contexts
//
// [Config.Token] stops when its context is done, and its error then
// wraps the context's error, so errors.Is(err, context.DeadlineExceeded)
// holds. [Config.TokenSource] and [Config.Client] keep their context's
// values (the HTTP client) but not its cancellation or deadline: a source
// made inside an HTTP handler keeps working after that request ends.
// Each of their fetches has a time bound of its own, 30 seconds. A request
// made with the client from [Config.Client] that waits for a token stops
// waiting when the request's own context is done.
//
// # Refresh and failure policy
//
// Within one fetch, a transient failure (a connection error or reset, a
// timeout, or HTTP 408, 429, 500, 502, 503 or 504) is retried, up to 4
// attempts in all, after a sleep of 250ms, 500ms and 1s, each less up to
// half at random. A Retry-After header, in seconds or as an HTTP date,
// lengthens a sleep. The sleeps of one fetch add up to 2 seconds at most;
// when a Retry-After asks for more than is left, the fetch fails at once
// with the server's error. A rejection (any other 4xx, or "success":
// false) is never retried.
//
// A source from [Config.TokenSource] or [Config.Client] caches its token
// and starts replacing it RefreshAhead before its expiry: by default half
// its lifetime, 12 hours for FinCalc's 24-hour tokens. From then on each
// call still returns the current token at once, and one goroutine fetches
// the next one in the background, whatever the number of callers. No
// caller waits on the network while a valid token exists. A token is
// valid until 10 seconds before its expiry.
//
// When a fetch fails, the next one waits for a cool-down: about 1 second
// after the first failure, doubling with each further one, capped at 1
// minute, reset by a success. While a valid token is in hand, callers
// keep getting it with no error, and background attempts continue on
// that schedule until a new token arrives or the old one is no longer
// valid. With no valid token, callers share the fetch under way, if
// any, and during the cool-down get the last fetch's error at once, with
// no request sent: an outage does not queue callers behind one another
// or flood FinCalc. Nothing runs when nobody asks for a token.
//
// The client from [Config.Client] also recovers from a token that FinCalc
// stops accepting before its expiry (revoked, or the credentials rotated):
// when the API answers 401 to a request, the client drops the token,
// fetches a new one and replays the request once, if its body can be
// sent again (http.Request.GetBody is set, or there is no body). A second
// 401 goes back to the caller as is. A client made by
// oauth2.NewClient(ctx, cfg.TokenSource(ctx)) cannot do this: x/oauth2's
// transport neither looks at responses nor lets a token be dropped.
//
// The knobs: [Config.RefreshAhead] sets the refresh window,
// [Config.Logger] reports background failures (Warn) and fetches that
// needed retries (Debug), the context's HTTP client sets per-request
// timeouts and transport, and the context of [Config.Token] bounds a
// single fetch.
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
// most programs want [Config.TokenSource] or [Config.Client] instead.
//
// Transient failures are retried as the package documentation says. Token
// returns when ctx is done, with an error that wraps ctx's error. An
// invalid Config gives an error before any network I/O. The returned token
// has a non-zero Expiry, and every field of the response's "data" object
// is available through its Extra method.
func (c *Config) Token(ctx context.Context) (*oauth2.Token, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	ctx = orBackground(ctx)
	return newFetcher(ctx, c).fetch(ctx)
}

// TokenSource returns a source of tokens for c that caches its token,
// replaces it in the background ahead of its expiry, and fails fast during
// an outage, as the package documentation says. It is safe for concurrent
// use.
//
// The source keeps ctx's values, such as the HTTP client under
// [oauth2.HTTPClient], but not its cancellation or deadline: it keeps
// working after ctx is done.
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
	r := newRefresher(orBackground(ctx), c)
	return oauth2.ReuseTokenSourceWithExpiry(nil, reuseAdapter{r}, reuseEarlyExpiry)
}

// Client returns an HTTP client that adds a bearer token from c to every
// request. It refreshes tokens as [Config.TokenSource] does, takes no lock
// while its token is fresh, and when the API answers 401 it fetches a new
// token and replays the request once, as the package documentation says.
//
// The client is built on ctx's HTTP client under [oauth2.HTTPClient], if
// any (its Transport, CheckRedirect, Jar and Timeout), else on
// [http.DefaultTransport]; like [oauth2.NewClient] it keeps ctx's values
// but, unlike it, not its cancellation. If c is invalid, every request
// fails with the validation error. The returned client and its Transport
// should not be modified.
func (c *Config) Client(ctx context.Context) *http.Client {
	ctx = orBackground(ctx)
	base := contextClient(ctx)
	if base == nil {
		base = http.DefaultClient
	}
	t := &transport{base: base.Transport}
	if t.base == nil {
		t.base = http.DefaultTransport
	}
	if t.err = c.Validate(); t.err == nil {
		t.r = newRefresher(ctx, c)
	}
	return &http.Client{
		Transport:     t,
		CheckRedirect: base.CheckRedirect,
		Jar:           base.Jar,
		Timeout:       base.Timeout,
	}
}
