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
	"strconv"
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
	body   []byte          // the JSON request; it holds the secret
	red    func() redactor // removes the secret from what is reported; built on first use
	client *http.Client
	logger *slog.Logger
}

// newFetcher prepares requests for c, which must be valid, using the HTTP
// client that ctx carries, if any.
func newFetcher(ctx context.Context, c *Config) *fetcher {
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
	return &fetcher{
		url:    c.tokenURL(),
		body:   body,
		red:    sync.OnceValue(func() redactor { return newRedactor(c.ClientSecret) }),
		client: tokenClient(ctx),
		logger: c.Logger,
	}
}

// defaultTokenClient makes token requests when the context supplies no
// HTTP client: x/oauth2 would use http.DefaultClient, which has no timeout.
var defaultTokenClient = &http.Client{Timeout: defaultHTTPTimeout, CheckRedirect: noRedirect}

// tokenClient returns the client for token requests: a copy of the one
// in ctx, or defaultTokenClient. Neither follows redirects, so that the
// request body, which holds the secret, goes to TokenURL only.
func tokenClient(ctx context.Context) *http.Client {
	hc := contextClient(ctx)
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

// outcome is the result of one attempt.
type outcome struct {
	status     string // the answer's status line as sent, or what failed: redact it before reporting it
	tok        *oauth2.Token
	err        error
	transient  bool          // worth another attempt
	retryAfter time.Duration // from a Retry-After header; 0 if none
}

// fetch obtains one token, retrying transient failures with exponential
// backoff and jitter. It stops when ctx is done. Its errors, and theirs
// alone, start with "fincalcauth: ".
func (f *fetcher) fetch(ctx context.Context) (*oauth2.Token, error) {
	tok, err := f.retry(ctx)
	if err != nil {
		return nil, fmt.Errorf("fincalcauth: %w", err)
	}
	return tok, nil
}

func (f *fetcher) retry(ctx context.Context) (*oauth2.Token, error) {
	var slept time.Duration
	var last error // the last failure that ctx did not cause
	for attempt := 1; ; attempt++ {
		if ctx.Err() != nil {
			return nil, stopped(ctx, attempt-1, last)
		}
		o := f.attempt(ctx)
		if f.logger != nil {
			f.debug(ctx, "fincalcauth: token request answered", slog.Int("attempt", attempt), slog.String("status", f.red().text(o.status, maxDescription)))
		}
		if o.err == nil {
			if attempt > 1 {
				f.debug(ctx, "fincalcauth: token fetched after retries",
					slog.Int("attempts", attempt), slog.Time("expiry", o.tok.Expiry))
			}
			return o.tok, nil
		}
		if ctx.Err() != nil {
			return nil, stopped(ctx, attempt, last)
		}
		last = o.err
		if !o.transient || attempt == maxAttempts {
			return nil, o.err
		}
		wait := backoff(attempt)
		if o.retryAfter > wait {
			wait = o.retryAfter
		}
		if slept+wait > sleepBudget {
			if o.retryAfter > 0 {
				// The server asks for more than the budget left: fail now
				// rather than keep the callers waiting.
				return nil, o.err
			}
			wait = sleepBudget - slept
		}
		reason := "backoff"
		if wait == o.retryAfter {
			reason = "Retry-After"
		}
		f.debug(ctx, "fincalcauth: waiting before the next attempt", slog.Duration("wait", wait), slog.String("reason", reason))
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

// debug logs a record at Debug level, if there is a logger.
func (f *fetcher) debug(ctx context.Context, msg string, attrs ...slog.Attr) {
	if f.logger != nil {
		f.logger.LogAttrs(ctx, slog.LevelDebug, msg, attrs...)
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
		if verificationFailed(err) {
			return outcome{status: "certificate not verified", err: f.transportError("token request failed: the server's TLS certificate could not be verified, which no retry can mend", err)}
		}
		return outcome{status: "no answer", err: f.transportError("token request failed", err), transient: true}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBodySize+1))
	if err != nil {
		return outcome{status: resp.Status, err: f.transportError("reading token response ("+f.red().text(resp.Status, maxDescription)+")", err), transient: true}
	}
	cut := len(body) > maxBodySize
	if cut {
		body = body[:maxBodySize]
	}
	o := outcome{status: resp.Status, transient: transientStatus(resp.StatusCode)}
	if cut && resp.StatusCode/100 == 2 {
		o.err = answer{resp: resp, body: body, cut: true, red: f.red}.malformed("larger than 1 MiB")
		return o
	}
	o.tok, o.err = parseResponse(resp, body, cut, f.red, sent)
	if o.err != nil && o.transient {
		o.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return o
}

// transportError reports err, a failure of the transport, such as
// net/http's error that quotes a malformed status or header line the
// server sent. Its text is redacted, and err stays in the chain only if
// nothing in its text needed redacting; otherwise only the context's
// error, if err is one, does.
func (f *fetcher) transportError(what string, err error) error {
	e := &fetchError{msg: what + ": " + f.red().text(err.Error(), maxDescription), cause: err}
	if f.red().changes(err.Error()) {
		e.cause = nil
		for _, ctxErr := range []error{context.Canceled, context.DeadlineExceeded} {
			if errors.Is(err, ctxErr) {
				e.cause = ctxErr
			}
		}
	}
	return e
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

// parseRetryAfter reads a Retry-After header in seconds or HTTP-date
// form, capped at an hour. It returns 0 when v is absent, malformed or
// in the past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	switch {
	case err == nil && n <= 0:
		return 0
	case err == nil:
		return time.Duration(min(n, int64(time.Hour/time.Second))) * time.Second
	case errors.Is(err, strconv.ErrRange) && v[0] != '-':
		// More seconds than an int64 holds: longer than any budget.
		return time.Hour
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return min(d, time.Hour)
		}
	}
	return 0
}
