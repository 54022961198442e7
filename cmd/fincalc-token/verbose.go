package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
)

// verboseHandler writes the library's records, one line each, for -v.
// The library keeps the secret and its own tokens out of them; the
// command withholds a line that mentions a token it holds.
type verboseHandler struct {
	c     *command
	attrs []slog.Attr
}

func (h *verboseHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *verboseHandler) Handle(_ context.Context, r slog.Record) error {
	attrs := append([]slog.Attr(nil), h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		attrs = append(attrs, a)
		return true
	})
	var b strings.Builder
	b.WriteString(r.Message)
	for _, a := range h.c.obs.explain(attrs) {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	h.c.tell("%s", b.String())
	return nil
}

func (h *verboseHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &verboseHandler{c: h.c, attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...)}
}

func (h *verboseHandler) WithGroup(string) slog.Handler { return h }

// observer is the transport of a run's token requests. It keeps, for each
// request in turn, how it failed before any HTTP answer, in a few words
// of its own: never the transport's text, which may quote what a server
// sent.
type observer struct {
	base http.RoundTripper

	mu       sync.Mutex
	failures []string // by request; "" for one that got an answer
}

func (o *observer) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := o.base.RoundTrip(req)
	o.mu.Lock()
	o.failures = append(o.failures, failureOf(req.Context(), err))
	o.mu.Unlock()
	return resp, err
}

// last returns how the latest request failed, or "".
func (o *observer) last() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.failures) == 0 {
		return ""
	}
	return o.failures[len(o.failures)-1]
}

// explain returns the attributes of an attempt's record with what
// happened in place of a status that only says there was no answer. The
// library makes one request per attempt, so attempt n is request n.
// A record of another shape is left as it is.
func (o *observer) explain(attrs []slog.Attr) []slog.Attr {
	attempt, status := -1, -1
	for i, a := range attrs {
		switch {
		case a.Key == "attempt" && a.Value.Kind() == slog.KindInt64:
			attempt = int(a.Value.Int64())
		case a.Key == "status" && a.Value.String() == "no answer":
			status = i
		}
	}
	if o == nil || status < 0 {
		return attrs
	}
	what := "no HTTP answer"
	o.mu.Lock()
	if attempt >= 1 && attempt <= len(o.failures) && o.failures[attempt-1] != "" {
		what = "no HTTP answer: " + o.failures[attempt-1]
	}
	o.mu.Unlock()
	attrs = append([]slog.Attr(nil), attrs...)
	attrs[status] = slog.String("failure", what)
	return attrs
}

// How a request failed before an HTTP answer.
const (
	failRefused = "connection refused"
	failReset   = "connection reset"
	failClosed  = "connection closed by the server"
	failNoHost  = "no such host"
	failDNS     = "host name lookup failed"
	failTimeout = "no answer in time"
	failTLSCert = "the server's TLS certificate not verified"
	failTLS     = "TLS handshake failed"
	failHTTP    = "an answer that is not valid HTTP"
	failOther   = "connection failed"
)

// failureOf says in a few words how a request with context ctx failed
// with err, or "" if err is nil.
func failureOf(ctx context.Context, err error) string {
	var dns *net.DNSError
	var te *timeoutError
	var ne net.Error
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var rh tls.RecordHeaderError
	switch {
	case err == nil:
		return ""
	case errors.As(context.Cause(ctx), &te):
		return "stopped: " + te.Error()
	case errors.Is(context.Cause(ctx), errInterrupted):
		return "stopped: interrupted"
	case errors.Is(err, syscall.ECONNREFUSED):
		return failRefused
	case errors.Is(err, syscall.ECONNRESET):
		return failReset
	case errors.As(err, &dns) && dns.IsNotFound:
		return failNoHost
	case errors.As(err, &dns):
		return failDNS
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return failTimeout
	case errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &he):
		return failTLSCert
	case errors.As(err, &rh):
		return failTLS
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return failClosed
	case strings.Contains(err.Error(), "malformed HTTP"):
		return failHTTP
	}
	return failOther
}
