// nbp.js: what the pages share. The pages call the /v1 API with the session
// cookie; state-changing calls carry the session's CSRF token. No key, no
// secret lives here.
"use strict";

const nbp = (() => {
  let session = null;
  let skew = 0; // the server's clock minus the device's, in ms

  class APIError extends Error {
    constructor(status, code, message) {
      super(message || code);
      this.status = status;
      this.code = code;
    }
  }

  // call fetches an API path and returns its JSON; a non-2xx answer throws
  // an APIError with the server's code. A 401 sends the page to the login.
  async function call(path, opts = {}) {
    const headers = Object.assign({ Accept: "application/json" }, opts.headers || {});
    if (opts.body !== undefined) headers["Content-Type"] = "application/json";
    if (opts.method && opts.method !== "GET" && session) headers["X-CSRF-Token"] = session.csrf_token;
    let resp;
    try {
      resp = await fetch(path, {
        method: opts.method || "GET",
        headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        credentials: "same-origin",
        cache: "no-store",
      });
    } catch (e) {
      throw new APIError(0, "network", "网络连接失败");
    }
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (!resp.ok) {
      const err = (body && body.error) || {};
      const ae = new APIError(resp.status, err.code || "http_" + resp.status, err.message);
      if (resp.status === 401 && !opts.noLoginPrompt) showLogin();
      throw ae;
    }
    return body;
  }

  // loginURL is where to sign in: WeCom's OAuth inside WeCom, else /login/.
  function loginURL() {
    const next = location.pathname + location.search;
    if (/wxwork/i.test(navigator.userAgent)) return "/auth/wecom?next=" + encodeURIComponent(next);
    return "/login/?next=" + encodeURIComponent(next);
  }

  function showLogin() {
    const box = document.getElementById("login-prompt");
    if (box) {
      box.querySelector("a").href = loginURL();
      box.classList.remove("hidden");
      const main = document.getElementById("content");
      if (main) main.classList.add("hidden");
    }
  }

  // CHANNELS names the channels for the pages.
  const CHANNELS = { app_feed: "App 首页", wecom_agent: "企业微信", batch: "批量触达" };

  // start reads the session and the catalog's names; without a session,
  // the login prompt shows, and start returns null.
  async function start(role) {
    try {
      const asked = Date.now();
      session = await call("/v1/session");
      skew = Date.parse(session.now) - (asked + Date.now()) / 2;
    } catch (e) {
      if (e.status !== 401) showError(e);
      return null;
    }
    const who = document.getElementById("who");
    if (who) who.textContent = session.user_id + (session.team ? " · " + session.team : "");
    const out = document.getElementById("logout");
    if (out) {
      out.classList.remove("hidden");
      out.addEventListener("click", async () => {
        try { await call("/auth/logout", { method: "POST" }); } catch (e) { /* gone already */ }
        location.href = loginURL();
      });
    }
    if (role && session.role !== role) {
      showError(role === "manager" ? "此页面仅供运营经理使用" : "此页面仅供客户经理使用");
      return null;
    }
    try {
      return { session, catalog: await call("/v1/catalog") };
    } catch (e) {
      showError(e);
      return null;
    }
  }

  // showError shows an APIError's message, or a page's own text.
  function showError(e) {
    const box = document.getElementById("error");
    if (!box) return;
    box.textContent = typeof e === "string" ? e : message(e);
    box.classList.remove("hidden");
  }

  function message(e) {
    switch (e.code) {
      case "network": return "网络连接失败，请检查网络后重试";
      case "unavailable": case "timeout": case "overloaded": return "服务暂时繁忙，请稍后重试";
      case "forbidden": return "没有权限进行此操作";
      case "session_expired": case "unauthorized": return "登录已过期，请重新登录";
      default: return "出错了（" + e.code + "）";
    }
  }

  // el builds an element: el("div", {class: "x"}, "text", child, ...).
  function el(tag, attrs, ...children) {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") n.className = v;
      else if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
      else n.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      n.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return n;
  }

  const pct = (x, digits = 2) => (x === null || x === undefined || isNaN(x)) ? "—" : (x * 100).toFixed(digits) + "%";

  // now is the server's time: events are timed by it, whatever the
  // device's clock says.
  const now = () => new Date(Date.now() + skew);

  return { call, start, showError, message, el, pct, now, CHANNELS, session: () => session };
})();
