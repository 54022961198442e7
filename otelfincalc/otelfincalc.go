// Package otelfincalc reports what fincalcauth's sources and clients do
// as OpenTelemetry metrics and traces. Set its [fincalcauth.Observer] in
// the Config:
//
//	cfg.Observer = otelfincalc.New()
//
// The instruments, in the meter named by [ScopeName]:
//
//   - fincalcauth.token.requests, a counter of token requests (each
//     attempt of a fetch is one), with the attributes fincalcauth.outcome
//     (ok, refused or failed: see [fincalcauth.Outcome]) and
//     http.response.status_code when an answer came;
//   - fincalcauth.token.request.duration, a histogram of their durations
//     in seconds, with the same attributes;
//   - fincalcauth.store.operations, a counter of the calls of a
//     [fincalcauth.Store], with the attributes fincalcauth.store.operation
//     (load, save, delete, and any operation added later, such as lease)
//     and fincalcauth.outcome (hit, miss, ok or failed);
//   - fincalcauth.token.remaining, a gauge of the seconds left until
//     FinCalc's expiry of each source's current token, 0 once it has
//     expired, with the attribute fincalcauth.source; a source whose
//     token expired more than [ForgetAfter] ago is no longer reported,
//     and at most [MaxSources] are, those whose tokens expire last (a
//     SignIn has a source per person);
//   - fincalcauth.api.unauthorized, a counter of the 401 answers of the
//     API to a client from Config.Client, with the attribute
//     fincalcauth.replayed (whether the request was sent again with a new
//     token).
//
// Each fetch is a span named fincalcauth.fetch, a child of the span of
// the caller that waits for it, or a root span for a refresh in the
// background, with an event named attempt per token request. It records
// the outcome, the last status code and the number of attempts as
// attributes, and a status of Error, described by the outcome alone, for
// a fetch that fails.
//
// Nothing reported names the client ID, the email address, a token or a
// secret, or quotes an error's text, which may quote the server:
// telemetry goes to third parties. A source is identified by
// fincalcauth.source, the first 8 characters of its key name in a store,
// a keyed hash that reveals nothing.
package otelfincalc

import (
	"context"
	"sync"
	"time"

	"github.com/gofincalc/fincalcauth"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the name of the meter and of the tracer that report.
const ScopeName = "github.com/gofincalc/fincalcauth/otelfincalc"

// The names of the attributes.
const (
	AttrOutcome    = "fincalcauth.outcome"
	AttrStatusCode = "http.response.status_code"
	AttrStoreOp    = "fincalcauth.store.operation"
	AttrSource     = "fincalcauth.source"
	AttrAttempt    = "fincalcauth.attempt"
	AttrAttempts   = "fincalcauth.attempts"
	AttrBackground = "fincalcauth.background"
	AttrReplayed   = "fincalcauth.replayed"
)

// Option configures [New].
type Option func(*options)

type options struct {
	mp metric.MeterProvider
	tp trace.TracerProvider
}

// WithMeterProvider sets the provider of the meter. The default is
// otel.GetMeterProvider(), the global one at the call of New.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(o *options) { o.mp = mp }
}

// WithTracerProvider sets the provider of the tracer. The default is
// otel.GetTracerProvider(), the global one at the call of New.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tp = tp }
}

// New returns an Observer that reports to OpenTelemetry, as the package
// documentation says. One Observer can serve several Configs. To report
// to another observer too, such as a [fincalcauth.Health], combine them
// with [fincalcauth.MultiObserver].
func New(opts ...Option) fincalcauth.Observer {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.mp == nil {
		o.mp = otel.GetMeterProvider()
	}
	if o.tp == nil {
		o.tp = otel.GetTracerProvider()
	}
	meter := o.mp.Meter(ScopeName)
	ob := &observer{tracer: o.tp.Tracer(ScopeName), expiry: map[string]time.Time{}}
	// Errors from the instruments' constructors go to otel's handler and
	// leave a no-op instrument: reporting never stops a source.
	var err error
	if ob.requests, err = meter.Int64Counter("fincalcauth.token.requests",
		metric.WithDescription("Token requests sent to FinCalc's token endpoint, each attempt of a fetch one."),
		metric.WithUnit("{request}")); err != nil {
		otel.Handle(err)
	}
	if ob.duration, err = meter.Float64Histogram("fincalcauth.token.request.duration",
		metric.WithDescription("Duration of the token requests sent to FinCalc's token endpoint."),
		metric.WithUnit("s")); err != nil {
		otel.Handle(err)
	}
	if ob.storeOps, err = meter.Int64Counter("fincalcauth.store.operations",
		metric.WithDescription("Calls of the token store."),
		metric.WithUnit("{operation}")); err != nil {
		otel.Handle(err)
	}
	if ob.unauthorized, err = meter.Int64Counter("fincalcauth.api.unauthorized",
		metric.WithDescription("401 answers of the API to requests carrying a token."),
		metric.WithUnit("{response}")); err != nil {
		otel.Handle(err)
	}
	if _, err = meter.Float64ObservableGauge("fincalcauth.token.remaining",
		metric.WithDescription("Time left until the expiry of each source's current token."),
		metric.WithUnit("s"),
		metric.WithFloat64Callback(ob.remaining)); err != nil {
		otel.Handle(err)
	}
	return ob
}

type observer struct {
	tracer       trace.Tracer
	requests     metric.Int64Counter
	duration     metric.Float64Histogram
	storeOps     metric.Int64Counter
	unauthorized metric.Int64Counter

	mu     sync.Mutex
	expiry map[string]time.Time // FinCalc's expiry of each source's token
}

// ForgetAfter is how long after its token's expiry a source is no longer
// reported by fincalcauth.token.remaining: a source that nobody uses any
// more, after a secret rotation or a person's last visit, stops being a
// series of its own.
const ForgetAfter = time.Hour

// MaxSources bounds the sources that fincalcauth.token.remaining reports,
// and so its series. When a new source would exceed it, the source whose
// token expires first is dropped.
const MaxSources = 1000

// StartFetch starts a span for the fetch.
func (ob *observer) StartFetch(ctx context.Context, e fincalcauth.FetchStart) context.Context {
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String(AttrSource, e.Source), attribute.Bool(AttrBackground, e.Background)),
	}
	if e.Background {
		// No caller waits: a span in the source's context would hang
		// under whatever span made the source, hours ago.
		opts = append(opts, trace.WithNewRoot())
	}
	ctx, _ = ob.tracer.Start(ctx, "fincalcauth.fetch", opts...)
	return ctx
}

// Observe records e.
func (ob *observer) Observe(ctx context.Context, e fincalcauth.Event) {
	switch e := e.(type) {
	case fincalcauth.FetchAttempt:
		attrs := outcomeAttrs(e.Outcome, e.StatusCode)
		ob.requests.Add(ctx, 1, metric.WithAttributes(attrs...))
		ob.duration.Record(ctx, e.Duration.Seconds(), metric.WithAttributes(attrs...))
		trace.SpanFromContext(ctx).AddEvent("attempt",
			trace.WithAttributes(append(attrs, attribute.Int(AttrAttempt, e.Attempt))...))
	case fincalcauth.FetchEnd:
		span := trace.SpanFromContext(ctx)
		span.SetAttributes(append(outcomeAttrs(e.Outcome, e.StatusCode), attribute.Int(AttrAttempts, e.Attempts))...)
		if e.Outcome != fincalcauth.OutcomeOK {
			span.SetStatus(codes.Error, string(e.Outcome))
		}
		span.End()
	case fincalcauth.StoreOp:
		ob.storeOps.Add(ctx, 1, metric.WithAttributes(
			attribute.String(AttrStoreOp, string(e.Operation)),
			attribute.String(AttrOutcome, string(e.Outcome))))
	case fincalcauth.TokenInUse:
		ob.mu.Lock()
		ob.expiry[e.Source] = e.Expiry
		if len(ob.expiry) > MaxSources {
			ob.dropFirstExpiring()
		}
		ob.mu.Unlock()
	case fincalcauth.Unauthorized:
		ob.unauthorized.Add(ctx, 1, metric.WithAttributes(attribute.Bool(AttrReplayed, e.Replayed)))
	}
}

func outcomeAttrs(o fincalcauth.Outcome, status int) []attribute.KeyValue {
	attrs := []attribute.KeyValue{attribute.String(AttrOutcome, string(o))}
	if status != 0 {
		attrs = append(attrs, attribute.Int(AttrStatusCode, status))
	}
	return attrs
}

// remaining observes the time left on each source's token.
func (ob *observer) remaining(ctx context.Context, o metric.Float64Observer) error {
	now := time.Now()
	ob.mu.Lock()
	defer ob.mu.Unlock()
	for source, expiry := range ob.expiry {
		if now.Sub(expiry) > ForgetAfter {
			delete(ob.expiry, source)
			continue
		}
		o.Observe(max(expiry.Sub(now), 0).Seconds(), metric.WithAttributes(attribute.String(AttrSource, source)))
	}
	return nil
}

// dropFirstExpiring forgets the source whose token expires first. ob.mu
// must be held.
func (ob *observer) dropFirstExpiring() {
	var first string
	var at time.Time
	for source, expiry := range ob.expiry {
		if first == "" || expiry.Before(at) {
			first, at = source, expiry
		}
	}
	delete(ob.expiry, first)
}
