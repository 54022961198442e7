package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/fincalcauthtest"
	"github.com/google/go-cmp/cmp"
)

func TestStatusJSON(t *testing.T) {
	e := newEnv(t)
	delete(e.vars, "FINCALC_TOKEN_URL")
	dir := filepath.Join(e.cache, "fincalcauth")
	decode := func(r result) map[string]any {
		t.Helper()
		var got map[string]any
		if err := json.Unmarshal([]byte(r.Stdout), &got); err != nil {
			t.Fatalf("-status -json printed %q: %v", r.Stdout, err)
		}
		return got
	}
	r := e.call("", "-status", "-json", "-email", fincalcauthtest.EmailAddress)
	want := map[string]any{
		"client_id":     map[string]any{"set": true, "value": fincalcauthtest.ClientID, "source": "FINCALC_CLIENT_ID"},
		"email_address": map[string]any{"set": true, "value": fincalcauthtest.EmailAddress, "source": "-email"},
		"scopes":        map[string]any{"set": true, "value": []any{"fact-find", "client-information"}, "source": "FINCALC_SCOPES"},
		"token_url":     map[string]any{"set": false, "value": fincalcauth.TokenURL, "source": "default"},
		"client_secret": map[string]any{"set": true, "source": "FINCALC_CLIENT_SECRET", "from": "the environment (FINCALC_CLIENT_SECRET)"},
		"cache":         map[string]any{"used": true, "dir": dir},
		"cached_token":  map[string]any{"state": "none"},
	}
	if diff := cmp.Diff(want, decode(r)); diff != "" || r.Code != 0 || r.Stderr != "" {
		t.Errorf("-status -json: exit %d, stderr %q (-want +got):\n%s", r.Code, r.Stderr, diff)
	}

	// A cached token: its expiry, never the token.
	e.vars["FINCALC_TOKEN_URL"] = e.srv.TokenURL
	tok := strings.TrimSpace(e.call("").Stdout)
	r = e.call("", "-status", "-json")
	got := decode(r)
	cached, _ := got["cached_token"].(map[string]any)
	expiry, err := time.Parse(time.RFC3339, cached["expiry"].(string))
	if cached["state"] != "valid" || err != nil || time.Until(expiry) < 23*time.Hour || cached["expires_in"].(float64) < 23*3600 {
		t.Errorf("cached_token: %v", cached)
	}
	if strings.Contains(r.Stdout, tok) {
		t.Errorf("-status -json shows the token:\n%s", r.Stdout)
	}

	// Missing settings: the status, and the problems as JSON on stderr.
	delete(e.vars, "FINCALC_CLIENT_SECRET")
	r = e.call("", "-status", "-json")
	got = decode(r)
	if diff := cmp.Diff(map[string]any{"set": false}, got["client_secret"]); diff != "" || r.Code != 2 {
		t.Errorf("-status -json without a secret: exit %d, client_secret (-want +got):\n%s", r.Code, diff)
	}
	var f failure
	if err := json.Unmarshal([]byte(r.Stderr), &f); err != nil || !strings.Contains(f.Error, "FINCALC_CLIENT_SECRET is not set") {
		t.Errorf("stderr %q; want the problem as JSON", r.Stderr)
	}
}
