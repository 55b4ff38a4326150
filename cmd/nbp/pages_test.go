package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/directops/nbp/catalog"
	"github.com/directops/nbp/features/demobank"
	"github.com/directops/nbp/service/api"
	"github.com/directops/nbp/service/apitest"
)

// newBrowser starts a headless Debian chromium of the test's own, with the
// flags this sandbox needs. Without chromium the test is skipped, unless
// NBP_REQUIRE_BROWSER=1 (make test sets it).
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("NBP_REQUIRE_BROWSER") == "1" {
			t.Fatal("chromium is not installed (make chromium)")
		}
		t.Skip("chromium is not installed (make chromium)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("lang", "zh-CN"),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// run runs browser actions, failing the test with what was being done.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// ready waits for the page's script to have drawn its state.
func ready(t *testing.T, ctx context.Context) {
	t.Helper()
	waitFor(t, ctx, "the page to get ready", `document.body && document.body.dataset.ready === "1"`)
}

// waitFor waits for a JavaScript condition, across the navigations under
// way (a poll in a page that goes away fails, and is tried again).
func waitFor(t *testing.T, ctx context.Context, what, cond string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(5*time.Second)))
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// screenshot saves the page under var/screenshots (the repository's var/).
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	// From the top: a full-page shot of a scrolled page draws the sticky
	// header where the scroll left it.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`)); err != nil {
		t.Fatalf("scroll: %v", err)
	}
	shot := chromedp.FullScreenshot(100)
	if strings.HasSuffix(name, "-desktop") {
		shot = chromedp.CaptureScreenshot() // what the first screen shows
	}
	png, err := chromedp.Run(ctx, shot)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir := filepath.Join("..", "..", "var", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// statsOf returns a manager's view of the stats by agent.
func statsOf(t *testing.T, c *http.Client, base string) api.StatsResponse {
	t.Helper()
	resp, err := c.Get(base + "/v1/stats?group_by=agent")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st api.StatsResponse
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != 200 {
		t.Fatalf("stats: %d %v", resp.StatusCode, err)
	}
	return st
}

// count sums an agent's events of a product on wecom_agent.
func count(st api.StatsResponse, agent, product string, pick func(api.StatsRow) int64) int64 {
	var n int64
	for _, r := range st.Rows {
		if r.AgentID == agent && r.ProductID == product && r.Channel == "wecom_agent" {
			n += pick(r)
		}
	}
	return n
}

// demoLogin signs an HTTP client in with the demo login.
func demoLogin(t *testing.T, base, user string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodPost, base+"/auth/demo", strings.NewReader(url.Values{"user": {user}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("demo login %s: %d", user, resp.StatusCode)
	}
	return c
}

// TestPagesInBrowser drives the agent panel and the dashboard of the demo
// in Debian's chromium: the login, three offers with their reasons and
// risk warnings, a send by keyboard counted in the stats, a failed post
// retried, the expired assessment's hint, an unlinked contact, the
// dashboard's uplift chart from the simulated week, and the CSV export.
func TestPagesInBrowser(t *testing.T) {
	ctx := newBrowser(t)
	addr, stop := start(t, []string{"-demo", "-demo-n", "6000", "-demo-dir", t.TempDir(), "-addr", "127.0.0.1:0"}, testEnv(t, nil))
	// The session cookie is Secure: chromium keeps it over HTTP on localhost.
	base := strings.Replace(addr, "127.0.0.1", "localhost", 1)
	now := time.Now()
	cat, err := catalog.DefaultAt(now)
	if err != nil {
		t.Fatal(err)
	}
	bank := newDemoBank(t, cat, now)
	valid, expired := panelCustomers(bank, now)
	if valid == expired {
		t.Fatalf("the demo bank has no pair of valid and expired panel customers")
	}
	manager := demoLogin(t, base, "demo-manager")

	// Not signed in: the panel asks for a login, then comes back.
	do(t, ctx, "open the panel", chromedp.EmulateViewport(360, 780), chromedp.Navigate(base+"/panel/?customer="+valid))
	waitFor(t, ctx, "no login prompt without a session", `!document.getElementById("login-prompt").classList.contains("hidden")`)
	do(t, ctx, "go to the login", chromedp.Click(chromedp.CSS("#login-prompt a")), chromedp.WaitVisible(chromedp.CSS(`#demo-login button[value="demo-agent"]`)))
	do(t, ctx, "sign in as demo-agent", chromedp.Click(chromedp.CSS(`#demo-login button[value="demo-agent"]`)))
	waitFor(t, ctx, "the panel after the login", `location.pathname === "/panel/" && document.body.dataset.ready === "1"`)
	if got := eval[string](t, ctx, `location.pathname + location.search`); got != "/panel/?customer="+valid {
		t.Fatalf("after the login the browser is at %s", got)
	}
	for _, perm := range []*browser.PermissionDescriptor{{Name: "clipboard-read"}, {Name: "clipboard-write", AllowWithoutSanitization: true}} {
		if _, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: perm, Setting: browser.PermissionSettingGranted, Origin: base,
		}); err != nil {
			t.Fatalf("grant %s: %v", perm.Name, err)
		}
	}

	type offer struct {
		Product, Text, Disclaimer, Risk string
		Reasons                         int
	}
	offers := eval[[]offer](t, ctx, `[...document.querySelectorAll("article.offer")].map(a => ({
		Product: a.dataset.product, Text: a.querySelector(".message").textContent,
		Disclaimer: (a.querySelector(".disclaimer") || {}).textContent || "",
		Risk: a.querySelector(".tag.risk").textContent, Reasons: a.querySelectorAll(".tag.reason").length}))`)
	if len(offers) != 3 {
		t.Fatalf("the panel shows %d offers for %s, want 3", len(offers), valid)
	}
	for _, o := range offers {
		p, err := cat.Product(o.Product)
		if err != nil {
			t.Fatalf("offer %q: %v", o.Product, err)
		}
		if o.Reasons == 0 {
			t.Errorf("%s: no reasons", o.Product)
		}
		if want := cat.Disclaimer(p); want != "" && o.Disclaimer != want {
			t.Errorf("%s: risk warning %q, want %q", o.Product, o.Disclaimer, want)
		}
		if p.Risk > 0 && !strings.Contains(o.Risk, p.Risk.String()) {
			t.Errorf("%s: risk tag %q, want %s", o.Product, o.Risk, p.Risk)
		}
	}
	if eval[bool](t, ctx, `!document.getElementById("assessment-hint").classList.contains("hidden")`) {
		t.Error("the re-assessment hint shows for a valid assessment")
	}
	screenshot(t, ctx, "panel-360")

	// Keyboard only: Tab to the first offer's send button and press Enter.
	first := offers[0].Product
	before := statsOf(t, manager, base)
	do(t, ctx, "focus the search box", chromedp.Focus(chromedp.ID("customer-id")))
	for i := 0; ; i++ {
		if i == 40 {
			t.Fatal("Tab never reached the first send button")
		}
		if eval[bool](t, ctx, fmt.Sprintf(`document.activeElement && document.activeElement.dataset.action === "send" && document.activeElement.closest("article").dataset.product === %q`, first)) {
			break
		}
		do(t, ctx, "Tab", chromedp.KeyEvent(kb.Tab))
	}
	do(t, ctx, "press Enter", chromedp.KeyEvent(kb.Enter))
	waitFor(t, ctx, "the send was not confirmed", fmt.Sprintf(`(() => { const r = document.querySelector('article[data-product=%q] .result'); return r && r.classList.contains("ok"); })()`, first))
	clip, err := chromedp.Run(ctx, chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("read the clipboard: %v", err)
	}
	if !strings.Contains(clip, offers[0].Disclaimer) || !strings.HasPrefix(offers[0].Text, clip[:min(len(clip), 12)]) {
		t.Errorf("the clipboard holds %q", clip)
	}
	after := statsOf(t, manager, base)
	imp := func(r api.StatsRow) int64 { return r.Impressions }
	if got := count(after, "demo-agent", first, imp) - count(before, "demo-agent", first, imp); got != 1 {
		t.Errorf("the send counted %d impressions for demo-agent, want 1", got)
	}

	// A failed post is kept and retried: block the events endpoint, dismiss
	// the second offer, then let it through.
	second := offers[1].Product
	block := func(patterns ...string) {
		t.Helper()
		bp := make([]*network.BlockPattern, len(patterns))
		for i, p := range patterns {
			bp[i] = &network.BlockPattern{URLPattern: p, Block: true}
		}
		if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
			t.Fatal(err)
		}
		if _, err := chromedp.Call(ctx, network.SetBlockedURLs, network.SetBlockedURLsParams{URLPatterns: bp}); err != nil {
			t.Fatal(err)
		}
	}
	block(base + "/v1/events")
	do(t, ctx, "dismiss", chromedp.Click(chromedp.CSS(fmt.Sprintf(`article[data-product=%q] button[data-action="dismiss"]`, second))))
	waitFor(t, ctx, "the failed post was not kept", `!document.getElementById("outbox").classList.contains("hidden") && localStorage.getItem("nbp.outbox.demo-agent").includes("dismiss")`)
	screenshot(t, ctx, "panel-retrying")
	block()
	waitFor(t, ctx, "the failed post was not retried", fmt.Sprintf(`(() => { const r = document.querySelector('article[data-product=%q] .result'); return r && r.classList.contains("ok") && JSON.parse(localStorage.getItem("nbp.outbox.demo-agent")).length === 0; })()`, second))
	dis := func(r api.StatsRow) int64 { return r.Dismissals }
	if got := count(statsOf(t, manager, base), "demo-agent", second, dis) - count(after, "demo-agent", second, dis); got != 1 {
		t.Errorf("the retried dismissal counted %d times, want 1", got)
	}

	// An expired assessment: the hint, and no investment product.
	do(t, ctx, "open the expired customer", chromedp.Navigate(base+"/panel/?customer="+expired))
	ready(t, ctx)
	if !eval[bool](t, ctx, `!document.getElementById("assessment-hint").classList.contains("hidden") && document.getElementById("assessment-hint").textContent.includes("风险测评已过期")`) {
		t.Error("no re-assessment hint for an expired assessment")
	}
	for _, id := range eval[[]string](t, ctx, `[...document.querySelectorAll("article.offer")].map(a => a.dataset.product)`) {
		if p, err := cat.Product(id); err != nil || p.Risk > 0 {
			t.Errorf("%s, with an expired assessment, was offered %s", expired, id)
		}
	}
	screenshot(t, ctx, "panel-expired")

	// A WeCom contact that is not linked: a clear state, not an error.
	do(t, ctx, "open an unlinked contact", chromedp.Navigate(base+"/panel/?contact=wmNOBODY"))
	ready(t, ctx)
	if !eval[bool](t, ctx, `!document.getElementById("contact-state").classList.contains("hidden") && document.getElementById("error").classList.contains("hidden")`) {
		t.Error("an unlinked contact does not show its state")
	}

	// An agent may not see the dashboard.
	do(t, ctx, "open the dashboard as an agent", chromedp.Navigate(base+"/dashboard/"))
	waitFor(t, ctx, "the dashboard did not refuse an agent", `!document.getElementById("error").classList.contains("hidden")`)

	// The manager's dashboard, at desktop width.
	do(t, ctx, "sign out", chromedp.Click(chromedp.ID("logout")), chromedp.WaitVisible(chromedp.CSS(`#demo-login button[value="demo-manager"]`)))
	do(t, ctx, "sign in as demo-manager", chromedp.EmulateViewport(1280, 900), chromedp.Click(chromedp.CSS(`#demo-login button[value="demo-manager"]`)))
	waitFor(t, ctx, "the dashboard after the login", `location.pathname === "/dashboard/" && document.body.dataset.ready === "1"`)
	if got := eval[string](t, ctx, `location.pathname`); got != "/dashboard/" {
		t.Fatalf("the manager landed on %s", got)
	}
	type bar struct{ Bars, Whiskers, Rows int }
	up := eval[bar](t, ctx, `(() => { const o = echarts.getInstanceByDom(document.getElementById("uplift-chart")).getOption();
		return {Bars: o.series[0].data.length, Whiskers: o.series[1].data.length, Rows: document.querySelectorAll("#uplift-table tr").length - 1}; })()`)
	st := statsOf(t, manager, base)
	if up.Bars == 0 || up.Bars != len(st.Uplift) || up.Whiskers != up.Bars || up.Rows != up.Bars {
		t.Errorf("the uplift chart draws %+v, the stats have %d uplifts", up, len(st.Uplift))
	}
	// The model ranks by what the simulated customers take up; the
	// control group at random: the model's click-through is the higher.
	// (Whether the interval excludes 0 depends on the control group's
	// size, a hash of the month: with the demo's 10,000 customers it
	// usually does, see the README.)
	ahead := false
	for _, u := range st.Uplift {
		ahead = ahead || u.Channel == "app_feed" && u.Metric == "click_through_rate" && u.Difference > 0
	}
	if !ahead {
		t.Errorf("the demo week shows no uplift of the model's click-through on the app feed: %+v", st.Uplift)
	}
	if eval[int](t, ctx, `document.querySelectorAll("#rows tr").length`) < 10 {
		t.Error("the dashboard's table is nearly empty")
	}
	screenshot(t, ctx, "dashboard-desktop")

	// The CSV export is what the page shows.
	dl := t.TempDir()
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dl}); err != nil {
		t.Fatalf("allow downloads: %v", err)
	}
	do(t, ctx, "export", chromedp.Click(chromedp.ID("export")))
	var csv []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && csv == nil; time.Sleep(100 * time.Millisecond) {
		if m, _ := filepath.Glob(filepath.Join(dl, "nbp-stats-*.csv")); len(m) == 1 {
			csv, _ = os.ReadFile(m[0])
		}
	}
	if !strings.Contains(string(csv), "product_id") || !strings.Contains(string(csv), "newcombe_hybrid_score_95") {
		t.Errorf("the export: %.300q", csv)
	}

	do(t, ctx, "the dashboard on a phone", chromedp.EmulateViewport(360, 780), chromedp.Reload())
	ready(t, ctx)
	screenshot(t, ctx, "dashboard-360")
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
}

// newDemoBank is the bank -demo loads, with its default seed.
func newDemoBank(t *testing.T, cat *catalog.Catalog, now time.Time) *demobank.Bank {
	t.Helper()
	bank, err := demobank.New(42, now.UTC().Truncate(24*time.Hour), cat)
	if err != nil {
		t.Fatal(err)
	}
	return bank
}

// TestPageAccess holds the pages' sessions to their roles: bad sessions get
// the JSON 401, agents are kept to their own channel and events, managers
// to the dashboard's endpoints, and every state change needs the CSRF
// token.
func TestPageAccess(t *testing.T) {
	addr, stop := start(t, []string{"-demo", "-demo-n", "200", "-demo-traffic=false", "-demo-dir", t.TempDir(), "-addr", "127.0.0.1:0"}, testEnv(t, nil))
	base := strings.Replace(addr, "127.0.0.1", "localhost", 1)
	status := func(c *http.Client, method, path, body string, hdr map[string]string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var e api.ErrorResponse
		_ = json.Unmarshal(b, &e)
		return resp.StatusCode, e.Error.Code
	}
	// A made-up session: 401 in the JSON error shape.
	bogus := &http.Client{}
	for _, p := range []string{"/v1/stats", "/v1/customers/C000000001/recommendations?channel=wecom_agent", "/v1/session"} {
		req, _ := http.NewRequest(http.MethodGet, base+p, nil)
		req.AddCookie(&http.Cookie{Name: "nbp_session", Value: "not-a-session"})
		resp, err := bogus.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e api.ErrorResponse
		err = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != 401 || err != nil || e.Error.Code == "" {
			t.Errorf("%s with a bad session: %d %+v %v", p, resp.StatusCode, e, err)
		}
	}

	// Every answer to a page's call is checked against openapi.json.
	checked := apitest.Transport(t, http.DefaultTransport.(*http.Transport).Clone())
	agent := demoLogin(t, base, "demo-agent")
	agent.Transport = checked
	var sess struct {
		CSRF string `json:"csrf_token"`
	}
	resp, err := agent.Get(base + "/v1/session")
	if err != nil {
		t.Fatal(err)
	}
	_ = json.NewDecoder(resp.Body).Decode(&sess)
	resp.Body.Close()
	csrf := map[string]string{"X-CSRF-Token": sess.CSRF}
	// event is one impression on a channel, naming an agent when agentID
	// is set.
	event := func(agentID, channel string) string {
		agent := ""
		if agentID != "" {
			agent = `,"agent_id":"` + agentID + `"`
		}
		return fmt.Sprintf(`{"events":[{"event_id":"t-%s-%s","customer_id":"C000000001","product_id":"TD_3M","channel":%q,"type":"impression","at":%q%s}]}`,
			agentID, channel, channel, time.Now().UTC().Format(time.RFC3339), agent)
	}
	for _, c := range []struct {
		method, path, body string
		hdr                map[string]string
		status             int
		code               string
	}{
		{"GET", "/v1/customers/C000000001/recommendations?channel=wecom_agent", "", nil, 200, ""},
		{"GET", "/v1/customers/C000000001/recommendations?channel=app_feed", "", nil, 403, api.CodeForbidden},
		{"GET", "/v1/customers/C000000001/profile", "", nil, 200, ""},
		{"GET", "/v1/stats", "", nil, 403, api.CodeForbidden},
		{"GET", "/v1/overview", "", nil, 403, api.CodeForbidden},
		{"PUT", "/v1/contacts", `{"links":[{"external_userid":"wmX","customer_id":"C1"}]}`, csrf, 403, api.CodeForbidden},
		{"GET", "/v1/decisions/01JDZ3Q4T5V6W7X8Y9Z0A1B2C3", "", nil, 403, api.CodeForbidden},
		{"POST", "/v1/events", event("", "wecom_agent"), nil, 403, "csrf_failed"},
		{"POST", "/v1/events", event("", "wecom_agent"), map[string]string{"X-CSRF-Token": "wrong"}, 403, "csrf_failed"},
		{"POST", "/v1/events", event("", "wecom_agent"), csrf, 200, ""},
	} {
		if got, code := status(agent, c.method, c.path, c.body, c.hdr); got != c.status || code != c.code {
			t.Errorf("agent %s %s: %d %q, want %d %q", c.method, c.path, got, code, c.status, c.code)
		}
	}
	// Events as someone else, or on another channel, are refused one by one.
	for _, body := range []string{event("agent-li", "wecom_agent"), event("", "app_feed")} {
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/events", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-CSRF-Token", sess.CSRF)
		resp, err := agent.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var er api.EventsResponse
		err = json.NewDecoder(resp.Body).Decode(&er)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || er.Accepted != 0 || len(er.Rejected) != 1 || er.Rejected[0].Code != api.CodeInvalidAgent {
			t.Errorf("%s: %d %+v %v", body, resp.StatusCode, er, err)
		}
	}

	manager := demoLogin(t, base, "demo-manager")
	manager.Transport = checked
	for _, c := range []struct {
		path   string
		status int
	}{
		{"/v1/stats?group_by=team", 200}, {"/v1/overview", 200}, {"/v1/catalog", 200},
		{"/v1/customers/C000000001/recommendations?channel=wecom_agent", 403}, {"/v1/customers/C000000001/profile", 403},
	} {
		if got, _ := status(manager, "GET", c.path, "", nil); got != c.status {
			t.Errorf("manager %s: %d, want %d", c.path, got, c.status)
		}
	}
	// The agent's event is in the team's stats, under the demo agent's team.
	resp, err = manager.Get(base + "/v1/stats?group_by=team")
	if err != nil {
		t.Fatal(err)
	}
	var st api.StatsResponse
	_ = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	found := false
	for _, r := range st.Rows {
		found = found || r.Team == "直营一组" && r.ProductID == "TD_3M" && r.Impressions >= 1
	}
	if !found {
		t.Errorf("the agent's event is not under 直营一组: %+v", st.Rows)
	}
	// A login form posted from another site is refused.
	req, _ := http.NewRequest(http.MethodPost, base+"/auth/demo", strings.NewReader("user=demo-manager"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	resp, err = (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 || len(resp.Cookies()) != 0 {
		t.Errorf("a cross-site login: %d %v", resp.StatusCode, resp.Cookies())
	}
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
}

// wecomStub stands in for the JS-SDK inside WeCom: the page's own copy of
// it cannot replace a global that is already defined and read-only. It
// records the registration's signatures and the messages sent.
const wecomStub = `Object.defineProperty(window, "ww", { writable: false, configurable: false, value: {
	register(o) {
		window.__registered = Promise.all([o.getConfigSignature(location.href), o.getAgentConfigSignature(location.href)])
			.then((s) => { window.__signatures = s; });
		window.__apis = o.jsApiList;
	},
	getCurExternalContact() { return Promise.resolve({ errMsg: "getCurExternalContact:ok", userId: window.__contact }); },
	sendChatMessage(m) { (window.__sent = window.__sent || []).push(m); return Promise.resolve({ errMsg: "sendChatMessage:ok" }); },
} });`

// TestPanelInsideWeCom opens the panel as the WeCom client would (its user
// agent, the JS-SDK's calls answered by a stub, the tickets by a fake
// WeCom server): it registers with signatures from nbp, finds the customer
// behind the chat's contact, and sends the message into the chat.
func TestPanelInsideWeCom(t *testing.T) {
	ctx := newBrowser(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/cgi-bin/gettoken", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"errcode":0,"access_token":"tok","expires_in":7200}`)
	})
	for _, p := range []string{"/cgi-bin/get_jsapi_ticket", "/cgi-bin/ticket/get"} {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `{"errcode":0,"ticket":"ticket-%s","expires_in":7200}`, r.URL.Query().Get("type"))
		})
	}
	fake := httptest.NewServer(mux)
	t.Cleanup(fake.Close)
	addr, stop := start(t, []string{"-demo", "-demo-n", "200", "-demo-traffic=false", "-demo-dir", t.TempDir(), "-addr", "127.0.0.1:0"},
		testEnv(t, map[string]string{"NBP_WECOM_CORP_ID": "ww-corp", "NBP_WECOM_AGENT_ID": "1000002", "NBP_WECOM_SECRET": "s3cret", "NBP_WECOM_API_BASE": fake.URL}))
	base := strings.Replace(addr, "127.0.0.1", "localhost", 1)
	now := time.Now()
	cat, err := catalog.DefaultAt(now)
	if err != nil {
		t.Fatal(err)
	}
	valid, _ := panelCustomers(newDemoBank(t, cat, now), now)

	if _, err := chromedp.Call(ctx, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{
		UserAgent: "Mozilla/5.0 (Linux; Android 14) Mobile wxwork/4.1.30 MicroMessenger/7.0.1 Language/zh"}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: wecomStub + fmt.Sprintf("window.__contact = %q;", demoContact(valid))}); err != nil {
		t.Fatal(err)
	}
	do(t, ctx, "sign in", chromedp.EmulateViewport(360, 780), chromedp.Navigate(base+"/login/"),
		chromedp.WaitVisible(chromedp.CSS(`#demo-login button[value="demo-agent"]`)),
		chromedp.Click(chromedp.CSS(`#demo-login button[value="demo-agent"]`)))
	waitFor(t, ctx, "the panel", `location.pathname === "/panel/" && document.body.dataset.ready === "1"`)
	waitFor(t, ctx, "the registration's signatures", `window.__signatures && window.__signatures.length === 2`)
	type sig struct {
		Timestamp int64
		NonceStr  string
		Signature string
	}
	sigs := eval[[]sig](t, ctx, `window.__signatures`)
	for _, s := range sigs {
		if len(s.Signature) != 40 || s.NonceStr == "" || s.Timestamp == 0 {
			t.Errorf("signature %+v", s)
		}
	}
	if sigs[0].Signature == sigs[1].Signature {
		t.Error("the corp and agent signatures are the same: one ticket signed both")
	}
	if got := eval[string](t, ctx, `document.getElementById("customer-id").value`); got != valid {
		t.Fatalf("the chat's contact led to customer %q, want %s", got, valid)
	}
	offers := eval[[]string](t, ctx, `[...document.querySelectorAll("article.offer")].map(a => a.dataset.product)`)
	if len(offers) != 3 || eval[string](t, ctx, `document.querySelector('button[data-action="send"]').textContent`) != "发送" {
		t.Fatalf("offers %v", offers)
	}
	do(t, ctx, "send", chromedp.Click(chromedp.CSS(`button[data-action="send"]`)))
	waitFor(t, ctx, "the send confirmed", `(() => { const r = document.querySelector("article.offer .result"); return r && r.classList.contains("ok") && r.textContent.includes("已发送到会话"); })()`)
	type msg struct {
		Msgtype string
		Text    struct{ Content string }
	}
	sent := eval[[]msg](t, ctx, `window.__sent`)
	p, err := cat.Product(offers[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(sent) != 1 || sent[0].Msgtype != "text" || !strings.HasSuffix(sent[0].Text.Content, cat.Disclaimer(p)) {
		t.Errorf("sent into the chat: %+v", sent)
	}
	screenshot(t, ctx, "panel-in-wecom")
	if err := stop(); err != nil {
		t.Fatalf("run: %v", err)
	}
}
