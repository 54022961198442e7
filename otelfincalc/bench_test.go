package otelfincalc_test

import (
	"context"
	"testing"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/fincalcauthtest"
	"github.com/gofincalc/fincalcauth/otelfincalc"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// BenchmarkCachedToken measures Token() on a source whose token is fresh,
// without an Observer (obs=none) and with this package's on the real SDK
// (obs=otel): the hot path, which reports nothing. BENCHMARKS.md has the
// figures.
func BenchmarkCachedToken(b *testing.B) {
	fake := fincalcauthtest.NewServer()
	b.Cleanup(fake.Close)
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	tp := sdktrace.NewTracerProvider()
	b.Cleanup(func() { mp.Shutdown(context.Background()); tp.Shutdown(context.Background()) })
	observers := map[string]fincalcauth.Observer{
		"none": nil,
		"otel": otelfincalc.New(otelfincalc.WithMeterProvider(mp), otelfincalc.WithTracerProvider(tp)),
	}
	for _, mode := range []string{"serial", "parallel"} {
		for _, name := range []string{"none", "otel"} {
			cfg := fake.ClientConfig()
			cfg.Observer = observers[name]
			ts := cfg.TokenSource(context.Background())
			if _, err := ts.Token(); err != nil {
				b.Fatal(err)
			}
			b.Run("obs="+name+"/mode="+mode, func(b *testing.B) {
				b.ReportAllocs()
				if mode == "serial" {
					for b.Loop() {
						ts.Token()
					}
					return
				}
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						ts.Token()
					}
				})
			})
		}
	}
}
