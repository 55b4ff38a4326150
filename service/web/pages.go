// Package web serves nbp's pages: the WeCom agent sidebar (/panel/), the
// direct-operations dashboard (/dashboard/) and their login (/login/),
// embedded in the binary. The pages call the same /v1 API as every other
// client, with a session cookie instead of an API key: a page holds no
// secret.
//
// A session comes from WeCom's OAuth code exchange (inside WeCom, or by QR
// code on a desktop browser), or from the demo login. Its cookie is
// HttpOnly, Secure and SameSite=Lax; state-changing calls also carry the
// session's CSRF token in the X-CSRF-Token header. Roles are api.Role.
package web

import (
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"io/fs"
	"log/slog"
	"mime"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"
	"github.com/redis/go-redis/v9"

	"github.com/directops/nbp/features"
	"github.com/directops/nbp/service/api"
)

// The session's cookie and the OAuth state's.
const (
	CookieName = "nbp_session"
	stateName  = "nbp_oauth_state"
)

// CSRFHeader carries the session's CSRF token on state-changing calls.
const CSRFHeader = "X-CSRF-Token"

// Error codes of the pages' access.
const (
	CodeSessionExpired = "session_expired"
	CodeCSRF           = "csrf_failed"
	CodeLoginFailed    = "login_failed"
	CodeNoDemoLogin    = "demo_login_off"
)

// Config wires the pages.
type Config struct {
	// Redis keeps the sessions, under Prefix (features.DefaultPrefix when
	// empty).
	Redis  redis.UniversalClient
	Prefix string
	// TTL is how long a session lasts; default 8h, a working day.
	TTL time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Demo turns on the demo login (/login/ offers demo-agent and
	// demo-manager). Never in production.
	Demo bool
	// WeCom, when set, turns on the WeCom login and the JS-SDK's
	// signatures.
	WeCom *WeCom
	// PublicURL is the address the bank's users reach nbp at (for the
	// OAuth redirect), e.g. https://nbp.bank.example; default the
	// request's own.
	PublicURL string
	// Members gives the users' roles and teams (see ParseMembers).
	Members Members
	Logger  *slog.Logger
}

// Pages serves the pages and authenticates their sessions (an api.Pages).
type Pages struct {
	cfg      Config
	sessions sessions
	files    fs.FS
	log      *slog.Logger
}

//go:embed static
var static embed.FS

// New returns the pages.
func New(cfg Config) *Pages {
	if cfg.TTL <= 0 {
		cfg.TTL = 8 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Prefix == "" {
		cfg.Prefix = features.DefaultPrefix
	}
	if cfg.WeCom != nil {
		cfg.WeCom.defaults()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	files, _ := fs.Sub(static, "static") // the directory is embedded: never fails
	return &Pages{cfg: cfg, sessions: sessions{rdb: cfg.Redis, keys: features.NewKeys(cfg.Prefix)}, files: files, log: log}
}

// Routes adds the pages, their assets and the login endpoints.
func (p *Pages) Routes(r fiber.Router) {
	r.Get("/", func(c *fiber.Ctx) error { return c.Redirect("/login/", fiber.StatusFound) })
	for _, page := range []string{"panel", "dashboard", "login"} {
		r.Get("/"+page, func(c *fiber.Ctx) error { return c.Redirect("/"+page+"/", fiber.StatusMovedPermanently) })
		index := page + "/index.html"
		r.Get("/"+page+"/", func(c *fiber.Ctx) error { return p.serve(c, index) })
	}
	r.Get("/assets/*", func(c *fiber.Ctx) error { return p.serve(c, c.Params("*")) })
	r.Get("/v1/session", p.handleSession)
	r.Get("/auth/options", func(c *fiber.Ctx) error {
		return c.JSON(fiber.Map{"demo": p.cfg.Demo, "wecom": p.cfg.WeCom != nil})
	})
	r.Post("/auth/demo", p.handleDemoLogin)
	r.Get("/auth/wecom", p.handleWeComLogin)
	r.Get("/auth/wecom/callback", p.handleWeComCallback)
	r.Post("/auth/logout", p.handleLogout)
	r.Get("/v1/wecom/signatures", p.handleSignatures)
}

// securityHeaders keep the pages to their own scripts and origin.
func securityHeaders(c *fiber.Ctx) {
	c.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'self'")
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("Referrer-Policy", "same-origin")
}

// serve answers with an embedded file; a name outside the tree is a 404.
func (p *Pages) serve(c *fiber.Ctx, name string) error {
	name = path.Clean(name)
	if !fs.ValidPath(name) {
		return fiber.ErrNotFound
	}
	b, err := fs.ReadFile(p.files, name)
	if err != nil {
		return fiber.ErrNotFound
	}
	securityHeaders(c)
	ct := mime.TypeByExtension(path.Ext(name))
	if ext := path.Ext(name); ext == ".LICENSE" || ext == ".NOTICE" {
		ct = "text/plain; charset=utf-8"
	}
	if ct == "" {
		ct = fiber.MIMEOctetStream
	}
	c.Set(fiber.HeaderContentType, ct)
	if strings.HasPrefix(name, "vendor/") {
		c.Set(fiber.HeaderCacheControl, "public, max-age=86400") // pinned versions
	} else {
		c.Set(fiber.HeaderCacheControl, "no-cache")
	}
	return c.Send(b)
}

// Authenticate implements api.Sessions.
func (p *Pages) Authenticate(c *fiber.Ctx) (api.Principal, bool, error) {
	token := c.Cookies(CookieName)
	if token == "" {
		return api.Principal{}, false, nil
	}
	ss, err := p.lookup(c, token)
	if err != nil {
		return api.Principal{}, true, err
	}
	switch c.Method() {
	case fiber.MethodGet, fiber.MethodHead, fiber.MethodOptions:
	default:
		if err := checkCSRF(c, ss); err != nil {
			return api.Principal{}, true, err
		}
	}
	return api.Principal{Role: ss.Role, UserID: ss.UserID, Team: ss.Team}, true, nil
}

// checkCSRF refuses a state-changing call without its session's CSRF
// token.
func checkCSRF(c *fiber.Ctx, ss session) error {
	if subtle.ConstantTimeCompare([]byte(c.Get(CSRFHeader)), []byte(ss.CSRF)) != 1 {
		return api.Error(fiber.StatusForbidden, CodeCSRF, "a page's call must carry its session's "+CSRFHeader+" header")
	}
	return nil
}

// lookup reads the session a token names: 401 when there is none.
func (p *Pages) lookup(c *fiber.Ctx, token string) (session, error) {
	ctx, cancel := context.WithTimeout(c.UserContext(), time.Second)
	defer cancel()
	ss, err := p.sessions.get(ctx, token, p.cfg.Now())
	switch {
	case errors.Is(err, errNoSession):
		p.clearCookie(c, CookieName)
		return ss, api.Error(fiber.StatusUnauthorized, CodeSessionExpired, "your session has expired or is not valid; sign in again")
	case err != nil:
		return ss, api.Error(fiber.StatusServiceUnavailable, api.CodeUnavailable, "sessions cannot be read now; retry")
	}
	return ss, nil
}

// SessionResponse is the body of GET /v1/session: who is signed in.
type SessionResponse struct {
	UserID    string `json:"user_id"`
	Role      string `json:"role"`
	Team      string `json:"team,omitempty"`
	CSRFToken string `json:"csrf_token"`
	ExpiresAt string `json:"expires_at"`
	// Now is the server's clock: the pages time their events by it, not
	// by the device's.
	Now string `json:"now"`
	// WeCom is set when the JS-SDK can be registered (the WeCom login is
	// configured).
	WeCom *WeComApp `json:"wecom"`
}

// WeComApp is what the JS-SDK's register needs to know of the app.
type WeComApp struct {
	CorpID  string `json:"corp_id"`
	AgentID string `json:"agent_id"`
}

// handleSession serves GET /v1/session: 401 without a session.
func (p *Pages) handleSession(c *fiber.Ctx) error {
	token := c.Cookies(CookieName)
	if token == "" {
		return api.Error(fiber.StatusUnauthorized, api.CodeUnauthorized, "not signed in")
	}
	ss, err := p.lookup(c, token)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	r := SessionResponse{UserID: ss.UserID, Role: string(ss.Role), Team: ss.Team, CSRFToken: ss.CSRF, ExpiresAt: ss.Expires.Format(time.RFC3339),
		Now: p.cfg.Now().UTC().Format(time.RFC3339Nano)}
	if w := p.cfg.WeCom; w != nil {
		r.WeCom = &WeComApp{CorpID: w.CorpID, AgentID: w.AgentID}
	}
	return c.JSON(r)
}

// home is each role's page.
func home(r api.Role) string {
	if r == api.RoleManager {
		return "/dashboard/"
	}
	return "/panel/"
}

// localNext returns the page to go to after the login: a path of this
// site only (never //host or a scheme), else the role's page.
func localNext(next string, r api.Role) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return home(r)
	}
	return next
}

// sameOrigin refuses a login form posted from another site (login CSRF):
// a browser's Origin, when it sends one, must be this site's.
func sameOrigin(c *fiber.Ctx) bool {
	o := c.Get(fiber.HeaderOrigin)
	if o == "" {
		return c.Get("Sec-Fetch-Site") == "" || c.Get("Sec-Fetch-Site") == "same-origin"
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == string(c.Request().Host())
}

// start opens a session for a member and sets its cookie.
func (p *Pages) start(c *fiber.Ctx, m Member) error {
	now := p.cfg.Now()
	ss := session{Role: m.Role, UserID: m.UserID, Team: m.Team, CSRF: newToken(), Expires: now.Add(p.cfg.TTL)}
	ctx, cancel := context.WithTimeout(c.UserContext(), time.Second)
	defer cancel()
	token, err := p.sessions.create(ctx, ss)
	if err != nil {
		return api.Error(fiber.StatusServiceUnavailable, api.CodeUnavailable, "sessions cannot be stored now; retry")
	}
	c.Cookie(&fiber.Cookie{Name: CookieName, Value: token, Path: "/", MaxAge: int(p.cfg.TTL.Seconds()),
		Secure: true, HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode})
	p.log.Info("signed in", slog.String("role", string(m.Role)))
	return nil
}

func (p *Pages) clearCookie(c *fiber.Ctx, name string) {
	c.Cookie(&fiber.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, Expires: time.Unix(0, 0),
		Secure: true, HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode})
}

// handleDemoLogin serves POST /auth/demo (form field user: demo-agent or
// demo-manager), with Config.Demo only.
func (p *Pages) handleDemoLogin(c *fiber.Ctx) error {
	if !p.cfg.Demo {
		return api.Error(fiber.StatusNotFound, CodeNoDemoLogin, "the demo login is off")
	}
	if !sameOrigin(c) {
		return api.Error(fiber.StatusForbidden, CodeCSRF, "a login must be posted from this site")
	}
	m, ok := demoMembers[c.FormValue("user")]
	if !ok {
		return api.Error(fiber.StatusBadRequest, CodeLoginFailed, "user must be demo-agent or demo-manager")
	}
	if err := p.start(c, m); err != nil {
		return err
	}
	return c.Redirect(localNext(utils.CopyString(c.FormValue("next")), m.Role), fiber.StatusSeeOther)
}

// handleLogout serves POST /auth/logout, with the session's CSRF token.
func (p *Pages) handleLogout(c *fiber.Ctx) error {
	token := c.Cookies(CookieName)
	if token != "" {
		// An expired session needs no ending: the cookie is cleared.
		ss, err := p.lookup(c, token)
		if err == nil {
			if err := checkCSRF(c, ss); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.UserContext(), time.Second)
			defer cancel()
			if err := p.sessions.end(ctx, token); err != nil {
				return api.Error(fiber.StatusServiceUnavailable, api.CodeUnavailable, "the session could not be ended; retry")
			}
		}
	}
	p.clearCookie(c, CookieName)
	return c.SendStatus(fiber.StatusNoContent)
}

// publicURL is the site's address for redirects back to it.
func (p *Pages) publicURL(c *fiber.Ctx) string {
	if p.cfg.PublicURL != "" {
		return strings.TrimSuffix(p.cfg.PublicURL, "/")
	}
	return c.Protocol() + "://" + string(c.Request().Host())
}

// handleWeComLogin serves GET /auth/wecom?next=&qr=1: it sends the browser
// to WeCom's authorization, with a state that only this browser holds.
func (p *Pages) handleWeComLogin(c *fiber.Ctx) error {
	w := p.cfg.WeCom
	if w == nil {
		return api.Error(fiber.StatusNotFound, CodeLoginFailed, "the WeCom login is not configured")
	}
	state := newToken()
	next := c.Query("next")
	c.Cookie(&fiber.Cookie{Name: stateName, Value: state + "|" + url.QueryEscape(next), Path: "/auth/wecom", MaxAge: 600,
		Secure: true, HTTPOnly: true, SameSite: fiber.CookieSameSiteLaxMode})
	redirect := p.publicURL(c) + "/auth/wecom/callback"
	return c.Redirect(w.loginURL(redirect, state, c.Query("qr") == "1"), fiber.StatusFound)
}

// handleWeComCallback serves GET /auth/wecom/callback?code=&state=: the
// code is exchanged for the member's userid, server to server.
func (p *Pages) handleWeComCallback(c *fiber.Ctx) error {
	w := p.cfg.WeCom
	if w == nil {
		return api.Error(fiber.StatusNotFound, CodeLoginFailed, "the WeCom login is not configured")
	}
	held, nextEsc, _ := strings.Cut(c.Cookies(stateName), "|")
	p.clearCookie(c, stateName)
	state, code := c.Query("state"), c.Query("code")
	if held == "" || subtle.ConstantTimeCompare([]byte(held), []byte(state)) != 1 || code == "" || len(code) > 512 {
		return api.Error(fiber.StatusBadRequest, CodeLoginFailed, "the login expired or did not come from this browser; sign in again")
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 10*time.Second)
	defer cancel()
	uid, err := w.userID(ctx, code, p.cfg.Now())
	switch {
	case errors.Is(err, errNotMember):
		return api.Error(fiber.StatusForbidden, api.CodeForbidden, "only members of the bank's WeCom may sign in")
	case err != nil:
		p.log.Warn("wecom login failed", slog.String("error", err.Error()))
		return api.Error(fiber.StatusBadGateway, CodeLoginFailed, "WeCom did not confirm the login; retry")
	case !api.ValidAgentID(uid):
		return api.Error(fiber.StatusForbidden, CodeLoginFailed, "this WeCom userid cannot be used here")
	}
	m := p.cfg.Members.member(uid)
	if err := p.start(c, m); err != nil {
		return err
	}
	next, _ := url.QueryUnescape(nextEsc)
	return c.Redirect(localNext(next, m.Role), fiber.StatusFound)
}

// SignaturesResponse is the body of GET /v1/wecom/signatures: the
// signatures of the JS-SDK's two registrations for one page URL.
type SignaturesResponse struct {
	Corp  Signature `json:"corp"`
	Agent Signature `json:"agent"`
}

// handleSignatures serves GET /v1/wecom/signatures?url=, for a signed-in
// agent: the page's URL (this site's, without its fragment) signed with
// the corporation's and the app's tickets.
func (p *Pages) handleSignatures(c *fiber.Ctx) error {
	pr, ok, err := p.Authenticate(c)
	switch {
	case err != nil:
		return err
	case !ok:
		return api.Error(fiber.StatusUnauthorized, api.CodeUnauthorized, "not signed in")
	case !api.RoleAllows(pr.Role, api.EndpointSignatures):
		return api.Error(fiber.StatusForbidden, api.CodeForbidden, "your role may not use this endpoint")
	case p.cfg.WeCom == nil:
		return api.Error(fiber.StatusNotFound, api.CodeNotFound, "the WeCom app is not configured")
	}
	pageURL := c.Query("url")
	if u, err := url.Parse(pageURL); err != nil || u.Fragment != "" || !strings.HasPrefix(pageURL, p.publicURL(c)+"/") {
		return api.Error(fiber.StatusBadRequest, api.CodeBadRequest, "url must be a page of this site, without its #fragment")
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 10*time.Second)
	defer cancel()
	now := p.cfg.Now()
	var r SignaturesResponse
	for i, dst := range []*Signature{&r.Corp, &r.Agent} {
		t, err := p.cfg.WeCom.ticket(ctx, i == 1, now)
		if err != nil {
			p.log.Warn("wecom ticket", slog.String("error", err.Error()))
			return api.Error(fiber.StatusBadGateway, api.CodeUnavailable, "WeCom did not give a ticket; retry")
		}
		*dst = sign(t, newToken()[:16], now.Unix(), pageURL)
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(r)
}
