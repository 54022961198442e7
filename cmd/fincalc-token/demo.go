package main

import (
	"context"
	"encoding/json"
	"time"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/fincalcauthtest"
)

// runDemo fetches a token from a fake FinCalc started in this process,
// through the same path as a real run, and tells what happened.
func (c *command) runDemo(ctx context.Context) error {
	if err := c.refused("-demo uses a fake FinCalc of its own and would ignore -%s",
		"client-id", "email", "scopes", "token-url", "client-secret-file", "refresh", "no-cache", "clear-cache", "status"); err != nil {
		return err
	}
	srv := fincalcauthtest.NewServer()
	defer srv.Close()
	c.tell("demo: started a fake FinCalc at %s", srv.URL)

	cfg := srv.ClientConfig(fincalcauth.ScopeFactFind, fincalcauth.ScopeClientInformation)
	tok, err := c.obtain(ctx, cfg, nil)
	if req, ok := srv.LastTokenRequest(); ok {
		fields := req.Fields
		if _, ok := fields["client_secret"]; ok {
			fields["client_secret"] = "REDACTED"
		}
		body, _ := json.MarshalIndent(fields, "demo:   ", "  ")
		c.tell("demo: sent POST %s\ndemo:   Content-Type: %s\ndemo:   %s", srv.TokenURL, req.ContentType, body)
	}
	if err != nil {
		return err
	}
	c.tell("demo: the fake FinCalc answered {\"success\": true, \"data\": {...}}: a %s token that expires at %s (in %v)",
		tok.Type(), tok.Expiry.UTC().Format(time.RFC3339), time.Duration(tok.ExpiresIn)*time.Second)
	c.tell("demo: the token, on standard output:")
	return c.printToken(tok)
}
