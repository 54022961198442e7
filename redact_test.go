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
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/gofincalc/fincalcauth"
	"golang.org/x/oauth2"
)

// nastySecret has a character of each kind that some encoder escapes:
// quote, apostrophe, slash, <, >, &, space, +, %, a backslash, an
// accented letter and one beyond the BMP.
const nastySecret = `pä"ss/<w'o>&rd 𝄞+%x\y`

// spellings returns secret as each encoder a server could echo it with
// writes it. It is written apart from the package's own list, on purpose.
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
	lowerHex := regexp.MustCompile(`%[0-9A-F]{2}`)
	q := strconv.Quote(secret)
	return map[string]string{
		"raw":                  secret,
		"Go JSON":              goJSON(true),
		"Go JSON, no HTML":     goJSON(false),
		"JSON with \\/":        strings.ReplaceAll(goJSON(false), "/", `\/`),
		"PHP json_encode":      php(false),
		"Symfony JsonResponse": php(true),
		"every rune escaped":   everyRune(),
		"Go %q":                q[1 : len(q)-1],
		"URL query":            url.QueryEscape(secret),
		"URL path":             url.PathEscape(secret),
		"URL query, lower hex": lowerHex.ReplaceAllStringFunc(url.QueryEscape(secret), strings.ToLower),
		"HTML":                 html.EscapeString(secret),
		"HTML, named entities": strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `'`, "&apos;", `"`, "&quot;").Replace(secret),
		"HTML, hex entities":   strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `'`, "&#x27;", `"`, "&#x22;").Replace(secret),
		"JSON of HTML":         jsonOf(html.EscapeString(secret)),
		"URL of JSON":          url.QueryEscape(jsonOf(secret)),
		"HTML of JSON":         html.EscapeString(jsonOf(secret)),
	}
}

// jsonOf returns the inside of encoding/json's string for s.
func jsonOf(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

var jsonString = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// leak returns how s shows secret, or "" if it does not: a spelling of
// it anywhere, a JSON string that decodes to text holding it, or an end
// that is the start of a spelling (a cut that kept part of it).
func leak(s, secret string) string {
	for name, f := range spellings(secret) {
		if strings.Contains(s, f) {
			return name
		}
		for k := len(f) - 1; k >= 2; k-- {
			if strings.HasSuffix(s, f[:k]) && utf8.ValidString(f[:k]) {
				return fmt.Sprintf("the first %d bytes of its %s spelling, at the end", k, name)
			}
		}
	}
	for _, lit := range jsonString.FindAllString(s, -1) {
		var decoded string
		if json.Unmarshal([]byte(lit), &decoded) == nil && decoded != s {
			if how := leak(decoded, secret); how != "" {
				return "inside a JSON string, " + how
			}
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
// in its body.
func echoes(secret string) map[string]func(req []byte) (status int, body string) {
	out := map[string]func([]byte) (int, string){}
	for name, f := range spellings(secret) {
		out["400 description, secret "+name] = func([]byte) (int, string) {
			return 400, `{"success":false,"message":{"description":"bad secret: ` + f + `"}}`
		}
		out["plain 502, secret "+name] = func([]byte) (int, string) { return 502, "upstream said: " + f }
		out["malformed 200, expires_in "+name] = func([]byte) (int, string) {
			return 200, `{"success":true,"data":{"access_token":"eyJ0eXAiOiJKV1QifQ.x.y","expires_in":"` + f + `"}}`
		}
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
		out["422 echoes the request as "+name] = func(req []byte) (int, string) {
			return 422, `{"message":"Validation Error","data":{"request":` + enc(req) + `}}`
		}
	}
	return out
}

func TestSecretNeverReported(t *testing.T) {
	for _, secret := range []string{nastySecret, testSecret, "plain-secret-0123456789"} {
		for name, echo := range echoes(secret) {
			t.Run(fmt.Sprintf("%.8s/%s", secret, name), func(t *testing.T) {
				cfg := testConfig(memURL)
				cfg.ClientSecret = secret
				logs, err := fetchWithLogs(t, cfg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					req, _ := io.ReadAll(r.Body)
					status, body := echo(req)
					w.WriteHeader(status)
					io.WriteString(w, body)
				}))
				checkNoLeak(t, err, logs, secret)
				var re *oauth2.RetrieveError
				if !errors.As(err, &re) || !strings.Contains(string(re.Body), "REDACTED") {
					t.Errorf("Body does not show where the secret was: %v", err)
				}
			})
		}
	}
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

func TestRedactCut(t *testing.T) {
	redact := fincalcauth.CutRedactor(nastySecret)
	for name, f := range spellings(nastySecret) {
		for k := 1; k < len(f); k++ {
			for _, text := range []string{
				"upstream said: " + f[:k],
				`{"success":false,"message":{"description":"echo: ` + f[:k],
				`{"a":"` + f + `","b":"` + f[:k],
			} {
				got := string(redact([]byte(text)))
				if how := leak(got, nastySecret); how != "" {
					t.Errorf("%s cut after %d bytes: %q shows the secret (%s)", name, k, got, how)
				}
			}
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
