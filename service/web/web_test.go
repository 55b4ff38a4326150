package web_test

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features"
	"github.com/directops/nbp/features/redistest"
	"github.com/directops/nbp/model"
	"github.com/directops/nbp/service"
	"github.com/directops/nbp/service/api"
	"github.com/directops/nbp/service/apitest"
	"github.com/directops/nbp/service/web"
)

var redisServer *redistest.Server

func TestMain(m *testing.M) {
	var err error
	redisServer, err = redistest.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	redisServer.Stop()
	os.Exit(code)
}

// fakeWeCom is the WeCom server's part the login uses: tokens, the OAuth
// code exchange, the JS-SDK tickets. It counts the tokens it gave.
type fakeWeCom struct {
	*httptest.Server
	tokens  atomic.Int32
	expired atomic.Bool // the next call with a token says it expired
}

func newFakeWeCom(t *testing.T) *fakeWeCom {
	f := &fakeWeCom{}
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, v any) { _ = json.NewEncoder(w).Encode(v) }
	token := func(w http.ResponseWriter, r *http.Request) bool {
		if f.expired.CompareAndSwap(true, false) {
			reply(w, map[string]any{"errcode": 42001, "errmsg": "access_token expired"})
			return false
		}
		if r.URL.Query().Get("access_token") != fmt.Sprintf("tok-%d", f.tokens.Load()) {
			reply(w, map[string]any{"errcode": 40014, "errmsg": "invalid access_token"})
			return false
		}
		return true
	}
	mux.HandleFunc("/cgi-bin/gettoken", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("corpid") != "ww-corp" || r.URL.Query().Get("corpsecret") != "s3cret" {
			reply(w, map[string]any{"errcode": 40001, "errmsg": "invalid credential"})
			return
		}
		n := f.tokens.Add(1)
		reply(w, map[string]any{"errcode": 0, "access_token": fmt.Sprintf("tok-%d", n), "expires_in": 7200})
	})
	mux.HandleFunc("/cgi-bin/auth/getuserinfo", func(w http.ResponseWriter, r *http.Request) {
		if !token(w, r) {
			return
		}
		switch r.URL.Query().Get("code") {
		case "code-agent":
			reply(w, map[string]any{"errcode": 0, "userid": "zhang.san"})
		case "code-manager":
			reply(w, map[string]any{"errcode": 0, "userid": "ops-lead"})
		case "code-outsider":
			reply(w, map[string]any{"errcode": 0, "openid": "o-123"})
		default:
			reply(w, map[string]any{"errcode": 40029, "errmsg": "invalid code"})
		}
	})
	mux.HandleFunc("/cgi-bin/get_jsapi_ticket", func(w http.ResponseWriter, r *http.Request) {
		if token(w, r) {
			reply(w, map[string]any{"errcode": 0, "ticket": "corp-ticket", "expires_in": 7200})
		}
	})
	mux.HandleFunc("/cgi-bin/ticket/get", func(w http.ResponseWriter, r *http.Request) {
		if token(w, r) && r.URL.Query().Get("type") == "agent_config" {
			reply(w, map[string]any{"errcode": 0, "ticket": "agent-ticket", "expires_in": 7200})
		}
	})
	// The WeCom client: authorizing sends the browser back with a code.
	mux.HandleFunc("/connect/oauth2/authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		back, _ := url.Parse(q.Get("redirect_uri"))
		bq := back.Query()
		bq.Set("code", q.Get("test_code"))
		bq.Set("state", q.Get("state"))
		back.RawQuery = bq.Encode()
		http.Redirect(w, r, back.String(), http.StatusFound)
	})
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

// newSite serves the pages and the API, on the demo catalog with the rules,
// behind a real listener (the cookies are Secure: the client is told the
// site is https by the test's transport, see client).
func newSite(t *testing.T, cfg web.Config) string {
	t.Helper()
	rdb := redisServer.Client(t)
	prefix := redistest.Prefix(t)
	now := time.Now()
	cat, err := catalog.DefaultAt(now)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := model.NewRules(cat, features.Names())
	if err != nil {
		t.Fatal(err)
	}
	store := features.NewStore(rdb, features.Options{Prefix: prefix})
	pipe, err := service.NewPipeline(service.PipelineConfig{Catalog: cat, Store: store, Scorer: rules})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Redis, cfg.Prefix = rdb, prefix
	srv := api.NewServer(api.ServerConfig{Pipeline: pipe, Pages: web.New(cfg), Events: store})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	// localhost: the Secure cookie is kept over plain HTTP there only.
	return "http://localhost:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects.
func browser(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u string) *http.Response {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// wecomLogin walks a browser through the WeCom login: nbp's redirect to the
// authorize page, WeCom's redirect back with a code, nbp's session.
func wecomLogin(t *testing.T, c *http.Client, site string, f *fakeWeCom, code string) *http.Response {
	t.Helper()
	resp := get(t, c, site+"/auth/wecom?next=/panel/%3Fcustomer%3DC1")
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, f.URL+"/connect/oauth2/authorize?") || !strings.HasSuffix(loc, "#wechat_redirect") {
		t.Fatalf("login start: %d %s", resp.StatusCode, loc)
	}
	u, _ := url.Parse(loc)
	q := u.Query()
	if q.Get("appid") != "ww-corp" || q.Get("agentid") != "1000002" || q.Get("scope") != "snsapi_base" || q.Get("redirect_uri") != site+"/auth/wecom/callback" {
		t.Fatalf("authorize parameters: %v", q)
	}
	q.Set("test_code", code)
	u.RawQuery, u.Fragment = q.Encode(), ""
	back := get(t, c, u.String())
	return get(t, c, back.Header.Get("Location"))
}

func TestWeComLogin(t *testing.T) {
	f := newFakeWeCom(t)
	site := newSite(t, web.Config{
		WeCom:   &web.WeCom{CorpID: "ww-corp", AgentID: "1000002", Secret: "s3cret", APIBase: f.URL, AuthorizeURL: f.URL + "/connect/oauth2/authorize"},
		Members: web.Members{"ops-lead": {UserID: "ops-lead", Role: api.RoleManager}, "zhang.san": {UserID: "zhang.san", Role: api.RoleAgent, Team: "城东支行"}},
	})
	c := browser(t)
	resp := wecomLogin(t, c, site, f, "code-agent")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/panel/?customer=C1" {
		t.Fatalf("callback: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == web.CookieName && ck.Value != "" {
			cookie = ck
		}
	}
	if cookie == nil || !cookie.HttpOnly || !cookie.Secure || cookie.SameSite != http.SameSiteLaxMode || cookie.Path != "/" {
		t.Fatalf("session cookie: %+v", cookie)
	}
	var s web.SessionResponse
	r, err := (&http.Client{Jar: c.Jar, Transport: apitest.Transport(t, http.DefaultTransport)}).Get(site + "/v1/session")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(r.Body).Decode(&s)
	r.Body.Close()
	if err != nil || s.UserID != "zhang.san" || s.Role != "agent" || s.Team != "城东支行" || s.CSRFToken == "" || s.WeCom == nil || s.WeCom.CorpID != "ww-corp" {
		t.Fatalf("session: %+v %v", s, err)
	}

	// The JS-SDK's signatures, as WeCom specifies them; a token WeCom says
	// expired is fetched again once.
	f.expired.Store(true)
	page := site + "/panel/?customer=C1"
	checked := &http.Client{Jar: c.Jar, Transport: apitest.Transport(t, http.DefaultTransport)}
	r, err = checked.Get(site + "/v1/wecom/signatures?url=" + url.QueryEscape(page))
	if err != nil {
		t.Fatal(err)
	}
	var sig web.SignaturesResponse
	err = json.NewDecoder(r.Body).Decode(&sig)
	r.Body.Close()
	if err != nil || r.StatusCode != 200 {
		t.Fatalf("signatures: %d %v", r.StatusCode, err)
	}
	for name, c := range map[string]struct {
		sig    web.Signature
		ticket string
	}{"corp": {sig.Corp, "corp-ticket"}, "agent": {sig.Agent, "agent-ticket"}} {
		sum := sha1.Sum([]byte("jsapi_ticket=" + c.ticket + "&noncestr=" + c.sig.NonceStr + "&timestamp=" + strconv.FormatInt(c.sig.Timestamp, 10) + "&url=" + page))
		if c.sig.NonceStr == "" || c.sig.Signature != hex.EncodeToString(sum[:]) {
			t.Errorf("%s signature %+v", name, c.sig)
		}
	}
	if n := f.tokens.Load(); n != 2 {
		t.Errorf("%d access tokens fetched, want 2 (one, then one after it expired)", n)
	}
	for _, bad := range []string{"https://evil.example/panel/", page + "#x"} {
		if r := get(t, c, site+"/v1/wecom/signatures?url="+url.QueryEscape(bad)); r.StatusCode != 400 {
			t.Errorf("signing %s: %d", bad, r.StatusCode)
		}
	}

	// A manager is listed; an outsider, a bad code and a forged state are
	// refused, with no session.
	m := browser(t)
	if resp := wecomLogin(t, m, site, f, "code-manager"); resp.Header.Get("Location") != "/panel/?customer=C1" {
		t.Errorf("manager's next: %s", resp.Header.Get("Location"))
	}
	if r := get(t, m, site+"/v1/wecom/signatures?url="+url.QueryEscape(page)); r.StatusCode != 403 {
		t.Errorf("a manager got signatures: %d", r.StatusCode)
	}
	for code, want := range map[string]int{"code-outsider": 403, "code-bogus": 502} {
		o := browser(t)
		if resp := wecomLogin(t, o, site, f, code); resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", code, resp.StatusCode, want)
		}
		if r := get(t, o, site+"/v1/session"); r.StatusCode != 401 {
			t.Errorf("%s left a session: %d", code, r.StatusCode)
		}
	}
	if r := get(t, browser(t), site+"/auth/wecom/callback?code=code-agent&state=forged"); r.StatusCode != 400 {
		t.Errorf("a callback without the browser's state: %d", r.StatusCode)
	}

	// Logging out ends the session on the server: the cookie no longer works.
	old := c.Jar.Cookies(mustURL(site))
	req, _ := http.NewRequest(http.MethodPost, site+"/auth/logout", nil)
	req.Header.Set(web.CSRFHeader, s.CSRFToken)
	if r, err := c.Do(req); err != nil || r.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: %v %v", r, err)
	}
	replay := browser(t)
	replay.Jar.SetCookies(mustURL(site), old)
	if r := get(t, replay, site+"/v1/session"); r.StatusCode != 401 {
		t.Errorf("the old cookie after logout: %d", r.StatusCode)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// TestSessionExpires: past its TTL a session is a 401, whatever Redis holds.
func TestSessionExpires(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	site := newSite(t, web.Config{Demo: true, TTL: time.Hour, Now: func() time.Time { return time.Unix(0, now.Load()) }})
	c := browser(t)
	req, _ := http.NewRequest(http.MethodPost, site+"/auth/demo", strings.NewReader("user=demo-agent"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if r, err := c.Do(req); err != nil || r.StatusCode != http.StatusSeeOther {
		t.Fatalf("demo login: %v %v", r, err)
	}
	if r := get(t, c, site+"/v1/session"); r.StatusCode != 200 {
		t.Fatalf("session: %d", r.StatusCode)
	}
	now.Add(int64(time.Hour))
	r, err := c.Get(site + "/v1/customers/C1/recommendations?channel=wecom_agent")
	if err != nil {
		t.Fatal(err)
	}
	var e api.ErrorResponse
	err = json.NewDecoder(r.Body).Decode(&e)
	r.Body.Close()
	if r.StatusCode != 401 || err != nil || e.Error.Code != web.CodeSessionExpired {
		t.Errorf("an expired session: %d %+v %v", r.StatusCode, e, err)
	}
}

// TestPagesServed: the pages and their assets, with their security
// headers; nothing outside the embedded tree.
func TestPagesServed(t *testing.T) {
	site := newSite(t, web.Config{Demo: true})
	c := browser(t)
	for path, ct := range map[string]string{
		"/panel/": "text/html", "/dashboard/": "text/html", "/login/": "text/html",
		"/assets/nbp.js": "javascript", "/assets/common.css": "text/css", "/assets/panel/panel.js": "javascript",
	} {
		r := get(t, c, site+path)
		if r.StatusCode != 200 || !strings.Contains(r.Header.Get("Content-Type"), ct) || !strings.Contains(r.Header.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Errorf("%s: %d %s %q", path, r.StatusCode, r.Header.Get("Content-Type"), r.Header.Get("Content-Security-Policy"))
		}
	}
	for _, path := range []string{"/assets/../pages.go", "/assets/%2e%2e/pages.go", "/assets/nope.js", "/panel/x"} {
		if r := get(t, c, site+path); r.StatusCode != 404 {
			t.Errorf("%s: %d", path, r.StatusCode)
		}
	}
	if r := get(t, c, site+"/panel"); r.StatusCode != http.StatusMovedPermanently || r.Header.Get("Location") != "/panel/" {
		t.Errorf("/panel: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	// The fetched libraries are there (make web-assets), with the licence.
	for _, path := range []string{"/assets/vendor/echarts.min.js", "/assets/vendor/wecom.global.prod.js", "/assets/vendor/echarts.LICENSE"} {
		if r := get(t, c, site+path); r.StatusCode != 200 {
			t.Errorf("%s: %d (run make web-assets)", path, r.StatusCode)
		}
	}
	// The login's redirect stays on this site.
	for next, want := range map[string]string{"/dashboard/": "/dashboard/", "//evil.example/": "/panel/", "https://evil.example/": "/panel/", `/\evil`: "/panel/"} {
		req, _ := http.NewRequest(http.MethodPost, site+"/auth/demo", strings.NewReader(url.Values{"user": {"demo-agent"}, "next": {next}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r, err := browser(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.Header.Get("Location") != want {
			t.Errorf("next %q: went to %q, want %q", next, r.Header.Get("Location"), want)
		}
	}
}

func TestParseMembers(t *testing.T) {
	m, err := web.ParseMembers(strings.NewReader("userid,role,team\nzhang.san,agent,城东支行\nops-lead,manager,\n"))
	if err != nil || len(m) != 2 || m["zhang.san"].Team != "城东支行" || m["ops-lead"].Role != api.RoleManager {
		t.Fatalf("%v %v", m, err)
	}
	_, err = web.ParseMembers(strings.NewReader("userid,role,team\n-bad,agent,\nok,boss,\nok2,agent,a|b\nok3,agent,\nok3,manager,\n"))
	for _, want := range []string{"line 2", "line 3", "line 4", "line 6"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("no problem reported at %s: %v", want, err)
		}
	}
	if _, err := web.ParseMembers(strings.NewReader("id,role\n")); err == nil {
		t.Error("a wrong header was taken")
	}
}

func FuzzParseMembers(f *testing.F) {
	f.Add("userid,role,team\nzhang.san,agent,城东支行\n")
	f.Add("userid,role,team\n\"a\nb\",manager,\n")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := web.ParseMembers(strings.NewReader(s))
		if err != nil {
			return
		}
		for id, mb := range m {
			if id != mb.UserID || !api.ValidAgentID(id) || !api.ValidTeam(mb.Team) || mb.Role != api.RoleAgent && mb.Role != api.RoleManager {
				t.Fatalf("accepted %+v", mb)
			}
		}
	})
}
