package fincalcauth_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	"unicode"
	"unicode/utf16"

	"github.com/gofincalc/fincalcauth"
	"github.com/gofincalc/fincalcauth/fincalcauthtest"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/oauth2"
)

// nastySecret has a character of each kind that some encoder escapes:
// quote, apostrophe, slash, <, >, &, space, +, %, a backslash, an
// accented letter and one beyond the BMP.
const nastySecret = `pä"ss/<w'o>&rd 𝄞+%x\y`

// plainSecret has letters and digits only, as FinCalc's secrets do.
const plainSecret = "Xq7Lm2Rt9Vb4Nc8Zk1Wd"

// leakSecrets are the secrets the leak tests try.
var leakSecrets = []string{nastySecret, plainSecret, testSecret}

// spellings returns secret as each encoder a server could echo it with
// writes it. The encoders are written here, apart from the package, and
// so is the oracle (leak) that reads them back.
func spellings(secret string) map[string]string {
	spellingsMu.Lock()
	defer spellingsMu.Unlock()
	if m, ok := spellingsOf[secret]; ok {
		return m
	}
	m := makeSpellings(secret)
	spellingsOf[secret] = m
	return m
}

var (
	spellingsMu sync.Mutex
	spellingsOf = map[string]map[string]string{}
)

func makeSpellings(secret string) map[string]string {
	goJSON := func(escapeHTML bool) string {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(escapeHTML)
		enc.Encode(secret)
		s := strings.TrimSpace(buf.String())
		return s[1 : len(s)-1]
	}
	// php writes what PHP's json_encode writes, with Symfony's
	// JsonResponse flags (JSON_HEX_TAG|APOS|AMP|QUOT) when symfony is set.
	php := func(symfony bool) string {
		var b strings.Builder
		for _, r := range secret {
			switch {
			case symfony && strings.ContainsRune(`<>&'"`, r):
				fmt.Fprintf(&b, `\u%04X`, r)
			case r == '"' || r == '\\' || r == '/':
				b.WriteString(`\` + string(r))
			case r > 0xffff:
				r -= 0x10000
				fmt.Fprintf(&b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
			case r >= 0x80:
				fmt.Fprintf(&b, `\u%04x`, r)
			default:
				b.WriteRune(r)
			}
		}
		return b.String()
	}
	everyRune := func() string {
		var b strings.Builder
		for _, r := range secret {
			if r > 0xffff {
				r -= 0x10000
				fmt.Fprintf(&b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		}
		return b.String()
	}
	// encodeURIComponent is JavaScript's: %20 for a space, ' ( ) ! * ~ kept.
	encodeURIComponent := func() string {
		var b strings.Builder
		for _, c := range []byte(secret) {
			if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.!~*'()", c) >= 0 {
				b.WriteByte(c)
			} else {
				fmt.Fprintf(&b, "%%%02X", c)
			}
		}
		return b.String()
	}
	// mixedHex is percent-encoding with the hex digits of every other
	// escape in lower case: %2f beside %2F.
	mixedHex := func() string {
		var b strings.Builder
		for i, c := range []byte(secret) {
			switch {
			case 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9':
				b.WriteByte(c)
			case i%2 == 0:
				fmt.Fprintf(&b, "%%%02x", c)
			default:
				fmt.Fprintf(&b, "%%%02X", c)
			}
		}
		return b.String()
	}
	// htmlspecialchars is PHP's, with ENT_QUOTES: &#039; for an apostrophe.
	htmlspecialchars := strings.NewReplacer("&", "&amp;", `"`, "&quot;", "'", "&#039;", "<", "&lt;", ">", "&gt;").Replace
	// decimalEntities writes every rune but letters and digits of ASCII
	// as a decimal entity: &#228; for ä.
	decimalEntities := func() string {
		var b strings.Builder
		for _, r := range secret {
			if r < 0x80 && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
				b.WriteRune(r)
			} else {
				fmt.Fprintf(&b, "&#%d;", r)
			}
		}
		return b.String()
	}
	q := strconv.Quote(secret)
	return map[string]string{
		"raw":                         secret,
		"Go JSON":                     goJSON(true),
		"Go JSON, no HTML":            goJSON(false),
		"JSON with \\/":               strings.ReplaceAll(goJSON(false), "/", `\/`),
		"PHP json_encode":             php(false),
		"Symfony JsonResponse":        php(true),
		"every rune escaped":          everyRune(),
		"Go %q":                       q[1 : len(q)-1],
		"URL query":                   url.QueryEscape(secret),
		"URL path":                    url.PathEscape(secret),
		"encodeURIComponent":          encodeURIComponent(),
		"percent, mixed-case hex":     mixedHex(),
		"HTML":                        html.EscapeString(secret),
		"htmlspecialchars ENT_QUOTES": htmlspecialchars(secret),
		"HTML decimal entities":       decimalEntities(),
		"JSON of HTML":                jsonOf(html.EscapeString(secret)),
		"URL of JSON":                 url.QueryEscape(jsonOf(secret)),
		"HTML of JSON":                html.EscapeString(jsonOf(secret)),
		"HTML of encodeURIComponent":  htmlspecialchars(encodeURIComponent()),
	}
}

// jsonOf returns the inside of encoding/json's string for s.
func jsonOf(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

// The oracle's decoders, each the reverse of an encoding above.
var (
	surrogatePair = regexp.MustCompile(`\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}`)
	backslashEsc  = regexp.MustCompile(`\\(?:u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|x[0-9a-fA-F]{2}|[^uUx])`)
	percentEsc    = regexp.MustCompile(`%[0-9a-fA-F]{2}`)
	entity        = regexp.MustCompile(`&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[a-zA-Z]+);?`)
	namedEntities = map[string]string{"amp": "&", "lt": "<", "gt": ">", "quot": `"`, "apos": "'", "nbsp": "\u00a0"}
)

func oracleDecoders() map[string]func(string) string {
	hexRune := func(h string) string {
		n, _ := strconv.ParseUint(h, 16, 32)
		return string(rune(n))
	}
	return map[string]func(string) string{
		"backslash escapes": func(s string) string {
			s = surrogatePair.ReplaceAllStringFunc(s, func(p string) string {
				hi, _ := strconv.ParseUint(p[2:6], 16, 16)
				lo, _ := strconv.ParseUint(p[8:12], 16, 16)
				return string(utf16.DecodeRune(rune(hi), rune(lo)))
			})
			return backslashEsc.ReplaceAllStringFunc(s, func(e string) string {
				switch e[1] {
				case 'u', 'U':
					return hexRune(e[2:])
				case 'x':
					n, _ := strconv.ParseUint(e[2:], 16, 8)
					return string([]byte{byte(n)})
				case 'n':
					return "\n"
				case 't':
					return "\t"
				case 'r':
					return "\r"
				}
				return e[1:]
			})
		},
		"percent": func(s string) string {
			return percentEsc.ReplaceAllStringFunc(s, func(e string) string {
				n, _ := strconv.ParseUint(e[1:], 16, 8)
				return string([]byte{byte(n)})
			})
		},
		"percent, + for space": func(s string) string {
			return percentEsc.ReplaceAllStringFunc(strings.ReplaceAll(s, "+", " "), func(e string) string {
				n, _ := strconv.ParseUint(e[1:], 16, 8)
				return string([]byte{byte(n)})
			})
		},
		"entities": func(s string) string {
			return entity.ReplaceAllStringFunc(s, func(e string) string {
				name := strings.TrimSuffix(e[1:], ";")
				switch {
				case strings.HasPrefix(name, "#x") || strings.HasPrefix(name, "#X"):
					return hexRune(name[2:])
				case strings.HasPrefix(name, "#"):
					n, _ := strconv.ParseUint(name[1:], 10, 32)
					return string(rune(n))
				case namedEntities[name] != "":
					return namedEntities[name]
				}
				return e
			})
		},
	}
}

// leak returns how s shows secret, or "" if it does not: after up to
// four layers of the oracle's decoders, a text that holds the secret, or
// 8 bytes of it in a row (a cut that kept part of it).
func leak(s, secret string) string {
	type text struct{ s, how string }
	seen := map[string]bool{s: true}
	layer := []text{{s, "as it is"}}
	for depth := 0; depth <= 4 && len(layer) > 0; depth++ {
		var next []text
		for _, t := range layer {
			if how := holds(t.s, secret); how != "" {
				return how + ", " + t.how
			}
			for name, decode := range oracleDecoders() {
				if d := decode(t.s); !seen[d] {
					seen[d] = true
					next = append(next, text{d, t.how + " then decoded as " + name})
				}
			}
		}
		layer = next
	}
	return ""
}

// holds reports how s holds secret: whole, or 8 bytes of it in a row.
func holds(s, secret string) string {
	if strings.Contains(s, secret) {
		return "the secret"
	}
	for i := 0; i+8 <= len(secret); i++ {
		if strings.Contains(s, secret[i:i+8]) {
			return fmt.Sprintf("bytes %d to %d of the secret", i, i+8)
		}
	}
	return ""
}

// reported lists every string that an error from a failed fetch lets a
// caller see: the texts of every error in its chain, and the fields of
// the RetrieveError, its Response, and the request that leads back.
func reported(err error) map[string]string {
	out := map[string]string{}
	var walk func(string, error)
	walk = func(path string, err error) {
		if err == nil {
			return
		}
		out[path] = err.Error()
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && error(re) == err {
			out[path+" Body"] = string(re.Body)
			out[path+" ErrorDescription"] = re.ErrorDescription
			if resp := re.Response; resp != nil {
				out[path+" Response.Status"] = resp.Status
				out[path+" Response.Header"] = fmt.Sprint(resp.Header)
				if resp.Body != nil {
					b, _ := io.ReadAll(resp.Body)
					out[path+" Response.Body"] = string(b)
				}
				if req := resp.Request; req != nil {
					if req.GetBody != nil {
						if body, err := req.GetBody(); err == nil {
							b, _ := io.ReadAll(body)
							out[path+" Response.Request.GetBody"] = string(b)
						}
					}
					if req.Body != nil {
						b, _ := io.ReadAll(req.Body)
						out[path+" Response.Request.Body"] = string(b)
					}
				}
			}
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for i, e := range u.Unwrap() {
				walk(fmt.Sprintf("%s/%d", path, i), e)
			}
		case interface{ Unwrap() error }:
			walk(path+"/0", u.Unwrap())
		}
	}
	walk("err", err)
	return out
}

// checkNoLeak fails t if any string that err reports, or logs, shows
// secret, or holds a control character that could forge a log line.
func checkNoLeak(t *testing.T, err error, logs string, secret string) {
	t.Helper()
	texts := reported(err)
	texts["logs"] = logs
	for what, s := range texts {
		if how := leak(s, secret); how != "" {
			t.Errorf("%s shows the secret (%s): %q", what, how, s)
		}
	}
	for _, what := range []string{"err", "err ErrorDescription", "logs"} {
		if i := strings.IndexFunc(strings.TrimSuffix(texts[what], "\n"), func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
			t.Errorf("%s holds control character %q: %q", what, texts[what][i], texts[what])
		}
	}
}

// fetchWithLogs fetches through a TokenSource of cfg from the token
// endpoint h, in memory, and returns the error and the Warn record of it.
// It runs in a synctest bubble, so that retries take no time.
func fetchWithLogs(t *testing.T, cfg *fincalcauth.Config, h http.Handler) (logs string, err error) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		logs, err = fetchWithLogsIn(t, cfg, memContext(h))
	})
	return logs, err
}

func fetchWithLogsIn(t *testing.T, cfg *fincalcauth.Config, ctx context.Context) (string, error) {
	t.Helper()
	var logs lockedBuffer
	done := make(chan struct{})
	cfg.Logger = slog.New(notifyHandler{slog.NewTextHandler(&logs, nil), done})
	_, err := cfg.TokenSource(ctx).Token()
	if err == nil {
		t.Fatal("Token() succeeded; want a failure")
	}
	<-done
	return logs.String(), err
}

// notifyHandler closes done after its first Warn record.
type notifyHandler struct {
	slog.Handler
	done chan struct{}
}

func (h notifyHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level == slog.LevelWarn {
		close(h.done)
	}
	return err
}

// echoes are the ways a server answers with the request, or the secret,
// in its body or its headers.
func echoes(secret string) map[string]func(w http.ResponseWriter, req []byte) {
	out := map[string]func(http.ResponseWriter, []byte){}
	body := func(status int, body string) func(http.ResponseWriter, []byte) {
		return func(w http.ResponseWriter, _ []byte) {
			w.WriteHeader(status)
			io.WriteString(w, body)
		}
	}
	for name, f := range spellings(secret) {
		out["400 description, secret "+name] = body(400, `{"success":false,"message":{"description":"bad secret: `+f+`"}}`)
		out["401 league error, secret "+name] = body(401, `{"error":"invalid_client","error_description":"bad secret `+f+`","message":"bad secret `+f+`"}`)
		out["plain 502, secret "+name] = body(502, "upstream said: "+f)
		out["malformed 200, expires_in "+name] = body(200, `{"success":true,"data":{"access_token":"eyJ0eXAiOiJKV1QifQ.x.y","expires_in":"`+f+`"}}`)
		out["header value, secret "+name] = func(w http.ResponseWriter, _ []byte) {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_client", error_description="`+f+`"`)
			w.Header().Set("X-Echo", f)
			w.WriteHeader(401)
		}
	}
	out["header name holds the secret"] = func(w http.ResponseWriter, _ []byte) {
		w.Header()["X-Rejected-"+secret] = []string{"1"}
		w.Header()["X-Rejected-"+url.QueryEscape(secret)] = []string{"1"}
		w.WriteHeader(400)
	}
	reencode := map[string]func([]byte) string{
		"Go JSON":  func(b []byte) string { s, _ := json.Marshal(string(b)); return string(s) },
		"%q":       func(b []byte) string { return strconv.Quote(string(b)) },
		"URL":      func(b []byte) string { return url.QueryEscape(string(b)) },
		"HTML":     func(b []byte) string { return html.EscapeString(string(b)) },
		"raw":      func(b []byte) string { return string(b) },
		"PHP body": func(b []byte) string { return strings.ReplaceAll(string(b), "/", `\/`) },
	}
	for name, enc := range reencode {
		out["422 echoes the request as "+name] = func(w http.ResponseWriter, req []byte) {
			w.WriteHeader(422)
			io.WriteString(w, `{"message":"Validation Error","data":{"request":`+enc(req)+`}}`)
		}
	}
	return out
}

func TestSecretNeverReported(t *testing.T) {
	for _, secret := range leakSecrets {
		for name, echo := range echoes(secret) {
			t.Run(fmt.Sprintf("%.8s/%s", secret, name), func(t *testing.T) {
				cfg := testConfig(memURL)
				cfg.ClientSecret = secret
				var sent bytes.Buffer
				logs, err := fetchWithLogs(t, cfg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					req, _ := io.ReadAll(r.Body)
					sent.Reset()
					echo(teeWriter{w, &sent}, req)
				}))
				checkNoLeak(t, err, logs, secret)
				var re *oauth2.RetrieveError
				if !errors.As(err, &re) {
					t.Fatalf("no RetrieveError in %v", err)
				}
				if (strings.Contains(name, "description") || strings.Contains(name, "league")) && json.Valid(sent.Bytes()) {
					if !strings.Contains(err.Error(), "withheld: it mentions a secret") {
						t.Errorf("the error does not say that the description was withheld: %v", err)
					}
				}
			})
		}
	}
}

// teeWriter copies the body written to w.
type teeWriter struct {
	http.ResponseWriter
	copy *bytes.Buffer
}

func (w teeWriter) Write(b []byte) (int, error) {
	w.copy.Write(b)
	return w.ResponseWriter.Write(b)
}

// TestServerTextKept checks that withholding keeps what mentions no
// secret: the description, the body and the allowed headers.
func TestServerTextKept(t *testing.T) {
	cfg := testConfig(memURL)
	body := `{"error":"invalid_client","error_description":"Client authentication failed","message":"Client authentication failed"}`
	_, err := fetchWithLogs(t, cfg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("WWW-Authenticate", `Bearer realm="fincalc"`)
		w.Header().Set("X-Internal", "kept by nobody")
		w.WriteHeader(401)
		io.WriteString(w, body)
	}))
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Fatalf("no RetrieveError in %v", err)
	}
	got := map[string]any{
		"text":        err.Error(),
		"code":        re.ErrorCode,
		"description": re.ErrorDescription,
		"body":        string(re.Body),
		"status":      re.Response.Status,
		"header":      re.Response.Header,
	}
	want := map[string]any{
		"text":        "fincalcauth: token request failed: 401 Unauthorized: Client authentication failed",
		"code":        "invalid_client",
		"description": "Client authentication failed",
		"body":        body,
		"status":      "401 Unauthorized",
		"header":      http.Header{"Content-Type": {"application/json"}, "Www-Authenticate": {`Bearer realm="fincalc"`}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("reported (-want +got):\n%s", diff)
	}
}

// TestHandedTokenNeverReported checks that a refusal that quotes the
// token a source handed out is withheld.
func TestHandedTokenNeverReported(t *testing.T) {
	const tok = "eyJhbGciOiJIUzI1NiJ9.handed-out.sig"
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		cfg := testConfig(memURL)
		src := cfg.TokenSource(memContext(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) == 1 {
				io.WriteString(w, okBody(tok, 3600))
				return
			}
			w.WriteHeader(400)
			io.WriteString(w, `{"success":false,"message":{"description":"token `+url.QueryEscape(tok)+` is still in use"}}`)
		})))
		if _, err := src.Token(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Hour)
		_, err := src.Token()
		if err == nil {
			t.Fatal("Token() succeeded after the token expired and the endpoint refused")
		}
		for what, s := range reported(err) {
			if how := leak(s, tok); how != "" {
				t.Errorf("%s shows the handed-out token (%s): %q", what, how, s)
			}
		}
	})
}

// rawServer answers every connection with the bytes that answer makes of
// the request it read, as a server that does not speak HTTP well would.
func rawServer(t *testing.T, answer func(req []byte) []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				r := bufio.NewReader(conn)
				req, err := http.ReadRequest(r)
				if err != nil {
					return
				}
				body, _ := io.ReadAll(req.Body)
				conn.Write(answer(body))
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

func TestSecretNeverReportedFromTransport(t *testing.T) {
	secret := nastySecret
	oneLine := func(b []byte) string { return strings.ReplaceAll(string(b), "\n", "") }
	tests := map[string]func(req []byte) string{
		"the request as the status line": func(req []byte) string { return oneLine(req) + "\r\n\r\n" },
		"the request after HTTP/1.1":     func(req []byte) string { return "HTTP/1.1 " + oneLine(req) + "\r\n\r\n" },
		"the request as the reason phrase": func(req []byte) string {
			return "HTTP/1.1 400 " + oneLine(req) + "\r\nContent-Length: 0\r\n\r\n"
		},
		"the secret as the reason phrase": func([]byte) string {
			return "HTTP/1.1 503 " + secret + "\r\nContent-Length: 0\r\n\r\n"
		},
		"the request as a header line": func(req []byte) string {
			return "HTTP/1.1 400 Bad Request\r\n" + oneLine(req) + "\r\nContent-Length: 0\r\n\r\n"
		},
		"the request as a header value": func(req []byte) string {
			return "HTTP/1.1 400 Bad Request\r\nX-Echo: " + oneLine(req) + "\r\nContent-Length: 0\r\n\r\n"
		},
		"the request as a bad content length": func(req []byte) string {
			return "HTTP/1.1 400 Bad Request\r\nContent-Length: " + oneLine(req) + "\r\n\r\n"
		},
		"control characters in the reason phrase": func([]byte) string {
			return "HTTP/1.1 400 Bad\x1b[2J\x1b[H forged=1\x00 " + secret + "\r\nContent-Length: 0\r\n\r\n"
		},
	}
	for name, answer := range tests {
		t.Run(name, func(t *testing.T) {
			// Real sockets, for net/http's own parsing: the deadline
			// ends the retries of these transport failures.
			u := rawServer(t, func(req []byte) []byte { return []byte(answer(req)) })
			cfg := testConfig(u)
			cfg.ClientSecret = secret
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			_, err := cfg.Token(ctx)
			if err == nil {
				t.Fatal("Token() succeeded")
			}
			checkNoLeak(t, err, "", secret)
		})
	}
}

func TestSecretCutByBodyCap(t *testing.T) {
	// When the 1 MiB cap falls inside an echoed secret, what is kept must
	// not end with the start of it. TestRedactCut tries every spelling at
	// every cut; this tries a few through the real cap.
	const maxBody = 1 << 20
	all := spellings(nastySecret)
	for _, name := range []string{"raw", "PHP json_encode", "URL query"} {
		f := all[name]
		for _, status := range []int{200, 400} {
			t.Run(fmt.Sprintf("%s/%d", name, status), func(t *testing.T) {
				t.Parallel()
				prefix := `{"success":false,"message":{"description":"`
				if status == 200 {
					prefix = `{"success":true,"data":{"access_token":"eyJ0eXAiOiJKV1QifQ.x.y","echo":"`
				}
				body := prefix + strings.Repeat("a", maxBody-len(prefix)-len(f)/2) + f + `"}}`
				cfg := testConfig(memURL)
				cfg.ClientSecret = nastySecret
				logs, err := fetchWithLogs(t, cfg, answer(status, body))
				checkNoLeak(t, err, logs, nastySecret)
			})
		}
	}
}

func TestAccessTokenNeverReported(t *testing.T) {
	const tok = "eyJ0eXAiOiJKV1QifQ.the-access-token.sig"
	tests := map[string]string{
		"bad expires_in":        `{"success":true,"data":{"access_token":"` + tok + `","expires_in":-1}}`,
		"bad token_type":        `{"success":true,"data":{"access_token":"` + tok + `","token_type":5}}`,
		"not the envelope":      `{"access_token":"` + tok + `","expires_in":3600}`,
		"truncated":             `{"success":true,"data":{"token_type":"Bearer","access_token":"` + tok,
		"escaped quotes":        `{"success":true,"data":{"access_token":"` + tok + `\"x","expires_in":0}}`,
		"no success member":     `{"data":{"access_token":"` + tok + `"}}`,
		"escaped member name":   `{"success":true,"data":{"access_\u0074oken":"` + tok + `","expires_in":"x"}}`,
		"escaped value":         `{"success":true,"data":{"access_token":"` + strings.ReplaceAll(tok, ".", `\u002e`) + `","expires_in":"x"}}`,
		"echoed in another key": `{"success":true,"data":{"access_token":"` + tok + `","expires_in":"` + tok + `","debug":"issued ` + tok + `"}}`,
		"echoed in the message": `{"success":true,"data":{"access_token":"` + tok + `","expires_in":"x"},"message":"issued ` + tok + ` for you"}`,
		"as the expires_in":     `{"success":true,"data":{"access_token":"` + tok + `","expires_in":"` + tok + `"}}`,
	}
	// A short secret redacted first would break "access_token" apart.
	for _, secret := range []string{testSecret, "oken", "access", `"`} {
		for name, body := range tests {
			t.Run(secret+"/"+name, func(t *testing.T) {
				cfg := testConfig(memURL)
				cfg.ClientSecret = secret
				logs, err := fetchWithLogs(t, cfg, answer(200, body))
				for what, s := range reported(err) {
					if how := leak(s, tok); how != "" {
						t.Errorf("%s shows the access token (%s): %q", what, how, s)
					}
				}
				if how := leak(logs, tok); how != "" {
					t.Errorf("logs show the access token (%s): %s", how, logs)
				}
			})
		}
	}
}

func TestControlCharactersEscaped(t *testing.T) {
	desc := "line one\nlevel=ERROR msg=forged\x1b[31m red\u2028sep\x00"
	body, _ := json.Marshal(map[string]any{"success": false, "message": map[string]string{"description": desc}})
	logs, err := fetchWithLogs(t, testConfig(memURL), answer(400, string(body)))
	checkNoLeak(t, err, logs, testSecret)
	if strings.Count(logs, "\n") != 1 {
		t.Errorf("one failure logged as %d lines: %q", strings.Count(logs, "\n"), logs)
	}
	if !strings.Contains(err.Error(), `line one\nlevel=ERROR`) {
		t.Errorf("error %q does not show the newline escaped", err)
	}
}

func TestConfigNeverShowsSecret(t *testing.T) {
	cfg := testConfig("https://example.com/token")
	cfg.Logger = slog.Default()
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	logger.Info("config", "cfg", cfg, "value", *cfg)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("config", "cfg", cfg)
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for what, s := range map[string]string{"slog": buf.String(), "json.Marshal": string(b)} {
		if how := leak(s, testSecret); how != "" {
			t.Errorf("%s shows the secret (%s): %s", what, how, s)
		}
		if !strings.Contains(s, "REDACTED") || !strings.Contains(s, "hello@example.com") {
			t.Errorf("%s does not show the Config with its secret redacted: %s", what, s)
		}
	}
	// What json.Marshal writes decodes to a Config that Validate refuses.
	var back fincalcauth.Config
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if fields := configFields(back.Validate()); len(fields) != 1 || fields[0] != "ClientSecret" {
		t.Errorf("a Config decoded from json.Marshal: Validate names %v, want [ClientSecret]", fields)
	}
}

// TestAPIErrorNeverShowsToken checks the API requests of Config.Client
// and SignIn.Client: net/http quotes a malformed header line in its
// error, and the Location of a redirect it cannot follow, and an API
// server may echo the bearer token in either.
func TestAPIErrorNeverShowsToken(t *testing.T) {
	const tok = "eyJhbGciOiJIUzI1NiJ9.api-token.sig"
	tokenURL := httptest.NewServer(answer(200, okBody(tok, 3600)))
	defer tokenURL.Close()
	fake := fincalcauthtest.NewServer()
	defer fake.Close()
	signIn := &fincalcauth.SignIn{Config: fake.SignInConfig("https://app.example/callback"), Store: newMemStore()}
	verifier := oauth2.GenerateVerifier()
	to, err := fake.Authorize(signIn.Config.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)))
	if err != nil {
		t.Fatal(err)
	}
	signedIn, err := signIn.Exchange(context.Background(), "ada", to.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	clients := map[string]struct {
		client *http.Client
		tok    string
	}{
		"Config": {testConfig(tokenURL.URL).Client(context.Background()), tok},
		"SignIn": {signIn.Client(context.Background(), "ada"), signedIn.AccessToken},
	}
	tests := map[string]func(auth string) string{
		"malformed header line": func(auth string) string {
			return "HTTP/1.1 200 OK\r\nX-Seen " + auth + "\r\nContent-Length: 0\r\n\r\n"
		},
		"malformed header line, URL-encoded": func(auth string) string {
			return "HTTP/1.1 200 OK\r\nX-Seen " + url.QueryEscape(auth) + "\r\nContent-Length: 0\r\n\r\n"
		},
		"bad Location": func(auth string) string {
			return "HTTP/1.1 302 Found\r\nLocation: http://[::1%zz/" + url.PathEscape(auth) + "\r\nContent-Length: 0\r\n\r\n"
		},
		"Location with the token": func(auth string) string {
			return "HTTP/1.1 302 Found\r\nLocation: /next?t=" + url.QueryEscape(auth) + "\r\nContent-Length: 0\r\n\r\n"
		},
	}
	for name, reply := range tests {
		for cname, c := range clients {
			t.Run(cname+"/"+name, func(t *testing.T) {
				api := rawAPIServer(t, reply)
				resp, err := c.client.Get(api)
				if err == nil {
					resp.Body.Close()
					t.Fatalf("GET succeeded: %s", resp.Status)
				}
				for what, s := range reported(err) {
					if how := leak(s, c.tok); how != "" {
						t.Errorf("%s shows the token (%s): %q", what, how, s)
					}
				}
			})
		}
	}
}

// rawAPIServer answers every request with the bytes that reply makes of
// its Authorization header.
func rawAPIServer(t *testing.T, reply func(auth string) string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				req, err := http.ReadRequest(bufio.NewReader(conn))
				if err != nil {
					return
				}
				conn.Write([]byte(reply(req.Header.Get("Authorization"))))
			}()
		}
	}()
	return "http://" + ln.Addr().String() + "/api/v2/clients"
}

// TestReportingCostIsBounded checks that reporting a large or costly
// answer does not hold a fetch past its context: the time it takes is
// linear in the answer's size, and checks stop when the context is done.
func TestReportingCostIsBounded(t *testing.T) {
	var manyTokens strings.Builder
	manyTokens.WriteString(`{"success":true,"data":{"access_token":"eyJ.a.b","expires_in":"soon"`)
	for i := 0; manyTokens.Len() < 192<<10; i++ {
		// Tokens that many encoders write each in a way of their own.
		fmt.Fprintf(&manyTokens, `,"t%d_token":"v/\u00e4<&'%d"`, i, i)
	}
	manyTokens.WriteString(`},"message":"issued"}`)
	var refusal strings.Builder
	refusal.WriteString(`{"success":false,"message":"refused","data":{"x":0`)
	for refusal.Len() < 1<<20-100 {
		refusal.WriteString(`,"a_token":"v"`)
	}
	refusal.WriteString(`}}`)
	layers := strings.Repeat(`\u0025`, 1<<17) + strings.Repeat("%25", 1<<17)
	tests := map[string]struct {
		status int
		body   string
	}{
		"192 KiB 2xx with many *_token members":     {200, manyTokens.String()},
		"192 KiB refusal with many *_token members": {200, strings.Replace(manyTokens.String(), `"success":true`, `"success":false`, 1)},
		"1 MiB refusal with many *_token members":   {400, refusal.String()},
		"1 MiB refusal":       {400, `{"success":false,"message":{"description":"` + strings.Repeat(`a\"%41&amp;`, (1<<20)/10) + `"}}`},
		"1 MiB and more, 2xx": {200, `{"success":true,"data":{"access_token":"eyJ.a.b","x":"` + strings.Repeat(`\\u0041%2541`, 1<<17) + `"}}`},
		"layer upon layer":    {502, layers},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			// A generous bound, so that a slow machine does not fail the
			// test: what it catches is work that ignores the context.
			const bound = 3 * time.Second
			ctx, cancel := context.WithTimeout(memContext(answer(tt.status, tt.body)), bound)
			defer cancel()
			start := time.Now()
			_, err := testConfig(memURL).Token(ctx)
			if err == nil {
				t.Fatal("Token() succeeded")
			}
			if took := time.Since(start); took > bound+2*time.Second {
				t.Errorf("Token() returned %v after its context's %v deadline", took-bound, bound)
			}
		})
	}
}

// TestTransportFailureKinds checks that a transport failure is named by
// its kind, with its cause in the chain when its text mentions no secret.
func TestTransportFailureKinds(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String()
	ln.Close()
	garbage := rawServer(t, func([]byte) []byte { return []byte("SSH-2.0-OpenSSH_9.6\r\n\r\n") })
	silent := rawServer(t, func([]byte) []byte { time.Sleep(time.Second); return nil })
	tests := map[string]struct {
		url, kind string
		chained   bool // the *net.OpError is in the chain
	}{
		"refused":           {refused, "connection refused", true},
		"not HTTP":          {garbage, "the answer is not valid HTTP", false},
		"no answer in time": {silent, "timed out", false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			// The HTTP client's timeout, not the context, ends each
			// attempt, and the fetch ends after its retries.
			ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Timeout: 50 * time.Millisecond})
			_, err := testConfig(tt.url).Token(ctx)
			if err == nil || !strings.Contains(err.Error(), "token request failed: "+tt.kind) {
				t.Errorf("Token() = %v, want a failure named %q", err, tt.kind)
			}
			if op := (*net.OpError)(nil); tt.chained && !errors.As(err, &op) {
				t.Errorf("%v does not wrap its *net.OpError", err)
			}
		})
	}
}
