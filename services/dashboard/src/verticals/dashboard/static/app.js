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
    // what an earlier login saw does not stay in the page
    if (section.hidden) replace(`${section.id}-body`, "loading…");
  }
  if (viewer.role !== "admin") replace("status");
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
      h("th", { colspan: 5 }, t.task, " ",
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
      h("td", {}, v.current ? "" : h("button", {
        type: "button", "data-action": "promote", onclick: () => promote(t.task, v.version, false),
      }, "Promote"))));
    }
  }
  replace("models-body", h("table", {},
    h("thead", {}, h("tr", {}, ["version", "model", "created", "primary metric", "metrics", ""]
      .map((c) => h("th", {}, c)))),
    h("tbody", {}, rows)));
}

// ---- news: the live chart -----------------------------------------------------------------
let focusedTopic = null; // a topic highlighted from the legend
function trendChart(panel) {
  const W = 760, H = 280, L = 40, R = 10, T = 10, B = 34;
  const buckets = panel.overall.map((p) => p.bucket_start);
  const index = new Map(buckets.map((b, i) => [b, i]));
  const x = (i) => L + (buckets.length < 2 ? (W - L - R) / 2 : (i * (W - L - R)) / (buckets.length - 1));
  const y = (share) => T + (1 - share) * (H - T - B);
  const chart = svg("svg", {
    id: "trend-chart", width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": "negative share per topic", "data-points": panel.overall.length,
  });
  for (const s of [0, 0.25, 0.5, 0.75, 1]) {
    chart.append(svg("line", { class: "grid", x1: L, x2: W - R, y1: y(s), y2: y(s) }));
    chart.append(svg("text", { x: 4, y: y(s) + 3 }, s.toFixed(2)));
  }
  chart.append(svg("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }));
  chart.append(svg("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
  const ticks = buckets.length ? [...new Set([0, Math.floor((buckets.length - 1) / 2), buckets.length - 1])] : [];
  for (const i of ticks) {
    const anchor = i === 0 ? "start" : i === buckets.length - 1 ? "end" : "middle";
    chart.append(svg("text", { x: x(i), y: H - B + 16, "text-anchor": anchor }, time(buckets[i])));
  }
  if (!buckets.length) {
    chart.append(svg("text", { x: W / 2 - 30, y: H / 2 }, "no data yet"));
    return { chart, legend: h("ul", { class: "legend" }) };
  }
  const topics = [...new Set(panel.points.map((p) => p.topic))].sort();
  const legend = h("ul", { class: "legend" });
  const line = (points) => points
    .map((p, n) => `${n ? "L" : "M"}${x(index.get(p.bucket_start)).toFixed(1)},${y(p.negative_share).toFixed(1)}`)
    .join(" ");
  topics.forEach((topic, n) => {
    const color = COLORS[n % COLORS.length];
    const points = panel.points.filter((p) => p.topic === topic);
    const path = svg("path", {
      d: line(points), stroke: color, "data-topic": topic,
      class: focusedTopic === topic ? "focus" : "",
    });
    path.append(svg("title", {}, topic));
    chart.append(path);
    legend.append(h("li", {
      class: focusedTopic === topic ? "focus" : "", title: "click to highlight",
      onclick: () => { focusedTopic = focusedTopic === topic ? null : topic; loadNews(); },
    }, h("i", { style: `background:${color}` }), topic));
  });
  chart.append(svg("path", { class: "overall", d: line(panel.overall), "data-topic": "all" }));
  legend.append(h("li", {}, h("i", { style: "background:#111;height:4px" }), "all topics"));
  return { chart, legend };
}

function alertItem(a) {
  return h("li", { "data-alert": a.id, "data-key": a.key },
    h("b", {}, a.key), ` ${a.rule} · ${time(a.window_start)}–${time(a.window_end).slice(6)} · `,
    `${a.metric === "negative_volume" ? "negatives " + a.negative : "share " + fmt(a.negative_share, 2)}`,
    ` vs baseline ${fmt(a.baseline, 2)} (z ${fmt(a.score, 1)}, ${a.negative}/${a.total} negative)`,
    h("div", { class: "evidence" }, (a.evidence || []).map((e) => e.title).join(" · ")));
}

async function loadNews() {
  const panel = await getJson("/api/news");
  if (!panel.available) {
    replace("news-body", unavailable(panel));
    return;
  }
  const { chart, legend } = trendChart(panel);
  const consumer = panel.consumer || {};
  replace("news-body",
    h("div", { class: "figures" },
      h("div", { class: "figure" }, h("b", {}, fmt(panel.observations)), h("span", {}, "headlines classified")),
      h("div", { class: "figure" }, h("b", {}, fmt(panel.alert_count)), h("span", {}, "alerts")),
      h("div", { class: "figure" }, h("b", {}, panel.model || "–"), h("span", {}, "model")),
      h("div", { class: "figure" }, h("b", {}, consumer.running === undefined ? "–" : consumer.running ? "running" : "stopped"),
        h("span", {}, "consumer"))),
    h("h3", {}, `Negative share per ${panel.bucket_minutes} min bucket `,
      h("a", { href: panel.png_url, target: "_blank", rel: "noopener" }, "(PNG)")),
    h("div", { class: "chart-wrap" }, chart, legend),
    h("h3", {}, `Recent alerts (${panel.alerts.length})`),
    panel.alerts.length
      ? h("ul", { class: "alerts", id: "alerts" }, panel.alerts.map(alertItem))
      : h("p", { id: "alerts" }, "No alerts yet."));
}

// ---- support ----------------------------------------------------------------------------------
async function sendReply(event, tenant, handoff) {
  event.preventDefault();
  const input = event.target.querySelector("input");
  const r = await act(`/api/support/handoffs/${handoff.id}/reply`, { tenant, text: input.value });
  if (r.ok) showMessage("support-message", `Replied to handoff #${handoff.id} (${tenant}).`, false);
  else showMessage("support-message", r.detail || `failed (${r.status})`, true);
  await loadSupport(true);
}

function tenantBlock(t) {
  if (t.error) return h("div", { class: "tenant", "data-tenant": t.tenant }, h("h3", {}, t.tenant), h("p", { class: "error" }, t.error));
  const handoffs = t.handoffs.map((ho) => h("tr", { "data-handoff": ho.id, "data-status": ho.status },
    h("td", {}, `#${ho.id}`),
    h("td", {}, h("span", { class: `badge ${ho.status}` }, ho.status)),
    h("td", { class: "question" }, ho.question),
    h("td", {}, ho.reason),
    h("td", {}, time(ho.created_at)),
    h("td", {}, ho.status === "open"
      ? h("form", { class: "reply", onsubmit: (e) => sendReply(e, t.tenant, ho) },
        h("input", { name: "text", required: true, placeholder: "staff reply", "aria-label": "reply" }),
        h("button", { type: "submit" }, "Reply"))
      : "")));
  return h("div", { class: "tenant", "data-tenant": t.tenant },
    h("h3", {}, `${t.name || t.tenant} (${t.tenant})`),
    h("div", { class: "figures" },
      h("div", { class: "figure" }, h("b", { "data-figure": "open" }, t.open_handoffs), h("span", {}, "open handoffs")),
      h("div", { class: "figure" }, h("b", { "data-figure": "entries" }, t.entries), h("span", {}, "knowledge-base entries")),
      h("div", { class: "figure" }, h("b", {}, t.encoder || "–"), h("span", {}, "encoder"))),
    h("h3", {}, "Handoff queue"),
    t.handoffs.length
      ? h("table", { class: "handoffs" }, h("tbody", {}, handoffs))
      : h("p", {}, "No handoffs."),
    h("h3", {}, `Knowledge base (first ${t.kb.length} of ${t.entries})`),
    h("ul", { class: "kb" }, t.kb.map((e) => h("li", { "data-entry": e.id },
      e.title, e.heading ? ` › ${e.heading}` : "", e.category ? h("span", { class: "metrics" }, ` ${e.category}`) : ""))));
}

async function loadSupport(force) {
  const typing = document.activeElement && document.activeElement.closest("#support form");
  if (typing && !force) return;
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
      h("tbody", {}, panel.http.filter((r) => !["/health", "/metrics"].includes(r.route)).map((r) => h("tr", { "data-route": r.route },
        h("td", {}, r.route), h("td", { class: "num" }, r.requests), h("td", { class: "num" }, r.client_errors),
        h("td", { class: "num" }, r.server_errors), h("td", { class: "num" }, fmt(r.mean_ms, 1)),
        h("td", { class: "num" }, fmt(r.p95_ms_at_most, 1)))))));
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
