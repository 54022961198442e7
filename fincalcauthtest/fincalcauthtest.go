// Package fincalcauthtest provides a fake FinCalc for tests: a server
// that issues tokens as FinCalc's client-credentials endpoint does, and
// an API that accepts only the tokens it issued.
//
// It is shaped like [net/http/httptest]: [NewServer] starts a server on
// a loopback address, [Server.Close] stops it, [Server.URL] is where it
// listens, and [Server.ClientConfig] returns a ready *fincalcauth.Config
// pointing at it:
//
//	srv := fincalcauthtest.NewServer()
//	defer srv.Close()
//	client := srv.ClientConfig().Client(ctx)
//	resp, err := client.Get(srv.URL + fincalcauthtest.ClientsPath)
//
// [NewMemoryServer] makes one that listens nowhere: [Server.Client]
// reaches it in memory, which lets tests run inside [testing/synctest]
// bubbles, where time is fake and a 24-hour token expires at once.
//
// The token endpoint at [TokenPath] validates a request as the real one
// is documented to: a POST of a JSON object with exactly the fields
// grant_type ("client_credentials"), client_id, client_secret, scope and
// email_address, each a non-empty JSON string given once. A request that
// breaks a rule gets FinCalc's documented 400 answer,
// {"success": false, "message": {"description": "..."}}. Credentials
// other than those the server accepts ([DefaultCredentials], and those
// given to [Server.AddCredentials]) get 401 with the same envelope (FinCalc
// documents only its 400 answer; the 401 is this fake's choice). A good
// request gets a distinct token that lives [DefaultTokenLifetime] unless
// [Server.SetTokenLifetime] says otherwise. Failures can be scripted with
// [Server.FailNext] and [Server.FailAlways].
//
// The API side: [ClientsPath] answers a FinCalc envelope to any request
// that carries a bearer token the server issued, unexpired and not
// revoked, and 401 to any other. [Server.RequireToken] applies the same
// check to a handler of your own. Its failures are scripted apart, with
// [Server.FailAPINext] and [Server.FailAPIAlways].
//
// A Server is safe for concurrent use.
package fincalcauthtest

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/internal/memhttp"
)

// The credentials a new Server accepts (see [DefaultCredentials]), and
// its paths.
const (
	// ClientID is the client ID that the server accepts.
	ClientID = "12345"
	// ClientSecret is the client secret that the server accepts.
	ClientSecret = "fake-secret-bVc8ztJq3N92uUM4mRSoDkE6"
	// EmailAddress is the login email address that the server accepts.
	EmailAddress = "hello@example.com"

	// TokenPath is the path of the token endpoint, as at FinCalc.
	TokenPath = "/api/oauth/token"
	// ClientsPath is an API path, as at FinCalc, that answers only to a
	// valid token: any other request gets the 401 of
	// [Server.RequireToken]. To any method, with a valid token, it
	// answers 200 with FinCalc's envelope around an empty list:
	//
	//	{"success": true, "data": [], "meta": {"total": 0}}
	ClientsPath = "/api/v2/clients"

	// DefaultTokenLifetime is the lifetime of tokens, as at FinCalc.
	DefaultTokenLifetime = 24 * time.Hour
)

// badRequest is FinCalc's documented description for a 400 answer.
const badRequest = "The request is missing a required parameter, includes an invalid parameter value, includes a parameter more than once, or is otherwise malformed."

// knownScopes are the scopes the fake accepts.
var knownScopes = map[string]bool{
	fincalcauth.ScopeFactFind:          true,
	fincalcauth.ScopeClientFinancials:  true,
	fincalcauth.ScopeClientInformation: true,
}

// Fault is a scripted answer of the token endpoint ([Server.FailNext],
// [Server.FailAlways]) or of the API ([Server.FailAPINext],
// [Server.FailAPIAlways]).
type Fault struct {
	// Status is the HTTP status to answer. Zero answers the request as
	// usual, after Delay.
	Status int
	// Description goes in the failure envelope that is the body when
	// Body is empty: at the token endpoint {"success": false, "message":
	// {"description": Description}}, as FinCalc documents its 400; on the
	// API {"success": false, "message": Description}, as FinCalc
	// documents its API's 403, 404 and 500. Empty means the status's
	// text.
	Description string
	// Body, if not empty, is the whole body, in place of the envelope.
	Body string
	// Header holds headers to add to the answer, such as Retry-After.
	Header http.Header
	// Delay is how long the server waits before it answers; the wait
	// ends early if the client goes away.
	Delay time.Duration
	// Drop closes the connection with no answer, at once.
	Drop bool
}

// Credentials are what a token request authenticates with: a client's ID
// and secret, and the email address of a FinCalc login. A server accepts
// a request whose client_id, client_secret and email_address equal the
// three fields of one of its accepted Credentials: see
// [Server.AddCredentials].
type Credentials struct {
	ClientID     string
	ClientSecret string
	EmailAddress string
}

// DefaultCredentials returns the credentials that a new Server accepts:
// [ClientID], [ClientSecret] and [EmailAddress].
func DefaultCredentials() Credentials {
	return Credentials{ClientID: ClientID, ClientSecret: ClientSecret, EmailAddress: EmailAddress}
}

// TokenRequest is a token request as the server received it.
type TokenRequest struct {
	// ContentType is the request's Content-Type header.
	ContentType string
	// Fields holds the JSON body's fields; nil if the body was not a
	// JSON object.
	Fields map[string]any
}

// Server is a fake FinCalc.
type Server struct {
	// URL is the base URL, with no trailing slash: http://127.0.0.1:port
	// for [NewServer], MemoryURL for [NewMemoryServer].
	URL string
	// TokenURL is URL + TokenPath.
	TokenURL string

	srv     *httptest.Server // nil for a memory server
	handler http.Handler

	mu          sync.Mutex
	lifetime    time.Duration
	tokenFaults faultScript // of the token endpoint
	apiFaults   faultScript // of the API
	accepted    map[Credentials]bool
	tokens      map[string]issued // by access token
	requests    []TokenRequest
	apiRequests int
	signIn      signInState // the sign-in flow, whose access tokens are in tokens too
}

// issued is what the server knows of a token it issued.
type issued struct {
	expiry  time.Time
	revoked bool
	grant   string      // the grant type that issued it: "client_credentials"
	creds   Credentials // the credentials it was issued to
}

// issue records a new token issued by grant to creds, living the
// server's token lifetime, and returns it and its lifetime.
func (s *Server) issue(grant string, creds Credentials) (string, time.Duration) {
	token := newToken()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[token] = issued{expiry: time.Now().Add(s.lifetime), grant: grant, creds: creds}
	return token, s.lifetime
}

// faultScript holds the scripted faults of one endpoint.
type faultScript struct {
	next   []Fault
	always *Fault
}

// take returns the fault for the next request, if any, and uses it up.
// The caller holds the server's mutex.
func (fs *faultScript) take() *Fault {
	if len(fs.next) > 0 {
		f := fs.next[0]
		fs.next = fs.next[1:]
		return &f
	}
	if fs.always != nil {
		f := *fs.always
		return &f
	}
	return nil
}

// MemoryURL is the URL of a server from [NewMemoryServer]. Nothing
// listens there: the .test domain never resolves.
const MemoryURL = "https://fincalc.test"

// NewServer starts a fake FinCalc on a loopback address. The caller
// should call Close when done with it.
func NewServer() *Server {
	s := newServer()
	s.srv = httptest.NewServer(s.handler)
	s.URL = s.srv.URL
	s.TokenURL = s.URL + TokenPath
	return s
}

// NewMemoryServer returns a fake FinCalc that listens nowhere, at
// [MemoryURL]: only the client from [Server.Client] reaches it. It starts
// no goroutine, so that it can be made and used inside a
// [testing/synctest] bubble. Close is optional.
func NewMemoryServer() *Server {
	s := newServer()
	s.URL = MemoryURL
	s.TokenURL = s.URL + TokenPath
	return s
}

func newServer() *Server {
	s := &Server{
		lifetime: DefaultTokenLifetime,
		accepted: map[Credentials]bool{DefaultCredentials(): true},
		tokens:   make(map[string]issued),
	}
	mux := http.NewServeMux()
	mux.HandleFunc(TokenPath, s.serveToken)
	mux.Handle(ClientsPath, s.RequireToken(http.HandlerFunc(serveClients)))
	s.initSignIn(mux)
	s.handler = mux
	return s
}

// Close shuts a server from [NewServer] down and blocks until all its
// requests have finished. It does nothing for a memory server.
func (s *Server) Close() {
	if s.srv == nil {
		return
	}
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// ServeHTTP serves the fake's endpoints: a Server is the handler behind
// its URL. Serving a server from [NewMemoryServer] on a listener of one's
// own makes it reachable there, as cmd/fincalc-fake does; set URL and
// TokenURL to the listener's address, so that [Server.ClientConfig]
// points at it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}

// Client returns an HTTP client that reaches the server in memory, with
// no socket: it hands every request, whatever its URL's host, to the
// server's handler in the caller's goroutine. A dropped connection
// ([Fault.Drop]) is an error of the client's. Give it to fincalcauth
// under [golang.org/x/oauth2.HTTPClient] in the context:
//
//	ctx = context.WithValue(ctx, oauth2.HTTPClient, srv.Client())
//	client := srv.ClientConfig().Client(ctx)
func (s *Server) Client() *http.Client {
	return &http.Client{Transport: memhttp.Transport{Handler: s.handler}}
}

// ClientConfig returns a new Config with the [DefaultCredentials] and
// the server's token URL, asking for scopes, or for
// [fincalcauth.ScopeFactFind] if none is given.
func (s *Server) ClientConfig(scopes ...string) *fincalcauth.Config {
	return s.ConfigFor(DefaultCredentials(), scopes...)
}

// ConfigFor is [Server.ClientConfig] with the credentials c, such as
// ones given to [Server.AddCredentials].
func (s *Server) ConfigFor(c Credentials, scopes ...string) *fincalcauth.Config {
	if len(scopes) == 0 {
		scopes = []string{fincalcauth.ScopeFactFind}
	}
	return &fincalcauth.Config{
		ClientID:     c.ClientID,
		ClientSecret: c.ClientSecret,
		EmailAddress: c.EmailAddress,
		Scopes:       append([]string(nil), scopes...),
		TokenURL:     s.TokenURL,
	}
}

// AddCredentials makes the server accept c as well as the credentials it
// accepts already. A secret rotation adds the client's new secret, with
// its ID and each email address, and later removes the old one with
// [Server.RemoveCredentials]; a second adviser of the same client adds
// the client's ID and secret with the adviser's email address. Every
// token remembers the credentials it was issued to: see
// [Server.TokenCredentials].
func (s *Server) AddCredentials(c Credentials) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accepted[c] = true
}

// RemoveCredentials makes the server refuse c, which may be the
// [DefaultCredentials], with the 401 it answers to unknown credentials.
// The tokens already issued to c stay valid until they expire (FinCalc
// documents nothing else); [Server.RevokeTokens] revokes them.
func (s *Server) RemoveCredentials(c Credentials) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.accepted, c)
}

// TokenCredentials returns the credentials that token was issued to, and
// whether the server issued it, valid or not.
func (s *Server) TokenCredentials(token string) (Credentials, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[token]
	return t.creds, ok
}

// SetTokenLifetime sets the lifetime of the tokens issued from now on
// (expires_in, in whole seconds; at least one).
func (s *Server) SetTokenLifetime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lifetime = max(d.Truncate(time.Second), time.Second)
}

// FailNext makes the next token requests take the given faults, one each,
// in order; requests after them are answered as before. The API is not
// affected: see [Server.FailAPINext].
func (s *Server) FailNext(faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenFaults.next = append(s.tokenFaults.next, faults...)
}

// FailAlways makes every token request take fault, once the faults of
// FailNext are used up, until Recover.
func (s *Server) FailAlways(fault Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenFaults.always = &fault
}

// FailAPINext makes the next API requests take the given faults, one
// each, in order; requests after them are answered as before. An API
// request is one to [ClientsPath] or to a handler behind
// [Server.RequireToken]; the fault comes before the token check, so that
// a fault with a Status answers whatever the token, and one with only a
// Delay is then checked as usual. The token endpoint is not affected: see
// [Server.FailNext].
func (s *Server) FailAPINext(faults ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apiFaults.next = append(s.apiFaults.next, faults...)
}

// FailAPIAlways makes every API request take fault, once the faults of
// FailAPINext are used up, until Recover.
func (s *Server) FailAPIAlways(fault Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.apiFaults.always = &fault
}

// Recover drops every scripted fault, of the token endpoint and of the
// API.
func (s *Server) Recover() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenFaults, s.apiFaults = faultScript{}, faultScript{}
}

// TokenRequests returns how many token requests the server has received,
// faulted ones included.
func (s *Server) TokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

// APIRequests returns how many API requests (see [Server.FailAPINext])
// the server has received, faulted and refused ones included.
func (s *Server) APIRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.apiRequests
}

// LastTokenRequest returns the last token request received, if any. The
// caller may modify the result.
func (s *Server) LastTokenRequest() (TokenRequest, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.requests) == 0 {
		return TokenRequest{}, false
	}
	req := s.requests[len(s.requests)-1]
	req.Fields = maps.Clone(req.Fields)
	return req, true
}

// RevokeTokens makes every token issued so far fail the API's check, as
// when FinCalc revokes them before their expiry.
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.tokens {
		v.revoked = true
		s.tokens[k] = v
	}
}

// ExpireTokens makes every token issued so far expired, as if its
// lifetime had passed: the API refuses them, though the clients that
// hold them still think them valid.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	past := time.Now().Add(-time.Second)
	for k, v := range s.tokens {
		v.expiry = past
		s.tokens[k] = v
	}
}

// ValidToken reports whether token was issued by the server and is
// neither expired nor revoked.
func (s *Server) ValidToken(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[token]
	return ok && !t.revoked && time.Now().Before(t.expiry)
}

// RequireToken returns a handler that passes to h only the requests whose
// Authorization header carries "Bearer <token>" with a token the server
// issued, unexpired and not revoked. Any other request gets 401, with a
// WWW-Authenticate header and the body {"success": false, "message":
// "Unauthenticated."}.
//
// Faults scripted with [Server.FailAPINext] and [Server.FailAPIAlways]
// apply to its requests.
func (s *Server) RequireToken(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.apiRequests++
		fault := s.apiFaults.take()
		s.mu.Unlock()
		if answered := serveFault(w, r, fault, writeAPIFailure); answered {
			return
		}
		scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") || !s.ValidToken(token) {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			writeAPIFailure(w, http.StatusUnauthorized, "Unauthenticated.")
			return
		}
		if s.accountLocked(w, token) {
			return
		}
		h.ServeHTTP(w, r)
	})
}

func serveClients(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"success": true,
		"data":    []any{},
		"meta":    map[string]any{"total": 0},
	})
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	req := TokenRequest{ContentType: r.Header.Get("Content-Type")}
	var fields map[string]any
	if json.Unmarshal(body, &fields) == nil {
		req.Fields = fields
	}

	s.mu.Lock()
	s.requests = append(s.requests, req)
	fault := s.tokenFaults.take()
	s.mu.Unlock()
	if answered := serveFault(w, r, fault, writeFailure); answered {
		return
	}

	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeFailure(w, http.StatusMethodNotAllowed, "The token endpoint takes POST.")
		return
	}
	got, problem := checkRequest(req.ContentType, body)
	if problem != "" {
		writeFailure(w, http.StatusBadRequest, badRequest+" ("+problem+")")
		return
	}
	creds := Credentials{ClientID: got["client_id"], ClientSecret: got["client_secret"], EmailAddress: got["email_address"]}
	s.mu.Lock()
	ok := s.accepted[creds]
	s.mu.Unlock()
	if !ok {
		writeFailure(w, http.StatusUnauthorized, "Client authentication failed.")
		return
	}
	token, lifetime := s.issue("client_credentials", creds)
	writeJSON(w, http.StatusOK, map[string]any{
		"success": true,
		"data": map[string]any{
			"token_type":   "Bearer",
			"expires_in":   int64(lifetime / time.Second),
			"access_token": token,
		},
	})
}

// serveFault acts out fault, if not nil: it drops the connection, or
// waits, then answers with the fault's status, writing its envelope with
// failure. It reports whether the request is dealt with; if not, it is to
// be answered as usual.
func serveFault(w http.ResponseWriter, r *http.Request, fault *Fault, failure func(http.ResponseWriter, int, string)) bool {
	if fault == nil {
		return false
	}
	if fault.Drop {
		dropConnection(w)
		return true
	}
	if fault.Delay > 0 {
		t := time.NewTimer(fault.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return true
		}
	}
	if fault.Status == 0 {
		return false
	}
	for k, vs := range fault.Header {
		w.Header()[k] = vs
	}
	if fault.Body != "" {
		w.WriteHeader(fault.Status)
		io.WriteString(w, fault.Body)
		return true
	}
	desc := fault.Description
	if desc == "" {
		desc = http.StatusText(fault.Status)
	}
	failure(w, fault.Status, desc)
	return true
}

// checkRequest validates a token request body as the endpoint's
// reference describes it, and returns its fields or a problem.
func checkRequest(contentType string, body []byte) (map[string]string, string) {
	if mt, _, _ := strings.Cut(contentType, ";"); !strings.EqualFold(strings.TrimSpace(mt), "application/json") {
		return nil, fmt.Sprintf("Content-Type is %q, not application/json", contentType)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, "the body is not a JSON object"
	}
	got := make(map[string]string)
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, "the body is not a JSON object"
		}
		key := t.(string)
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, "the body is not a JSON object"
		}
		if _, dup := got[key]; dup {
			return nil, fmt.Sprintf("%s is given more than once", key)
		}
		switch key {
		case "grant_type", "client_id", "client_secret", "scope", "email_address":
		default:
			return nil, fmt.Sprintf("unknown parameter %s", key)
		}
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Sprintf("%s is not a string", key)
		}
		got[key] = s
	}
	if _, err := dec.Token(); err != nil {
		return nil, "the body is not a JSON object"
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, "the body has data after the JSON object"
	}
	for _, key := range []string{"grant_type", "client_id", "client_secret", "scope", "email_address"} {
		if got[key] == "" {
			return nil, fmt.Sprintf("%s is missing or empty", key)
		}
	}
	if got["grant_type"] != "client_credentials" {
		return nil, "grant_type is not client_credentials"
	}
	for _, sc := range strings.Split(got["scope"], " ") {
		if !knownScopes[sc] {
			return nil, fmt.Sprintf("unknown scope %q", sc)
		}
	}
	if a, err := mail.ParseAddress(got["email_address"]); err != nil || a.Address != got["email_address"] {
		return nil, "email_address is not an email address"
	}
	return got, ""
}

func newToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return "fake-" + base64.RawURLEncoding.EncodeToString(b)
}

func writeFailure(w http.ResponseWriter, status int, description string) {
	writeJSON(w, status, map[string]any{
		"success": false,
		"message": map[string]string{"description": description},
	})
}

// writeAPIFailure writes the envelope of the API's documented failures,
// whose message is a plain string.
func writeAPIFailure(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, map[string]any{"success": false, "message": message})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// dropConnection closes the client's connection with no answer.
func dropConnection(w http.ResponseWriter) {
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		conn.Close()
		return
	}
	panic(http.ErrAbortHandler)
}
