// The operations dashboard (直营运营看板): what the decisions achieve, from
// GET /v1/stats (the same numbers the API serves, no second source), with
// what is in force from GET /v1/overview.
"use strict";

(async () => {
  const { el, call, pct } = nbp;
  const $ = (id) => document.getElementById(id);
  const CHANNELS = nbp.CHANNELS;
  const STRATEGIES = { model: "模型", rules: "规则兜底", non_personalised: "通用推荐", control: "对照组", batch: "批量名单", challenger: "挑战者模型", unknown: "未关联决策" };
  const METRICS = { click_through_rate: "点击率", conversion_rate: "转化率" };
  const FALLBACK = new Set(["rules", "non_personalised", "batch"]);

  const started = await nbp.start("manager");
  if (!started) return;
  const { catalog } = started;
  const products = Object.fromEntries(catalog.products.map((p) => [p.id, p]));
  const hasCharts = typeof echarts !== "undefined";
  const charts = {};
  function chart(id) {
    if (!hasCharts) {
      $(id).replaceChildren(el("p", { class: "muted" }, "图表库未加载（运行 make web-assets），数据见下表"));
      return null;
    }
    return charts[id] || (charts[id] = echarts.init($(id), null, { renderer: "canvas" }));
  }
  window.addEventListener("resize", () => Object.values(charts).forEach((c) => c.resize()));

  const addDays = (day, n) => {
    const d = new Date(day + "T00:00:00Z");
    d.setUTCDate(d.getUTCDate() + n);
    return d.toISOString().slice(0, 10);
  };
  let shown = { rows: [], uplift: [], from: "", to: "", group: "product" };

  function kpis(rows, decisions) {
    let imp = 0, clk = 0, conv = 0, attributed = 0, fallback = 0, control = 0;
    for (const r of rows) {
      imp += r.impressions; clk += r.clicks; conv += r.conversions;
      if (r.strategy !== "unknown") attributed += r.impressions;
      if (FALLBACK.has(r.strategy)) fallback += r.impressions;
      if (r.strategy === "control") control += r.impressions;
    }
    const box = $("kpis");
    box.replaceChildren();
    const k = (label, value, note) => box.append(el("div", { class: "kpi" }, el("div", { class: "k" }, label), el("div", { class: "v" }, value), note ? el("div", { class: "k" }, note) : null));
    k("曝光", imp.toLocaleString("zh-CN"));
    k("点击率", imp ? pct(clk / imp) : "—", clk.toLocaleString("zh-CN") + " 次点击");
    k("转化率", imp ? pct(conv / imp) : "—", conv.toLocaleString("zh-CN") + " 次转化");
    let total = 0, degraded = 0, fb = 0;
    for (const d of decisions) {
      total += d.decisions; degraded += d.degraded;
      if (FALLBACK.has(d.strategy)) fb += d.decisions;
    }
    if (total > 0) {
      k("兜底占比", pct(fb / total, 1), total.toLocaleString("zh-CN") + " 次决策中规则、通用推荐与批量名单的占比");
      k("降级占比", pct(degraded / total, 1), "模型或客户数据不可用时的决策占比");
    } else {
      k("兜底占比", attributed ? pct(fallback / attributed, 1) : "—", "规则、通用推荐与批量名单的曝光占比");
    }
    k("对照组占比", attributed ? pct(control / attributed, 1) : "—", "随机排序，用于衡量模型提升");
  }

  function verdict(u) {
    if (u.ci_low > 0) return el("span", { class: "sig-up" }, "显著提升");
    if (u.ci_high < 0) return el("span", { class: "sig-down" }, "显著下降");
    return el("span", { class: "muted" }, "尚无法区分");
  }

  function upliftView(uplift) {
    const t = $("uplift-table");
    t.replaceChildren(el("tr", {}, ...["渠道", "指标", "模型组", "对照组", "差值", "95% 区间", "结论"].map((h) => el("th", {}, h))));
    for (const u of uplift) {
      t.append(el("tr", {},
        el("td", {}, CHANNELS[u.channel] || u.channel), el("td", {}, METRICS[u.metric] || u.metric),
        el("td", {}, pct(u.model), el("div", { class: "small muted" }, "n=" + u.model_impressions)),
        el("td", {}, pct(u.control), el("div", { class: "small muted" }, "n=" + u.control_impressions)),
        el("td", {}, pct(u.difference)), el("td", {}, pct(u.ci_low) + " ~ " + pct(u.ci_high)), el("td", {}, verdict(u))));
    }
    if (uplift.length === 0) t.append(el("tr", {}, el("td", { colspan: 7, class: "muted" }, "所选范围内模型组与对照组尚无同渠道曝光")));
    const c = chart("uplift-chart");
    if (!c) return;
    const labels = uplift.map((u) => (CHANNELS[u.channel] || u.channel) + "\n" + (METRICS[u.metric] || u.metric));
    const pp = (x) => +(x * 100).toFixed(3);
    c.setOption({
      animation: false,
      grid: { left: 48, right: 16, top: 24, bottom: 48 },
      tooltip: { trigger: "axis", formatter: (ps) => {
        const u = uplift[ps[0].dataIndex];
        return labels[ps[0].dataIndex].replace("\n", " ") + "<br>差值 " + pct(u.difference) + "<br>95% 区间 " + pct(u.ci_low) + " ~ " + pct(u.ci_high);
      } },
      xAxis: { type: "category", data: labels, axisLabel: { interval: 0, fontSize: 11 } },
      yAxis: { type: "value", name: "百分点" },
      series: [
        { name: "差值", type: "bar", barWidth: "40%",
          data: uplift.map((u) => ({ value: pp(u.difference), itemStyle: { color: u.ci_low > 0 ? "#1a7f37" : u.ci_high < 0 ? "#c0392b" : "#8f959e" } })),
          markLine: { silent: true, symbol: "none", data: [{ yAxis: 0 }], lineStyle: { color: "#646a73" } } },
        { name: "95% 区间", type: "custom", data: uplift.map((u, i) => [i, pp(u.ci_low), pp(u.ci_high)]),
          renderItem: (params, api) => {
            const lo = api.coord([api.value(0), api.value(1)]);
            const hi = api.coord([api.value(0), api.value(2)]);
            const w = api.size([1, 0])[0] * 0.15;
            const style = { stroke: "#1f2329", lineWidth: 2 };
            return { type: "group", children: [
              { type: "line", shape: { x1: lo[0], y1: lo[1], x2: hi[0], y2: hi[1] }, style },
              { type: "line", shape: { x1: lo[0] - w, y1: lo[1], x2: lo[0] + w, y2: lo[1] }, style },
              { type: "line", shape: { x1: hi[0] - w, y1: hi[1], x2: hi[0] + w, y2: hi[1] }, style },
            ] };
          }, z: 10 },
      ],
    }, true);
  }

  function trendView(days, perDay) {
    const c = chart("trend-chart");
    if (!c) return;
    const sum = (rows, f) => rows.reduce((a, r) => a + r[f], 0);
    const imp = perDay.map((rows) => sum(rows, "impressions"));
    const rate = (f) => perDay.map((rows, i) => imp[i] ? +(sum(rows, f) / imp[i] * 100).toFixed(3) : null);
    c.setOption({
      animation: false,
      legend: { data: ["曝光", "点击率", "转化率"], top: 0 },
      grid: { left: 56, right: 48, top: 32, bottom: 32 },
      tooltip: { trigger: "axis" },
      xAxis: { type: "category", data: days.map((d) => d.slice(5)) },
      yAxis: [{ type: "value", name: "曝光" }, { type: "value", name: "%", position: "right" }],
      series: [
        { name: "曝光", type: "bar", data: imp, itemStyle: { color: "#b8cbfa" } },
        { name: "点击率", type: "line", yAxisIndex: 1, data: rate("clicks"), connectNulls: true },
        { name: "转化率", type: "line", yAxisIndex: 1, data: rate("conversions"), connectNulls: true },
      ],
    }, true);
  }

  function stateView(ov) {
    const dl = $("state");
    dl.replaceChildren();
    const f = (k, v) => dl.append(el("dt", {}, k), el("dd", {}, v));
    f("模型版本", ov.model_version || "未加载模型（规则）");
    f("产品目录版本", ov.catalog_version);
    f("策略配置版本", ov.config_version || "—");
    const b = ov.batch;
    if (ov.batch_error) f("最近批量运行", "暂无法读取");
    else if (!b) f("最近批量运行", "尚无批量运行");
    else {
      const started = b.started_at && !b.started_at.startsWith("0001") ? new Date(b.started_at).toLocaleString("zh-CN", { timeZone: "Asia/Shanghai" }) : "—";
      f("最近批量运行", b.run + (b.completed ? "（已完成，名单已启用）" : "（进行中）"));
      f("批量进度", "分片 " + b.shards_done + "/" + (b.shards || "?") + " · 已决策 " + b.customers.toLocaleString("zh-CN") + " 位客户 · 开始于 " + started);
      if (!b.completed && b.current) f("在用名单", b.current);
    }
    f("数据时间", ov.now.slice(0, 16).replace("T", " ") + "（北京时间）");
  }

  function groupName(r, group) {
    if (group === "agent") return r.agent_id || "（非客户经理渠道）";
    if (group === "team") return r.team || "（未设团队）";
    return (products[r.product_id] && products[r.product_id].name) || r.product_id;
  }

  const TOP = 25; // rows shown before "show all"
  let allRows = false;
  function rowsView(rows, group) {
    const t = $("rows");
    const first = { product: "产品", agent: "客户经理", team: "团队" }[group];
    const heads = [first].concat(group === "product" ? [] : ["产品"], ["渠道", "策略", "曝光", "点击", "转化", "不感兴趣", "点击率", "转化率"]);
    t.replaceChildren(el("tr", {}, ...heads.map((h) => el("th", {}, h))));
    const sorted = rows.slice().sort((a, b) => b.impressions - a.impressions);
    const more = $("more");
    more.classList.toggle("hidden", sorted.length <= TOP || allRows);
    more.textContent = "显示全部 " + sorted.length + " 行";
    for (const r of allRows ? sorted : sorted.slice(0, TOP)) {
      const cells = [groupName(r, group)];
      if (group !== "product") cells.push((products[r.product_id] && products[r.product_id].name) || r.product_id);
      cells.push(CHANNELS[r.channel] || r.channel, STRATEGIES[r.strategy] || r.strategy, r.impressions, r.clicks, r.conversions, r.dismissals, pct(r.click_through_rate), pct(r.conversion_rate));
      t.append(el("tr", {}, ...cells.map((c) => el("td", {}, c))));
    }
    if (rows.length === 0) t.append(el("tr", {}, el("td", { colspan: heads.length, class: "muted" }, "所选范围内暂无事件")));
  }

  function csvCell(v) {
    const s = v === null || v === undefined ? "" : String(v);
    // A leading = + - @ would be a formula to a spreadsheet: quote it away.
    const safe = /^[=+\-@\t\r]/.test(s) ? "'" + s : s;
    return /[",\n\r]/.test(safe) ? '"' + safe.replace(/"/g, '""') + '"' : safe;
  }

  function exportCSV() {
    const lines = [];
    const head = ["from", "to", "group_by", "agent_id", "team", "product_id", "product_name", "channel", "strategy", "impressions", "clicks", "conversions", "dismissals", "click_through_rate", "conversion_rate"];
    lines.push(head.join(","));
    for (const r of shown.rows) {
      lines.push([shown.from, shown.to, shown.group, r.agent_id || "", r.team || "", r.product_id, (products[r.product_id] || {}).name || "",
        r.channel, r.strategy, r.impressions, r.clicks, r.conversions, r.dismissals, r.click_through_rate ?? "", r.conversion_rate ?? ""].map(csvCell).join(","));
    }
    lines.push("");
    lines.push(["from", "to", "channel", "metric", "model_impressions", "control_impressions", "model", "control", "difference", "ci_low", "ci_high", "interval"].join(","));
    for (const u of shown.uplift) {
      lines.push([shown.from, shown.to, u.channel, u.metric, u.model_impressions, u.control_impressions, u.model, u.control, u.difference, u.ci_low, u.ci_high, "newcombe_hybrid_score_95"].map(csvCell).join(","));
    }
    const blob = new Blob(["\ufeff" + lines.join("\r\n") + "\r\n"], { type: "text/csv;charset=utf-8" });
    const a = el("a", { href: URL.createObjectURL(blob), download: "nbp-stats-" + shown.from + "-" + shown.to + "-" + shown.group + ".csv" });
    document.body.append(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  }

  async function refresh() {
    document.body.dataset.ready = "";
    $("error").classList.add("hidden");
    try {
      const ov = await call("/v1/overview");
      stateView(ov);
      const today = ov.now.slice(0, 10);
      const n = +$("range").value;
      const group = $("group").value;
      const from = addDays(today, 1 - n);
      $("range-label").textContent = from + " 至 " + today;
      const days = Array.from({ length: n }, (_, i) => addDays(from, i));
      const [st, ...perDay] = await Promise.all([
        call("/v1/stats?from=" + from + "&to=" + today + "&group_by=" + group),
        ...days.map((d) => call("/v1/stats?from=" + d + "&to=" + d).then((r) => r.rows)),
      ]);
      shown = { rows: st.rows, uplift: st.uplift, from, to: today, group };
      kpis(st.rows, st.decisions || []);
      upliftView(st.uplift);
      trendView(days, perDay);
      rowsView(st.rows, group);
    } catch (e) {
      nbp.showError(e);
    }
    document.body.dataset.ready = "1";
  }

  $("refresh").addEventListener("click", refresh);
  $("range").addEventListener("change", refresh);
  $("group").addEventListener("change", refresh);
  $("export").addEventListener("click", exportCSV);
  $("more").addEventListener("click", () => { allRows = true; rowsView(shown.rows, shown.group); });
  await refresh();
})();
