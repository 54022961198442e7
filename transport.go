package fincalcauth

import (
	"io"
	"net/http"
)

// transport is the RoundTripper of Config.Client: it adds a bearer
// token from its refresher and, when the API answers 401 to a cached
// token, fetches a new token and replays the request once.
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
	e, err := t.r.token(req.Context())
	if err != nil {
		closeBody(req)
		return nil, err
	}
	tok := e.tok
	// A request whose body cannot be sent again is not replayed.
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil

	req2 := req.Clone(req.Context())
	tok.SetAuthHeader(req2)
	resp, err := t.base.RoundTrip(req2)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}

	// The token was refused before its expiry: revoked, or the
	// credentials were rotated. Forget it, whatever happens next.
	t.r.drop(tok)
	if !replayable {
		return resp, nil
	}
	e2, err := t.r.token(req.Context())
	if err != nil || e2.tok.AccessToken == tok.AccessToken {
		return resp, nil
	}
	req3 := req.Clone(req.Context())
	if req.GetBody != nil && req.Body != nil && req.Body != http.NoBody {
		body, err := req.GetBody()
		if err != nil {
			return resp, nil
		}
		req3.Body = body
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	e2.tok.SetAuthHeader(req3)
	return t.base.RoundTrip(req3)
}

// closeBody closes the body of a request that will not be sent, as a
// RoundTripper must.
func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}
