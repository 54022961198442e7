package fincalcauth

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/oauth2"
)

// transport is the RoundTripper of Config.Client: it adds a bearer
// token from its refresher and, when the API answers 401, has the token
// replaced and replays the request once.
type transport struct {
	r    *refresher
	err  error // the Config's validation error, if any
	base http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.err != nil {
		closeBody(req)
		return nil, t.err
	}
	if !carriesToken(req) {
		return t.base.RoundTrip(req)
	}
	e, err := t.r.token(req.Context())
	if err != nil {
		closeBody(req)
		return nil, err
	}
	replayable := replayable(req)

	req2 := req.Clone(req.Context())
	e.tok.SetAuthHeader(req2)
	resp, err := t.send(req2, e)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}

	// The token was refused before its expiry. Have it replaced, and if
	// the request can be sent again, wait for the replacement and replay
	// the request once with it.
	replayed := false
	if t.r.f.obs != nil {
		defer func() { t.r.unauthorized(req.Context(), replayed) }()
	}
	fl := t.r.replace(req.Context(), e)
	if fl == nil || !replayable {
		return resp, nil
	}
	select {
	case <-fl.done:
	case <-req.Context().Done():
		return resp, nil
	}
	if fl.err != nil || fl.e.tok.AccessToken == e.tok.AccessToken {
		return resp, nil
	}
	req3 := replay(req, resp, fl.e.tok)
	if req3 == nil {
		return resp, nil
	}
	replayed = true
	return t.send(req3, fl.e)
}

// replayable reports whether req can be sent again: a request whose body
// cannot be had again is not replayed.
func replayable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// replay returns a copy of req, which must be replayable, that carries
// tok, with its body had again from GetBody, and drains and closes resp,
// the answer it replaces. If GetBody fails, replay returns nil and
// leaves resp alone.
func replay(req *http.Request, resp *http.Response, tok *oauth2.Token) *http.Request {
	req2 := req.Clone(req.Context())
	if req.GetBody != nil && req.Body != nil && req.Body != http.NoBody {
		body, err := req.GetBody()
		if err != nil {
			return nil
		}
		req2.Body = body
	}
	discard(resp)
	tok.SetAuthHeader(req2)
	return req2
}

// discard drains a little of resp's body, so that its connection may be
// reused, and closes it.
func discard(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// send sends req, which carries e's token. A failure whose text mentions
// a token (net/http quotes a malformed header line, which may echo the
// Authorization header) is reported as its kind alone (see
// transportError), and so is an answer whose Location quotes a token,
// which net/http would quote in the error of a redirect it cannot
// follow. The check is made only when there is a failure or a Location:
// an answer without costs nothing.
func (t *transport) send(req *http.Request, e *entry) (*http.Response, error) {
	return sendWithToken(t.base, req, func() reporter {
		rep := t.r.f.reporter(req.Context())
		rep.secrets = append(rep.secrets, e.tok.AccessToken)
		return rep
	})
}

// sendWithToken sends req, which carries a token, through base, as
// [transport.send] describes; rep returns the reporter of a failure,
// which knows the token and the other secrets, and is called only when
// there is one to report.
func sendWithToken(base http.RoundTripper, req *http.Request, rep func() reporter) (*http.Response, error) {
	resp, err := base.RoundTrip(req)
	if err != nil {
		rep := rep()
		if rep.withheld(err.Error()) != "" {
			return nil, transportError(rep, "fincalcauth: API request failed", err)
		}
		return nil, err
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		if why := rep().withheld(loc); why != "" {
			resp.Body.Close()
			return nil, fmt.Errorf("fincalcauth: API request answered %s with a Location header that is %s", statusLine(resp.StatusCode), why)
		}
	}
	return resp, nil
}

// carriesToken reports whether req may carry the bearer token: it is the
// request the caller made, or a redirect of it that net/http would send
// the caller's own Authorization header on. That is, every hop since the
// first went to the first request's host, or to a subdomain of its host.
func carriesToken(req *http.Request) bool {
	first := req
	var hops []*http.Request
	for first.Response != nil && first.Response.Request != nil && len(hops) < 100 {
		hops = append(hops, first)
		first = first.Response.Request
	}
	for _, h := range hops {
		if h.URL.Host != first.URL.Host && !isDomainOrSubdomain(hostOf(h.URL), hostOf(first.URL)) {
			return false
		}
	}
	return true
}

func hostOf(u *url.URL) string { return strings.ToLower(u.Hostname()) }

// isDomainOrSubdomain reports whether sub is parent or a subdomain of it,
// as net/http decides it for redirects.
func isDomainOrSubdomain(sub, parent string) bool {
	if sub == parent {
		return true
	}
	if strings.ContainsAny(sub, ":%") {
		return false // an IPv6 address, not a host name
	}
	return strings.HasSuffix(sub, "."+parent)
}

// closeBody closes the body of a request that will not be sent, as a
// RoundTripper must.
func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}
