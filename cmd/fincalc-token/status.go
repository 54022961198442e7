package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/gofincalc/fincalcauth"
)

// status is what -status tells: the settings in use and the cache, as
// -status -json prints it.
type status struct {
	ClientID     statusSetting `json:"client_id"`
	EmailAddress statusSetting `json:"email_address"`
	Scopes       statusSetting `json:"scopes"`
	TokenURL     statusSetting `json:"token_url"`
	ClientSecret statusSetting `json:"client_secret"` // never its value
	Cache        statusCache   `json:"cache"`
	CachedToken  statusToken   `json:"cached_token"`
}

// statusSetting is one setting: whether the user set it, to what, and
// where.
type statusSetting struct {
	Set    bool   `json:"set"`
	Value  any    `json:"value,omitempty"`  // a string, or the scopes' list
	Source string `json:"source,omitempty"` // a variable, a flag, or "default"
	From   string `json:"from,omitempty"`   // for the secret: where it was read
}

type statusCache struct {
	Used   bool   `json:"used"`
	Dir    string `json:"dir,omitempty"`
	Reason string `json:"reason,omitempty"` // why not used
}

type statusToken struct {
	State     string `json:"state"` // "valid", "none", "unreadable", "unknown" or "not used"
	Expiry    string `json:"expiry,omitempty"`
	ExpiresIn *int64 `json:"expires_in,omitempty"`
	Reason    string `json:"reason,omitempty"`
}

// printStatus prints what a run would use, and sends no request. It looks
// for a cached token if the settings are complete.
func (c *command) printStatus(ctx context.Context, complete bool) error {
	st, err := c.status(ctx, complete)
	if c.o.json {
		b, jerr := json.MarshalIndent(st, "", "  ")
		if jerr == nil {
			_, jerr = fmt.Fprintf(c.stdout, "%s\n", b)
		}
		if err == nil {
			err = jerr
		}
		return err
	}
	var b strings.Builder
	line := func(label, value string) { fmt.Fprintf(&b, "%-14s %s\n", label+":", value) }
	show := func(label string, s statusSetting) {
		switch {
		case s.Source == "default":
			line(label, fmt.Sprint(s.Value)+" (default)")
		case !s.Set:
			line(label, "not set")
		case label == "token URL":
			line(label, quoteAsTyped(c.r.cfg.TokenURL)+" ("+s.Source+")")
		case label == "scopes":
			line(label, strings.Join(c.r.cfg.Scopes, " ")+" ("+s.Source+")")
		default:
			line(label, fmt.Sprint(s.Value)+" ("+s.Source+")")
		}
	}
	show("client ID", st.ClientID)
	show("email address", st.EmailAddress)
	show("scopes", st.Scopes)
	show("token URL", st.TokenURL)
	if st.ClientSecret.Set {
		line("client secret", "set, from "+st.ClientSecret.From)
	} else {
		line("client secret", "not set")
	}
	switch {
	case !st.Cache.Used:
		line("cache", st.Cache.Reason)
	default:
		line("cache", st.Cache.Dir)
		switch t := st.CachedToken; t.State {
		case "valid":
			line("cached token", fmt.Sprintf("expires at %s (in %v)", t.Expiry, time.Duration(*t.ExpiresIn)*time.Second))
		case "none":
			line("cached token", "none")
		default:
			line("cached token", t.State+": "+t.Reason)
		}
	}
	if _, werr := fmt.Fprint(c.stdout, b.String()); err == nil {
		err = werr
	}
	return err
}

// status gathers what printStatus prints. Its error is the cause of the
// end of ctx, or of the run's deadline, while the cache was read.
func (c *command) status(ctx context.Context, complete bool) (status, error) {
	r := c.r
	set := func(field string, value any) statusSetting {
		s, ok := r.by[field]
		if !ok {
			return statusSetting{}
		}
		return statusSetting{Set: true, Value: value, Source: s.source}
	}
	st := status{
		ClientID:     set("ClientID", r.cfg.ClientID),
		EmailAddress: set("EmailAddress", r.cfg.EmailAddress),
		Scopes:       set("Scopes", r.cfg.Scopes),
		TokenURL:     set("TokenURL", shownTokenURL(r.cfg.TokenURL)),
	}
	if !st.TokenURL.Set {
		st.TokenURL = statusSetting{Value: fincalcauth.TokenURL, Source: "default"}
	}
	if r.secretSource != "" {
		st.ClientSecret = statusSetting{Set: true, Source: r.by["ClientSecret"].source, From: r.secretSource}
	}

	cache := newCache(r.cfg)
	switch {
	case c.o.noCache:
		st.Cache.Reason = "not used (-no-cache)"
		st.CachedToken = statusToken{State: "not used"}
		return st, nil
	case cache == nil:
		st.Cache.Reason = "none: this user has no cache dir"
		st.CachedToken = statusToken{State: "not used"}
		return st, nil
	}
	st.Cache = statusCache{Used: true, Dir: cache.store.Dir()}
	if !complete {
		st.CachedToken = statusToken{State: "unknown", Reason: "the settings are incomplete"}
		return st, nil
	}
	sctx, done := c.stage(ctx, "the token cache in "+cache.store.Dir())
	t, err := cache.load(sctx)
	ended := sctx.Err() != nil
	done()
	switch {
	case ended:
		st.CachedToken = statusToken{State: "unknown", Reason: err.Error()}
		return st, err
	case err != nil:
		st.CachedToken = statusToken{State: "unreadable", Reason: err.Error()}
	case t == nil:
		st.CachedToken = statusToken{State: "none"}
	default:
		left := int64(time.Until(t.Expiry).Round(time.Second) / time.Second)
		st.CachedToken = statusToken{State: "valid", Expiry: t.Expiry.UTC().Format(time.RFC3339), ExpiresIn: &left}
	}
	return st, nil
}

// shownTokenURL returns a token URL fit to show: with its password
// masked, or nothing if it does not parse, since it may then hold one
// that cannot be found.
func shownTokenURL(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return ""
}
