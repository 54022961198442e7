package fincalcauthtest

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gofincalc/fincalcauth"
	"golang.org/x/oauth2"
)

// The sign-in flow's paths and defaults, as at FinCalc and in Passport.
const (
	// AuthorizePath is the path of the sign-in flow's authorization
	// endpoint.
	AuthorizePath = "/oauth/authorize"
	// SignInTokenPath is the path of the sign-in flow's token endpoint:
	// no /api prefix.
	SignInTokenPath = "/oauth/token"

	// AuthCodeLifetime is how long an authorization code can be
	// exchanged, as in Passport.
	AuthCodeLifetime = 10 * time.Minute
	// DefaultRefreshTokenLifetime is the lifetime of refresh tokens, as
	// in Passport.
	DefaultRefreshTokenLifetime = 365 * 24 * time.Hour
	// DefaultSignInThrottle is how many requests a minute the sign-in
	// token endpoint takes from one client address, as Laravel's
	// throttle middleware.
	DefaultSignInThrottle = 60
)

// SignInStats counts the sign-in token endpoint's requests.
type SignInStats struct {
	// Requests counts every request, throttled and faulted ones included.
	Requests int
	// Exchanges counts the codes traded for tokens.
	Exchanges int
	// Refreshes counts the refresh tokens rotated.
	Refreshes int
	// InvalidGrants counts the refused refresh tokens and codes.
	InvalidGrants int
	// Throttled counts the 429 answers.
	Throttled int
}

// signInState is the sign-in flow's state, guarded by Server.mu.
type signInState struct {
	redirects       map[string]bool
	codes           map[string]*authCode
	refresh         map[string]*refreshGrant
	person          map[string]string // access token → person
	locked          map[string]bool
	refreshLifetime time.Duration
	throttle        int
	windows         map[string]*throttleWindow // by client address
	league          int
	envelope        bool
	faults          faultScript // of FailNextSignIn
	lose            int
	stats           SignInStats
}

type authCode struct {
	person, redirect, scope string
	challenge, method       string
	expiry                  time.Time
	used                    bool
}

type refreshGrant struct {
	person, access, scope string
	expiry                time.Time
	revoked               bool
}

type throttleWindow struct {
	start time.Time
	hits  int
}

// initSignIn sets the sign-in flow up and adds its routes to mux.
func (s *Server) initSignIn(mux *http.ServeMux) {
	s.signIn = signInState{
		redirects:       make(map[string]bool),
		codes:           make(map[string]*authCode),
		refresh:         make(map[string]*refreshGrant),
		person:          make(map[string]string),
		locked:          make(map[string]bool),
		refreshLifetime: DefaultRefreshTokenLifetime,
		throttle:        DefaultSignInThrottle,
		windows:         make(map[string]*throttleWindow),
		league:          9,
	}
	mux.HandleFunc(AuthorizePath, s.serveAuthorize)
	mux.HandleFunc(SignInTokenPath, s.serveSignInToken)
}

// SignInConfig returns an oauth2.Config for the fake's sign-in flow: its
// client credentials, its Endpoint, all scopes, and redirectURL, which the
// fake accepts as the client's registered redirect URI.
func (s *Server) SignInConfig(redirectURL string) *oauth2.Config {
	s.mu.Lock()
	s.signIn.redirects[redirectURL] = true
	s.mu.Unlock()
	return &oauth2.Config{
		ClientID:     ClientID,
		ClientSecret: ClientSecret,
		Endpoint:     s.Endpoint(),
		RedirectURL:  redirectURL,
		Scopes:       []string{fincalcauth.ScopeFactFind, fincalcauth.ScopeClientFinancials, fincalcauth.ScopeClientInformation},
	}
}

// Endpoint returns the fake's AuthURL (/oauth/authorize) and TokenURL (/oauth/token).
// Its AuthStyle is [oauth2.AuthStyleInParams], as [fincalcauth.Endpoint]'s;
// the fake takes the client credentials in the body or in HTTP Basic.
func (s *Server) Endpoint() oauth2.Endpoint {
	return oauth2.Endpoint{AuthURL: s.URL + AuthorizePath, TokenURL: s.URL + SignInTokenPath, AuthStyle: oauth2.AuthStyleInParams}
}

// RevokeSignIns revokes every refresh and access token that the sign-in flow has issued, as a person removing the application does.
func (s *Server) RevokeSignIns() {
	s.revokeSignIns(func(string) bool { return true })
}

// RevokeGrant revokes the refresh and access tokens that the sign-in
// flow has issued to person, as when they remove the application.
func (s *Server) RevokeGrant(person string) {
	s.revokeSignIns(func(p string) bool { return p == person })
}

func (s *Server) revokeSignIns(match func(person string) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.signIn.refresh {
		if match(g.person) {
			g.revoked = true
		}
	}
	for tok, p := range s.signIn.person {
		if match(p) {
			t := s.tokens[tok]
			t.revoked = true
			s.tokens[tok] = t
		}
	}
}

// LockAccount locks or unlocks person's account: while it is locked, the
// API answers their access tokens 401 {"success": false, "message":
// "User account is locked."}. Their tokens stay valid.
func (s *Server) LockAccount(person string, locked bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signIn.locked[person] = locked
}

// SetSignInThrottle sets how many requests a minute the sign-in token
// endpoint takes from one client address before it answers 429 with
// Retry-After; zero or less means no limit. The default is
// [DefaultSignInThrottle].
func (s *Server) SetSignInThrottle(perMinute int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signIn.throttle = perMinute
	s.signIn.windows = make(map[string]*throttleWindow)
}

// SetRefreshTokenLifetime sets the lifetime of the refresh tokens issued
// from now on.
func (s *Server) SetRefreshTokenLifetime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signIn.refreshLifetime = d
}

// SetLeagueVersion makes the sign-in token endpoint answer errors as
// league/oauth2-server version v does: 9 (Passport 13, the default) or 8
// (Passport 11 and 12), whose errors add "message", a copy of
// "error_description", and which refuses a refresh token with 401
// invalid_request rather than 400 invalid_grant.
func (s *Server) SetLeagueVersion(v int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signIn.league = v
}

// SetSignInEnvelope makes the sign-in token endpoint wrap its token
// answers in FinCalc's {"success": true, "data": ...} envelope, and its
// errors in {"success": false, "message": {"description": ...}}, or
// answer them plain, as Passport does (the default).
func (s *Server) SetSignInEnvelope(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signIn.envelope = on
}

// FailNextSignIn makes the next sign-in token requests take the given
// faults, one each, in order, before the throttle and any processing.
func (s *Server) FailNextSignIn(faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signIn.faults.next = append(s.signIn.faults.next, faults...)
}

// LoseSignInAnswers makes the next n sign-in token requests be processed
// as usual, and their answers lost: the connection closes with no
// answer, as when a network fails after the server acted.
func (s *Server) LoseSignInAnswers(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.signIn.lose += n
}

// SignInStats returns the counts of the sign-in token endpoint.
func (s *Server) SignInStats() SignInStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.signIn.stats
}

// Person returns the person to whom the sign-in flow issued an access
// token, or "".
func (s *Server) Person(accessToken string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.signIn.person[accessToken]
}

// Authorize does what a browser does with authCodeURL, a URL from
// oauth2.Config.AuthCodeURL of a [Server.SignInConfig]: the fake's
// authorization endpoint approves it as its person, and Authorize returns
// where it redirects, with code and state, or with an error, in its
// query. The person is the URL's login_hint parameter
// (oauth2.SetAuthURLParam("login_hint", person)), or [EmailAddress]. It
// reaches the server in memory. An answer that is not a redirect, such
// as the 400 page for a bad client or redirect URI, is an error.
func (s *Server) Authorize(authCodeURL string) (*url.URL, error) {
	req := httptest.NewRequest(http.MethodGet, authCodeURL, nil)
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusFound {
		return nil, fmt.Errorf("fincalcauthtest: authorization answered %d: %s", rec.Code, strings.TrimSpace(rec.Body.String()))
	}
	return url.Parse(rec.Header().Get("Location"))
}

// accountLocked answers 401 for the account of token, if it is locked,
// and reports whether it did.
func (s *Server) accountLocked(w http.ResponseWriter, token string) bool {
	s.mu.Lock()
	locked := s.signIn.locked[s.signIn.person[token]]
	s.mu.Unlock()
	if locked {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"success": false, "message": "User account is locked."})
	}
	return locked
}

// pkceText is RFC 7636's form of a code verifier or challenge, as
// league checks it.
var pkceText = regexp.MustCompile(`^[A-Za-z0-9\-._~]{43,128}$`)

func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page := func(msg string) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "<!DOCTYPE html>\n<title>Bad request</title>\n<p>%s</p>\n", html.EscapeString(msg))
	}
	if q.Get("client_id") != ClientID {
		page("Client authentication failed")
		return
	}
	s.mu.Lock()
	redirect := q.Get("redirect_uri")
	if redirect == "" && len(s.signIn.redirects) == 1 {
		for u := range s.signIn.redirects {
			redirect = u
		}
	}
	registered := s.signIn.redirects[redirect]
	s.mu.Unlock()
	if !registered {
		page("Client authentication failed: the redirect URI is not registered")
		return
	}
	to, err := url.Parse(redirect)
	if err != nil {
		page("The redirect URI does not parse")
		return
	}
	answer := func(v url.Values) {
		if st := q.Get("state"); st != "" {
			v.Set("state", st)
		}
		rq := to.Query()
		for k, vs := range v {
			rq[k] = vs
		}
		to.RawQuery = rq.Encode()
		http.Redirect(w, r, to.String(), http.StatusFound)
	}
	fail := func(code, desc, hint string) {
		v := url.Values{"error": {code}, "error_description": {desc}}
		if hint != "" {
			v.Set("hint", hint)
		}
		answer(v)
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	if q.Get("response_type") != "code" {
		fail("unsupported_response_type", "The authorization server does not support obtaining an authorization code using this method.", "Check the `response_type` parameter")
		return
	}
	scope := strings.Fields(q.Get("scope"))
	for _, sc := range scope {
		if !knownScopes[sc] {
			fail("invalid_scope", "The requested scope is invalid, unknown, or malformed", "Check the `"+sc+"` scope")
			return
		}
	}
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	if challenge != "" {
		if method == "" {
			method = "plain"
		}
		if method != "plain" && method != "S256" {
			fail("invalid_request", invalidRequestText, "Code challenge method must be one of `plain` or `S256`")
			return
		}
		if !pkceText.MatchString(challenge) {
			fail("invalid_request", invalidRequestText, "Code challenge must follow the specifications of RFC-7636.")
			return
		}
	}
	person := q.Get("login_hint")
	if person == "" {
		person = EmailAddress
	}
	code := "code-" + newToken()[len("fake-"):]
	s.mu.Lock()
	s.signIn.codes[code] = &authCode{
		person: person, redirect: q.Get("redirect_uri"), scope: strings.Join(scope, " "),
		challenge: challenge, method: method, expiry: time.Now().Add(AuthCodeLifetime),
	}
	s.mu.Unlock()
	answer(url.Values{"code": {code}})
}

// league's texts.
const (
	invalidRequestText = "The request is missing a required parameter, includes an invalid parameter value, includes a parameter more than once, or is otherwise malformed."
	invalidGrantText   = "The provided authorization grant (e.g., authorization code, resource owner credentials) or refresh token is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client."
	invalidRefreshText = "The refresh token is invalid."
	unsupportedGrant   = "The authorization grant type is not supported by the authorization server."
	invalidClientText  = "Client authentication failed"
)

// oauthError is a league OAuthServerException.
type oauthError struct {
	status            int
	code, desc, hint  string
	basicChallenge    bool
	refusedRefreshTok bool
}

func (s *Server) serveSignInToken(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	addr, _, _ := net.SplitHostPort(r.RemoteAddr)
	s.mu.Lock()
	st := &s.signIn
	st.stats.Requests++
	fault := st.faults.take()
	retry := 0
	if fault == nil && st.throttle > 0 {
		win := st.windows[addr]
		if win == nil || !now.Before(win.start.Add(time.Minute)) {
			win = &throttleWindow{start: now}
			st.windows[addr] = win
		}
		if win.hits >= st.throttle {
			retry = int((win.start.Add(time.Minute).Sub(now) + time.Second - 1) / time.Second)
			st.stats.Throttled++
		} else {
			win.hits++
		}
	}
	s.mu.Unlock()
	if serveFault(w, r, fault, writeFailure) {
		return
	}
	if retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retry))
		w.Header().Set("X-RateLimit-Remaining", "0")
		writeJSON(w, http.StatusTooManyRequests, map[string]any{"message": "Too Many Attempts."})
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"message": "The GET method is not supported for route oauth/token. Supported methods: POST."})
		return
	}
	r.ParseForm()
	f := r.PostForm

	s.mu.Lock()
	body, oerr := s.grant(f, r)
	league, envelope := st.league, st.envelope
	lose := st.lose > 0
	if lose {
		st.lose--
	}
	if oerr != nil && (oerr.code == "invalid_grant" || oerr.refusedRefreshTok) {
		st.stats.InvalidGrants++
	}
	s.mu.Unlock()

	if lose {
		dropConnection(w)
		return
	}
	if oerr != nil {
		if oerr.refusedRefreshTok && league < 9 {
			oerr.status, oerr.code = http.StatusUnauthorized, "invalid_request"
		}
		if oerr.basicChallenge {
			w.Header().Set("WWW-Authenticate", `Basic realm="OAuth"`)
		}
		if envelope {
			writeFailure(w, oerr.status, oerr.desc)
			return
		}
		e := map[string]any{"error": oerr.code, "error_description": oerr.desc}
		if oerr.hint != "" {
			e["hint"] = oerr.hint
		}
		if league < 9 {
			e["message"] = oerr.desc
		}
		writeJSON(w, oerr.status, e)
		return
	}
	if envelope {
		writeJSON(w, http.StatusOK, map[string]any{"success": true, "data": body})
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// grant processes a token request. s.mu must be held.
func (s *Server) grant(f url.Values, r *http.Request) (map[string]any, *oauthError) {
	st := &s.signIn
	id, secret := f.Get("client_id"), f.Get("client_secret")
	u, p, basic := r.BasicAuth()
	if basic {
		id, _ = url.QueryUnescape(u)
		secret, _ = url.QueryUnescape(p)
	}
	grantType := f.Get("grant_type")
	if grantType != "authorization_code" && grantType != "refresh_token" {
		return nil, &oauthError{status: 400, code: "unsupported_grant_type", desc: unsupportedGrant, hint: "Check that all required parameters have been provided"}
	}
	if id == "" {
		return nil, &oauthError{status: 400, code: "invalid_request", desc: invalidRequestText, hint: "Check the `client_id` parameter"}
	}
	if id != ClientID || subtle.ConstantTimeCompare([]byte(secret), []byte(ClientSecret)) != 1 {
		return nil, &oauthError{status: 401, code: "invalid_client", desc: invalidClientText, basicChallenge: basic}
	}
	now := time.Now()
	var person, scope string
	switch grantType {
	case "authorization_code":
		code := f.Get("code")
		if code == "" {
			return nil, &oauthError{status: 400, code: "invalid_request", desc: invalidRequestText, hint: "Check the `code` parameter"}
		}
		c := st.codes[code]
		switch {
		case c == nil:
			return nil, &oauthError{status: 400, code: "invalid_request", desc: invalidRequestText, hint: "Cannot decrypt the authorization code"}
		case !now.Before(c.expiry):
			return nil, &oauthError{status: 400, code: "invalid_grant", desc: invalidGrantText, hint: "Authorization code has expired"}
		case c.used:
			return nil, &oauthError{status: 400, code: "invalid_grant", desc: invalidGrantText, hint: "Authorization code has been revoked"}
		case c.redirect != "" && f.Get("redirect_uri") != c.redirect:
			return nil, &oauthError{status: 400, code: "invalid_request", desc: invalidRequestText, hint: "Invalid redirect URI"}
		}
		verifier := f.Get("code_verifier")
		if c.challenge != "" {
			if verifier == "" {
				return nil, &oauthError{status: 400, code: "invalid_request", desc: invalidRequestText, hint: "Check the `code_verifier` parameter"}
			}
			if !pkceText.MatchString(verifier) {
				return nil, &oauthError{status: 400, code: "invalid_request", desc: invalidRequestText, hint: "Code Verifier must follow the specifications of RFC-7636."}
			}
			want := verifier
			if c.method == "S256" {
				sum := sha256.Sum256([]byte(verifier))
				want = base64.RawURLEncoding.EncodeToString(sum[:])
			}
			if subtle.ConstantTimeCompare([]byte(want), []byte(c.challenge)) != 1 {
				return nil, &oauthError{status: 400, code: "invalid_grant", desc: invalidGrantText, hint: "Failed to verify `code_verifier`."}
			}
		} else if verifier != "" {
			return nil, &oauthError{status: 400, code: "invalid_request", desc: invalidRequestText, hint: "code_verifier received when no code_challenge is present"}
		}
		c.used = true
		person, scope = c.person, c.scope
		st.stats.Exchanges++
	case "refresh_token":
		rt := f.Get("refresh_token")
		if rt == "" {
			return nil, &oauthError{status: 400, code: "invalid_request", desc: invalidRequestText, hint: "Check the `refresh_token` parameter"}
		}
		g := st.refresh[rt]
		refused := func(hint string) *oauthError {
			return &oauthError{status: 400, code: "invalid_grant", desc: invalidRefreshText, hint: hint, refusedRefreshTok: true}
		}
		switch {
		case g == nil:
			return nil, refused("Cannot decrypt the refresh token")
		case !now.Before(g.expiry):
			return nil, refused("Token has expired")
		case g.revoked:
			return nil, refused("Token has been revoked")
		}
		// Rotation: the old pair dies at once, with no grace.
		g.revoked = true
		t := s.tokens[g.access]
		t.revoked = true
		s.tokens[g.access] = t
		person, scope = g.person, g.scope
		st.stats.Refreshes++
	}
	access, refresh := newToken(), "refresh-"+newToken()[len("fake-"):]
	s.tokens[access] = issued{expiry: now.Add(s.lifetime), grant: grantType, creds: Credentials{ClientID: ClientID, ClientSecret: ClientSecret}}
	st.person[access] = person
	st.refresh[refresh] = &refreshGrant{person: person, access: access, scope: scope, expiry: now.Add(st.refreshLifetime)}
	return map[string]any{
		"token_type":    "Bearer",
		"expires_in":    int64(s.lifetime / time.Second),
		"access_token":  access,
		"refresh_token": refresh,
	}, nil
}
