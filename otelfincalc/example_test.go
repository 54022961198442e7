package otelfincalc_test

import (
	"context"
	"fmt"
	"log"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/fincalcauthtest"
	"github.com/gofincalc/fincalcauth/otelfincalc"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func ExampleNew() {
	fake := fincalcauthtest.NewServer() // FinCalc, for the example
	defer fake.Close()

	// A service passes its own providers, or none for the global ones.
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())

	health := new(fincalcauth.Health) // for the health check
	cfg := fake.ClientConfig()
	cfg.Observer = fincalcauth.MultiObserver(otelfincalc.New(otelfincalc.WithMeterProvider(mp)), health)
	client := cfg.Client(context.Background())

	fake.FailNext(fincalcauthtest.Fault{Status: 503}) // retried
	for range 3 {
		resp, err := client.Get(fake.URL + fincalcauthtest.ClientsPath)
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		log.Fatal(err)
	}
	for _, m := range rm.ScopeMetrics[0].Metrics {
		if sum, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "fincalcauth.token.requests" {
			for _, p := range sum.DataPoints {
				outcome, _ := p.Attributes.Value("fincalcauth.outcome")
				status, _ := p.Attributes.Value("http.response.status_code")
				fmt.Println(m.Name, outcome.AsString(), status.AsInt64(), p.Value)
			}
		}
	}
	fmt.Println("valid token:", health.Status().Valid)
	// Unordered output:
	// fincalcauth.token.requests failed 503 1
	// fincalcauth.token.requests ok 200 1
	// valid token: true
}
