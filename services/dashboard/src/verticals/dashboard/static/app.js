// verticals dashboard: plain JS, no build step, no external requests (only this origin's /api).
"use strict";

const COLORS = ["#0b5cad", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0e7490", "#a16207",
  "#be185d", "#4d7c0f", "#475569", "#9333ea", "#0369a1"];
let refreshMs = 5000;

// ---- helpers ---------------------------------------------------------------------------------
// Every text from a service goes through textContent (headlines and customer questions are
// untrusted), never innerHTML.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "style") el.style.cssText = v; // CSSOM: allowed by the page's CSP
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

function fmt(value, digits = 3) {
  if (value === null || value === undefined) return "–";
  return typeof value === "number" ? Number(value.toFixed(digits)).toString() : String(value);
}

function time(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toISOString().slice(5, 16).replace("T", " ");
}

function replace(id, ...children) {
  const el = document.getElementById(id);
  // an answer that arrives after its login ended (a refresh in flight at the logout) is not shown
  const section = el.closest("section[data-needs]");
  if (section && !allowed(section.dataset.needs)) children = ["loading…"];
  if (id === "status" && viewer.role !== "admin") children = [];
  el.replaceChildren(...children);
  return el;
}

function showMessage(id, text, isError, ...extra) {
  const el = document.getElementById(id);
  el.hidden = !text;
  el.className = "message" + (isError ? " error" : "");
  el.replaceChildren(text || "", ...extra);
}

function unavailable(panel) {
  return h("div", { class: "unavailable", "data-service": panel.service },
    "unavailable: ", panel.error || "no answer");
}

async function getJson(url) {
  const r = await fetch(url, { headers: { Accept: "application/json" } });
  if (!r.ok) {
    const err = new Error(`${url}: ${r.status}`);
    err.status = r.status;
    throw err;
  }
  return r.json();
}

// ---- login: POST /api/login sets an HttpOnly session cookie; the page never keeps a key -------
const ANONYMOUS = { role: null, tenant: null };
let viewer = ANONYMOUS;

function allowed(needs) {
  if (needs === "admin") return viewer.role === "admin";
  if (needs === "tenant") return viewer.role === "admin" || viewer.role === "tenant";
  return true;
}

function showViewer() {
  const anonymous = !viewer.role;
  document.getElementById("login-form").hidden = !anonymous;
  document.getElementById("login-hint").hidden = !anonymous;
  document.getElementById("logout").hidden = anonymous;
  const who = document.getElementById("whoami");
  who.hidden = anonymous;
  who.textContent = viewer.role === "admin" ? "dashboard admin"
    : viewer.role === "tenant" ? `admin of tenant ${viewer.tenant}` : "";
  document.getElementById("status").hidden = viewer.role !== "admin";
  for (const section of document.querySelectorAll("section[data-needs]")) {
    section.hidden = !allowed(section.dataset.needs);
  }
  clearForbidden();
}

function clearForbidden() {
  // what an earlier login saw does not stay in the page
  for (const section of document.querySelectorAll("section[data-needs]")) {
    if (!allowed(section.dataset.needs)) replace(`${section.id}-body`, "loading…");
  }
  if (viewer.role !== "admin") replace("status");
  if (!viewer.role) kbTools.clear();
}

async function loadViewer() {
  viewer = await getJson("/api/session");
  showViewer();
}

function endedLogin() {
  viewer = ANONYMOUS;
  showViewer();
  showMessage("login-message", "Your login has ended; log in again.", true);
}

async function login(event) {
  event.preventDefault();
  const input = document.getElementById("login-key");
  const r = await fetch("/api/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ key: input.value }),
  });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) {
    showMessage("login-message", data.detail || `login failed (${r.status})`, true);
    return;
  }
  input.value = "";
  showMessage("login-message", "", false);
  viewer = data;
  showViewer();
  await refresh();
}

async function logout() {
  await fetch("/api/logout", { method: "POST" });
  viewer = ANONYMOUS;
  showViewer();
  await refresh();
}

async function act(url, body) {
  const r = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body || {}),
  });
  const data = await r.json().catch(() => ({}));
  if (r.status === 401) {
    endedLogin();
    return { ok: false, status: 401, detail: "your login has ended; log in again" };
  }
  return { ok: r.ok, status: r.status, data, detail: data.detail };
}

// ---- status pills -----------------------------------------------------------------------------
async function loadStatus() {
  const body = await getJson("/api/status");
  replace("status", ...body.services.map((s) => h("span", {
    class: "pill " + (s.available ? "up" : "down"),
    "data-service": s.service,
    title: s.available ? `${s.url}` : s.error,
  }, s.service)));
}

// ---- models -----------------------------------------------------------------------------------
let modelsBusy = false;

async function promote(task, version, force) {
  modelsBusy = true;
  try {
    const r = await act(`/api/models/${encodeURIComponent(task)}/promote`, { version, force });
    if (r.ok) {
      const p = r.data;
      showMessage("models-message",
        `${task}: v${p.version} is current (was v${p.previous ?? "–"}; ${p.metric} ` +
        `${fmt(p.candidate_score, 4)} vs ${fmt(p.current_score, 4)})`, false);
    } else if (r.status === 409) {
      showMessage("models-message", r.detail, true, " ",
        h("button", { type: "button", "data-action": "force",
          onclick: () => promote(task, version, true) }, "Promote anyway"));
    } else {
      showMessage("models-message", r.detail || `failed (${r.status})`, true);
    }
  } finally {
    modelsBusy = false;
  }
  await loadModels();
}

async function rollback(task) {
  modelsBusy = true;
  try {
    const r = await act(`/api/models/${encodeURIComponent(task)}/rollback`);
    if (r.ok) showMessage("models-message", `${task}: rolled back to v${r.data.current}`, false);
    else showMessage("models-message", r.detail || `failed (${r.status})`, true);
  } finally {
    modelsBusy = false;
  }
  await loadModels();
}

function metricList(metrics, primary) {
  return Object.entries(metrics || {})
    .filter(([k]) => k !== primary)
    .map(([k, v]) => `${k} ${fmt(v)}`)
    .join(" · ");
}

// the card (JSON), confusion matrices and training curve (PNG) open in a new tab
function reportLabel(name) {
  if (name === "training_curve.png") return "training curve";
  if (name.startsWith("confusion_")) return "confusion: " + name.slice(10, -4);
  return name.replace(/\.(json|png)$/, "");
}

function modelLinks(task, v) {
  const base = `/api/models/${encodeURIComponent(task)}/${v.version}`;
  const link = (href, text, kind) => h("a", { href, target: "_blank", rel: "noopener", "data-file": kind }, text);
  const links = [link(`${base}/card`, "card", "card")];
  for (const name of v.reports || []) {
    links.push(link(`${base}/reports/${encodeURIComponent(name)}`, reportLabel(name), name));
  }
  return links.flatMap((a, n) => (n ? [" · ", a] : [a]));
}

async function loadModels() {
  if (modelsBusy) return;
  const body = await getJson("/api/models");
  if (!body.tasks.length) {
    replace("models-body", h("p", {}, `No models in the registry at ${body.registry}.`));
    return;
  }
  const rows = [];
  for (const t of body.tasks) {
    rows.push(h("tr", { class: "task", "data-task": t.task },
      h("th", { colspan: 6 }, t.task, " ",
        h("span", { class: "metrics" }, `current v${t.current ?? "–"} · history ${t.history.join(" → ")}`)),
      h("th", {}, h("button", {
        type: "button", "data-action": "rollback", disabled: !t.can_rollback,
        title: t.can_rollback ? "back to the previous current version" : "nothing to roll back to",
        onclick: () => rollback(t.task),
      }, "Rollback"))));
    for (const v of t.versions) {
      rows.push(h("tr", {
        class: v.current ? "version current" : "version",
        "data-task": t.task, "data-version": v.version, "data-current": String(!!v.current),
      },
      h("td", {}, `v${v.version} `, v.current ? h("span", { class: "badge current" }, "current") : ""),
      h("td", {}, `${v.kind ?? ""} ${v.method ? "(" + v.method + ")" : ""}`),
      h("td", {}, time(v.created_at)),
      h("td", { class: "num", "data-metric": v.primary_metric || "" },
        v.primary_metric ? `${v.primary_metric} ${fmt(v.score, 4)}` : (v.error || "–")),
      h("td", { class: "metrics" }, metricList(v.metrics, v.primary_metric)),
      h("td", { class: "files" }, modelLinks(t.task, v)),
      h("td", {}, v.current ? "" : h("button", {
        type: "button", "data-action": "promote", onclick: () => promote(t.task, v.version, false),
      }, "Promote"))));
    }
  }
  replace("models-body", h("table", {},
    h("thead", {}, h("tr", {}, ["version", "model", "created", "primary metric", "metrics", "card and reports", ""]
      .map((c) => h("th", {}, c)))),
    h("tbody", {}, rows)));
}

// ---- news: the live chart -----------------------------------------------------------------
// The top five topics by volume and "all"; the rest behind a toggle. Hover (or focus and the
// arrow keys) shows each bucket's values; alerts are marked on the time axis.
const TOP_TOPICS = 5;
const news = { hours: 6, allTopics: false, focused: null, hover: null };

function clockLabel(iso, withDate) {
  const d = new Date(iso);
  const hm = d.toISOString().slice(11, 16);
  return withDate ? `${d.toISOString().slice(5, 10)} ${hm}` : hm;
}

function trendChart(panel) {
  const W = 760, H = 300, L = 40, R = 12, T = 22, B = 30;
  const buckets = panel.overall.map((p) => p.bucket_start);
  const index = new Map(buckets.map((b, i) => [b, i]));
  const step = buckets.length < 2 ? 0 : (W - L - R) / (buckets.length - 1);
  const x = (i) => L + (buckets.length < 2 ? (W - L - R) / 2 : i * step);
  const y = (share) => T + (1 - share) * (H - T - B);
  const ranked = (panel.topics || []).map((t) => t.topic);
  const shown = news.allTopics ? ranked : ranked.slice(0, TOP_TOPICS);
  const chart = svg("svg", {
    id: "trend-chart", width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img",
    tabindex: 0, "data-points": panel.overall.length, "data-topics": shown.length,
    "aria-label": `negative share over the latest ${panel.hours || "?"} hours: all topics and ` +
      `${shown.length} of ${ranked.length} topics; arrow keys read the values`,
  });
  for (const s of [0, 0.25, 0.5, 0.75, 1]) {
    chart.append(svg("line", { class: "grid", x1: L, x2: W - R, y1: y(s), y2: y(s) }));
    chart.append(svg("text", { x: 4, y: y(s) + 3 }, s.toFixed(2)));
  }
  chart.append(svg("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }));
  chart.append(svg("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
  const legend = h("ul", { class: "legend" });
  if (!buckets.length) {
    chart.append(svg("text", { x: W / 2 - 30, y: H / 2 }, "no data yet"));
    return { chart, legend, tooltip: h("div", { class: "tooltip", hidden: true }) };
  }
  const tickCount = Math.min(7, buckets.length);
  const ticks = [...new Set(Array.from({ length: tickCount }, (_, n) =>
    Math.round((n * (buckets.length - 1)) / Math.max(1, tickCount - 1))))];
  ticks.forEach((i, n) => {
    const anchor = i === 0 ? "start" : i === buckets.length - 1 ? "end" : "middle";
    chart.append(svg("text", { x: x(i), y: H - B + 16, "text-anchor": anchor },
      clockLabel(buckets[i], n === 0)));
  });
  const line = (points) => points
    .filter((p) => index.has(p.bucket_start))
    .map((p, n) => `${n ? "L" : "M"}${x(index.get(p.bucket_start)).toFixed(1)},${y(p.negative_share).toFixed(1)}`)
    .join(" ");
  const colors = new Map(ranked.map((t, n) => [t, COLORS[n % COLORS.length]]));
  const volume = new Map((panel.topics || []).map((t) => [t.topic, t.total]));
  for (const topic of shown) {
    const path = svg("path", {
      d: line(panel.points.filter((p) => p.topic === topic)), stroke: colors.get(topic),
      "data-topic": topic, class: news.focused === topic ? "focus" : "",
    });
    path.append(svg("title", {}, topic));
    chart.append(path);
    legend.append(h("li", {
      class: news.focused === topic ? "focus" : "", "data-topic": topic,
    }, h("button", {
      type: "button", "aria-pressed": String(news.focused === topic), title: "highlight",
      onclick: () => { news.focused = news.focused === topic ? null : topic; loadNews(); },
    }, h("i", { style: `background:${colors.get(topic)}` }), `${topic} (${volume.get(topic)})`)));
  }
  chart.append(svg("path", { class: "overall", d: line(panel.overall), "data-topic": "all" }));
  legend.prepend(h("li", { "data-topic": "all" }, h("i", { style: "background:#111;height:4px" }),
    `all topics (${panel.overall.reduce((n, p) => n + p.total, 0)})`));
  // alerts: a marker at the bucket where each alert's window ends
  const width = panel.bucket_minutes * 60_000;
  const starts = buckets.map((b) => Date.parse(b));
  for (const a of panel.alerts) {
    const end = Date.parse(a.window_end);
    const i = starts.findIndex((s) => end >= s && end < s + width);
    if (i < 0) continue;
    const mark = svg("g", { class: "alert-mark", "data-alert-marker": a.key });
    mark.append(svg("line", { x1: x(i), x2: x(i), y1: T, y2: H - B }));
    mark.append(svg("path", { d: `M${x(i) - 6},${T - 12} L${x(i) + 6},${T - 12} L${x(i)},${T - 2} Z` }));
    mark.append(svg("title", {}, `alert ${a.key}: ${a.rule} (${time(a.window_start)} – ${time(a.window_end)})`));
    chart.append(mark);
  }
  // hover / keyboard: a guide line and the bucket's values
  const guide = svg("line", { class: "guide", x1: 0, x2: 0, y1: T, y2: H - B, visibility: "hidden" });
  chart.append(guide);
  const tooltip = h("div", { class: "tooltip", role: "status", "aria-live": "polite", hidden: true });
  const byBucket = new Map();
  for (const p of panel.points) {
    if (!byBucket.has(p.bucket_start)) byBucket.set(p.bucket_start, new Map());
    byBucket.get(p.bucket_start).set(p.topic, p);
  }
  const show = (i) => {
    if (i === null || i < 0 || i >= buckets.length) {
      news.hover = null; guide.setAttribute("visibility", "hidden"); tooltip.hidden = true; return;
    }
    news.hover = buckets[i];
    guide.setAttribute("x1", x(i)); guide.setAttribute("x2", x(i));
    guide.setAttribute("visibility", "visible");
    const all = panel.overall[i];
    const row = (name, p, color) => h("tr", { "data-topic": name },
      h("td", {}, color ? h("i", { style: `background:${color}` }) : "", name),
      h("td", { class: "num" }, p ? fmt(p.negative_share, 2) : "–"),
      h("td", { class: "num" }, p ? `${p.negative}/${p.total}` : "–"));
    tooltip.replaceChildren(
      h("b", {}, `${time(buckets[i])} (+${panel.bucket_minutes} min)`),
      h("table", {}, h("tbody", {}, row("all", all, "#111"),
        shown.map((t) => row(t, byBucket.get(buckets[i]).get(t), colors.get(t))))));
    tooltip.hidden = false;
    tooltip.style.left = `${Math.min(x(i) + 12, W - 200)}px`;
  };
  const nearest = (event) => {
    const box = chart.getBoundingClientRect();
    const px = ((event.clientX - box.left) * W) / box.width;
    return step ? Math.max(0, Math.min(buckets.length - 1, Math.round((px - L) / step))) : 0;
  };
  chart.addEventListener("mousemove", (e) => show(nearest(e)));
  chart.addEventListener("mouseleave", () => show(null));
  chart.addEventListener("blur", () => show(null));
  chart.addEventListener("keydown", (e) => {
    const now = news.hover === null ? -1 : buckets.indexOf(news.hover);
    if (e.key === "ArrowRight") show(Math.min(buckets.length - 1, now + 1));
    else if (e.key === "ArrowLeft") show(Math.max(0, now < 0 ? buckets.length - 1 : now - 1));
    else if (e.key === "Escape") show(null);
    else return;
    e.preventDefault();
  });
  if (news.hover !== null && index.has(news.hover)) show(index.get(news.hover));
  return { chart, legend, tooltip };
}

function rangeButtons(panel) {
  const ranked = (panel.topics || []).length;
  return h("div", { class: "chart-tools" },
    h("div", { role: "group", "aria-label": "time range" }, [1, 6, 24].map((hours) => h("button", {
      type: "button", "data-range": hours, "aria-pressed": String(news.hours === hours),
      onclick: () => { news.hours = hours; news.hover = null; loadNews(); },
    }, `${hours} h`))),
    ranked > TOP_TOPICS ? h("button", {
      type: "button", id: "all-topics", "aria-pressed": String(news.allTopics),
      onclick: () => { news.allTopics = !news.allTopics; loadNews(); },
    }, news.allTopics ? `Top ${TOP_TOPICS} topics only` : `Show all ${ranked} topics`) : "");
}

function alertItem(a) {
  return h("li", { "data-alert": a.id, "data-key": a.key },
    h("b", {}, a.key), ` ${a.rule} · ${time(a.window_start)}–${time(a.window_end).slice(6)} · `,
    `${a.metric === "negative_volume" ? "negatives " + a.negative : "share " + fmt(a.negative_share, 2)}`,
    ` vs baseline ${fmt(a.baseline, 2)} (z ${fmt(a.score, 1)}, ${a.negative}/${a.total} negative)`,
    h("div", { class: "evidence" }, (a.evidence || []).map((e) => e.title).join(" · ")));
}

async function loadNews() {
  const panel = await getJson(`/api/news?hours=${news.hours}`);
  if (!panel.available) {
    replace("news-body", unavailable(panel));
    return;
  }
  const { chart, legend, tooltip } = trendChart(panel);
  const consumer = panel.consumer || {};
  const hadFocus = document.activeElement && document.activeElement.id === "trend-chart";
  replace("news-body",
    h("div", { class: "figures" },
      h("div", { class: "figure" }, h("b", {}, fmt(panel.observations)), h("span", {}, "headlines classified")),
      h("div", { class: "figure" }, h("b", {}, fmt(panel.alert_count)), h("span", {}, "alerts")),
      h("div", { class: "figure" }, h("b", {}, panel.model || "–"), h("span", {}, "model")),
      h("div", { class: "figure" }, h("b", {}, consumer.running === undefined ? "–" : consumer.running ? "running" : "stopped"),
        h("span", {}, "consumer"))),
    h("h3", {}, `Negative share per ${panel.bucket_minutes} min, latest ${panel.hours} h of news (event time) `,
      h("a", { href: panel.png_url, target: "_blank", rel: "noopener" }, "(PNG)")),
    rangeButtons(panel),
    h("div", { class: "chart-wrap" }, h("div", { class: "chart-box" }, chart, tooltip), legend),
    h("h3", {}, `Recent alerts (${panel.alerts.length})`),
    panel.alerts.length
      ? h("ul", { class: "alerts", id: "alerts" }, panel.alerts.map(alertItem))
      : h("p", { id: "alerts" }, "No alerts yet."));
  if (hadFocus) chart.focus();
}

// ---- support: handoffs with their conversation, the knowledge base ------------------------
const openHandoffs = new Set();
const kbTools = new Map(); // tenant -> its knowledge-base tools (kept across refreshes)

async function sendReply(event, tenant, handoff) {
  event.preventDefault();
  const form = event.target;
  const text = form.querySelector("textarea").value;
  const close = form.querySelector("input[name=close]").checked;
  const r = await act(`/api/support/handoffs/${handoff.id}/reply`, { tenant, text, close });
  if (r.ok) {
    showMessage("support-message", `Replied to handoff #${handoff.id} (${tenant}).`, false);
    if (close) openHandoffs.delete(`${tenant}/${handoff.id}`);
  } else showMessage("support-message", r.detail || `failed (${r.status})`, true);
  await loadSupport(true);
}

function transcript(messages) {
  const who = { user: "customer", bot: "bot", staff: "staff" };
  return h("ol", { class: "transcript" }, messages.map((m) => h("li", { class: `from-${m.role}`, "data-role": m.role },
    h("span", { class: "who" }, `${who[m.role] || m.role} · ${time(m.created_at)}`),
    h("span", { class: "said" }, m.text))));
}

function handoffItem(t, ho) {
  const id = `${t.tenant}/${ho.id}`;
  const details = h("details", {
    class: "handoff", "data-handoff": ho.id, "data-status": ho.status, open: openHandoffs.has(id),
    ontoggle: (e) => (e.target.open ? openHandoffs.add(id) : openHandoffs.delete(id)),
  },
  h("summary", {}, h("b", {}, `#${ho.id} `), h("span", { class: `badge ${ho.status}` }, ho.status), " ",
    h("span", { class: "question" }, ho.question), " ",
    h("span", { class: "metrics" }, `${ho.reason} · ${time(ho.created_at)} · ${(ho.transcript || []).length} messages`)),
  transcript(ho.transcript || []),
  ho.status === "closed" ? "" : h("form", { class: "reply", onsubmit: (e) => sendReply(e, t.tenant, ho) },
    h("label", { for: `reply-${t.tenant}-${ho.id}`, class: "sr" }, `reply to handoff ${ho.id}`),
    h("textarea", { id: `reply-${t.tenant}-${ho.id}`, name: "text", required: true, rows: 2, placeholder: "Your reply, shown in the customer's chat" }),
    h("label", {}, h("input", { type: "checkbox", name: "close", checked: true }), " close"),
    h("button", { type: "submit" }, "Send reply")));
  return details;
}

function tenantBlock(t) {
  if (t.error) return h("div", { class: "tenant", "data-tenant": t.tenant }, h("h3", {}, t.tenant), h("p", { class: "error" }, t.error));
  return h("div", { class: "tenant", "data-tenant": t.tenant },
    h("h3", {}, `${t.name || t.tenant} (${t.tenant})`),
    h("div", { class: "figures" },
      h("div", { class: "figure" }, h("b", { "data-figure": "open" }, t.open_handoffs), h("span", {}, "open handoffs")),
      h("div", { class: "figure" }, h("b", { "data-figure": "entries" }, t.entries), h("span", {}, "knowledge-base entries")),
      h("div", { class: "figure" }, h("b", {}, t.encoder || "–"), h("span", {}, "encoder"))),
    h("h3", {}, "Handoff queue"),
    t.handoffs.length ? h("div", { class: "handoffs" }, t.handoffs.map((ho) => handoffItem(t, ho))) : h("p", {}, "No handoffs."),
    knowledgeBase(t.tenant));
}

// the knowledge-base tools of one tenant: search, edit, delete, upload, test a question
function knowledgeBase(tenant) {
  if (kbTools.has(tenant)) return kbTools.get(tenant);
  const api = `/api/support/${encodeURIComponent(tenant)}`;
  const status = h("div", { class: "message", role: "status", hidden: true });
  const say = (text, isError) => { status.hidden = !text; status.className = "message" + (isError ? " error" : ""); status.textContent = text; };
  const results = h("div", { class: "kb-results" });
  const editor = h("div", { class: "kb-editor" });
  const query = h("input", { type: "search", name: "q", "aria-label": "search the knowledge base", placeholder: "search questions and answers" });

  async function call(method, url, body, raw) {
    const r = await fetch(url, {
      method, headers: { "Content-Type": raw ? "text/plain" : "application/json" },
      body: raw !== undefined ? raw : body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await r.json().catch(() => ({}));
    if (r.status === 401) endedLogin();
    if (!r.ok) throw new Error(typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail || r.status));
    return data;
  }

  async function search() {
    try {
      const found = await call("GET", `${api}/entries?q=${encodeURIComponent(query.value)}&limit=50`);
      results.replaceChildren(
        h("p", { class: "metrics" }, `${found.matches} of ${found.scanned} entries match` + (found.matches > found.entries.length ? ` (first ${found.entries.length} shown)` : "")),
        h("table", { class: "kb" }, h("tbody", {}, found.entries.map((e) => h("tr", { "data-entry": e.id, "data-kind": e.kind },
          h("td", {}, h("b", {}, e.title), e.heading ? ` › ${e.heading}` : "", h("div", { class: "answer" }, e.body)),
          h("td", { class: "metrics" }, `${e.kind} · ${e.category || "–"} · ${e.id}`),
          h("td", { class: "actions" },
            e.kind === "faq" ? h("button", { type: "button", "data-action": "edit", onclick: () => edit(e) }, "Edit") : "",
            h("button", { type: "button", "data-action": "delete", onclick: () => remove(e) }, "Delete")))))));
    } catch (err) { say(`search failed: ${err.message}`, true); }
  }

  function edit(e) {
    const field = (name, label, value, tag = "input") => h("label", {}, label,
      h(tag, { name, value: tag === "input" ? value || "" : null, rows: tag === "textarea" ? 4 : null,
        required: ["id", "question", "answer"].includes(name), readonly: name === "id" && !!e, }, tag === "textarea" ? value || "" : null));
    const form = h("form", { class: "kb-edit", onsubmit: async (ev) => {
      ev.preventDefault();
      const values = Object.fromEntries(new FormData(form).entries());
      try {
        await call("POST", `${api}/faq`, values);
        say(`Saved ${values.id}.`, false);
        editor.replaceChildren();
        await search();
        await loadSupport(true);
      } catch (err) { say(`not saved: ${err.message}`, true); }
    } },
    h("h4", {}, e ? `Edit ${e.id}` : "New FAQ entry"),
    field("id", "id", e && e.id), field("question", "question", e && e.title),
    field("answer", "answer", e && e.body, "textarea"), field("category", "category", e && e.category),
    field("url", "link", e && e.url),
    h("div", {}, h("button", { type: "submit" }, "Save"), " ",
      h("button", { type: "button", onclick: () => editor.replaceChildren() }, "Cancel")));
    editor.replaceChildren(form);
    form.querySelector(e ? "[name=question]" : "[name=id]").focus();
  }

  async function remove(e) {
    try {
      const done = await call("DELETE", `${api}/entries/${encodeURIComponent(e.id)}`);
      say(`Deleted ${e.id} (${done.count} ${done.count === 1 ? "entry" : "entries"}).`, false);
      await search();
      await loadSupport(true);
    } catch (err) { say(`not deleted: ${err.message}`, true); }
  }

  const file = h("input", { type: "file", name: "file", accept: ".csv,.jsonl,.md,.markdown,.html,.htm,.txt", "aria-label": "file to upload", required: true });
  const kinds = { csv: "csv", jsonl: "jsonl", md: "markdown", markdown: "markdown", html: "html", htm: "html", txt: "text" };
  const upload = h("form", { class: "kb-upload", onsubmit: async (ev) => {
    ev.preventDefault();
    const f = file.files[0];
    const kind = f && kinds[(f.name.split(".").pop() || "").toLowerCase()];
    if (!kind) { say("choose a .csv or .jsonl FAQ, or a .md, .html or .txt document", true); return; }
    try {
      const done = await call("POST", `${api}/upload?kind=${kind}&name=${encodeURIComponent(f.name)}`, undefined, await f.text());
      const noun = kind === "csv" || kind === "jsonl" ? "entr" : "passage";
      const plural = noun === "entr" ? (done.count === 1 ? "y" : "ies") : done.count === 1 ? "" : "s";
      say(`Uploaded ${f.name}: ${done.count} ${noun}${plural} indexed.`, false);
      upload.reset();
      await search();
      await loadSupport(true);
    } catch (err) { say(`upload refused: ${err.message}`, true); }
  } }, file, h("button", { type: "submit" }, "Upload"),
  h("span", { class: "hint" }, " FAQ: CSV (id, question, answer[, category, url]) or JSONL; document: Markdown, HTML or text"));

  const question = h("input", { name: "question", required: true, "aria-label": "a question to test", placeholder: "a customer's question" });
  const verdict = h("div", { class: "kb-test-result", "aria-live": "polite" });
  const tester = h("form", { class: "kb-test", onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      const found = await call("POST", `${api}/search`, { question: question.value, k: 5 });
      verdict.replaceChildren(
        h("p", {}, "The bot would ", h("b", { class: `decision ${found.decision}`, "data-decision": found.decision }, found.decision),
          ` (confidence ${fmt(found.confidence, 3)}, threshold ${fmt(found.threshold, 3)}${found.calibrated ? ", calibrated" : ""})`),
        h("table", { class: "candidates" },
          h("thead", {}, h("tr", {}, ["#", "entry", "question", "score", "cosine", "fused (RRF)", "reranker"].map((c) => h("th", {}, c)))),
          h("tbody", {}, found.candidates.map((c, n) => h("tr", { "data-candidate": c.entry_id },
            h("td", {}, n + 1), h("td", {}, c.entry_id), h("td", {}, c.question, c.heading ? ` › ${c.heading}` : ""),
            h("td", { class: "num" }, fmt(c.score, 3)), h("td", { class: "num" }, fmt(c.cosine, 3)),
            h("td", { class: "num" }, fmt(c.fused, 4)), h("td", { class: "num" }, fmt(c.relevance, 3)))))));
    } catch (err) { say(`test failed: ${err.message}`, true); }
  } }, question, h("button", { type: "submit" }, "Test"));

  const block = h("div", { class: "kb-tools", "data-kb": tenant },
    h("h3", {}, "Knowledge base"), status,
    h("form", { class: "kb-search", onsubmit: (ev) => { ev.preventDefault(); search(); } }, query,
      h("button", { type: "submit" }, "Search"), " ",
      h("button", { type: "button", "data-action": "new", onclick: () => edit(null) }, "New entry")),
    editor, h("h4", {}, "Upload"), upload, h("h4", {}, "Test a question"), tester, verdict, results);
  kbTools.set(tenant, block);
  search();
  return block;
}

async function loadSupport(force) {
  const busy = document.activeElement && document.activeElement.closest("#support form");
  if (busy && !force) return;
  const panel = await getJson("/api/support");
  if (!panel.available) {
    replace("support-body", unavailable(panel));
    return;
  }
  replace("support-body", ...panel.tenants.map(tenantBlock));
}

// ---- recommender ------------------------------------------------------------------------------
async function loadRecommender() {
  const panel = await getJson("/api/recommender");
  if (!panel.available) {
    replace("recommender-body", unavailable(panel));
    return;
  }
  const figure = (value, label, name) => h("div", { class: "figure" },
    h("b", { "data-figure": name }, fmt(value)), h("span", {}, label));
  // requests to paths the API does not have are counted under "unmatched": a note, not a route
  const routes = panel.http.filter((r) => !["/health", "/metrics", "unmatched"].includes(r.route));
  const stray = panel.http.find((r) => r.route === "unmatched");
  replace("recommender-body",
    h("div", { class: "figures" },
      figure(panel.items, "catalog items", "items"),
      figure(panel.users, "users with events", "users"),
      figure(panel.index, "FAISS index", "index"),
      figure(panel.model_version, "encoder", "model")),
    h("h3", {}, `Trending now (${panel.trending.strategy})`),
    h("table", { class: "trending" },
      h("thead", {}, h("tr", {}, ["item", "category", "price", "score"].map((c) => h("th", {}, c)))),
      h("tbody", {}, panel.trending.items.map((i) => h("tr", { "data-item": i.id },
      h("td", {}, i.title), h("td", {}, i.category), h("td", { class: "num" }, fmt(i.price, 2)),
      h("td", { class: "num" }, fmt(i.score)))))),
    h("h3", {}, "HTTP API (since the recommender started; /health and /metrics left out)"),
    h("table", { class: "http" },
      h("thead", {}, h("tr", {}, ["route", "requests", "4xx", "5xx", "mean ms", "p95 ms ≤"].map((c) => h("th", {}, c)))),
      h("tbody", {}, routes.map((r) => h("tr", { "data-route": r.route },
        h("td", {}, r.route), h("td", { class: "num" }, r.requests), h("td", { class: "num" }, r.client_errors),
        h("td", { class: "num" }, r.server_errors), h("td", { class: "num" }, fmt(r.mean_ms, 1)),
        h("td", { class: "num" }, fmt(r.p95_ms_at_most, 1)))))),
    stray ? h("p", { class: "hint", id: "stray-requests" },
      `Also ${stray.requests} requests to paths the API does not have (answered 404).`) : "");
}

// ---- refresh loop -----------------------------------------------------------------------------
const JOBS = {
  status: ["admin", loadStatus], models: ["admin", loadModels], news: ["anyone", loadNews],
  support: ["tenant", loadSupport], recommender: ["admin", loadRecommender],
};

async function refresh() {
  const jobs = Object.entries(JOBS).filter(([, [needs]]) => allowed(needs));
  await Promise.all(jobs.map(async ([name, [, job]]) => {
    try {
      await job();
    } catch (err) {
      if (err.status === 401) {
        endedLogin();
        return;
      }
      const el = document.getElementById(`${name}-body`);
      if (el) el.replaceChildren(h("div", { class: "unavailable" }, `dashboard error: ${err.message}`));
    }
  }));
  document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
}

async function start() {
  document.getElementById("login-form").addEventListener("submit", login);
  document.getElementById("logout").addEventListener("click", logout);
  try {
    refreshMs = 1000 * (await getJson("/api/config")).refresh_seconds;
    await loadViewer();
  } catch (err) {
    showViewer(); // keep the default interval; anonymous until the session is known
  }
  const loop = async () => {
    await refresh();
    setTimeout(loop, refreshMs);
  };
  await loop();
}

start();
