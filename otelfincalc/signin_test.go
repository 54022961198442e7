package otelfincalc_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/fincalcauthtest"
	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/codes"
	"golang.org/x/oauth2"
)

func TestSignInMetricsAndSpans(t *testing.T) {
	tel := newTelemetry(t)
	fake := fincalcauthtest.NewServer()
	defer fake.Close()
	const person = "ada@example.com"
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, fake.Client())
	app := &fincalcauth.SignIn{
		Config:   fake.SignInConfig("https://app.example/callback"),
		Store:    fincalcauth.NewFileStore(t.TempDir()),
		Observer: tel.observer(),
	}
	tracer := tel.tp.Tracer("test")

	// The callback's span waits for the code exchange.
	verifier := oauth2.GenerateVerifier()
	to, err := fake.Authorize(app.Config.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("login_hint", person)))
	if err != nil {
		t.Fatal(err)
	}
	cbCtx, callback := tracer.Start(ctx, "callback")
	first, err := app.Exchange(cbCtx, person, to.Query().Get("code"), oauth2.VerifierOption(verifier))
	callback.End()
	if err != nil {
		t.Fatal(err)
	}

	// The API refuses the token: a request's span waits for the refresh,
	// and the request is replayed.
	fake.ExpireTokens()
	reqCtx, request := tracer.Start(ctx, "request")
	req, _ := http.NewRequestWithContext(reqCtx, "GET", fake.URL+fincalcauthtest.ClientsPath, nil)
	resp, err := app.Client(ctx, person).Do(req)
	request.End()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("after the API refused the token: %v, %v", resp, err)
	}
	resp.Body.Close()
	second := resp.Request.Header.Get("Authorization")

	// The grant is revoked: another process, which finds the revoked
	// token in the store, has its refresh refused.
	fake.RevokeSignIns()
	other := &fincalcauth.SignIn{Config: app.Config, Store: app.Store, Observer: app.Observer}
	reqCtx, refused := tracer.Start(ctx, "refused request")
	req, _ = http.NewRequestWithContext(reqCtx, "GET", fake.URL+fincalcauthtest.ClientsPath, nil)
	_, err = other.Client(ctx, person).Do(req)
	refused.End()
	if !errors.Is(err, fincalcauth.ErrSignInRequired) {
		t.Fatalf("after a revocation: %v", err)
	}

	spans := tel.spans.Ended()
	names := map[string]string{}
	var source string
	for _, s := range spans {
		names[s.SpanContext().SpanID().String()] = s.Name()
		for _, kv := range s.Attributes() {
			if kv.Key == "fincalcauth.source" {
				source = kv.Value.AsString()
			}
		}
	}
	var got []spanView
	for _, s := range spans {
		got = append(got, viewSpan(s, names))
	}
	want := []spanView{
		{Name: "fincalcauth.fetch", Parent: "callback", Status: "Unset",
			Attrs:  "{fincalcauth.attempts=1,fincalcauth.background=false,fincalcauth.outcome=ok,fincalcauth.source=" + source + ",http.response.status_code=200}",
			Events: []string{"attempt{fincalcauth.attempt=1,fincalcauth.outcome=ok,http.response.status_code=200}"}},
		{Name: "callback", Status: "Unset", Attrs: "{}"},
		{Name: "fincalcauth.fetch", Parent: "request", Status: "Unset",
			Attrs:  "{fincalcauth.attempts=1,fincalcauth.background=false,fincalcauth.outcome=ok,fincalcauth.source=" + source + ",http.response.status_code=200}",
			Events: []string{"attempt{fincalcauth.attempt=1,fincalcauth.outcome=ok,http.response.status_code=200}"}},
		{Name: "request", Status: "Unset", Attrs: "{}"},
		{Name: "fincalcauth.fetch", Parent: "refused request", Status: codes.Error.String(), StatusDescription: "refused",
			Attrs:  "{fincalcauth.attempts=1,fincalcauth.background=false,fincalcauth.outcome=refused,fincalcauth.source=" + source + ",http.response.status_code=400}",
			Events: []string{"attempt{fincalcauth.attempt=1,fincalcauth.outcome=refused,http.response.status_code=400}"}},
		{Name: "refused request", Status: "Unset", Attrs: "{}"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("spans (-want +got):\n%s", diff)
	}
	if len(source) != 8 {
		t.Errorf("source %q", source)
	}

	wantPoints := map[string][]string{
		"fincalcauth.token.requests ({request})": {
			"{fincalcauth.outcome=ok,http.response.status_code=200} 2",
			"{fincalcauth.outcome=refused,http.response.status_code=400} 1",
		},
		"fincalcauth.token.request.duration (s)": {
			"{fincalcauth.outcome=ok,http.response.status_code=200} count 2",
			"{fincalcauth.outcome=refused,http.response.status_code=400} count 1",
		},
		// The rotated token: the refused refresh took none into use.
		"fincalcauth.token.remaining (s)": {
			"{fincalcauth.source=" + source + "} 24h0m0s",
		},
		"fincalcauth.api.unauthorized ({response})": {
			"{fincalcauth.replayed=false} 1",
			"{fincalcauth.replayed=true} 1",
		},
		// Saves of the exchanged and the rotated pair; before each
		// refresh a look in the store, the lease, a look under it; the
		// other process's first look; after the refusal a last look and
		// the entry deleted.
		"fincalcauth.store.operations ({operation})": {
			"{fincalcauth.outcome=hit,fincalcauth.store.operation=load} 6",
			"{fincalcauth.outcome=ok,fincalcauth.store.operation=delete} 1",
			"{fincalcauth.outcome=ok,fincalcauth.store.operation=lease} 2",
			"{fincalcauth.outcome=ok,fincalcauth.store.operation=save} 2",
		},
	}
	if diff := cmp.Diff(wantPoints, tel.points(t)); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}

	// Nothing names the person, the credentials or a token.
	secrets := []string{person, fincalcauthtest.ClientID, fincalcauthtest.ClientSecret, first.AccessToken,
		strings.TrimPrefix(second, "Bearer "), "invalid_grant", "revoked"}
	checkNoSecrets(t, fmt.Sprint(got, tel.points(t)), secrets)
}
