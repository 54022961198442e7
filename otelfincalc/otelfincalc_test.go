package otelfincalc_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/fincalcauthtest"
	"github.com/gofincalc/fincalcauth/otelfincalc"
	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// telemetry is the real OpenTelemetry SDK, reading into memory.
type telemetry struct {
	reader *sdkmetric.ManualReader
	spans  *tracetest.SpanRecorder
	mp     *sdkmetric.MeterProvider
	tp     *sdktrace.TracerProvider
}

func newTelemetry(t *testing.T) *telemetry {
	tel := &telemetry{reader: sdkmetric.NewManualReader(), spans: tracetest.NewSpanRecorder()}
	tel.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(tel.reader))
	tel.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tel.spans))
	t.Cleanup(func() {
		tel.mp.Shutdown(context.Background())
		tel.tp.Shutdown(context.Background())
	})
	return tel
}

func (tel *telemetry) observer() fincalcauth.Observer {
	return otelfincalc.New(otelfincalc.WithMeterProvider(tel.mp), otelfincalc.WithTracerProvider(tel.tp))
}

// points returns the data points of each instrument, one line each:
// "name{attr=value,...} value", sorted.
func (tel *telemetry) points(t *testing.T) map[string][]string {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := tel.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != otelfincalc.ScopeName {
			t.Errorf("scope %q", sm.Scope.Name)
		}
		for _, m := range sm.Metrics {
			var lines []string
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					lines = append(lines, fmt.Sprintf("%s %d", attrs(p.Attributes), p.Value))
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					lines = append(lines, fmt.Sprintf("%s count %d", attrs(p.Attributes), p.Count))
				}
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					// Whole minutes: the seconds run on.
					lines = append(lines, fmt.Sprintf("%s %v", attrs(p.Attributes), time.Duration(p.Value*float64(time.Second)).Round(time.Minute)))
				}
			default:
				t.Errorf("%s: data of type %T", m.Name, m.Data)
			}
			slices.Sort(lines)
			out[m.Name+" ("+m.Unit+")"] = lines
		}
	}
	return out
}

func attrs(s attribute.Set) string {
	var parts []string
	for _, kv := range s.ToSlice() {
		parts = append(parts, string(kv.Key)+"="+kv.Value.String())
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// spanView is what a test checks of a span.
type spanView struct {
	Name, Parent, Status, StatusDescription string
	Attrs                                   string
	Events                                  []string
}

func viewSpan(s sdktrace.ReadOnlySpan, names map[string]string) spanView {
	v := spanView{
		Name:              s.Name(),
		Parent:            names[s.Parent().SpanID().String()],
		Status:            s.Status().Code.String(),
		StatusDescription: s.Status().Description,
		Attrs:             attrs(attribute.NewSet(s.Attributes()...)),
	}
	for _, e := range s.Events() {
		v.Events = append(v.Events, e.Name+attrs(attribute.NewSet(e.Attributes...)))
	}
	return v
}

func TestMetricsAndSpans(t *testing.T) {
	tel := newTelemetry(t)
	fake := fincalcauthtest.NewServer()
	defer fake.Close()
	obs := tel.observer()
	cfg := fake.ClientConfig()
	cfg.Observer = obs
	cfg.Store = fincalcauth.NewFileStore(t.TempDir())
	source := fincalcauthtest.ClientID // replaced below by what the spans say
	client := cfg.Client(context.Background())

	// A caller's span waits for the first fetch, which meets a 503.
	tracer := tel.tp.Tracer("test")
	ctx, caller := tracer.Start(context.Background(), "caller")
	fake.FailNext(fincalcauthtest.Fault{Status: 503})
	req, _ := http.NewRequestWithContext(ctx, "GET", fake.URL+fincalcauthtest.ClientsPath, nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	caller.End()

	// A second process finds the token in the store.
	cfg2 := fake.ClientConfig()
	cfg2.Observer = obs
	cfg2.Store = cfg.Store
	tok, err := cfg2.TokenSource(context.Background()).Token()
	if err != nil {
		t.Fatal(err)
	}

	// The API refuses the token: a 401, a new token, a replay.
	fake.RevokeTokens()
	resp, err = client.Get(fake.URL + fincalcauthtest.ClientsPath)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after a revocation: %v, %v", resp, err)
	}
	resp.Body.Close()

	// A refusal, with no caller span: a root span.
	fake.FailNext(fincalcauthtest.Fault{Status: 401, Description: "Client authentication failed for " + fincalcauthtest.EmailAddress})
	if _, err := cfg.Token(context.Background()); err == nil {
		t.Fatal("no error")
	}

	spans := tel.spans.Ended()
	names := map[string]string{}
	for _, s := range spans {
		names[s.SpanContext().SpanID().String()] = s.Name()
		if s.Name() == "fincalcauth.fetch" {
			for _, kv := range s.Attributes() {
				if kv.Key == otelfincalc.AttrSource {
					source = kv.Value.AsString()
				}
			}
		}
	}
	var got []spanView
	for _, s := range spans {
		got = append(got, viewSpan(s, names))
	}
	want := []spanView{
		{Name: "fincalcauth.fetch", Parent: "caller", Status: "Unset",
			Attrs: "{fincalcauth.attempts=2,fincalcauth.background=false,fincalcauth.outcome=ok,fincalcauth.source=" + source + ",http.response.status_code=200}",
			Events: []string{
				"attempt{fincalcauth.attempt=1,fincalcauth.outcome=failed,http.response.status_code=503}",
				"attempt{fincalcauth.attempt=2,fincalcauth.outcome=ok,http.response.status_code=200}",
			}},
		{Name: "caller", Status: "Unset", Attrs: "{}"},
		{Name: "fincalcauth.fetch", Status: "Unset",
			Attrs:  "{fincalcauth.attempts=1,fincalcauth.background=false,fincalcauth.outcome=ok,fincalcauth.source=" + source + ",http.response.status_code=200}",
			Events: []string{"attempt{fincalcauth.attempt=1,fincalcauth.outcome=ok,http.response.status_code=200}"}},
		{Name: "fincalcauth.fetch", Status: codes.Error.String(), StatusDescription: "refused",
			Attrs:  "{fincalcauth.attempts=1,fincalcauth.background=false,fincalcauth.outcome=refused,fincalcauth.source=" + source + ",http.response.status_code=401}",
			Events: []string{"attempt{fincalcauth.attempt=1,fincalcauth.outcome=refused,http.response.status_code=401}"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("spans (-want +got):\n%s", diff)
	}
	if len(source) != 8 {
		t.Errorf("source %q", source)
	}

	wantPoints := map[string][]string{
		"fincalcauth.token.requests ({request})": {
			"{fincalcauth.outcome=failed,http.response.status_code=503} 1",
			"{fincalcauth.outcome=ok,http.response.status_code=200} 2",
			"{fincalcauth.outcome=refused,http.response.status_code=401} 1",
		},
		"fincalcauth.token.request.duration (s)": {
			"{fincalcauth.outcome=failed,http.response.status_code=503} count 1",
			"{fincalcauth.outcome=ok,http.response.status_code=200} count 2",
			"{fincalcauth.outcome=refused,http.response.status_code=401} count 1",
		},
		"fincalcauth.token.remaining (s)": {
			"{fincalcauth.source=" + source + "} 24h0m0s",
		},
		"fincalcauth.api.unauthorized ({response})": {
			"{fincalcauth.replayed=true} 1",
		},
	}
	points := tel.points(t)
	storeOps := points["fincalcauth.store.operations ({operation})"]
	delete(points, "fincalcauth.store.operations ({operation})")
	if diff := cmp.Diff(wantPoints, points); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
	// Store operations: loads that missed before each fetch, one hit for
	// the second process, a save per fetch, the refused token deleted,
	// and, since a FileStore grants leases, a lease taken for each fetch.
	wantOps := map[string]bool{
		"{fincalcauth.outcome=hit,fincalcauth.store.operation=load} 1":  true,
		"{fincalcauth.outcome=miss,fincalcauth.store.operation=load}":   true,
		"{fincalcauth.outcome=ok,fincalcauth.store.operation=delete} 1": true,
		"{fincalcauth.outcome=ok,fincalcauth.store.operation=save} 2":   true,
	}
	if _, ok := cfg.Store.(fincalcauth.Leaser); !ok {
		t.Fatal("FileStore grants no leases")
	}
	wantOps["{fincalcauth.outcome=ok,fincalcauth.store.operation=lease} 2"] = true
	for _, line := range storeOps {
		switch {
		case wantOps[line]:
			delete(wantOps, line)
		case strings.HasPrefix(line, "{fincalcauth.outcome=miss,fincalcauth.store.operation=load} "):
			delete(wantOps, "{fincalcauth.outcome=miss,fincalcauth.store.operation=load}")
		default:
			t.Errorf("store operations: unexpected %q", line)
		}
	}
	for line := range wantOps {
		t.Errorf("store operations: no %q in %q", line, storeOps)
	}

	// Nothing names the credentials or a token.
	secrets := []string{fincalcauthtest.ClientID, fincalcauthtest.ClientSecret, fincalcauthtest.EmailAddress, tok.AccessToken, "authentication"}
	checkNoSecrets(t, fmt.Sprint(got, tel.points(t)), secrets)
}

func checkNoSecrets(t *testing.T, text string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("telemetry contains %q:\n%s", s, text)
		}
	}
}

func TestBackgroundRefreshIsARootSpan(t *testing.T) {
	tel := newTelemetry(t)
	fake := fincalcauthtest.NewServer()
	defer fake.Close()
	fake.SetTokenLifetime(20 * time.Second)
	cfg := fake.ClientConfig()
	cfg.Observer = tel.observer()
	cfg.RefreshAhead = 20*time.Second - 50*time.Millisecond // due 50ms after issue

	// The source is made under a span that ends at once, as at start-up.
	ctx, startup := tel.tp.Tracer("test").Start(context.Background(), "start-up")
	ts := cfg.TokenSource(ctx)
	startup.End()
	first, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	ts.Token() // starts the refresh; no caller waits
	deadline := time.Now().Add(5 * time.Second)
	for {
		tok, _ := ts.Token()
		if tok.AccessToken != first.AccessToken {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no refresh within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var got []string
	for _, s := range tel.spans.Ended() {
		var background bool
		for _, kv := range s.Attributes() {
			if kv.Key == otelfincalc.AttrBackground {
				background = kv.Value.AsBool()
			}
		}
		got = append(got, fmt.Sprintf("%s background=%v parent=%v same trace as start-up=%v", s.Name(), background,
			s.Parent().IsValid(), s.SpanContext().TraceID() == startup.SpanContext().TraceID()))
	}
	want := []string{
		"start-up background=false parent=false same trace as start-up=true",
		"fincalcauth.fetch background=false parent=true same trace as start-up=true", // the first Token() waits, under the source's context
		"fincalcauth.fetch background=true parent=false same trace as start-up=false",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("spans (-want +got):\n%s", diff)
	}
}

func TestFailureAttributes(t *testing.T) {
	// A dropped connection has no status code; nothing quotes the error.
	tel := newTelemetry(t)
	fake := fincalcauthtest.NewServer()
	defer fake.Close()
	cfg := fake.ClientConfig()
	cfg.Observer = tel.observer()
	fake.FailAlways(fincalcauthtest.Fault{Drop: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := cfg.Token(ctx)
	if err == nil {
		t.Fatal("no error")
	}
	points := tel.points(t)
	want := []string{"{fincalcauth.outcome=failed} 4"}
	if diff := cmp.Diff(want, points["fincalcauth.token.requests ({request})"]); diff != "" {
		t.Errorf("token requests (-want +got):\n%s", diff)
	}
	spans := tel.spans.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	v := viewSpan(spans[0], nil)
	if v.StatusDescription != "failed" || !strings.HasPrefix(v.Attrs, "{fincalcauth.attempts=4,fincalcauth.background=false,fincalcauth.outcome=failed,fincalcauth.source=") || strings.Contains(v.Attrs, "status_code") {
		t.Errorf("span %+v", v)
	}
	checkNoSecrets(t, fmt.Sprint(v, points), []string{"EOF", "connection", err.Error()})
}

func TestDefaultProviders(t *testing.T) {
	// With no option, the global providers: no-ops unless set, which
	// must not fail.
	fake := fincalcauthtest.NewServer()
	defer fake.Close()
	cfg := fake.ClientConfig()
	cfg.Observer = otelfincalc.New()
	if _, err := cfg.TokenSource(context.Background()).Token(); err != nil {
		t.Fatal(err)
	}
}

func TestHotPathAllocatesNothing(t *testing.T) {
	tel := newTelemetry(t)
	fake := fincalcauthtest.NewServer()
	defer fake.Close()
	cfg := fake.ClientConfig()
	cfg.Observer = fincalcauth.MultiObserver(tel.observer(), new(fincalcauth.Health))
	ts := cfg.TokenSource(context.Background())
	if _, err := ts.Token(); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(1000, func() { ts.Token() }); n != 0 {
		t.Errorf("%v allocations per cached Token() with an OpenTelemetry Observer", n)
	}
}
