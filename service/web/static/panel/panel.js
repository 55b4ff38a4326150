// The agent panel (客户经理助手): the current customer's profile and ranked
// offers, with ready-to-send messages. Inside WeCom, the customer is the
// chat's external contact and "send" posts into the chat; in a plain
// browser, the customer comes from the search box (or ?customer= and
// ?contact=) and "send" copies the message.
"use strict";

(async () => {
  const { el, call } = nbp;
  const $ = (id) => document.getElementById(id);
  const CHANNELS = nbp.CHANNELS;
  const DEGRADED = {
    model_fallback: "模型暂不可用，以下为通用推荐",
    features_unavailable: "客户数据暂不可用，以下为通用推荐",
    features_stale: "客户数据未及时更新，推荐仅供参考",
    features_corrupt: "客户数据读取异常，以下为通用推荐",
  };

  const started = await nbp.start("agent");
  if (!started) return;
  const { session, catalog } = started;
  const categories = Object.fromEntries(catalog.categories.map((c) => [c.id, c]));
  const inWeCom = /wxwork/i.test(navigator.userAgent) && typeof ww !== "undefined" && session.wecom;

  // ---- The outbox: every outcome event waits here, in localStorage, until
  // the server took it. A failed post is retried with backoff; nothing is
  // dropped silently. Event ids make a retry or a double click count once.
  const OUTBOX = "nbp.outbox." + session.user_id;
  const readOutbox = () => { try { return JSON.parse(localStorage.getItem(OUTBOX)) || []; } catch (e) { return []; } };
  const writeOutbox = (evs) => localStorage.setItem(OUTBOX, JSON.stringify(evs));
  const results = new Map(); // event_id -> the offer's result line
  let backoff = 0, timer = null, flushing = false;

  function showOutbox(extra) {
    const n = readOutbox().length;
    const box = $("outbox");
    if (n === 0 && !extra) { box.classList.add("hidden"); return; }
    box.textContent = extra || ("有 " + n + " 条操作记录正在提交，网络恢复后会自动重试");
    box.classList.remove("hidden");
  }

  function setResult(id, cls, text) {
    const r = results.get(id);
    if (!r) return;
    r.className = "result " + cls;
    r.textContent = text;
  }

  async function flush() {
    if (flushing) return;
    const pending = readOutbox();
    if (pending.length === 0) { showOutbox(); return; }
    flushing = true;
    clearTimeout(timer);
    try {
      const batch = pending.slice(0, 100);
      const resp = await call("/v1/events", { method: "POST", body: { events: batch.map((p) => p.event) } });
      const rejected = new Map(resp.rejected.map((r) => [r.index, r]));
      batch.forEach((p, i) => {
        const rej = rejected.get(i);
        if (rej) setResult(p.event.event_id, "bad", "未记录：" + rej.message);
        else setResult(p.event.event_id, "ok", p.done);
      });
      const sent = new Set(batch.map((p) => p.event.event_id));
      writeOutbox(readOutbox().filter((p) => !sent.has(p.event.event_id)));
      backoff = 0;
      if (readOutbox().length > 0) timer = setTimeout(flush, 0);
    } catch (e) {
      const why = e.status === 0 ? "网络连接失败" : nbp.message(e);
      for (const p of pending) setResult(p.event.event_id, "pending", "提交失败，稍后自动重试（" + why + "）");
      if (e.status !== 401) {
        backoff = Math.min(60000, backoff ? backoff * 2 : 2000);
        timer = setTimeout(flush, backoff);
      }
    } finally {
      flushing = false;
      showOutbox();
    }
  }

  // eventID is an action's id: one per decision, product and type, so a
  // double click or a retry counts once.
  const eventID = (d, item, type) => (d.decision_id + "-" + item.product_id + "-" + type).slice(0, 64);

  function record(d, item, type, done) {
    const event = {
      event_id: eventID(d, item, type),
      customer_id: d.customer_id, product_id: item.product_id, channel: "wecom_agent",
      type, decision_id: d.decision_id, at: nbp.now().toISOString(), agent_id: session.user_id,
    };
    const box = readOutbox();
    if (!box.some((p) => p.event.event_id === event.event_id)) {
      box.push({ event, done });
      writeOutbox(box);
    }
    setResult(event.event_id, "pending", "正在提交…");
    return flush();
  }
  window.addEventListener("online", flush);

  // ---- Sending: into the chat inside WeCom, to the clipboard elsewhere.
  let signatures = null;
  function signature(which) {
    if (!signatures) {
      signatures = call("/v1/wecom/signatures?url=" + encodeURIComponent(location.href.split("#")[0]));
    }
    return signatures.then((s) => s[which]);
  }
  if (inWeCom) {
    ww.register({
      corpId: session.wecom.corp_id, agentId: session.wecom.agent_id,
      jsApiList: ["getCurExternalContact", "sendChatMessage"],
      getConfigSignature: () => signature("corp"),
      getAgentConfigSignature: () => signature("agent"),
    });
  }

  async function copy(text) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch (e) {
      const ta = el("textarea", { class: "sr-only", readonly: true });
      ta.value = text;
      document.body.append(ta);
      ta.select();
      let ok = false;
      try { ok = document.execCommand("copy"); } catch (e2) { ok = false; }
      ta.remove();
      return ok;
    }
  }

  async function send(text) {
    if (inWeCom) {
      await ww.sendChatMessage({ msgtype: "text", text: { content: text } });
      return "已发送到会话";
    }
    if (await copy(text)) return "已复制，请粘贴发送给客户";
    throw new Error("copy");
  }

  // ---- The customer.
  function factsFor(p) {
    const facts = [];
    let risk = "未测评";
    if (p.assessment === "valid") risk = p.risk_tolerance + " · 测评有效至 " + p.assessed_until;
    else if (p.assessment === "expired") risk = p.risk_tolerance + " · 测评已于 " + p.assessed_until + " 过期";
    facts.push(["风险承受能力", risk, p.assessment !== "valid"]);
    facts.push(["营销授权", p.marketing_consent ? "已授权" : "未授权（不可发送营销信息）", !p.marketing_consent]);
    facts.push(["个性化推荐", p.personalisation_opt_out ? "客户已关闭，仅通用推荐" : "已开启", p.personalisation_opt_out]);
    for (const c of p.push_caps) {
      facts.push([(CHANNELS[c.channel] || c.channel) + "频次", "近 " + c.days + " 天 " + c.used + "/" + c.max + " 次" + (c.reached ? "（已达上限）" : ""), c.reached]);
    }
    if (p.impression_capped > 0) facts.push(["近期已推荐", p.impression_capped + " 款产品已达推荐次数上限，暂不重复", true]);
    return facts;
  }

  function showProfile(p) {
    const box = $("profile");
    box.classList.remove("hidden");
    $("profile-title").textContent = p.known ? (p.salutation || "客户") + "（" + p.customer_id + "）" : "客户 " + p.customer_id;
    const dl = $("facts");
    dl.replaceChildren();
    if (!p.known) {
      dl.append(el("dt", {}, "客户数据"), el("dd", {}, "暂无该客户的数据，以下为通用推荐"));
    } else {
      for (const [k, v, warn] of factsFor(p)) dl.append(el("dt", {}, k), el("dd", { class: warn ? "warn-text" : "" }, v));
    }
    const hint = $("assessment-hint");
    if (p.known && p.assessment !== "valid") {
      hint.textContent = (p.assessment === "expired" ? "客户的风险测评已过期" : "客户尚未完成风险测评") +
        "，理财、基金等投资类产品暂不推荐。可邀请客户在手机银行完成风险测评后再为其推荐。";
      hint.classList.remove("hidden");
    } else {
      hint.classList.add("hidden");
    }
  }

  function offerCard(d, item) {
    const cg = categories[item.category];
    const text = item.copy.body + (item.copy.disclaimer ? "\n" + item.copy.disclaimer : "");
    const line = el("div", { class: "result", "aria-live": "polite" });
    const card = el("article", { class: "offer", "data-product": item.product_id },
      el("div", { class: "row" }, el("span", { class: "rank", "aria-hidden": "true" }, item.rank),
        el("h3", { class: "grow" }, item.name)),
      el("div", { style: "margin-top:6px" },
        el("span", { class: "tag" }, cg ? cg.name : item.category),
        el("span", { class: "tag risk" }, item.risk_level ? "风险等级 " + item.risk_level : "非投资类"),
        ...item.reasons.map((r) => el("span", { class: "tag reason", title: r.code }, r.text))),
      el("div", { class: "message" }, item.copy.body,
        item.copy.disclaimer ? el("div", { class: "disclaimer" }, item.copy.disclaimer) : null),
      el("div", { class: "actions" },
        el("button", { class: "primary", type: "button", "data-action": "send", onclick: async (ev) => {
          ev.currentTarget.disabled = true;
          try {
            const done = await send(text);
            await record(d, item, "impression", done);
          } catch (e) {
            line.className = "result bad";
            line.textContent = inWeCom ? "发送未完成，请重试" : "复制失败，请手动选择消息复制";
            ev.currentTarget.disabled = false;
          }
        } }, inWeCom ? "发送" : "复制发送"),
        el("button", { type: "button", "data-action": "dismiss", onclick: (ev) => {
          ev.currentTarget.disabled = true;
          card.classList.add("done");
          record(d, item, "dismiss", "已记录：客户不感兴趣");
        } }, "不感兴趣"),
        el("button", { type: "button", "data-action": "conversion", onclick: (ev) => {
          ev.currentTarget.disabled = true;
          record(d, item, "conversion", "已记录：客户已办理");
        } }, "已办理")),
      line);
    for (const t of ["impression", "dismiss", "conversion"]) results.set(eventID(d, item, t), line);
    return card;
  }

  function showOffers(d, p) {
    const notice = $("degraded");
    let msg = "";
    for (const r of d.degraded_reasons) if (DEGRADED[r]) { msg = DEGRADED[r]; break; }
    if (!msg && d.strategy === "non_personalised") msg = p && p.personalisation_opt_out ? "客户已关闭个性化推荐，以下为通用推荐" : "暂无该客户的数据，以下为通用推荐";
    notice.textContent = msg;
    notice.classList.toggle("hidden", !msg);
    const box = $("offers");
    box.replaceChildren();
    if (d.items.length === 0) {
      let why = "当前没有适合推荐给该客户的产品。";
      if (p && p.known && !p.marketing_consent) why = "客户未授权营销联系，企业微信渠道不推荐产品。";
      box.append(el("div", { class: "card muted" }, why));
      return;
    }
    for (const item of d.items) box.append(offerCard(d, item));
  }

  async function load(customer) {
    $("error").classList.add("hidden");
    $("contact-state").classList.add("hidden");
    $("customer-id").value = customer;
    const id = encodeURIComponent(customer);
    try {
      const [p, d] = await Promise.all([
        call("/v1/customers/" + id + "/profile?channel=wecom_agent"),
        call("/v1/customers/" + id + "/recommendations?channel=wecom_agent&limit=3"),
      ]);
      showProfile(p);
      showOffers(d, p);
    } catch (e) {
      $("profile").classList.add("hidden");
      $("offers").replaceChildren();
      $("degraded").classList.add("hidden");
      nbp.showError(e.code === "invalid_customer_id" ? "客户号格式不正确：1 到 64 位字母、数字、_ 或 -" : e);
    }
  }

  async function loadContact(ext) {
    try {
      const c = await call("/v1/contacts/" + encodeURIComponent(ext));
      return load(c.customer_id);
    } catch (e) {
      if (e.code === "contact_not_linked" || e.code === "invalid_external_userid") {
        const box = $("contact-state");
        box.textContent = "该企业微信联系人尚未关联银行客户号，暂无法推荐。请联系运营人员完成关联，或在上方输入客户号查看。";
        box.classList.remove("hidden");
        $("profile").classList.add("hidden");
        $("offers").replaceChildren();
        return;
      }
      nbp.showError(e);
    }
  }

  $("search").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = $("customer-id").value.trim();
    if (!v) return;
    history.replaceState(null, "", "?customer=" + encodeURIComponent(v));
    load(v);
  });

  flush();
  const q = new URLSearchParams(location.search);
  if (inWeCom) {
    try {
      const { userId } = await ww.getCurExternalContact();
      await loadContact(userId);
    } catch (e) {
      const box = $("contact-state");
      box.textContent = "请在与客户的聊天窗口中打开此工具";
      box.classList.remove("hidden");
    }
  } else if (q.get("contact")) {
    await loadContact(q.get("contact"));
  } else if (q.get("customer")) {
    await load(q.get("customer"));
  } else {
    $("customer-id").focus();
  }
  document.body.dataset.ready = "1";
})();
