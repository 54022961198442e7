package fincalcauth

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// Defaults of the retry policy of one fetch.
const (
	// defaultHTTPTimeout bounds one token request when the context
	// supplies no HTTP client.
	defaultHTTPTimeout = 10 * time.Second

	maxAttempts = 4
	// firstBackoff is the longest first sleep; each retry doubles it.
	firstBackoff = 250 * time.Millisecond
	// sleepBudget bounds the sum of the sleeps between attempts of one
	// fetch: callers wait on a fetch.
	sleepBudget = 2 * time.Second

	// maxBodySize bounds how much of a token response is read.
	maxBodySize = 1 << 20
)

// requestBody is the token request, with the five documented fields in
// the documented order. All are strings, as the schema says. client_id
// too, although the example on FinCalc's reference page shows a bare
// number: a string carries every identifier unchanged (leading zeros,
// long digit runs, letters), and the schema is the contract.
type requestBody struct {
	GrantType    string `json:"grant_type"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	Scope        string `json:"scope"`
	EmailAddress string `json:"email_address"`
}

// fetcher performs token requests for one Config. It is safe for
// concurrent use.
type fetcher struct {
	url    string
	body   []byte // the JSON request; it holds the secret
	secret string
	client *http.Client
	logger *slog.Logger
	obs    Observer // Config.Observer
	source string   // the Source of obs's events

	mu     sync.Mutex
	handed []string // the last maxHanded tokens handed out, newest last
}

// maxHanded is how many of the tokens it handed out a source keeps, to
// withhold server text that mentions them.
const maxHanded = 4

// newFetcher prepares requests for c, which must be valid, using hc, the
// HTTP client that the context carries (see contextClient), if not nil.
func newFetcher(hc *http.Client, c *Config) *fetcher {
	body, err := json.Marshal(requestBody{
		GrantType:    "client_credentials",
		ClientID:     c.ClientID,
		ClientSecret: c.ClientSecret,
		Scope:        strings.Join(c.Scopes, " "),
		EmailAddress: c.EmailAddress,
	})
	if err != nil {
		panic("fincalcauth: encoding a request of strings failed: " + err.Error())
	}
	f := &fetcher{
		url:    c.tokenURL(),
		body:   body,
		secret: c.ClientSecret,
		client: tokenClient(hc),
		logger: c.Logger,
	}
	if c.Observer != nil {
		f.obs, f.source = c.Observer, sourceID(c)
	}
	return f
}

// defaultTokenClient makes token requests when the context supplies no
// HTTP client: x/oauth2 would use http.DefaultClient, which has no timeout.
var defaultTokenClient = &http.Client{Timeout: defaultHTTPTimeout, CheckRedirect: noRedirect}

// tokenClient returns the client for token requests: a copy of hc, or
// defaultTokenClient. Neither follows redirects, so that the request
// body, which holds the secret, goes to TokenURL only.
func tokenClient(hc *http.Client) *http.Client {
	if hc == nil {
		return defaultTokenClient
	}
	c := *hc
	c.CheckRedirect = noRedirect
	return &c
}

// contextClient returns the *http.Client that ctx carries under
// oauth2.HTTPClient, or nil.
func contextClient(ctx context.Context) *http.Client {
	hc, _ := ctx.Value(oauth2.HTTPClient).(*http.Client)
	return hc
}

// orBackground returns ctx, or context.Background() for a nil ctx, which
// x/oauth2 accepts and so do we. Every exported function that takes a
// context passes it through here first.
func orBackground(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// remember adds tok to the tokens handed out, forgetting the oldest.
func (f *fetcher) remember(tok string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.handed) == maxHanded {
		f.handed = f.handed[1:]
	}
	f.handed = append(f.handed, tok)
}

// reporter returns what decides what of a server's text f may report:
// not the secret, nor a token it handed out.
func (f *fetcher) reporter(ctx context.Context) reporter {
	f.mu.Lock()
	defer f.mu.Unlock()
	return reporter{ctx: ctx, secrets: append([]string{f.secret}, f.handed...)}
}

// outcome is the result of one attempt.
type outcome struct {
	status     string // the answer's status code and text, or what failed
	code       int    // the answer's status code; 0 if none came
	tok        *oauth2.Token
	err        error
	transient  bool          // worth another attempt
	retryAfter time.Duration // from a Retry-After header; 0 if none
}

// failure returns o's error, marked with the moment that its Retry-After
// names, if any.
func (o outcome) failure() error {
	if o.retryAfter > 0 {
		return &throttled{err: o.err, until: time.Now().Add(o.retryAfter)}
	}
	return o.err
}

// throttled is a failed attempt whose answer asked, with Retry-After, for
// no request before until. Its text is its cause's.
type throttled struct {
	err   error
	until time.Time
}

func (e *throttled) Error() string { return e.err.Error() }
func (e *throttled) Unwrap() error { return e.err }

// fetch obtains one token, retrying transient failures with exponential
// backoff and jitter. It stops when ctx is done. Its errors, and theirs
// alone, start with "fincalcauth: ", inside a TokenError.
func (f *fetcher) fetch(ctx context.Context) (*oauth2.Token, error) {
	t := f.startTrace(ctx)
	tok, err := f.retry(ctx, t)
	if err != nil {
		err = &TokenError{err: fmt.Errorf("fincalcauth: %w", err)}
	}
	t.end(tok, err)
	return tok, err
}

func (f *fetcher) retry(ctx context.Context, t *fetchTrace) (*oauth2.Token, error) {
	var slept time.Duration
	var last error // the last failure that ctx did not cause
	for attempt := 1; ; attempt++ {
		if ctx.Err() != nil {
			return nil, stopped(ctx, attempt-1, last)
		}
		o := f.attempt(ctx)
		t.attempt(o)
		f.debug(ctx, "fincalcauth: token request answered", func() []slog.Attr {
			return []slog.Attr{slog.Int("attempt", attempt), slog.String("status", o.status)}
		})
		if o.err == nil {
			if attempt > 1 {
				f.debug(ctx, "fincalcauth: token fetched after retries", func() []slog.Attr {
					return []slog.Attr{slog.Int("attempts", attempt), slog.Time("expiry", o.tok.Expiry)}
				})
			}
			return o.tok, nil
		}
		if ctx.Err() != nil {
			return nil, stopped(ctx, attempt, last)
		}
		last = o.err
		if !o.transient || attempt == maxAttempts {
			return nil, o.failure()
		}
		wait := backoff(attempt)
		if o.retryAfter > wait {
			wait = o.retryAfter
		}
		if slept+wait > sleepBudget {
			if o.retryAfter > 0 {
				// The server asks for more than the budget left: fail now
				// rather than keep the callers waiting.
				return nil, o.failure()
			}
			wait = sleepBudget - slept
		}
		reason := "backoff"
		if wait == o.retryAfter {
			reason = "Retry-After"
		}
		f.debug(ctx, "fincalcauth: waiting before the next attempt", func() []slog.Attr {
			return []slog.Attr{slog.Duration("wait", wait), slog.String("reason", reason)}
		})
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, stopped(ctx, attempt, last)
		case <-t.C:
		}
		slept += wait
	}
}

// debug logs a record at Debug level, if there is a logger and it is
// enabled for Debug: only then does it build the attributes.
func (f *fetcher) debug(ctx context.Context, msg string, attrs func() []slog.Attr) {
	if f.logger != nil && f.logger.Enabled(ctx, slog.LevelDebug) {
		f.logger.LogAttrs(ctx, slog.LevelDebug, msg, attrs()...)
	}
}

// backoff returns the sleep after the given failed attempt: firstBackoff
// doubled for each earlier attempt, less up to half of it at random.
func backoff(attempt int) time.Duration {
	d := firstBackoff << (attempt - 1)
	return d - rand.N(d/2+1)
}

// stopped reports that ctx ended a fetch after the given attempts,
// naming the last failure that ctx did not cause, if any.
func stopped(ctx context.Context, attempts int, last error) error {
	cause := context.Cause(ctx)
	if !errors.Is(cause, ctx.Err()) {
		cause = fmt.Errorf("%w: %w", ctx.Err(), cause)
	}
	plural := "s"
	if attempts == 1 {
		plural = ""
	}
	if last == nil {
		return fmt.Errorf("token request stopped after %d attempt%s: %w", attempts, plural, cause)
	}
	return fmt.Errorf("token request stopped after %d attempt%s: %w; last failure: %w", attempts, plural, cause, last)
}

// attempt makes one token request.
func (f *fetcher) attempt(ctx context.Context) outcome {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.url, bytes.NewReader(f.body))
	if err != nil {
		return outcome{err: fmt.Errorf("token request: %w", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	sent := time.Now()
	resp, err := f.client.Do(req)
	if err != nil {
		o := outcome{status: "no answer: " + transportKind(err), err: transportError(f.reporter(ctx), "token request failed", err), transient: true}
		if verificationFailed(err) {
			o.transient = false
		}
		return o
	}
	defer resp.Body.Close()
	status := statusLine(resp.StatusCode)
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBodySize+1))
	if err != nil {
		return outcome{status: status + ", body not read", code: resp.StatusCode, err: transportError(f.reporter(ctx), "reading token response ("+status+")", err), transient: true}
	}
	cut := len(body) > maxBodySize
	if cut {
		body = body[:maxBodySize]
	}
	a := newAnswer(resp, body, cut, func() reporter { return f.reporter(ctx) }, time.Now())
	o := outcome{status: status, code: resp.StatusCode, transient: transientStatus(resp.StatusCode)}
	o.tok, o.err = parseResponse(&a, sent)
	if o.err != nil && o.transient {
		o.retryAfter = a.retryAfter
	}
	return o
}

// verificationFailed reports whether err is a failed verification of the
// server's certificate: an unknown authority, a name that does not
// match, an expired certificate. Such a failure is permanent.
func verificationFailed(err error) bool {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci)
}

// transientStatus reports whether a status is worth another attempt.
func transientStatus(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusTooManyRequests,
		http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}
