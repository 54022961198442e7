package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
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
	for _, a := range attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	h.c.tell("%s", b.String())
	return nil
}

func (h *verboseHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &verboseHandler{c: h.c, attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...)}
}

func (h *verboseHandler) WithGroup(string) slog.Handler { return h }
