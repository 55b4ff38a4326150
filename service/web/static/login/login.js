// The login page: the WeCom login, and the demo's when the server offers it.
"use strict";
(async () => {
  const next = new URLSearchParams(location.search).get("next") || "";
  for (const i of document.querySelectorAll("input.next")) i.value = next;
  let opts = { demo: false, wecom: false };
  try {
    const r = await fetch("/auth/options", { credentials: "same-origin" });
    if (r.ok) opts = await r.json();
  } catch (e) { /* show what needs no server */ }
  document.getElementById("demo-login").classList.toggle("hidden", !opts.demo);
  document.getElementById("wecom-login").classList.toggle("hidden", !opts.wecom);
  document.getElementById("wecom-link").href = "/auth/wecom?qr=1&next=" + encodeURIComponent(next);
  if (!opts.demo && !opts.wecom) {
    const e = document.getElementById("error");
    e.textContent = "未配置登录方式，请联系管理员";
    e.classList.remove("hidden");
  }
  document.body.dataset.ready = "1";
})();
