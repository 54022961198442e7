// Package memhttp serves HTTP requests in memory, with no socket, so that
// clients and handlers can run together inside testing/synctest bubbles.
package memhttp

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
)

// ErrAborted is the error of a request whose handler aborted it with
// http.ErrAbortHandler, as a server drops a connection.
var ErrAborted = errors.New("connection reset: the server aborted the request")

// Transport is an http.RoundTripper that hands each request, whatever its
// host, to Handler in the caller's goroutine and returns what it wrote,
// or the cause of the request's context if that ended meanwhile.
type Transport struct {
	Handler http.Handler
}

// RoundTrip serves req with t.Handler.
func (t Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	in := req.Clone(req.Context())
	in.RequestURI = req.URL.RequestURI()
	in.RemoteAddr = "127.0.0.1:1"
	if in.Body == nil {
		in.Body = http.NoBody
	}
	rec := httptest.NewRecorder()
	err := serve(t.Handler, rec, in)
	if req.Body != nil {
		req.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	if ctx := req.Context(); ctx.Err() != nil {
		// The client gave up while the handler ran, as a network
		// transport would report it: whatever was written is lost.
		return nil, context.Cause(ctx)
	}
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

func serve(h http.Handler, w http.ResponseWriter, r *http.Request) (err error) {
	defer func() {
		if p := recover(); p != nil {
			if p != http.ErrAbortHandler {
				panic(p)
			}
			err = ErrAborted
		}
	}()
	h.ServeHTTP(w, r)
	return nil
}
