package web

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// WeCom is the bank's self-built WeCom app (自建应用) the pages log in
// with: its OAuth code exchange gives the agent's userid, and its tickets
// sign the JS-SDK's registration in the chat sidebar. The WeCom server is
// reached at the URLs below (tests point them at a fake).
type WeCom struct {
	CorpID  string // 企业ID
	AgentID string // the app's AgentId
	// Secret is the app's Secret: it never leaves the server.
	Secret string
	// APIBase is the WeCom server API; default https://qyapi.weixin.qq.com.
	APIBase string
	// AuthorizeURL is where the WeCom client authorizes (inside WeCom);
	// default https://open.weixin.qq.com/connect/oauth2/authorize.
	AuthorizeURL string
	// SSOURL is the desktop browser's login by QR code; default
	// https://login.work.weixin.qq.com/wwlogin/sso/login.
	SSOURL string
	// HTTPClient calls the WeCom server; default one with a 5s timeout.
	HTTPClient *http.Client

	mu     sync.Mutex
	token  cached
	corpT  cached // jsapi_ticket of the corporation
	agentT cached // jsapi_ticket of the app (agent_config)
}

type cached struct {
	value   string
	expires time.Time
}

func (w *WeCom) defaults() {
	if w.APIBase == "" {
		w.APIBase = "https://qyapi.weixin.qq.com"
	}
	if w.AuthorizeURL == "" {
		w.AuthorizeURL = "https://open.weixin.qq.com/connect/oauth2/authorize"
	}
	if w.SSOURL == "" {
		w.SSOURL = "https://login.work.weixin.qq.com/wwlogin/sso/login"
	}
	if w.HTTPClient == nil {
		w.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
}

// errNotMember is a login by someone who is not a member of the
// corporation (a WeChat user, an external contact).
var errNotMember = errors.New("wecom: not a member of the corporation")

// loginURL is where a browser goes to log in: the OAuth authorize page
// inside WeCom, or the QR-code login on a desktop browser.
func (w *WeCom) loginURL(redirect, state string, qr bool) string {
	if qr {
		q := url.Values{"login_type": {"CorpApp"}, "appid": {w.CorpID}, "agentid": {w.AgentID},
			"redirect_uri": {redirect}, "state": {state}}
		return w.SSOURL + "?" + q.Encode()
	}
	// The parameters in the order WeCom documents; the fragment is required.
	return w.AuthorizeURL + "?appid=" + url.QueryEscape(w.CorpID) + "&redirect_uri=" + url.QueryEscape(redirect) +
		"&response_type=code&scope=snsapi_base&state=" + url.QueryEscape(state) +
		"&agentid=" + url.QueryEscape(w.AgentID) + "#wechat_redirect"
}

// apiReply is the envelope of every WeCom server answer.
type apiReply struct {
	ErrCode   int    `json:"errcode"`
	ErrMsg    string `json:"errmsg"`
	Token     string `json:"access_token"`
	Ticket    string `json:"ticket"`
	ExpiresIn int    `json:"expires_in"`
	UserID    string `json:"userid"`
}

// WeCom's codes for an access token that expired or was revoked.
const (
	errTokenInvalid = 40014
	errTokenExpired = 42001
)

func (w *WeCom) get(ctx context.Context, path string, q url.Values) (apiReply, error) {
	var r apiReply
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.APIBase+path+"?"+q.Encode(), nil)
	if err != nil {
		return r, err
	}
	resp, err := w.HTTPClient.Do(req)
	if err != nil {
		// The URL holds the secret or the token: say only where it went.
		return r, fmt.Errorf("wecom %s: unreachable", path)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return r, fmt.Errorf("wecom %s: status %d", path, resp.StatusCode)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&r); err != nil {
		return r, fmt.Errorf("wecom %s: %w", path, err)
	}
	if r.ErrCode != 0 {
		return r, fmt.Errorf("wecom %s: errcode %d (%s)", path, r.ErrCode, r.ErrMsg)
	}
	return r, nil
}

// accessToken returns the app's access token, fetched again a few minutes
// before it expires (WeCom gives them for 7,200 s) or when WeCom said it
// no longer holds.
func (w *WeCom) accessToken(ctx context.Context, now time.Time, renew bool) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !renew && w.token.value != "" && now.Before(w.token.expires) {
		return w.token.value, nil
	}
	r, err := w.get(ctx, "/cgi-bin/gettoken", url.Values{"corpid": {w.CorpID}, "corpsecret": {w.Secret}})
	if err != nil {
		return "", err
	}
	w.token = cached{value: r.Token, expires: now.Add(time.Duration(r.ExpiresIn)*time.Second - 5*time.Minute)}
	return r.Token, nil
}

// call calls the API with the access token, once more with a new token
// when WeCom says the token no longer holds.
func (w *WeCom) call(ctx context.Context, path string, q url.Values, now time.Time) (apiReply, error) {
	for attempt := 0; ; attempt++ {
		tok, err := w.accessToken(ctx, now, attempt > 0)
		if err != nil {
			return apiReply{}, err
		}
		q.Set("access_token", tok)
		r, err := w.get(ctx, path, q)
		if err != nil && attempt == 0 && (r.ErrCode == errTokenInvalid || r.ErrCode == errTokenExpired) {
			continue
		}
		return r, err
	}
}

// userID exchanges an OAuth code for the member's userid.
func (w *WeCom) userID(ctx context.Context, code string, now time.Time) (string, error) {
	r, err := w.call(ctx, "/cgi-bin/auth/getuserinfo", url.Values{"code": {code}}, now)
	if err != nil {
		return "", err
	}
	if r.UserID == "" {
		return "", errNotMember
	}
	return r.UserID, nil
}

// ticket returns the corporation's (agent false) or the app's JS-SDK
// ticket, cached for its lifetime.
func (w *WeCom) ticket(ctx context.Context, agent bool, now time.Time) (string, error) {
	w.mu.Lock()
	c := w.corpT
	if agent {
		c = w.agentT
	}
	w.mu.Unlock()
	if c.value != "" && now.Before(c.expires) {
		return c.value, nil
	}
	path, q := "/cgi-bin/get_jsapi_ticket", url.Values{}
	if agent {
		path, q = "/cgi-bin/ticket/get", url.Values{"type": {"agent_config"}}
	}
	r, err := w.call(ctx, path, q, now)
	if err != nil {
		return "", err
	}
	c = cached{value: r.Ticket, expires: now.Add(time.Duration(r.ExpiresIn)*time.Second - 5*time.Minute)}
	w.mu.Lock()
	if agent {
		w.agentT = c
	} else {
		w.corpT = c
	}
	w.mu.Unlock()
	return c.value, nil
}

// Signature is what the JS-SDK's register needs to sign a page.
type Signature struct {
	Timestamp int64  `json:"timestamp"`
	NonceStr  string `json:"nonceStr"`
	Signature string `json:"signature"`
}

// sign signs a page URL (without its fragment) with a ticket, as WeCom
// specifies: SHA-1 of "jsapi_ticket=T&noncestr=N&timestamp=TS&url=URL".
func sign(ticket, nonce string, ts int64, pageURL string) Signature {
	s := "jsapi_ticket=" + ticket + "&noncestr=" + nonce + "&timestamp=" + strconv.FormatInt(ts, 10) + "&url=" + pageURL
	sum := sha1.Sum([]byte(s))
	return Signature{Timestamp: ts, NonceStr: nonce, Signature: hex.EncodeToString(sum[:])}
}
